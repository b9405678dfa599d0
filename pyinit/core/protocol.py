"""The control protocol's pure parts: constants, request and reply decoding, line
framing. No sockets: the server (control/server.py), svctl's client call
(control/protocol.py) and the TCP probes' status-line reader share them. See
docs/control-protocol.md.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
