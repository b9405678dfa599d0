"""`python -I -m pyinit.cli.s6_links [--root DIR] [PYINIT]`: install s6-overlay's
names as links to pyinit, so an image keeps its scripts with s6-overlay removed:
/init, and with-contenv, s6-setuidgid, s6-svc, s6-svstat in /command (s6-overlay
v3's place) and /usr/bin (its compatibility links). PYINIT is the pyinit program
(default: `pyinit` beside this interpreter, else on PATH). An existing file of a
link's name is replaced (atomically). Prints one line per link."""

from __future__ import annotations

import os
import shutil
import sys

COMMANDS = ("with-contenv", "s6-setuidgid", "s6-svc", "s6-svstat")
DIRS = ("/command", "/usr/bin")
USAGE = "usage: python -I -m pyinit.cli.s6_links [--root DIR] [PYINIT]"


def links(root: str) -> list[str]:
    """Every link's path under root."""
    out = [os.path.join(root, "init")]
    for directory in DIRS:
        out += [os.path.join(root, directory.lstrip("/"), name) for name in COMMANDS]
    return out


def place(link: str, target: str) -> None:
    """link -> target, replacing what is there in one rename."""
    os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
    tmp = f"{link}.pyinit-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    root = "/"
    if args[:1] == ["--root"] and len(args) >= 2:
        root, args = args[1], args[2:]
    if len(args) > 1 or (args and args[0].startswith("-")):
        sys.stderr.write(USAGE + "\n")
        sys.exit(2)
    beside = os.path.join(os.path.dirname(sys.executable), "pyinit")
    target = args[0] if args else (beside if os.path.exists(beside) else shutil.which("pyinit"))
    if not target:
        sys.stderr.write("s6_links: no pyinit program found: name it\n" + USAGE + "\n")
        sys.exit(2)
    for link in links(root):
        try:
            place(link, target)
        except OSError as exc:
            sys.stderr.write(f"s6_links: {link}: {exc.strerror or exc}\n")
            sys.exit(1)
        print(f"{link} -> {target}")


if __name__ == "__main__":
    main()
