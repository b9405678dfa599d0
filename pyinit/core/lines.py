"""Service output as lines, pure: splitting a byte stream, formatting a line for the
container's output, and the ring of recent lines kept for `svctl logs`; and
take_line, one capped line out of a buffer (control requests and replies, probes).

Bytes are never decoded on the text path, so non-UTF-8 output passes through
unharmed; JSON lines carry it with surrogate escapes. A line longer than
max_line is cut into pieces of max_line bytes, never dropped. Lines travel in
blocks (all the whole lines of one read) so the common text path is a few
bytes operations per read, not Python work per line.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # svctl's client imports take_line: nothing more is loaded for it
if TYPE_CHECKING:
    from collections import deque
    from typing import Optional

MAX_LINE = 16 * 1024


class LineTooLong(ValueError):
    """A line over its cap (take_line)."""


def take_line(buf: bytearray, limit: int, scanned: int = 0) -> bytes | None:
    """The first line in buf, with its newline, taken out of buf; None while buf holds
    no newline yet. LineTooLong when the line, complete or not, is over limit bytes
    (without its newline). scanned: how much of buf is known to hold no newline."""
    end = buf.find(b"\n", scanned)
    if end > limit or (end < 0 and len(buf) > limit):
        raise LineTooLong(f"a line over {limit} bytes")
    if end < 0:
        return None
    line = bytes(buf[: end + 1])
    del buf[: end + 1]
    return line


class Splitter:
    """Bytes in, blocks of whole lines out; a partial line is held until its newline.
    A held partial line longer than max_line is cut into max_line pieces."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.partial = b""

    def feed(self, data: bytes) -> bytes:
        """The whole lines data completes, as one block ending in b"\\n" (b"" if none)."""
        buf = self.partial + data if self.partial else data
        last = buf.rfind(b"\n")
        block, rest = (buf[: last + 1], buf[last + 1:]) if last >= 0 else (b"", buf)
        if len(rest) > self.max_line:
            cut = len(rest) - (len(rest) % self.max_line or self.max_line)  # keep a piece
            pieces = [rest[i:i + self.max_line] for i in range(0, cut, self.max_line)]
            block += b"\n".join(pieces) + b"\n"
            rest = rest[cut:]
        self.partial = rest
        if len(block) > self.max_line + 1 and max(map(len, block.split(b"\n"))) > self.max_line:
            block = self.cut(block)
        return block

    def cut(self, block: bytes) -> bytes:
        """The block with every line longer than max_line cut into max_line pieces."""
        out = []
        for line in block[:-1].split(b"\n"):
            out.extend(line[i:i + self.max_line] for i in range(0, len(line), self.max_line))
            if not line:
                out.append(line)
        return b"\n".join(out) + b"\n"

    def flush(self) -> bytes:
        """The held partial line as a block (at EOF or shutdown), or b""."""
        rest, self.partial = self.partial, b""
        return rest + b"\n" if rest else b""


def split_block(block: bytes) -> list[bytes]:
    """A block from Splitter as its lines (without newlines)."""
    return block[:-1].split(b"\n") if block else []


def prefix_block(block: bytes, prefix: bytes) -> bytes:
    """Every line of a block with prefix in front, in one pass (C speed)."""
    return prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n" if block else b""


def timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-11-22T05:49:34.123Z."""
    whole = int(now)
    millis = int((now - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def render(service: str, stream: str, block: bytes, fmt: str, now: Optional[float]) -> bytes:
    """A block of lines for the container's output: `NAME | line` (fmt "text"), after
    a timestamp when now is given, or one JSON object per line (fmt "json")."""
    if fmt == "json":
        import json

        ts = timestamp(now if now is not None else time.time())
        return b"".join(
            json.dumps({"ts": ts, "service": service, "stream": stream,
                        "line": line.decode("utf-8", "surrogateescape")}).encode() + b"\n"
            for line in split_block(block))
    head = f"{timestamp(now)} " if now is not None else ""
    return prefix_block(block, f"{head}{service} | ".encode())


def render_plain(block: bytes, now: Optional[float]) -> bytes:
    """A block of lines for a log file: as written, after a timestamp when now is given."""
    return prefix_block(block, f"{timestamp(now)} ".encode()) if now is not None else block


class Ring:
    """The last `size` lines of a service, for `svctl logs -n`, each with its place in
    the order every Ring received its lines (to merge several services' lines)."""

    received = 0  # lines added to any Ring so far: the next line's place

    def __init__(self, size: int = 1000) -> None:
        from collections import deque

        self.lines: deque[bytes] = deque(maxlen=size)
        self.places: deque[int] = deque(maxlen=size)

    def add(self, block: bytes) -> None:
        """Keep the last lines of a block (only as many as the ring holds are split out)."""
        size = self.lines.maxlen or 0
        parts = block[:-1].rsplit(b"\n", size) if block else []
        new = parts[1:] if len(parts) > size else parts
        self.lines.extend(new)
        first = Ring.received
        Ring.received += len(new)
        self.places.extend(range(first, first + len(new)))

    def tail(self, n: int) -> list[bytes]:
        if n <= 0:
            return []
        return list(self.lines)[-n:]

    def history(self, n: int) -> list[tuple[int, bytes]]:
        """The last n lines with their places (merge them with another Ring's in order)."""
        if n <= 0:
            return []
        return list(zip(self.places, self.lines))[-n:]
