"""`python -m pyinit` runs the pyinit command (through pyinit.entry, as every launcher)."""

from pyinit.entry import pyinit

if __name__ == "__main__":
    pyinit()
