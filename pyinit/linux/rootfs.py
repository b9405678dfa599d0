"""An unpacked image tree seen from outside, as `pyinit check --root DIR` reads it.

A path of the image (`/etc/service/web/run`) becomes a path under DIR with
every symlink resolved inside DIR, as the kernel would inside the container: an
absolute link target means DIR + target, `..` stops at DIR, and at most
MAX_LINKS links are followed. Nothing ever resolves to a file of the host outside
DIR. Without a root, paths are this system's, unchanged.
"""

from __future__ import annotations

import os
import stat

MAX_LINKS = 40  # symlinks followed in one path, as the kernel's MAXSYMLINKS
# What a path with too many links (a loop) resolves to: a path that exists nowhere
# (no fd is -1), so every test on it says "no such file", as ELOOP does.
LOOPED = "/proc/self/fd/-1/too-many-symlinks"


class Root:
    """Image paths to host paths under `top` (None: this system's, unchanged)."""

    def __init__(self, top: str | None = None) -> None:
        self.top = None if top is None else os.path.abspath(top)

    def path(self, image_path: str) -> str:
        """The host path of image_path, every symlink in it resolved inside top; the
        components after one that does not exist are appended as they are; LOOPED
        after MAX_LINKS links."""
        if self.top is None:
            return image_path
        resolved: list[str] = []  # components below top, each no symlink
        pending = _parts(image_path)
        links = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            here = os.path.join(self.top, *resolved, name)
            try:
                st = os.lstat(here)
            except OSError:
                return os.path.join(here, *pending)
            if not stat.S_ISLNK(st.st_mode):
                resolved.append(name)
                continue
            links += 1
            if links > MAX_LINKS:
                return LOOPED
            target = os.readlink(here)
            if target.startswith("/"):
                resolved = []
            pending = _parts(target) + pending
        return os.path.join(self.top, *resolved)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]
