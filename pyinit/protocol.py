"""The control protocol's shared parts: constants, request validation, the client call.

Kept free of the server's imports so `svctl` starts fast. See docs/control-protocol.md.
"""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
SOCKET_NAME = "control.sock"
MAX_NAMES = 1000  # names in one request's `services` (each is resolved, then watched)


class ProtocolError(Exception):
    """A request that cannot be served; its text goes back to the client."""


def parse_request(line: bytes) -> dict[str, Any]:
    """Decode and validate the envelope of one request line."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("request is not valid JSON") from None
    if not isinstance(request, dict):
        raise ProtocolError("request must be a JSON object")
    version = request.get("v")
    if version != VERSION or type(version) is not int:
        from pyinit.bounds import render

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


def request(path: str, payload: dict[str, Any], timeout: float | None = 10.0) -> dict[str, Any]:
    """Client side: send one request, return the one reply (blocking; for svctl)."""
    payload = {"v": VERSION, **payload}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        buf = bytearray()
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("pyinit closed the connection without a reply")
            buf += chunk
    return json.loads(buf[: buf.index(b"\n")])
