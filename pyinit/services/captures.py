"""Capture set-up: where each service's `run` output goes in prefix and file mode.

Before each start of `run` the pipes are made to match service.yaml as it is
then (capture.Capture per service, sinks.sinks for the container's stdout and
stderr, shared by all). At exit every captured line is written out, bounded.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Optional

from pyinit.core.model import ServiceDir
from pyinit.output.capture import Capture, Settings
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop
from pyinit.services.host import Options
from pyinit.services.records import Service

OUTPUT_FLUSH = 2.0  # at exit, the longest wait for the container's stdout to take lines
LOG_ROOT = "/var/log/pyinit"  # file mode's default: LOG_ROOT/NAME


def log_directory(defn: ServiceDir) -> str:
    """File mode's directory: service.yaml's log.dir (relative to the service dir, one
    dir per instance), else LOG_ROOT/NAME."""
    instance = [defn.instance] if defn.instance else []  # log.dir/INSTANCE
    if defn.config.log_dir:
        return os.path.join(defn.path, defn.config.log_dir, *instance)
    return os.path.join(LOG_ROOT, defn.name)


class Captures:
    def __init__(
        self, loop: EventLoop, options: Options, remaining: Callable[[float], float]
    ) -> None:
        self.loop = loop
        self.options = options
        self.remaining = remaining  # the shutdown budget left (Host.remaining)
        self.sinks: Optional[dict[str, Any]] = None  # the container's stdout/stderr

    def settings(self, svc: Service) -> Optional[Settings]:
        """Where run's output goes: None for inherit, and for log/run (which wins over
        a `log: mode`, so pyinit.yaml defaults never break a runit logger)."""
        c, o = svc.config, self.options
        mode = "runit" if svc.defn.has_log else (c.log_mode or o.log_mode)
        if mode not in ("prefix", "file"):
            return None
        return Settings(
            mode=mode,
            fmt=c.log_format or o.log_format,
            timestamps=o.log_timestamps if c.log_timestamps is None else c.log_timestamps,
            directory=log_directory(svc.defn),
            within=svc.defn.path if c.log_dir and not c.log_dir.startswith("/") else "",
            max_size=c.log_max_size,
            max_files=c.log_max_files,
        )

    def reconcile(self, svc: Service) -> None:
        """Before run starts: pipes for prefix or file mode, as service.yaml says now."""
        settings = self.settings(svc)
        current = svc.capture
        if current is not None and current.settings == settings:
            return
        if current is not None:
            self.close(svc)
        if settings is None:
            return
        if self.sinks is None:
            from pyinit.output import sinks as output

            self.sinks = output.sinks(self.loop)
        try:
            svc.capture = Capture(self.loop, svc.name, settings, self.sinks)
            if current is not None:  # `svctl logs` keeps its history and followers
                svc.capture.ring, svc.capture.followers = current.ring, current.followers
        except OSError as exc:
            log.error(
                f"cannot capture output ({exc.strerror}): it goes to pyinit's stdout and stderr",
                svc.name,
            )

    def close(self, svc: Service) -> None:
        """The service is forgotten (or changes mode): its lines out, its pipes closed."""
        if svc.capture is not None:
            svc.capture.drain()
            svc.capture.close()
            svc.capture = None

    def rotate(self, services: Iterable[Service]) -> None:
        """SIGHUP: a new file for every file-mode log."""
        for svc in services:
            if svc.capture is not None:
                svc.capture.rotate()

    def flush(self, services: Iterable[Service]) -> None:
        """Every captured line out before exit (bounded by the shutdown budget)."""
        for svc in services:
            if svc.capture is not None:
                svc.capture.drain()
        sinks = [s for s in (self.sinks or {}).values() if s is not None]
        if not self.loop.run_until(
            lambda: all(s.empty() for s in sinks), self.remaining(OUTPUT_FLUSH)
        ):
            log.warning("service output still unwritten at exit: dropped")
