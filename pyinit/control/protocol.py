"""The control protocol's client call (svctl's): one request out, one bounded reply
line in. The pure parts (constants, decoding, line framing) are in core/protocol.py.
"""

from __future__ import annotations

import _socket

from pyinit.core.lines import LineTooLong, take_line
from pyinit.core.protocol import MAX_REPLY, VERSION, ReplyError, dumps, parse_reply

TYPE_CHECKING = False
if TYPE_CHECKING:
    from socket import socket
    from typing import Any, Callable


def read_line(
    sock: socket | _socket.socket, buf: bytearray, before_recv: Callable[[], None] | None = None
) -> bytes:
    """The next reply line from sock (with its newline; what is left stays in buf), at
    most MAX_REPLY bytes: longer is a ReplyError, before more is read. b"" at EOF
    (with a partial line: that part). before_recv runs before each read."""
    scanned = 0
    while True:
        try:
            line = take_line(buf, MAX_REPLY, scanned)
        except LineTooLong:
            break
        if line is not None:
            return line
        scanned = len(buf)
        if before_recv is not None:
            before_recv()
        chunk = sock.recv(65536)
        if not chunk:
            line = bytes(buf)
            buf.clear()
            return line
        buf += chunk
    buf.clear()
    raise ReplyError(
        f"a reply line longer than {MAX_REPLY // (1024 * 1024)} MiB (is this pyinit's socket?)"
    )


def request(path: str, payload: dict[str, Any], timeout: float | None = 10.0) -> dict[str, Any]:
    """Client side: send one request, return the one reply (blocking; for svctl).
    The reply line is read bounded (MAX_REPLY) and must be a JSON object. The socket
    is _socket's: the socket module imports selectors and enum, which svctl needs not."""
    payload = {"v": VERSION, **payload}
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(dumps(payload).encode() + b"\n")
        line = read_line(sock, bytearray())
    finally:
        sock.close()
    if not line.endswith(b"\n"):
        raise ConnectionError("pyinit closed the connection without a reply")
    return parse_reply(line)
