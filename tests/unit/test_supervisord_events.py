"""supervisord's eventlistener protocol over pyinit's events (foreign/supervisord_events.py)
and [eventlistener:x] as a service (foreign/supervisord_services.py:eventlistener)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from pyinit.foreign import supervisord_events as sv
from pyinit.foreign.supervisord_conf import ConfError, load
from pyinit.foreign.supervisord_services import translate


def ev(name: str, service: str = "web", **fields: Any) -> dict[str, Any]:
    return {"seq": 1, "time": 0.0, "event": name, "service": service, **fields}


def test_subscription_concrete_abstract_and_missing() -> None:
    wanted, missing = sv.subscription("process_state_exited, TICK_60")
    assert wanted == {"PROCESS_STATE_EXITED", "TICK_60"} and missing == []
    wanted, missing = sv.subscription("PROCESS_STATE,PROCESS_LOG_STDOUT")
    assert "PROCESS_STATE_FATAL" in wanted and "PROCESS_STATE_UNKNOWN" not in wanted
    assert "TICK_5" not in wanted and missing == ["PROCESS_LOG_STDOUT"]
    wanted, missing = sv.subscription("EVENT")
    assert wanted == sv.PROVIDED and missing and missing[0].startswith("EVENT")
    assert sv.subscription("TICK")[0] == set(sv.TICKS)


@pytest.mark.parametrize(("text", "word"), [("", "requires"), ("PROCESS_STAT", "unknown"),
                                            (",".join(["TICK_5"] * 65), "more than")])  # fmt: skip
def test_subscription_refused(text: str, word: str) -> None:
    with pytest.raises(sv.EventsError, match=word):
        sv.subscription(text)


def test_states_crash_after_running_is_exited_with_expected() -> None:
    states = sv.States(exitcodes={"app:app_0": (0, 3)})
    assert states.apply(ev("starting", "app:app_0", pid=5, restarts=0)) == (
        "PROCESS_STATE_STARTING",
        "processname:app_0 groupname:app from_state:STOPPED tries:0",
    )
    assert states.apply(ev("up", "app:app_0", pid=5)) is None
    assert states.apply(ev("ready", "app:app_0", pid=5)) == (
        "PROCESS_STATE_RUNNING",
        "processname:app_0 groupname:app from_state:STARTING pid:5",
    )
    assert states.apply(ev("exited", "app:app_0", pid=5, code=3, expected=False)) == (
        "PROCESS_STATE_EXITED",
        "processname:app_0 groupname:app from_state:RUNNING expected:1 pid:5",
    )
    assert states.apply(ev("backoff", "app:app_0", delay=0.1)) is None
    name, payload = states.apply(ev("starting", "app:app_0", pid=6, restarts=1))
    assert name == "PROCESS_STATE_STARTING" and "from_state:EXITED tries:1" in payload
    states.apply(ev("ready", "app:app_0", pid=6))
    assert states.apply(ev("exited", "app:app_0", pid=6, code=1))[1].endswith(
        "from_state:RUNNING expected:0 pid:6")  # fmt: skip


def test_states_early_exits_are_backoff_then_fatal() -> None:
    states = sv.States()
    states.apply(ev("starting", pid=7, restarts=0))
    assert states.apply(ev("exited", pid=7, code=1)) == (
        "PROCESS_STATE_BACKOFF",
        "processname:web groupname:web from_state:STARTING tries:1",
    )
    assert states.apply(ev("failed", reason="x")) == (
        "PROCESS_STATE_FATAL",
        "processname:web groupname:web from_state:BACKOFF",
    )
    assert states.apply(ev("down", outcome="failed")) is None


def test_states_stop_asked_for() -> None:
    states = sv.States()
    for name in ("starting", "up", "ready"):
        states.apply(ev(name, pid=9))
    assert states.apply(ev("stopping", pid=9, signal="SIGTERM"))[1].endswith(
        "from_state:RUNNING pid:9")  # fmt: skip
    assert states.apply(ev("exited", pid=9, code=None, signal="SIGTERM", expected=True)) == (
        "PROCESS_STATE_STOPPED",
        "processname:web groupname:web from_state:STOPPING pid:9",
    )
    assert states.apply(ev("down", outcome="exited")) is None
    assert states.apply(ev("boot.main", None, pid=1)) is None


def test_envelope_is_supervisords() -> None:
    payload = "processname:cat groupname:cat from_state:RUNNING expected:0 pid:2766"
    data = sv.envelope("PROCESS_STATE_EXITED", payload, 21, "listener", 10, "supervisor")
    head, _, body = data.partition(b"\n")
    assert head == (b"ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 "
                    b"eventname:PROCESS_STATE_EXITED len:%d" % len(payload))  # fmt: skip
    assert body == payload.encode()


def test_listener_ready_result_and_split_reads() -> None:
    lst = sv.Listener()
    assert lst.feed(b"REA") == [] and lst.state == "ACKNOWLEDGED"
    assert lst.feed(b"DY\n") == [] and lst.state == "READY"
    lst.sent()
    assert lst.feed(b"RESULT 2\nO") == [] and lst.state == "BUSY"
    assert lst.feed(b"KREADY\n") == [b"OK"] and lst.state == "READY"
    lst.sent()
    assert lst.feed(b"RESULT 4\nFAILREADY\n") == [b"FAIL"] and lst.state == "READY"
    assert sv.accepted(b"OK") and not sv.accepted(b"FAIL")


@pytest.mark.parametrize(("busy", "data"), [(False, b"HELLO\n"), (True, b"RESULT x\n"),
                                            (True, b"OK\n"), (True, b"RESULT 99999999\n"),
                                            (True, b"R" * 100)])  # fmt: skip
def test_listener_protocol_errors_are_unknown(busy: bool, data: bytes) -> None:
    lst = sv.Listener()
    if busy:
        lst.feed(b"READY\n")
        lst.sent()
    with pytest.raises(sv.ProtocolError):
        lst.feed(data)
    assert lst.state == "UNKNOWN" and lst.feed(b"READY\n") == []


def test_listener_spurious_data_while_ready() -> None:
    lst = sv.Listener()
    with pytest.raises(sv.ProtocolError, match="no event was sent"):
        lst.feed(b"READY\nREADY\n")


def test_buffer_drops_oldest_said_once() -> None:
    buf = sv.Buffer(2)
    assert buf.push(("A", "", 0)) is None and buf.push(("B", "", 1)) is None
    said = buf.push(("C", "", 2))
    assert said and "buffer_size" in said
    assert buf.push(("D", "", 3)) is None  # said once
    assert [i[0] for i in buf.items] == ["C", "D"]
    assert buf.push(("C2", "", 2), head=True) is not None or True
    item, note = buf.pop()
    assert item is not None and note is None
    item, note = buf.pop()
    assert note and "3 events were dropped" in note
    assert buf.pop() == (None, None)


def test_ticks_on_period_boundaries() -> None:
    ticks = sv.Ticks({"TICK_5": 5, "TICK_60": 60})
    ticks.start(1000.5)
    assert ticks.next_at() == 1005.0
    assert ticks.due(1004.9) == []
    assert ticks.due(1005.0) == [("TICK_5", "when:1005")]
    assert ticks.due(1020.2) == [("TICK_5", "when:1020"), ("TICK_60", "when:1020")]
    assert sv.Ticks({}).next_at() is None


CONF = """[supervisord]
nodaemon=true
identifier=box
[program:app]
command=/bin/app
exitcodes=0,3
[eventlistener:crash]
command=/usr/local/bin/crashmail -m "ops@x" -a
events=PROCESS_STATE,PROCESS_LOG
buffer_size=50
user=nobody
result_handler=mymod:handler
stdout_logfile=/var/log/x.log
stderr_logfile=/dev/stderr
"""


def translated(tmp_path: Path, text: str):
    path = tmp_path / "supervisord.conf"
    path.write_text(text)

    def read(p: str) -> str:
        return Path(p).read_text()

    conf = load(str(path), read, lambda p: [], {}, "node")
    svcs, notes = translate(conf, "/srv", python="/py")
    return {s.name: s for s in svcs}, notes


def test_eventlistener_is_a_bridge_service(tmp_path: Path) -> None:
    svcs, notes = translated(tmp_path, CONF)
    lst = svcs["crash"]
    argv = shlex.split(lst.run.splitlines()[-1])
    assert argv[:5] == ["exec", "/py", "-I", "-m", "pyinit.foreign.supervisord_bridge"]
    opts = argv[5 : argv.index("--")]
    assert opts == ["--pool", "crash", "--events", "PROCESS_STATE,PROCESS_LOG",
                    "--buffer-size", "50", "--server", "box", "--user", "nobody",
                    "--exitcodes", "app=0,3"]  # fmt: skip
    assert argv[argv.index("--") + 1 :] == ["/usr/local/bin/crashmail", "-m", "ops@x", "-a"]
    assert "user" not in lst.config  # the bridge stays root to read the events
    assert svcs["app"].config["after"] == ["crash"]  # priority -1: started first
    text = "\n".join(notes)
    assert "PROCESS_LOG" in text and "result_handler" in text and "stdout_logfile" in text
    assert "not started" not in text


@pytest.mark.parametrize(("extra", "word"), [("events=NOPE\n", "unknown event type"),
                                             ("events=\n", "requires an events line"),
                                             ("events=TICK_5\nbuffer_size=0\n", "buffer_size"),
                                             ("events=TICK_5\nredirect_stderr=true\n",
                                              "redirect_stderr"),
                                             # 13 bridges: the 13th+ could never follow
                                             ("events=TICK_5\nnumprocs=13\n"
                                              "process_name=x%(process_num)d\n",
                                              "more than 12 eventlistener processes")])  # fmt: skip
def test_eventlistener_refused(tmp_path: Path, extra: str, word: str) -> None:
    with pytest.raises(ConfError, match=word):
        translated(tmp_path, "[supervisord]\n[eventlistener:x]\ncommand=c\n" + extra)
