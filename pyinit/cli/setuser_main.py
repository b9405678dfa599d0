"""`python -m pyinit.cli.setuser_main` runs setuser (for tests and images without the script)."""

from pyinit.entry import setuser

setuser()
