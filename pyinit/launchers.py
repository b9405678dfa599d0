"""`python -I -m pyinit.launchers [--python PATH [--no-check]] DIR`: write pyinit's commands to DIR
as launchers whose `#!` line runs the interpreter isolated (`-I`).

pip writes console scripts with a bare `#!PYTHON` line: that interpreter reads
PYTHONHOME, PYTHONPATH, the user site and a sitecustomize before any pyinit
code runs (pyinit.entry then re-executes itself with -I, but what ran before
it ran, and a bad PYTHONHOME stops the interpreter first). These launchers
carry `-I` in the `#!` line, so the kernel starts the interpreter isolated.
The recipes in packaging/ run this after pip; the .deb's scripts are the same.
Existing files or links of the same names are replaced (atomically); a file
that already holds the launcher is left alone. Prints what it did, one line each.
"""

from __future__ import annotations

import os
import sys

from pyinit import entry
from pyinit.cli.stdio import guarded

COMMANDS = {"pyinit": "pyinit", "svctl": "svctl", "setuser": "setuser", "pyinit-env": "pyinit_env"}
USAGE = "usage: python -I -m pyinit.launchers [--python PATH [--no-check]] DIR"
MAX_SHEBANG = 127  # the kernel's limit before Linux 5.1 (256 since)


def text(python: str, function: str) -> str:
    """One launcher: the interpreter isolated, then pyinit.entry's function. When
    PYTHONEXECUTABLE (honoured even under -I) made the interpreter look for its
    venv beside another program, the venv is found again from the `#!` path."""
    return (
        f"#!{python} -I\n"
        "try:\n"
        "    import pyinit.entry\n"
        "except ImportError:  # PYTHONEXECUTABLE hid the venv\n"
        "    import os, site, sys\n"
        "    if not os.environ.get('PYTHONEXECUTABLE'):\n"
        "        raise\n"
        f"    sys.executable = {python!r}\n"
        "    site.main()\n"
        "    import pyinit.entry\n"
        f"pyinit.entry.{function}()\n"
    )


def check_python(python: str, exists: bool = True) -> str | None:
    """Why python cannot go in a `#!` line, or None. exists=False: the path is the
    target system's (a package build), not checked here."""
    if not os.path.isabs(python):
        return f"{python!r} is not an absolute path"
    if any(c.isspace() for c in python) or len(python) + 5 > MAX_SHEBANG:
        return "the interpreter's path has blanks or is too long for a #! line"
    if exists and not os.access(python, os.X_OK):
        return f"{python} is not executable"
    return None


def write(directory: str, python: str) -> list[str]:
    """Write every launcher into directory; one line per command saying what was done."""
    done = []
    for name, function in COMMANDS.items():
        path = os.path.join(directory, name)
        body = text(python, function).encode()
        try:
            with open(path, "rb") as old:
                if old.read(len(body) + 1) == body and not os.path.islink(path):
                    done.append(f"{path}: unchanged")
                    continue
        except OSError:
            pass
        tmp = os.path.join(directory, f".{name}.pyinit-tmp")
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
        try:
            os.write(fd, body)
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        done.append(f"{path}: written")
    return done


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    python, exists = entry.interpreter(), True  # not PYTHONEXECUTABLE's
    while args[:1] in (["--python"], ["--no-check"]):
        if args[0] == "--no-check":
            exists, args = False, args[1:]
        elif len(args) >= 2:
            python, args = args[1], args[2:]
        else:
            break
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    problem = check_python(python, exists)
    if problem is None and not os.path.isdir(args[0]):
        problem = f"{args[0]} is not a directory"
    if problem is not None:
        print(f"pyinit.launchers: error: {problem}", file=sys.stderr)
        return 1
    try:
        done = write(args[0], python)
    except OSError as exc:
        print(f"pyinit.launchers: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    return 0


@guarded("pyinit.launchers")  # `| head`, >/dev/full: as every other tool
def command() -> int:
    """`python -I -m pyinit.launchers ...`: main() on sys.argv."""
    return main()


if __name__ == "__main__":
    command()
