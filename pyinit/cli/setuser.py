"""The `setuser` command (privilege drop): not implemented yet."""

from __future__ import annotations

import sys


def main() -> None:
    sys.stderr.write("setuser: not yet implemented in this version of pyinit\n")
    sys.exit(111)
