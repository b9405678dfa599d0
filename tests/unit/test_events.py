"""Events and hooks, the pure parts: the event record, who it matches, the ring and
its listeners, hook selection, the run queue's decisions, stdin and environment,
and pyinit.yaml's `hooks` validation; the `events` request's follower bounds over a
fake client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyinit.control import events as control_events
from pyinit.core import events, hooks
from pyinit.core.protocol import ProtocolError
from pyinit.core.schema import ConfigError, HookSpec, UserSpec, validate_global
from pyinit.runtime.events import Bus


# --- the record ------------------------------------------------------------------------
def test_record_is_flat_bounded_and_named() -> None:
    e = events.record(7, "exited", 1700000000.12345, "web", code=3, signal=None,
                      expected=False, reason="x" * 1000, junk=[1, 2], uptime=0.5)
    assert e == {"seq": 7, "time": 1700000000.123, "event": "exited", "service": "web",
                 "code": 3, "signal": None, "expected": False, "reason": "x" * events.MAX_TEXT,
                 "uptime": 0.5}
    assert events.record(1, "boot.main", 0.0, pid=9)["service"] is None
    with pytest.raises(ValueError, match="unknown event name"):
        events.record(1, "exploded", 0.0)


def test_the_one_list_of_names() -> None:
    assert events.EVENTS == events.SERVICE_EVENTS + events.JOB_EVENTS + events.PYINIT_EVENTS
    assert len(set(events.EVENTS)) == len(events.EVENTS)
    assert all(name.startswith("job.") for name in events.JOB_EVENTS)
    assert all(name.split(".")[0] in ("boot", "shutdown") for name in events.PYINIT_EVENTS)
    assert not any("." in name for name in events.SERVICE_EVENTS)


@pytest.mark.parametrize(
    ("service", "names", "own", "expected"),
    [
        ("web", [], False, True),
        (None, [], False, True),
        ("web", ["web"], False, True),
        ("web", ["db"], False, False),
        ("web@1", ["web"], False, True),  # a counted service's instances
        ("web@a", ["web@"], False, True),  # a template's instances
        ("webby", ["web"], False, False),
        ("web@1", ["web@2"], False, False),
        (None, ["web"], False, False),  # a hook's `services`: not pyinit's own events
        (None, ["web"], True, True),  # svctl events web: pyinit's own events too
    ],
)
def test_matches(service: str | None, names: list[str], own: bool, expected: bool) -> None:
    assert events.matches({"service": service}, names, own) is expected


# --- the ring and its listeners ---------------------------------------------------------
def test_bus_keeps_a_bounded_ring_in_order() -> None:
    bus = Bus(clock=lambda: 5.0, size=3)
    for n in range(5):
        bus.emit("up", "web", pid=n)
    assert [e["pid"] for e in bus.recent()] == [2, 3, 4]
    assert [e["seq"] for e in bus.recent()] == [3, 4, 5]


def test_a_listener_that_raises_does_not_stop_the_others(capfd) -> None:
    bus = Bus(clock=lambda: 0.0)
    got: list[str] = []

    def bad(event: dict) -> None:
        raise RuntimeError("boom")

    bus.subscribe(bad)
    stop = bus.subscribe(lambda e: got.append(e["event"]))
    bus.emit("up", "web")
    stop()
    stop()  # twice is harmless
    bus.emit("down", "web")
    assert got == ["up"]
    assert "internal error in event listener for up" in capfd.readouterr().err


# --- hooks: selection, queue, stdin, environment ----------------------------------------
def spec(**kw: Any) -> HookSpec:
    base: dict[str, Any] = {"name": "h", "events": ("failed",), "command": ("true",)}
    return HookSpec(**{**base, **kw})


def test_a_hook_wants_its_events_and_services() -> None:
    failed = {"event": "failed", "service": "web"}
    assert hooks.wants(spec(), failed)
    assert not hooks.wants(spec(), {"event": "exited", "service": "web"})
    assert hooks.wants(spec(events=("*",)), {"event": "boot.main", "service": None})
    assert hooks.wants(spec(services=("web",)), failed)
    assert not hooks.wants(spec(services=("db",)), failed)
    assert not hooks.wants(spec(events=("*",), services=("web",)),
                           {"event": "shutdown.begin", "service": None})


@pytest.mark.parametrize(
    ("running", "queued", "decision"),
    [(0, 0, "run"), (3, 0, "run"), (4, 0, "queue"), (2, 1, "queue"), (4, 63, "queue"),
     (4, 64, "drop"), (0, 64, "drop")],
)
def test_admit(running: int, queued: int, decision: str) -> None:
    assert hooks.admit(running, queued) == decision


def test_an_overflow_is_said_once_and_counted_when_it_drains() -> None:
    o = hooks.Overflow()
    assert o.drained() == 0
    assert [o.dropped() for _ in range(3)] == [True, False, False]
    assert o.drained() == 3
    assert o.drained() == 0
    assert o.dropped() is True  # a new overflow is said again


def test_payload_is_one_json_line_under_pipe_buf() -> None:
    event = events.record(3, "failed", 12.5, "web", reason="r" * 5000)
    data = hooks.payload(event)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == event
    huge = {**event, **{f"k{i}": "v" * 200 for i in range(40)}}  # only if a field grew
    small = hooks.payload(huge)
    assert len(small) <= hooks.MAX_PAYLOAD < 4096
    assert json.loads(small) == {"seq": 3, "time": 12.5, "event": "failed",
                                 "service": "web", "truncated": True}


def test_environment_of_a_hook_run() -> None:
    event = events.record(4, "exited", 1.5, "web", pid=12, code=None, signal="SIGKILL",
                          expected=True)
    assert hooks.environment(event, spec(name="alert")) == {
        "PYINIT_HOOK": "alert", "PYINIT_SEQ": "4", "PYINIT_TIME": "1.5",
        "PYINIT_EVENT": "exited", "PYINIT_SERVICE": "web", "PYINIT_PID": "12",
        "PYINIT_CODE": "", "PYINIT_SIGNAL": "SIGKILL", "PYINIT_EXPECTED": "1",
    }
    assert hooks.environment(events.record(1, "boot.main", 0.0), spec())["PYINIT_SERVICE"] == ""


# --- pyinit.yaml's hooks -----------------------------------------------------------------
def test_hooks_are_read_with_their_defaults() -> None:
    cfg = validate_global({"hooks": [
        {"events": ["failed", "exited"], "services": ["web"], "command": "mail -s x ops",
         "timeout": 2.5, "user": "nobody", "group": 65534},
        {"name": "all", "events": "*", "command": ["/bin/alert", "--all"]},
    ]}, "p.yaml")
    assert cfg.hooks == (
        HookSpec("hook1", ("failed", "exited"), ("mail", "-s", "x", "ops"), ("web",), 2.5,
                 UserSpec("nobody", "65534")),
        HookSpec("all", ("*",), ("/bin/alert", "--all")),
    )
    assert validate_global({}, "p.yaml").hooks == ()


BAD_HOOKS = [
    ("x", "p.yaml: key 'hooks' must be a list of hooks (mappings with events and command), "
          "not a str"),
    (["x"], "p.yaml: key 'hooks' item 1 must be a mapping with keys name, events, services, "
            "command, timeout, user, group, not a str"),
    ([{"command": "x"}], "p.yaml: key 'hooks' item 1 needs the key 'events'"),
    ([{"events": ["failed"]}], "p.yaml: key 'hooks' item 1 needs the key 'command'"),
    ([{"events": [], "command": "x"}],
     "p.yaml: key 'hooks' item 1: key 'events' must name at least one event"),
    ([{"events": ["exploded"], "command": "x"}],
     "p.yaml: key 'hooks' item 1: key 'events' must be a list of event names: 'exploded' is "
     "not an event (one of " + ", ".join(events.EVENTS) + ", or *)"),
    ([{"events": ["failed"], "command": "x", "timeout": 0}],
     "p.yaml: key 'hooks' item 1: key 'timeout' must be more than 0 and at most 3600 seconds"),
    ([{"events": ["failed"], "command": "x", "timeout": 1e9}],
     "p.yaml: key 'hooks' item 1: key 'timeout' must be from 0 to 10000000 seconds, "
     "not 1000000000.0"),
    ([{"events": ["failed"], "command": True}],
     "p.yaml: key 'hooks' item 1: key 'command' must be a command or a list, not true"),
    ([{"events": ["failed"], "command": []}],
     "p.yaml: key 'hooks' item 1: key 'command' must be true (run ./check), a command or a "
     "list, not a list"),
    ([{True: ["failed"], "command": "x"}],
     "p.yaml: key 'hooks' item 1: a key read as true/false (YAML takes `on` and `yes` for "
     "true): the events go under 'events'"),
    ([{"event": ["failed"], "command": "x"}],
     "p.yaml: key 'hooks' item 1: unknown key 'event' (did you mean 'events'?)"),
    ([{"events": ["failed"], "command": "x", "name": "a"}] * 2,
     "p.yaml: key 'hooks' item 2: the name 'a' is taken by an earlier hook"),
    ([{"events": ["failed"], "command": "x", "user": -1}],
     "p.yaml: key 'hooks' item 1: key 'user' must be a name or a number from 0 to "
     "4294967294, not -1"),
    ([{"events": ["failed"], "command": "x"}] * 33,
     "p.yaml: key 'hooks' must list at most 32 hooks, not 33"),
]


@pytest.mark.parametrize(("hooks_value", "message"), BAD_HOOKS)
def test_bad_hooks_are_one_line_errors(hooks_value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_global({"hooks": hooks_value}, "p.yaml")
    assert str(info.value) == message


# --- the `events` request's followers -------------------------------------------------
class FakeServer:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.listener = self

    def note(self, kind: str, text: Any) -> None:
        self.notes.append(text(1))


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.pid = 42
        self.outbuf = bytearray()
        self.sent: list[dict] = []
        self.closed = False
        self.streaming = False
        self.on_close: list[Any] = []

    def send(self, reply: dict) -> None:
        self.sent.append(reply)

    def close(self) -> None:
        self.closed = True
        for callback in self.on_close:
            callback()


def test_a_follower_that_falls_behind_is_dropped_and_its_slot_given_back() -> None:
    bus = Bus(clock=lambda: 0.0)
    bus.emit("boot.services")
    bus.emit("up", "web")
    handler = control_events.Events(bus)
    server = FakeServer()
    client = FakeClient(server)
    handler.events(client, {"services": ["db"], "follow": True})
    assert client.sent == [{"ok": True, "follow": True, "events": [bus.recent()[0]]}]
    assert client.streaming and handler.followers == 1
    bus.emit("up", "db")
    bus.emit("up", "web")  # filtered out
    assert [m["event"]["service"] for m in client.sent[1:]] == ["db"]
    client.outbuf += b"x" * (control_events.MAX_PENDING + 1)  # it stopped reading
    bus.emit("down", "db")
    assert client.closed and handler.followers == 0 and not bus.listeners
    assert len(client.sent) == 2  # nothing more was queued
    assert server.notes == [f"dropped 1 event follower that did not read "
                            f"{control_events.MAX_PENDING} bytes of events (the last: pid 42)"]


def test_followers_are_limited() -> None:
    bus = Bus(clock=lambda: 0.0)
    handler = control_events.Events(bus)
    clients = [FakeClient(FakeServer()) for _ in range(control_events.MAX_FOLLOWERS)]
    for c in clients:
        handler.events(c, {"services": [], "follow": True})
    with pytest.raises(ProtocolError, match="at most 16 clients may follow events"):
        handler.events(FakeClient(FakeServer()), {"services": [], "follow": True})
    handler.events(FakeClient(FakeServer()), {"services": [], "follow": False})  # the ring
    clients[0].close()
    handler.events(FakeClient(FakeServer()), {"services": [], "follow": True})
    assert handler.followers == control_events.MAX_FOLLOWERS
    with pytest.raises(ProtocolError, match="at most 100 services"):
        handler.events(FakeClient(FakeServer()), {"services": ["a"] * 101})


# --- svctl events' command line ---------------------------------------------------------
def test_svctl_events_arguments() -> None:
    from pyinit.cli import svctl

    env = {"PYINIT_RUN_DIR": "/tmp/nowhere"}
    args = svctl.parse_args(["events", "-f", "web", "db"], env)
    assert (args.command, args.follow, args.services) == ("events", True, ["web", "db"])
    args = svctl.parse_args(["events", "--follow"], env)
    assert (args.follow, args.services) == (True, [])
    args = svctl.parse_args(["events", "--", "-f"], env)  # a service named -f
    assert (args.follow, args.services) == (False, ["-f"])
    assert svctl.parse_args(["events"], env).follow is False
    with pytest.raises(svctl.Usage, match="unknown option '--json' for events"):
        svctl.parse_args(["events", "--json"], env)
