"""lines.py: splitting service output into whole lines, rendering them, the ring; one
capped line out of a buffer (take_line)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.core.lines import (
    MAX_LINE,
    LineTooLong,
    Ring,
    Splitter,
    prefix_block,
    render,
    render_plain,
    split_block,
    take_line,
    timestamp,
)


def run(chunks: list[bytes], max_line: int = MAX_LINE) -> tuple[list[bytes], bytes]:
    s = Splitter(max_line)
    blocks = [s.feed(c) for c in chunks]
    return blocks, s.flush()


# --- Splitter ------------------------------------------------------------------------------
def test_partial_line_is_held_across_feeds() -> None:
    s = Splitter()
    assert s.feed(b"hel") == b""
    assert s.feed(b"lo\nwor") == b"hello\n"
    assert s.feed(b"ld\nagain\n") == b"world\nagain\n"
    assert s.flush() == b""


def test_flush_gives_the_partial_line_once() -> None:
    s = Splitter()
    assert s.feed(b"a\nno newline") == b"a\n"
    assert s.flush() == b"no newline\n"
    assert s.flush() == b""
    assert s.feed(b"next\n") == b"next\n"


def test_empty_input_and_empty_lines() -> None:
    s = Splitter()
    assert s.feed(b"") == b""
    assert s.flush() == b""
    assert s.feed(b"\n\n") == b"\n\n"
    assert split_block(b"\n\n") == [b"", b""]


def test_long_line_is_cut_into_max_line_pieces_never_dropped() -> None:
    blocks, tail = run([b"x" * 10 + b"\n"], max_line=4)
    assert blocks == [b"xxxx\nxxxx\nxx\n"] and tail == b""
    # the same line arriving a byte at a time: pieces go out as soon as they are whole
    blocks, tail = run([b"y"] * 10, max_line=4)
    assert b"".join(blocks) == b"yyyy\nyyyy\n" and tail == b"yy\n"


def test_long_line_among_short_ones_in_one_block() -> None:
    blocks, _ = run([b"ok\n" + b"z" * 9 + b"\nend\n"], max_line=4)
    assert blocks == [b"ok\nzzzz\nzzzz\nz\nend\n"]


def test_bytes_are_preserved_exactly_including_non_utf8() -> None:
    data = b"\xff\xfe caf\xc3\xa9 \x00\x1b[31m\r\n\x80\n"
    blocks, tail = run([data[:5], data[5:]])
    assert b"".join(blocks) + tail == data


def test_line_of_exact_multiple_of_max_line_has_no_extra_empty_line() -> None:
    one_read, _ = run([b"abcdefgh\n"], max_line=4)
    two_reads, _ = run([b"abcdefgh", b"\n"], max_line=4)
    assert one_read == [b"abcd\nefgh\n"]
    assert b"".join(two_reads) == b"abcd\nefgh\n"


def allowed_outputs(data: bytes, max_line: int) -> re.Pattern[bytes]:
    """What a Splitter may make of data: data (with a newline ended partial line), with a
    newline inserted wherever a line has reached a positive multiple of max_line bytes."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    out, col = [], 0
    for byte in data:
        if byte == 10:
            col = 0
        else:
            col += 1
        out.append(re.escape(bytes([byte])))
        if col and col % max_line == 0:
            out.append(b"\n?")
    return re.compile(b"".join(out), re.DOTALL)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"ab\n", b"abcd"]),
                       max_size=12),
       max_line=st.integers(1, 8))
def test_splitter_only_inserts_newlines_where_lines_are_cut(chunks: list[bytes],
                                                            max_line: int) -> None:
    blocks, tail = run(chunks, max_line)
    for block in [*blocks, tail]:
        assert block == b"" or block.endswith(b"\n")
    out = b"".join(blocks) + tail
    assert all(len(line) <= max_line for line in split_block(out)), out
    assert allowed_outputs(b"".join(chunks), max_line).fullmatch(out), (chunks, out)


# --- rendering -------------------------------------------------------------------------------
def test_prefix_and_split_block() -> None:
    assert prefix_block(b"a\n\nb\n", b"P ") == b"P a\nP \nP b\n"
    assert prefix_block(b"", b"P ") == b""
    assert split_block(b"a\nb\n") == [b"a", b"b"]
    assert split_block(b"") == []


