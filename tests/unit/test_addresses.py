"""core/addresses.py: the one HOST:PORT parser, and the tcp and http probe targets and
the health listen address built on it (every error one line)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyinit.core.addresses import (
    ANY,
    LOCALHOST,
    host_port,
    parse_http,
    parse_listen,
    parse_tcp,
    port,
)


# --- probe targets ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8080, ("127.0.0.1", 8080)),
        ("1", ("127.0.0.1", 1)),
        ("65535", ("127.0.0.1", 65535)),
        ("localhost:80", ("127.0.0.1", 80)),
        ("LocalHost:80", ("127.0.0.1", 80)),
        ("10.1.2.3:5432", ("10.1.2.3", 5432)),
        ("[::1]:9000", ("::1", 9000)),
        ("[2001:DB8::0:1]:443", ("2001:db8::1", 443)),
    ],
)
def test_parse_tcp_good(value: object, expected: tuple[str, int]) -> None:
    assert parse_tcp(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "1 to 65535"),
        (70000, "1 to 65535"),
        (-1, "1 to 65535"),
        ("0", "1 to 65535"),
        ("70000", "1 to 65535"),
        ("127.0.0.1:0", "1 to 65535"),
        ("127.0.0.1:", "1 to 65535"),
        ("127.0.0.1: 80", "1 to 65535"),
        ("db:5432", "no DNS lookups"),
        ("example.com:80", "no DNS lookups"),
        (":80", "no DNS lookups"),
        ("[fe80::1%eth0]:80", "no DNS lookups"),
        ("127.0.0.1", "no port"),
        ("localhost", "no port"),
        ("[::1]", "no port"),
        ("::1:80", "brackets"),
        ("[127.0.0.1]:80", "brackets"),
        ("[::1:80", "[IPV6-ADDRESS]:PORT"),
        ("[::1]x80", "[IPV6-ADDRESS]:PORT"),
        (True, "port number or a string"),
        (80.0, "port number or a string"),
        (None, "port number or a string"),
        (["80"], "port number or a string"),
    ],
)
def test_parse_tcp_bad(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_tcp(value)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@given(st.text())
def test_parse_tcp_raises_only_value_error(text: str) -> None:
    try:
        host, port = parse_tcp(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= port <= 65535
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


@given(st.text())
def test_parse_http_raises_only_value_error(text: str) -> None:
    for url in (text, "http://" + text, "http://127.0.0.1" + text):
        try:
            host, port, path, header = parse_http(url)
        except ValueError:
            continue
        assert path.startswith("/") and path.isascii() and " " not in path
        assert "\r" not in header and "\n" not in header


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1", ("127.0.0.1", 80, "/", "127.0.0.1")),
        ("http://localhost:8080/health", ("127.0.0.1", 8080, "/health", "localhost:8080")),
        ("HTTP://10.0.0.1/a/b?c=d&e", ("10.0.0.1", 80, "/a/b?c=d&e", "10.0.0.1")),
        ("http://10.0.0.1?q=1", ("10.0.0.1", 80, "/?q=1", "10.0.0.1")),
        ("http://10.0.0.1/x#frag", ("10.0.0.1", 80, "/x", "10.0.0.1")),
        ("http://[::1]:8443/ready", ("::1", 8443, "/ready", "[::1]:8443")),
        ("http://[::1]/", ("::1", 80, "/", "[::1]")),
    ],
)
def test_parse_http_good(url: str, expected: tuple[str, int, str, str]) -> None:
    assert parse_http(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1/", "https probes are not supported"),
        ("HTTPS://127.0.0.1/", "https probes are not supported"),
        ("ftp://127.0.0.1/", "must start with http://"),
        ("127.0.0.1:80/health", "must start with http://"),
        ("http://", "expected http://HOST"),
        ("http:///path", "expected http://HOST"),
        ("http://user@127.0.0.1/", "expected http://HOST"),
        ("http://service:8080/health", "no DNS lookups"),
        ("http://127.0.0.1:0/", "1 to 65535"),
        ("http://127.0.0.1:99999/", "1 to 65535"),
        ("http://127.0.0.1/a b", "without spaces"),
        ("http://127.0.0.1/a\r\nX-Evil: 1", "without spaces"),
        ("http://127.0.0.1/caf\u00e9", "ASCII"),
        (8080, "URL string"),
        (None, "URL string"),
    ],
)
def test_parse_http_bad(url: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_http(url)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- parse_listen -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        (":8080", ("0.0.0.0", 8080)),
        ("8080", ("0.0.0.0", 8080)),
        (" 10.1.2.3:1 ", ("10.1.2.3", 1)),
        ("localhost:65535", ("127.0.0.1", 65535)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:80", ("::", 80)),
        ("[fe80::1]:443", ("fe80::1", 443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_listen_good(text, expected) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "abc",
        "localhost",
        "example.com:80",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1: 80",
        "127.0.0.1:８０",
        "1.2.3:80",
        "::1:80",
        "::1",
        "[::1]",
        "[127.0.0.1]:80",
        "[localhost]:80",
        "[]:80",
        "[::1]x:80",
        "256.0.0.1:80",
        "127.0.0.1:80:80",
        "\n127.0.0.1:80\nx",
    ],
)
def test_parse_listen_bad(text) -> None:
    with pytest.raises(ValueError, match="bad listen address") as info:
        parse_listen(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[fe80::1%eth0]:80", "LOCALHOST:80", "[::ffff:1.2.3.4]:80"])
def test_listen_and_probes_read_an_address_alike(text: str) -> None:
    """One parser: what a tcp probe and a listener both take means the same host."""
    try:
        probe = parse_tcp(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            parse_listen(text)
        assert str(info.value).endswith(str(exc))
    else:
        assert parse_listen(text) == probe


@given(st.text(alphabet="0123456789abcdef:.[]%l ", max_size=30))
def test_every_kind_takes_the_same_host_port(text: str) -> None:
    """HOST:PORT with a host and a port from 1 means one (host, port), whoever reads it."""
    try:
        expected = host_port(text)
    except ValueError:
        return
    assert parse_tcp(text) == expected
    assert parse_listen(text) == expected
    assert parse_http(f"http://{text}/")[:2] == expected


# --- the parser itself ------------------------------------------------------------------
def test_port_bounds() -> None:
    assert port("1") == 1 and port("65535") == 65535 and port("0", lowest=0) == 0
    for text, lowest in (("0", 1), ("65536", 0), ("", 0), ("-1", 0), ("0x50", 0), ("1" * 30, 0)):
        with pytest.raises(ValueError, match=f"from {lowest} to 65535"):
            port(text, lowest)


def test_host_port_defaults() -> None:
    assert host_port("10.0.0.1", default_port=80) == ("10.0.0.1", 80)
    assert host_port("[::1]", default_port=80) == ("::1", 80)
    assert host_port(":9", empty_host=ANY) == (ANY, 9)
    assert host_port("localhost:9") == (LOCALHOST, 9)
    with pytest.raises(ValueError, match="no DNS lookups"):
        host_port(":9")  # no empty host without one given
    with pytest.raises(ValueError, match="no DNS lookups"):
        host_port("[]:9", empty_host=ANY)  # brackets hold an address
    with pytest.raises(ValueError, match="has no port"):
        host_port("10.0.0.1")


def test_a_bad_listen_address_says_what_it_was() -> None:
    with pytest.raises(ValueError) as info:
        parse_listen(" db:80 ", "health listen address")
    assert str(info.value) == (
        "health listen address ' db:80 ': host 'db' must be an IP "
        "address or localhost (pyinit does no DNS lookups)"
    )
