"""The control protocol's shared parts: constants, request validation, the client call.

Kept free of the server's imports so `svctl` starts fast. See docs/control-protocol.md.
"""

from __future__ import annotations

import json
import socket

from pyinit.core.lines import LineTooLong, take_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

VERSION = 1
SOCKET_NAME = "control.sock"
MAX_NAMES = 1000  # names in one request's `services` (each is resolved, then watched)
# A reply line the client reads at most. pyinit never sends a longer one: the server
# drops a client with more than 4 MiB of unsent replies (control.MAX_PENDING), so one
# line over that never leaves it. Past this, the socket is not pyinit's.
MAX_REPLY = 16 * 1024 * 1024


class ProtocolError(Exception):
    """A request that cannot be served; its text goes back to the client."""


def parse_request(line: bytes) -> dict[str, Any]:
    """Decode and validate the envelope of one request line."""
    request = _json_object(
        line, ProtocolError, "request is not valid JSON", "request must be a JSON object"
    )
    version = request.get("v")
    if version != VERSION or type(version) is not int:
        from pyinit.core.bounds import render

        shown = render(version, 40)  # the client's value, never more than a line
        raise ProtocolError(f"unsupported protocol version {shown} (want {VERSION})")
    if not isinstance(request.get("cmd"), str):
        raise ProtocolError("request needs a string 'cmd'")
    services = request.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ProtocolError("'services' must be a list of strings")
    if len(services) > MAX_NAMES:
        raise ProtocolError(f"'services' must list at most {MAX_NAMES} names")
    return request


class ReplyError(ValueError):
    """A reply that is not one of pyinit's (too long, not JSON, not an object)."""


def read_line(
    sock: socket.socket, buf: bytearray, before_recv: Callable[[], None] | None = None
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


def parse_reply(line: bytes) -> dict[str, Any]:
    """One reply line as a dict, or a ReplyError."""
    return _json_object(
        line,
        ReplyError,
        "the reply is not valid JSON (is this pyinit's socket?)",
        "the reply is not a JSON object (is this pyinit's socket?)",
    )


def _json_object(
    line: bytes, error: type[Exception], not_json: str, not_object: str
) -> dict[str, Any]:
    """line decoded as a JSON object; raises error(not_json) or error(not_object)
    otherwise (a nesting too deep for the parser is not JSON either)."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise error(not_json) from None
    if not isinstance(value, dict):
        raise error(not_object)
    return value


def request(path: str, payload: dict[str, Any], timeout: float | None = 10.0) -> dict[str, Any]:
    """Client side: send one request, return the one reply (blocking; for svctl).
    The reply line is read bounded (MAX_REPLY) and must be a JSON object."""
    payload = {"v": VERSION, **payload}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        line = read_line(sock, bytearray())
    if not line.endswith(b"\n"):
        raise ConnectionError("pyinit closed the connection without a reply")
    return parse_reply(line)
