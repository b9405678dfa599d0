"""supervisord.conf's files: finding, reading (bounded, link-checked) and writing the
service dirs pyinit then supervises. The decisions are supervisord_conf.py's and
supervisord_services.py's."""

from __future__ import annotations

import glob
import os
import tempfile

from pyinit.core.bounds import InputError, clip, read_fd
from pyinit.foreign.supervisord_conf import ConfError
from pyinit.foreign.supervisord_services import Service
from pyinit.linux import safefs

MAX_FILE = 1024 * 1024  # bytes of one .conf file
MAX_MATCHES = 100  # files one [include] pattern may match


def search_path(argv0: str) -> list[str]:
    """supervisord's default places, in its order, when there is no -c: relative to
    the program's directory's parent, then the current directory, then /etc."""
    here = os.path.dirname(os.path.dirname(argv0))
    return [
        os.path.join(here, "etc", "supervisord.conf"),
        os.path.join(here, "supervisord.conf"),
        "supervisord.conf",
        "etc/supervisord.conf",
        "/etc/supervisord.conf",
        "/etc/supervisor/supervisord.conf",
    ]


def find(argv0: str) -> str:
    """The first file of the search path that exists (absolute), or ConfError."""
    paths = search_path(argv0)
    for path in paths:
        if os.path.exists(path):
            return os.path.abspath(path)
    raise ConfError(
        "no config file found at the default paths (" + ", ".join(paths) + "); use -c to name one"
    )


def read(path: str) -> str:
    """A .conf file's text: at most MAX_FILE bytes, a regular file, reached without
    following a link another user could have put on the way (safefs)."""
    try:
        fd = safefs.open_read(path)
    except OSError as exc:
        raise ConfError(f"cannot read {clip(path, 300)}: {exc.strerror or exc}") from None
    try:
        data = read_fd(fd, MAX_FILE, clip(path, 300))
    except InputError as exc:
        raise ConfError(str(exc)) from None
    except OSError as exc:
        raise ConfError(f"cannot read {clip(path, 300)}: {exc.strerror or exc}") from None
    return data.decode("utf-8", "surrogateescape")


def matches(pattern: str) -> list[str]:
    """An include pattern's files, sorted, at most MAX_MATCHES (or ConfError)."""
    found: list[str] = []
    for name in glob.iglob(pattern):
        if len(found) >= MAX_MATCHES:
            raise ConfError(f"[include] files: {clip(pattern, 200)} matches more than 100 files")
        found.append(name)
    return sorted(found)


def write(services: list[Service], run_dir: str) -> str:
    """A fresh directory RUN_DIR/supervisord.XXXXXX (root's, mode 0755) holding one
    service dir per service: `run` (0755), `service.yaml`, `down` when not autostarted.
    Every name is created new (O_EXCL) inside a directory made here, so nothing
    another user put there is followed."""
    base = tempfile.mkdtemp(prefix="supervisord.", dir=run_dir)
    os.chmod(base, 0o755)
    for svc in services:
        path = os.path.join(base, svc.name)
        os.mkdir(path, 0o755)
        _create(path, "run", svc.run, 0o755)
        _create(path, "service.yaml", svc.yaml(), 0o644)
        if svc.down:
            _create(path, "down", "", 0o644)
    return base


def _create(directory: str, name: str, text: str, mode: int) -> None:
    fd = os.open(
        os.path.join(directory, name),
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        mode,
    )
    try:
        data = memoryview(text.encode("utf-8", "surrogateescape"))
        while data:
            data = data[os.write(fd, data) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
