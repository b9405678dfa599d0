"""What service supervision needs from the process around it (boot.Init), and no more.

Boot passes an object with these members; services/ never imports boot.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from pyinit.core.exits import ExitStatus
from pyinit.linux.signals import Inherited
from pyinit.runtime.loop import EventLoop


class Options(Protocol):
    """The settings services read (config.Config has them)."""

    @property
    def service_dirs(self) -> list[str]: ...
    @property
    def service_defaults(self) -> dict[str, Any]: ...
    @property
    def skip_services(self) -> bool: ...
    @property
    def kill_timeout(self) -> float: ...
    @property
    def log_mode(self) -> str: ...
    @property
    def log_format(self) -> str: ...
    @property
    def log_timestamps(self) -> bool: ...


class Reaping(Protocol):
    strays: int  # adopted orphans reaped so far (svctl ping reads it through services/api.py)

    def watch(self, pid: int, on_exit: Callable[[int, ExitStatus], None]) -> None: ...


class Host(Protocol):
    @property
    def loop(self) -> EventLoop: ...
    @property
    def config(self) -> Options: ...
    @property
    def reaper(self) -> Reaping: ...
    @property
    def inherited(self) -> Inherited: ...
    @property
    def run_dir(self) -> Optional[str]: ...  # None: no usable run dir

    def run_path(self, name: str) -> str:
        """A path in the run dir to bind a socket at (reached through its held fd)."""
        ...

    def remaining(self, wanted: float) -> float:
        """wanted seconds, cut to what is left of the shutdown budget."""
        ...

    def request_exit(self, code: int) -> None:
        """End the container with this exit code (an essential service ended)."""
        ...
