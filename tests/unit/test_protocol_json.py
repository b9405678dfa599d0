"""core/protocol.py's loads and dumps: json.loads's and json.dumps's results, without
importing the json package on svctl's path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyinit.core.protocol import ProtocolError, ReplyError, dumps, loads, parse_reply, parse_request

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def outcome(fn, arg):
    """fn(arg) as ('ok', its JSON text) or ('error', whether it is a ValueError)."""
    try:
        return ("ok", json.dumps(fn(arg), sort_keys=True))
    except (ValueError, RecursionError) as exc:
        return ("error", isinstance(exc, ValueError))


@given(st.dictionaries(st.text(), values, max_size=6), st.sampled_from(["", "\n", " \r\n"]))
def test_loads_is_json_loads_on_objects(obj: dict, tail: str) -> None:
    line = (json.dumps(obj) + tail).encode()
    assert outcome(loads, line) == outcome(json.loads, line)


@given(st.binary(max_size=40))
def test_loads_is_json_loads_on_any_bytes(data: bytes) -> None:
    for line in (data, b"{" + data, b'{"a": 1}' + data):
        assert outcome(loads, line) == outcome(json.loads, line)


@pytest.mark.parametrize(
    "line",
    [b"{} x", b"{", b'{"a" 1}', b'{"a":"\xff"}', b"{\x00", b'{"a": "\t"}', b"", b"[1]"],
)
def test_loads_fails_as_json_loads(line: bytes) -> None:
    assert outcome(loads, line) == outcome(json.loads, line)
    with pytest.raises(ReplyError):
        parse_reply(line)


def test_deep_nesting_is_not_json() -> None:
    with pytest.raises(ProtocolError, match="not valid JSON"):
        parse_request(b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}")


@given(values)
def test_dumps_is_json_dumps(value: object) -> None:
    assert dumps(value) == json.dumps(value)


def test_dumps_of_a_request() -> None:
    payload = {"v": 1, "cmd": "control", "services": ["web", "é\0"], "wait": 7.0, "kill": False}
    assert dumps(payload) == json.dumps(payload)
