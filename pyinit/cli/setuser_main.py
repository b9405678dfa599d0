"""`python -m pyinit.cli.setuser_main` runs setuser (for tests and images without the script)."""

from pyinit.cli.setuser import main

main()