def test_timestamp_is_iso8601_utc_with_millis() -> None:
    assert timestamp(0.25) == "1970-01-01T00:00:00.250Z"
    assert timestamp(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"


def test_render_text_prefixes_every_line() -> None:
    assert render("web", "stdout", b"one\ntwo\n", "text", None) == b"web | one\nweb | two\n"
    assert render("web", "stdout", b"\xff\n", "text", None) == b"web | \xff\n"


def test_render_text_with_timestamps() -> None:
    got = render("web", "stderr", b"a\nb\n", "text", 0.0)
    assert got == b"1970-01-01T00:00:00.000Z web | a\n1970-01-01T00:00:00.000Z web | b\n"


def test_render_json_lines_are_valid_json_and_round_trip_bytes() -> None:
    block = b"plain\n\xff\xfe bad utf8\n\"quoted\" \\ \t tab\n"
    got = render("db", "stderr", block, "json", 12.0)
    lines = got.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    recs = [json.loads(line) for line in lines[:-1]]
    assert [set(r) for r in recs] == [{"ts", "service", "stream", "line"}] * 3
    assert all(r["service"] == "db" and r["stream"] == "stderr" for r in recs)
    assert all(r["ts"] == "1970-01-01T00:00:12.000Z" for r in recs)
    back = [r["line"].encode("utf-8", "surrogateescape") for r in recs]
    assert back == split_block(block)


def test_render_json_without_time_stamps_anyway() -> None:
    rec = json.loads(render("db", "stdout", b"x\n", "json", None))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])


def test_render_plain() -> None:
    assert render_plain(b"a\nb\n", None) == b"a\nb\n"
    assert render_plain(b"a\n", 0.0) == b"1970-01-01T00:00:00.000Z a\n"


# --- Ring ------------------------------------------------------------------------------------
def test_ring_keeps_the_last_lines() -> None:
    ring = Ring(3)
    assert ring.tail(5) == []
    ring.add(b"1\n2\n")
    assert ring.tail(5) == [b"1", b"2"]
    ring.add(b"3\n4\n5\n6\n7\n")
    assert ring.tail(10) == [b"5", b"6", b"7"]
    assert ring.tail(2) == [b"6", b"7"]
    assert ring.tail(0) == []
    ring.add(b"")
    ring.add(b"\n")
    assert ring.tail(3) == [b"6", b"7", b""]


@given(blocks=st.lists(st.lists(st.binary(max_size=5).filter(lambda b: b"\n" not in b),
                                min_size=1, max_size=6), max_size=8),
       size=st.integers(1, 6), n=st.integers(0, 8))
def test_ring_tail_matches_a_list(blocks: list[list[bytes]], size: int, n: int) -> None:
    ring, every = Ring(size), []
    for lines in blocks:
        ring.add(b"\n".join(lines) + b"\n")
        every += lines
    assert ring.tail(n) == (every[-size:][-n:] if n else [])


@pytest.mark.parametrize(
    ("buf", "scanned", "line", "left"),
    [
        (b"", 0, None, b""),
        (b"abc", 0, None, b"abc"),  # exactly the cap, not complete yet
        (b"abcd", 0, LineTooLong, b"abcd"),  # over the cap before its newline
        (b"abc\nrest", 0, b"abc\n", b"rest"),
        (b"\n\n", 0, b"\n", b"\n"),
        (b"abcd\n", 0, LineTooLong, b"abcd\n"),
        (b"a\nbcdefgh", 0, b"a\n", b"bcdefgh"),  # the next line's turn comes later
        (b"a\nb", 2, None, b"a\nb"),  # scanned: known to hold no newline
        (b"abc\n", 2, b"abc\n", b""),
    ],
)
def test_take_line(buf: bytes, scanned: int, line, left: bytes) -> None:
    """One line of at most 3 bytes (without its newline), taken out of the buffer."""
    data = bytearray(buf)
    if isinstance(line, type):
        with pytest.raises(line):
            take_line(data, 3, scanned)
    else:
        assert take_line(data, 3, scanned) == line
    assert data == left


def test_ring_history_orders_lines_across_rings() -> None:
    a, b = Ring(size=3), Ring(size=3)
    a.add(b"a1\na2\n")
    b.add(b"b1\n")
    a.add(b"a3\na4\n")  # a2..a4 stay: the ring holds 3
    b.add(b"b2\n")
    merged = sorted(a.history(10) + b.history(10))
    assert [line for _, line in merged] == [b"a2", b"b1", b"a3", b"a4", b"b2"]
    assert [line for _, line in a.history(2)] == [b"a3", b"a4"] == a.tail(2)
    assert a.history(0) == [] and len(a.places) == len(a.lines) == 3
