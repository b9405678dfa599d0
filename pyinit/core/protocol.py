"""The control protocol's pure parts: constants, request and reply decoding, line
framing. No sockets: the server (control/server.py), svctl's client call
(control/protocol.py) and the TCP probes' status-line reader share them. See
docs/control-protocol.md.
"""

from __future__ import annotations

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
        value = loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise error(not_json) from None
    if not isinstance(value, dict):
        raise error(not_object)
    return value


# --- JSON without the json package ----------------------------------------------------
# `import json` costs svctl more than its whole request: json.decoder and json.encoder
# import re (and re imports enum). The C scanner and string encoder they wrap are
# used directly for what the protocol sends (a UTF-8 line holding one object); anything
# else goes to the json package, so the result is json.loads's and json.dumps's.
_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What the C scanner reads off a json.JSONDecoder: the defaults of json.loads."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}


def loads(line: bytes) -> Any:
    """json.loads(line): the same value, or the same exception class (a ValueError,
    UnicodeDecodeError or RecursionError)."""
    try:
        from _json import make_scanner
    except ImportError:  # not CPython
        make_scanner = None
    if make_scanner is None or line[:1] != b"{" or line[1:2] == b"\0":
        import json  # another encoding (json.loads detects UTF-16/32), or another start

        return json.loads(line)
    text = line.decode("utf-8")  # what json.loads decodes such a line as
    try:
        value, end = make_scanner(_Context())(text, 0)
    except StopIteration:
        raise ValueError("Expecting value") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError("Extra data")
    return value


def dumps(value: Any) -> str:
    """json.dumps(value) for a request: dicts with str keys, lists, str, int, bool,
    None and finite floats; anything else through the json package."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # not CPython
        quote = None
    if quote is None:
        import json

        return json.dumps(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is str:
        return quote(value)
    if type(value) is int or (type(value) is float and value - value == 0):
        return int.__repr__(value) if type(value) is int else float.__repr__(value)
    if type(value) is list:
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if type(value) is dict and all(type(k) is str for k in value):
        return "{" + ", ".join(f"{quote(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    import json

    return json.dumps(value)
