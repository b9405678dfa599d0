"""pyinit's own messages: one line each, `pyinit: LEVEL: [service] text`.

Writes go straight to fd 2 with os.write so a slow or closed stderr can never
raise into PID 1; a message that cannot be written is dropped.
"""

from __future__ import annotations

import os
import traceback

ERROR, WARNING, INFO, DEBUG = 0, 1, 2, 3
_NAMES = {ERROR: "error", WARNING: "warning", INFO: "info", DEBUG: "debug"}

verbosity = INFO
prog = "pyinit"


def configure(level: int, name: str = "pyinit") -> None:
    """Set the highest level printed (ERROR..DEBUG) and the program name."""
    global verbosity, prog
    verbosity = max(ERROR, min(DEBUG + 2, level))
    prog = name


def format_line(level: int, text: str, service: str | None = None) -> str:
    """Render one message line; newlines in text are flattened."""
    where = f"[{service}] " if service else ""
    flat = " ".join(text.splitlines())  # also a bare \r, which would overwrite the line
    return f"{prog}: {_NAMES.get(level, 'debug')}: {where}{flat}\n"


def emit(level: int, text: str, service: str | None = None) -> None:
    if level > verbosity:
        return
    data = format_line(level, text, service).encode("utf-8", "backslashreplace")
    try:
        os.write(2, data)
    except OSError:
        pass


def error(text: str, service: str | None = None) -> None:
    emit(ERROR, text, service)


def warning(text: str, service: str | None = None) -> None:
    emit(WARNING, text, service)


def info(text: str, service: str | None = None) -> None:
    emit(INFO, text, service)


def debug(text: str, service: str | None = None) -> None:
    emit(DEBUG, text, service)


def bug(where: str) -> None:
    """Log the current exception as a pyinit bug, with its traceback, and carry on."""
    emit(ERROR, f"internal error in {where} (pyinit keeps running):")
    try:
        os.write(2, traceback.format_exc().encode("utf-8", "backslashreplace"))
    except OSError:
        pass
