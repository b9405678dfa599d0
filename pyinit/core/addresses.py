"""Network addresses from user input, in one place (pure, stdlib only).

One HOST:PORT parser serves every kind: readiness and liveness probes (`tcp:`,
`http:` in service.yaml) and the health endpoint (`--health-listen`). A host is
an IP literal or localhost, never a name: a DNS lookup would block PID 1. IPv6
addresses go in brackets. Every error is one line with the value cut.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Optional

from pyinit.core.bounds import is_number, render, small_number

LOCALHOST = "127.0.0.1"  # "localhost", and a probe given only a port
ANY = "0.0.0.0"  # a listener given only a port
MAX_PORT = 65535


def port(text: str, lowest: int = 1) -> int:
    """A port in ASCII digits from lowest (0: any free port) to 65535."""
    number = small_number(text, MAX_PORT)
    if number is None or number < lowest:
        raise ValueError(f"port {render(text)} must be a number from {lowest} to {MAX_PORT}")
    return number


def host(text: str, bracketed: bool = False) -> str:
    """An IP literal as a connectable (and bindable) string; localhost is 127.0.0.1."""
    if not bracketed and text.lower() == "localhost":
        return LOCALHOST
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or "%" in text:  # a zone id could smuggle anything into a Host header
        raise ValueError(
            f"host {render(text)} must be an IP address or localhost (pyinit does no DNS lookups)"
        )
    if bracketed and ip.version != 6:
        raise ValueError(f"only IPv6 addresses go in brackets, not {render(text)}")
    return str(ip)


def host_port(
    text: str,
    default_port: Optional[int] = None,
    lowest_port: int = 1,
    empty_host: Optional[str] = None,
) -> tuple[str, int]:
    """(host, port) from HOST:PORT or [IPV6]:PORT; HOST or [IPV6] alone when there is a
    default port; ":PORT" when empty_host says what an empty host means."""
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{render(text)}: expected [IPV6-ADDRESS]:PORT")
        digits = rest[1:] if rest else None
        address = host(name, bracketed=True)
    else:
        name, colon, digits = text.rpartition(":")
        if not colon:
            name, digits = text, None
        if ":" in name:
            raise ValueError("write IPv6 addresses in brackets, as [ADDR]:PORT")
        address = empty_host if not name and empty_host else host(name)
    if digits is None:
        if default_port is None:
            raise ValueError(f"{render(text)} has no port; expected PORT, HOST:PORT or [IPV6]:PORT")
        return address, default_port
    return address, port(digits, lowest_port)


def parse_tcp(value: Any) -> tuple[str, int]:
    """A tcp probe's (host, port) from a port number or "PORT", "HOST:PORT", "[V6]:PORT"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return LOCALHOST, port(str(value))
    if not isinstance(value, str):
        raise ValueError("a tcp probe is a port number or a string PORT, HOST:PORT or [IPV6]:PORT")
    if is_number(value):
        return LOCALHOST, port(value)
    return host_port(value)


def parse_http(url: Any) -> tuple[str, int, str, str]:
    """An http probe's (host, port, path, host_header) from
    "http://HOST[:PORT][/path][?query]"."""
    if not isinstance(url, str):
        raise ValueError("an http probe is a URL string, like http://127.0.0.1:8080/health")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "https":
        raise ValueError("https probes are not supported; use http:// (or a tcp probe)")
    if not sep or scheme.lower() != "http":
        raise ValueError(f"{render(url)} must start with http://")
    rest = rest.partition("#")[0]
    authority, path = re.fullmatch(r"([^/?]*)(.*)", rest, re.DOTALL).groups()
    if not authority or "@" in authority:
        raise ValueError(f"{render(url)}: expected http://HOST[:PORT][/PATH]")
    if any(c <= " " or c >= "\x7f" for c in path):
        raise ValueError("the URL path must be ASCII without spaces or control characters")
    address, number = host_port(authority, 80)
    return address, number, path if path.startswith("/") else "/" + path, authority


def parse_listen(text: str, what: str = "bad listen address") -> tuple[str, int]:
    """Where to listen, from "ADDR:PORT", "[V6ADDR]:PORT", ":PORT" or "PORT" (on
    0.0.0.0); PORT 0 means any free port. ValueError "WHAT 'TEXT': why" otherwise."""
    stripped = text.strip()
    try:
        if is_number(stripped):
            return ANY, port(stripped, 0)
        return host_port(stripped, lowest_port=0, empty_host=ANY)
    except ValueError as exc:
        raise ValueError(f"{what} {render(text)}: {exc}") from None
