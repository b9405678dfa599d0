"""`python -m pyinit` runs the pyinit command."""

from pyinit.cli.pyinit import main

if __name__ == "__main__":
    main()
