"""Bounded, strict input: the limits, reading a file, numeric ids, and values in messages.

Every input a less trusted party controls (a service's files and output, the
container environment, the control socket, datagrams) goes through here before
it is parsed or shown: read at most a known number of bytes, without blocking
(a FIFO or a device is refused, not read), numbers only in ASCII digits and in
range, and a value put into a message rendered with a hard cap, so that an
error can never cost more than a line. Pure standard library.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any, Iterable, Mapping

MAX_MESSAGE_VALUE = 80  # characters of a value shown in an error message
MAX_ID = 2**32 - 2  # uid_t/gid_t; 2**32-1 is (uid_t)-1, "no change" to setresuid
MAX_NAME = 256  # a user or group name, in characters
MAX_SECONDS = 10**7  # a timeout or interval in pyinit.yaml, service.yaml or a flag
MAX_ARG_STRLEN = 32 * 4096  # the kernel's limit on one argv/env string, with its NUL


class InputError(ValueError):
    """An input over its bound or not strictly well-formed; the message is one line."""


def render(value: Any, limit: int = MAX_MESSAGE_VALUE) -> str:
    """repr(value) for a message, at most about `limit` characters, in time and memory
    bounded by `limit` whatever value is (a YAML alias bomb, a huge or nested list)."""
    out: list[str] = []
    budget = [limit]

    def put(text: str) -> bool:
        if budget[0] <= 0:
            return False
        out.append(text[: budget[0]])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(item: Any, depth: int) -> bool:
        if isinstance(item, (list, tuple, dict)):
            if depth > 8:
                return put("...")
            opening, closing = (
                ("{", "}")
                if isinstance(item, dict)
                else (("[", "]") if isinstance(item, list) else ("(", ")"))
            )
            if not put(opening):
                return False
            pairs = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for i, (key, val) in enumerate(pairs):
                if i and not put(", "):
                    return False
                if key is not None and not (walk(key, depth + 1) and put(": ")):
                    return False
                if not walk(val, depth + 1):
                    return False
            return put(closing)
        if isinstance(item, str):
            return put(repr(item[: budget[0] + 1]))
        if isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 256:
            return put(f"<a {item.bit_length()}-bit number>")
        if isinstance(item, (bool, int, float, type(None), bytes)):
            return put(repr(item[: budget[0] + 1] if isinstance(item, bytes) else item))
        return put(f"<{type(item).__name__}>")

    complete = walk(value, 0)
    text = "".join(out)
    return text if complete and len(text) <= limit else text[:limit] + "..."


def clip(text: str, limit: int) -> str:
    """text cut to at most `limit` characters (with '...' when cut), on one line."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def read_fd(fd: int, limit: int, what: str) -> bytes:
    """The content of the file open as fd (closed here), refused (InputError naming
    `what`) unless it is a regular file of at most `limit` bytes: at most limit + 1
    bytes are read, whatever the file's size is or becomes meanwhile, never read
    whole and checked after. Open it non-blocking (safefs.open_read), so that a FIFO
    cannot stall PID 1 before it gets here."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{what}: not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputError(f"{what}: larger than {_bytes(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _bytes(count: int) -> str:
    return f"{count // 1024} KiB" if count % 1024 == 0 and count >= 1024 else f"{count} bytes"


def is_number(text: str) -> bool:
    """Only ASCII digits, at least one (str.isdigit also takes '٠' and '²')."""
    return bool(text) and text.isascii() and text.isdigit()


def small_number(text: str, high: int) -> int | None:
    """text as a number from 0 to high in ASCII digits, or None (no exception, so
    a caller can say what it wanted in its own words)."""
    if not is_number(text) or len(text) > 20 or int(text) > high:
        return None
    return int(text)


_SECONDS = re.compile(r"-?([0-9]{1,12}(\.[0-9]{0,9})?|\.[0-9]{1,9})")


def parse_seconds(text: str) -> float | None:
    """A duration in ASCII decimal digits (`5`, `0.5`, `.5`; a `-` is let through for
    the caller's range check), or None. float() would also take ' 5', '1_0', 'nan',
    '1e9' and other scripts' digits."""
    return float(text) if _SECONDS.fullmatch(text) else None


def seconds(text: str, high: float) -> float:
    """A duration from 0 to high seconds (parse_seconds); InputError, one line with
    the value rendered, otherwise."""
    value = parse_seconds(text)
    if value is None:
        raise InputError(f"not a number of seconds: {render(text)}")
    if not 0 <= value <= high:
        raise InputError(f"out of range: {render(text)} (0 to {high:.12g} seconds)")
    return value


def parse_id(text: str, what: str = "id") -> int | None:
    """A uid or gid written as a number: the number (0 to 2**32-2), or None when
    text is a name. InputError for digits out of range or a non-ASCII number."""
    if is_number(text):
        value = small_number(text, MAX_ID)
        if value is None:
            raise InputError(f"{what} must be a number from 0 to {MAX_ID}, not {render(text)}")
        return value
    if text and text.isdigit():
        raise InputError(f"{what} {render(text)} is written in digits other than 0-9")
    return None


class IdentError(InputError):
    """parse_ident's refusal; `reason` says which rule: 'digits' (not 0-9), 'range'
    (over MAX_ID) or 'name' (no valid name), for a caller with its own wording."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_ident(text: str, what: str) -> int | None:
    """A user or group: its number (parse_id), or None for a name that check_name
    takes; IdentError (one line naming `what`, e.g. 'uid') otherwise."""
    try:
        number = parse_id(text, what)
    except InputError as exc:
        raise IdentError(str(exc), "range" if is_number(text) else "digits") from None
    if number is None:
        try:
            check_name(text, "user or group")
        except InputError as exc:
            raise IdentError(str(exc), "name") from None
    return number


def check_name(text: str, what: str) -> str:
    """A user or group name: non-empty, at most MAX_NAME characters, no NUL or
    control characters (which the passwd lookup would refuse with a traceback)."""
    if not text or len(text) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"{what} {render(text)} is not a valid name")
    return text


def env_entry_size(name: str, value: str) -> int:
    """Bytes one NAME=VALUE costs execve: the string, its NUL and its pointer."""
    return (
        len(name.encode("utf-8", "surrogateescape"))
        + 1
        + len(value.encode("utf-8", "surrogateescape"))
        + 1
        + 8
    )


def env_budget() -> int:
    """Bytes the whole environment may take at exec, leaving room for argv:
    ARG_MAX (os.sysconf) minus a quarter of it, at most 256 KiB, for argv."""
    try:
        arg_max = int(os.sysconf("SC_ARG_MAX"))
    except (ValueError, OSError):
        arg_max = 128 * 1024
    if arg_max <= 0:
        arg_max = 128 * 1024
    return arg_max - min(arg_max // 4, 256 * 1024)


class ExecEnv:
    """The variables execve can take, and a line for each one left out: `too_long`
    (over the kernel's per-string limit: a warning) and `too_much` (the whole would
    be over the budget: an error). A plain class: svctl imports this module, and
    dataclasses costs it inspect, ast and dis at start."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.too_long: list[str] = []
        self.too_much: list[str] = []


def exec_env(
    env: Mapping[str, str], budget: int | None = None, keep: Iterable[str] = ()
) -> ExecEnv:
    """Leave out of env what execve would refuse with E2BIG: a variable whose
    NAME=VALUE is over MAX_ARG_STRLEN; then, while the whole is over `budget`
    (env_budget()), the largest variables not in `keep`, then those in it."""
    budget = env_budget() if budget is None else budget
    out = ExecEnv({})
    sizes: dict[str, int] = {}
    for name, value in env.items():
        size = env_entry_size(name, value)
        if size - 8 > MAX_ARG_STRLEN:
            out.too_long.append(
                f"not passing {clip(name, 64)} to programs: NAME=VALUE is {size - 9} bytes, "
                f"over the kernel's limit of {MAX_ARG_STRLEN - 1} for one variable"
            )
            continue
        out.env[name] = value
        sizes[name] = size
    total = sum(sizes.values())
    kept = set(keep)
    for name in sorted(sizes, key=lambda n: (n in kept, -sizes[n], n)):
        if total <= budget:
            break
        del out.env[name]
        total -= sizes[name]
        out.too_much.append(
            f"not passing {clip(name, 64)} to programs ({sizes[name]} bytes): the whole "
            f"environment would be over the {budget} bytes exec can take (ARG_MAX)"
        )
    return out
