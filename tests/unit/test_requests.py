"""The control requests (control/requests.py and its parts) over a fake of the services
API (services/api.py) and a fake loop: no socket, no process. Each test drives
ControlRequests.handle as the server does and reads the replies a client got."""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Any, Callable, Optional

import pytest

from pyinit.control import server
from pyinit.control.requests import ControlRequests
from pyinit.control.waits import MAX_WAITS
from pyinit.core.protocol import VERSION, ProtocolError
from pyinit.core.svstatus import SETTLE
from pyinit.core.views import MAX_FIELD, ProcessView, ServiceView, process_record
from pyinit.runtime.loop import Timer

WALL = 1_700_000_000.0


class FakeLoop:
    """The loop's clock and timers; advance() runs those that are due."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[Timer] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.pending(), key=lambda t: t.when):
            if timer.when <= self.now and not timer.cancelled:
                timer.cancelled = True
                timer.callback()


class Slot:
    """An opaque handle, as the manager's slots are to control."""

    def __init__(self, service: FakeService, log: bool) -> None:
        self.service, self.log = service, log


@dataclasses.dataclass
class FakeService:
    name: str
    run: ProcessView = ProcessView(want="d")
    log: Optional[ProcessView] = None
    path: str = ""
    error: Optional[str] = None
    instance: Optional[str] = None
    group: Optional[str] = None
    settle: float = 0.0
    log_mode: str = "inherit"
    lines: Optional[list[bytes]] = None  # what pyinit keeps of its output (None: nothing)
    places: Optional[list[int]] = None  # each line's place in the order all arrived
    file_mode: bool = False

    def __post_init__(self) -> None:
        self.path = self.path or f"/srv/{self.name}"
        self.slots = (Slot(self, False), Slot(self, True))


class FakeServices:
    """The services API: services as plain records; every act is noted in `done`."""

    def __init__(self, loop: FakeLoop, *services: FakeService) -> None:
        self.loop = loop
        self.services = {s.name: s for s in services}
        self.groups: dict[str, list[str]] = {}
        self.scanned: dict[str, str] = {}
        self.configured: set[str] = set()
        self.shutting_down = False
        self.done: list[tuple[Any, ...]] = []
        self.listeners: list[Callable[[Any], None]] = []
        self.followers: dict[str, list[Callable[[bytes], None]]] = {}
        self.templates: dict[str, str] = {}  # template -> its dir, for instantiate

    def add(self, svc: FakeService) -> FakeService:
        self.services[svc.name] = svc
        return svc

    def names(self) -> list[str]:
        return list(self.services)

    def slot(self, name: str, log: bool = False) -> Optional[Slot]:
        svc = self.services.get(name)
        if svc is None or (log and svc.log is None):
            return None
        return svc.slots[log]

    def dirs(self):  # noqa: ANN201
        for svc in self.services.values():
            yield svc.name, svc.path, svc.instance

    def scanned_path(self, name: str) -> Optional[str]:
        return self.scanned.get(name)

    def group(self, name: str) -> Optional[list[str]]:
        return self.groups.get(name)

    def counted(self, name: str) -> bool:
        return name in self.configured

    def view(self, slot: Slot) -> ServiceView:
        s, now = slot.service, self.loop.now
        run = dataclasses.replace(s.run, uptime=max(0.0, now - s.run.since))
        return ServiceView(
            name=s.name,
            run=run,
            log=s.log,
            path=s.path,
            error=s.error,
            settle=s.settle,
            instance=s.instance,
            group=s.group,
            log_mode=s.log_mode,
        )

    def is_log(self, slot: Slot) -> bool:
        return slot.log

    def counters(self) -> dict[str, Any]:
        return {"wakeups": 7, "rescans": 2, "rescan_pending": False, "orphans_reaped": 3}

    def command(self, slot: Slot, letters: str) -> None:
        self.done.append(("command", slot.service.name, slot.log, letters))

    def instantiate(self, name: str) -> Optional[str]:
        template = name.split("@")[0] + "@"
        if "@" not in name or template not in self.templates:
            return "no such service"
        if not name.split("@", 1)[1]:
            return "an instance needs a name after '@'"
        self.add(FakeService(name, path=self.templates[template], instance=name.split("@")[1]))
        self.done.append(("instantiate", name))
        return None

    def scale(self, group: str, count: int) -> None:
        self.done.append(("scale", group, count))

    def reload(self) -> None:
        self.done.append(("reload",))

    def request_exit(self, code: int) -> None:
        self.done.append(("exit", code))

    def log_tail(self, name: str, count: int) -> Optional[list[bytes]]:
        lines = self.services[name].lines
        return None if lines is None else lines[len(lines) - count :] if count else []

    def log_history(self, name: str, count: int) -> Optional[list[tuple[int, bytes]]]:
        lines, places = self.services[name].lines, self.services[name].places
        if lines is None:
            return None
        pairs = list(zip(places or range(len(lines)), lines))
        return pairs[max(0, len(pairs) - count) :] if count else []

    def follow_log(self, name: str, send: Callable[[bytes], None]) -> Callable[[], None]:
        self.followers.setdefault(name, []).append(send)
        return lambda: self.followers[name].remove(send)

    def file_log(self, name: str) -> bool:
        return name in self.services and self.services[name].file_mode

    def rotate_log(self, name: str) -> None:
        self.done.append(("rotate", name))

    def subscribe(self, changed: Callable[[Any], None]) -> None:
        self.listeners.append(changed)

    # --- what the manager would do
    def change(self, name: str, **fields: Any) -> None:
        """Service name's run changes, and everyone subscribed hears of it."""
        svc = self.services[name]
        svc.run = dataclasses.replace(svc.run, **fields)
        for changed in self.listeners:
            changed(svc.slots[0])


class FakeClient:
    def __init__(self, privileged: bool = True, uid: int = 0) -> None:
        self.privileged = privileged
        self.uid = uid
        self.pid = 4242
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self.streaming = False
        self.on_close: list[Callable[[], None]] = []

    def send(self, reply: dict[str, Any]) -> None:
        if not self.closed:
            self.sent.append(reply)

    def close(self) -> None:
        self.closed = True
        for callback in self.on_close:
            callback()


UP = {"state": "run", "pid": 50, "want": "u", "down": False, "ready": True}


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.fixture
def services(loop: FakeLoop) -> FakeServices:
    return FakeServices(
        loop,
        FakeService("web", run=ProcessView(since=90.0, restarts=1, **UP), log=ProcessView()),
        FakeService("db"),
    )


@pytest.fixture
def requests(services: FakeServices, loop: FakeLoop) -> ControlRequests:
    return ControlRequests(services, loop)  # type: ignore[arg-type]


def ask(requests: ControlRequests, client: Optional[FakeClient] = None, **req: Any) -> FakeClient:
    client = client or FakeClient()
    req.setdefault("services", [])
    requests.handle(client, req)  # type: ignore[arg-type]
    return client


def error_of(requests: ControlRequests, client: Optional[FakeClient] = None, **req: Any) -> str:
    """The one line the server sends for req, through Server.dispatch."""
    client = client or FakeClient()
    owner = types.SimpleNamespace(handler=requests.handle)
    line = json.dumps({"v": VERSION, **req}).encode()
    server.Server.dispatch(owner, client, line)  # type: ignore[arg-type]
    assert len(client.sent) == 1 and client.sent[0]["ok"] is False
    text = client.sent[0]["error"]
    assert "\n" not in text and "Traceback" not in text
    return text


# --- status ------------------------------------------------------------------------------
def test_status_of_every_service_in_name_order(requests: ControlRequests) -> None:
    reply = ask(requests, cmd="status").sent[0]
    assert reply["ok"] is True
    assert [r["name"] for r in reply["services"]] == ["db", "web"]
    web = reply["services"][1]
    assert web["pid"] == 50 and web["state"] == "run" and web["restarts"] == 1
    assert web["uptime"] == 10.0 and web["settle"] == SETTLE
    assert web["log"]["state"] == "down" and web["log"]["normally_up"] is True


def test_status_since_is_on_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, requests: ControlRequests
) -> None:
    monkeypatch.setattr("pyinit.control.status.time.time", lambda: WALL)
    (web,) = ask(requests, cmd="status", services=["web"]).sent[0]["services"]
    assert web["since"] == WALL - 10.0  # up since 10 s before now on the loop's clock


def test_status_by_log_path_and_missing(requests: ControlRequests) -> None:
    recs = ask(requests, cmd="status", services=["web/log", "/srv/db/", "nope"]).sent[0]
    logger, db, missing = recs["services"]
    assert logger["name"] == "web/log" and logger["state"] == "down" and logger["log"] is None
    assert db["name"] == "db"
    assert missing == {"name": "nope", "missing": True}


def test_status_of_a_group_lists_its_instances(
    services: FakeServices, requests: ControlRequests
) -> None:
    for n in (10, 2):
        services.add(FakeService(f"w@{n}", path="/srv/w", instance=str(n), group="w"))
    services.groups["w"] = ["w@2", "w@10"]
    services.scanned["w"] = "/srv/w"
    for name in ("w", "/srv/w"):
        recs = ask(requests, cmd="status", services=[name]).sent[0]["services"]
        assert [(r["name"], r["expanded"], r["group"]) for r in recs] == [
            ("w@2", True, "w"),
            ("w@10", True, "w"),
        ]


def test_status_texts_are_capped(services: FakeServices, requests: ControlRequests) -> None:
    services.services["db"].error = "e" * (MAX_FIELD * 2)
    (db,) = ask(requests, cmd="status", services=["db"]).sent[0]["services"]
    assert len(db["error"]) == MAX_FIELD


def test_all_ready_follows_health(
    services: FakeServices, requests: ControlRequests, loop: FakeLoop
) -> None:
    assert requests.status.all_ready()  # web settled (10 s up), db wanted down
    services.change("db", want="u", state="down", pid=None, start_at=101.0)
    assert not requests.status.all_ready()


def test_process_record_has_no_pid_for_a_placeholder() -> None:
    rec = process_record(ProcessView(pid=None, start_at=102.5), now=100.0, wall=WALL)
    assert rec["pid"] is None and rec["next_start_in"] == 2.5 and rec["since"] == WALL - 100


# --- control -----------------------------------------------------------------------------
def test_control_sends_the_letters_to_each_slot(
    services: FakeServices, requests: ControlRequests
) -> None:
    reply = ask(requests, cmd="control", action="tu", services=["web", "web/log", "x"]).sent[0]
    assert services.done == [("command", "web", False, "tu"), ("command", "web", True, "tu")]
    assert reply["results"] == [
        {"service": "x", "ok": False, "error": "no such service"},
        {"service": "web", "ok": True},
        {"service": "web/log", "ok": True},
    ]


def test_control_without_names_means_every_service(
    services: FakeServices, requests: ControlRequests
) -> None:
    ask(requests, cmd="control", action="d")
    assert [d[1] for d in services.done] == ["db", "web"]


def test_control_refuses_a_broken_service_that_is_down(
    services: FakeServices, requests: ControlRequests
) -> None:
    services.services["db"].error = "run is not executable"
    reply = ask(requests, cmd="control", action="u", services=["db"]).sent[0]
    assert reply["results"] == [{"service": "db", "ok": False, "error": "run is not executable"}]
    assert services.done == []


def test_up_makes_a_templates_instance(services: FakeServices, requests: ControlRequests) -> None:
    services.templates["t@"] = "/srv/t@"
    reply = ask(requests, cmd="control", action="u", services=["t@a", "t@", "u@b"]).sent[0]
    assert services.done == [("instantiate", "t@a"), ("command", "t@a", False, "u")]
    assert reply["results"] == [
        {"service": "t@", "ok": False, "error": "an instance needs a name after '@'"},
        {"service": "u@b", "ok": False, "error": "no such service"},
        {"service": "t@a", "ok": True},
    ]


def test_hup_of_a_file_log_rotates_it(services: FakeServices, requests: ControlRequests) -> None:
    services.services["db"].file_mode = True
    reply = ask(requests, cmd="control", action="h", services=["db/log"]).sent[0]
    assert services.done == [("rotate", "db")]
    assert reply["results"] == [{"service": "db/log", "ok": True}]


@pytest.mark.parametrize(
    "req, error",
    [
        ({"action": "uz"}, "'action' must be letters from"),
        ({"action": ""}, "'action' must be letters from"),
        ({"action": 5}, "'action' must be letters from"),
        ({"action": "C"}, "'action' must be letters from"),  # check is for wait only
        ({"action": "u", "wait": -1}, "'wait' must be a number"),
        ({"action": "u", "wait": "5"}, "'wait' must be a number"),
    ],
)
def test_bad_control_requests_get_one_line(
    requests: ControlRequests, services: FakeServices, req: dict[str, Any], error: str
) -> None:
    assert error in error_of(requests, cmd="control", services=["web"], **req)
    assert services.done == []


def test_control_needs_privilege_but_wait_does_not(
    services: FakeServices, requests: ControlRequests
) -> None:
    reader = FakeClient(privileged=False, uid=1000)
    assert error_of(requests, reader, cmd="control", action="d") == (
        "permission denied: uid 1000 may only read status"
    )
    reader.sent.clear()
    ask(requests, reader, cmd="wait", action="u", services=["web"], wait=1)
    assert reader.sent[0]["results"][0]["done"] is True
    assert services.done == []


def test_no_control_while_shutting_down(services: FakeServices, requests: ControlRequests) -> None:
    services.shutting_down = True
    assert error_of(requests, cmd="control", action="u") == "pyinit is shutting down"
    assert error_of(requests, cmd="scale", services=["w"], count=2) == "pyinit is shutting down"


# --- waits -------------------------------------------------------------------------------
def test_wait_is_answered_when_the_state_changes(
    services: FakeServices, requests: ControlRequests, loop: FakeLoop
) -> None:
    client = ask(requests, cmd="control", action="u", services=["db"], wait=5)
    assert client.sent == [] and len(loop.pending()) == 1
    services.change("db", state="run", pid=77, since=loop.now, want="u", down=False)
    (reply,) = client.sent
    assert reply["timed_out"] is False
    assert reply["results"][0]["done"] is True and reply["results"][0]["status"]["pid"] == 77
    assert loop.pending() == [] and requests.waits.waiters == []


def test_a_change_of_another_service_answers_nothing(
    services: FakeServices, requests: ControlRequests
) -> None:
    client = ask(requests, cmd="wait", action="u", services=["db"], wait=5)
    services.change("web", restarts=2)
    assert client.sent == []


def test_wait_times_out(services: FakeServices, requests: ControlRequests, loop: FakeLoop) -> None:
    client = ask(requests, cmd="wait", action="u", services=["db", "nope"], wait=5)
    loop.advance(4.9)
    assert client.sent == []
    loop.advance(0.2)
    (reply,) = client.sent
    assert reply["timed_out"] is True
    assert reply["results"][0] == {"service": "nope", "ok": False, "error": "no such service"}
    assert reply["results"][1]["done"] is False and reply["results"][1]["service"] == "db"
    assert requests.waits.waiters == []


def test_a_closed_client_leaves_no_waiter(requests: ControlRequests, loop: FakeLoop) -> None:
    client = ask(requests, cmd="wait", action="u", services=["db"], wait=5)
    client.close()
    assert requests.waits.waiters == [] and loop.pending() == []


def test_check_waits_for_a_restarted_run_to_settle(
    services: FakeServices, requests: ControlRequests, loop: FakeLoop
) -> None:
    services.services["web"].run = ProcessView(since=loop.now - 0.25, restarts=1, **UP)
    client = ask(requests, cmd="wait", action="C", services=["web"], wait=10)
    assert client.sent == [] and sorted(t.when - loop.now for t in loop.pending()) == [0.75, 10]
    loop.advance(0.75)  # nothing changed state: the recheck timer answers
    assert client.sent[0]["timed_out"] is False and client.sent[0]["results"][0]["done"] is True


def test_check_of_a_failed_service_answers_at_once(
    services: FakeServices, requests: ControlRequests
) -> None:
    services.services["db"].run = ProcessView(want="u", failed="exited 5 times")
    (reply,) = ask(requests, cmd="wait", action="C", services=["db"], wait=10).sent
    assert reply["timed_out"] is False and reply["results"][0]["done"] is False


def test_waits_per_connection_are_bounded(requests: ControlRequests) -> None:
    client = FakeClient()
    for _ in range(MAX_WAITS):
        ask(requests, client, cmd="wait", action="u", services=["db"], wait=5)
    assert client.sent == []
    assert error_of(requests, client, cmd="wait", action="u", services=["db"], wait=5) == (
        f"at most {MAX_WAITS} waits may be pending on one connection"
    )


# --- scale -------------------------------------------------------------------------------
def test_scale(services: FakeServices, requests: ControlRequests) -> None:
    services.configured.add("w")
    assert ask(requests, cmd="scale", services=["w"], count=3).sent[0]["results"] == [
        {"service": "w", "ok": True}
    ]
    assert services.done == [("scale", "w", 3)]
    assert (
        ask(requests, cmd="scale", services=["web"], count=3)
        .sent[0]["results"][0]["error"]
        .startswith("not a counted service")
    )
    assert (
        ask(requests, cmd="scale", services=["nope"], count=3).sent[0]["results"][0]["error"]
        == "no such service"
    )
    assert services.done == [("scale", "w", 3)]


@pytest.mark.parametrize("count", [-1, True, "3", 10**9, None])
def test_scale_refuses_a_bad_count(requests: ControlRequests, count: Any) -> None:
    assert error_of(requests, cmd="scale", services=["w"], count=count).startswith("'count': ")


def test_scale_takes_one_service_and_privilege(requests: ControlRequests) -> None:
    assert error_of(requests, cmd="scale", services=["a", "b"], count=1) == (
        "'scale' takes exactly one service"
    )
    assert error_of(requests, FakeClient(False, 7), cmd="scale", services=["w"], count=1) == (
        "permission denied: uid 7 may only read status"
    )


# --- logs --------------------------------------------------------------------------------
def test_logs_sends_the_last_lines_then_follows(
    services: FakeServices, requests: ControlRequests
) -> None:
    services.services["web"].lines = [b"one", b"two", b"\xffthree"]
    client = ask(requests, cmd="logs", services=["web"], lines=2, follow=True)
    assert client.sent == [{"ok": True, "follow": True, "lines": ["two", "\udcffthree"]}]
    assert client.streaming
    services.followers["web"][0](b"four")
    assert client.sent[-1] == {"line": "four"}
    client.close()
    assert services.followers["web"] == []  # following stops with the client


def test_logs_without_follow_subscribes_nothing(
    services: FakeServices, requests: ControlRequests
) -> None:
    services.services["web"].lines = [b"one"]
    assert ask(requests, cmd="logs", services=["web"]).sent[0]["lines"] == ["one"]
    assert services.followers == {}


@pytest.mark.parametrize(
    "mode, why",
    [
        ("runit", "its own logger (log/run) has them"),
        (
            "inherit",
            "it writes to the container's output directly (log mode inherit; to keep "
            "its lines: `log: prefix` in service.yaml, or pyinit --log-mode prefix)",
        ),
        ("file", "it has not started yet (log mode file)"),
    ],
)
def test_logs_of_a_service_pyinit_keeps_none_of(
    services: FakeServices, requests: ControlRequests, mode: str, why: str
) -> None:
    services.services["db"].log_mode = mode
    assert error_of(requests, cmd="logs", services=["db"]) == f"pyinit keeps no lines of db: {why}"


@pytest.mark.parametrize(
    "req, error",
    [
        ({"services": ["web", "db"]}, "pyinit keeps no lines of web: it writes"),
        ({"services": []}, "pyinit keeps no lines of any service (to keep them: `log: "),
        ({"services": ["web"] * 1001}, "'services' must list at most 1000 names"),
        ({"services": ["web"], "lines": -1}, "'lines' must be an integer from 0 to 100000"),
        ({"services": ["web"], "lines": False}, "'lines' must be an integer from 0 to 100000"),
        ({"services": ["x" * 5000]}, "no such service 'xxxxx"),
    ],
)
def test_bad_logs_requests(requests: ControlRequests, req: dict[str, Any], error: str) -> None:
    text = error_of(requests, cmd="logs", **req)
    assert text.startswith(error) and len(text) < 200


def test_logs_of_several_services_are_merged_in_arrival_order(
    services: FakeServices, requests: ControlRequests
) -> None:
    web = services.services["web"]
    web.lines, web.places, web.log_mode = [b"w1", b"w2", b"w3"], [1, 4, 6], "prefix"
    services.add(FakeService("db", lines=[b"d1", b"\xffd2"], places=[2, 5], log_mode="prefix"))
    services.add(FakeService("quiet"))  # inherit: not among "all"
    client = ask(requests, cmd="logs", services=[], lines=4, follow=True)
    entries = [["db", "d1"], ["web", "w2"], ["db", "\udcffd2"], ["web", "w3"]]
    assert client.sent == [{"ok": True, "follow": True, "services": ["db", "web"],
                            "entries": entries}]  # fmt: skip
    assert client.streaming
    services.followers["db"][0](b"d3")
    services.followers["web"][0](b"w4")
    assert client.sent[-2:] == [{"service": "db", "line": "d3"}, {"service": "web", "line": "w4"}]
    client.close()
    assert services.followers == {"db": [], "web": []}
    named = ask(requests, cmd="logs", services=["web", "db"], lines=2)
    assert named.sent == [{"ok": True, "follow": False, "services": ["web", "db"],
                           "entries": [["db", "\udcffd2"], ["web", "w3"]]}]  # fmt: skip
    assert services.followers == {"db": [], "web": []}  # no follow: nothing subscribed


def test_merged_logs_name_a_service_pyinit_keeps_no_lines_of(
    services: FakeServices, requests: ControlRequests
) -> None:
    services.services["web"].lines = [b"w1"]
    services.add(FakeService("quiet"))
    text = error_of(requests, cmd="logs", services=["web", "quiet"])
    assert text.startswith("pyinit keeps no lines of quiet: it writes to the container's")
    assert error_of(requests, cmd="logs", services=["web", "nosuch"]) == "no such service 'nosuch'"


def test_logs_need_privilege(requests: ControlRequests) -> None:
    assert error_of(requests, FakeClient(False, 9), cmd="logs", services=["web"]) == (
        "permission denied: uid 9 may not read logs"
    )


# --- reload, shutdown, ping, the rest ---------------------------------------------------------
def test_reload_and_shutdown(services: FakeServices, requests: ControlRequests) -> None:
    assert ask(requests, cmd="reload").sent == [{"ok": True}]
    assert ask(requests, cmd="shutdown", exit_code=3).sent == [{"ok": True}]
    assert services.done == [("reload",), ("exit", 3)]


@pytest.mark.parametrize("code", [256, -1, True, "1", 1.5])
def test_shutdown_refuses_a_bad_exit_code(
    services: FakeServices, requests: ControlRequests, code: Any
) -> None:
    assert error_of(requests, cmd="shutdown", exit_code=code) == (
        "'exit_code' must be an integer from 0 to 255"
    )
    assert services.done == []


@pytest.mark.parametrize("cmd", ["reload", "shutdown"])
def test_reload_and_shutdown_need_privilege(
    services: FakeServices, requests: ControlRequests, cmd: str
) -> None:
    assert error_of(requests, FakeClient(False, 5), cmd=cmd) == (
        "permission denied: uid 5 may only read status"
    )
    assert services.done == []


def test_ping(requests: ControlRequests) -> None:
    (reply,) = ask(requests, cmd="ping").sent
    assert reply["ok"] and reply["orphans_reaped"] == 3 and reply["wakeups"] == 7
    assert isinstance(reply["version"], str) and isinstance(reply["pid"], int)


def test_an_unknown_command_gets_one_line(requests: ControlRequests) -> None:
    assert error_of(requests, cmd="x" * 1000).startswith("unknown command 'xxx")
    assert len(error_of(requests, cmd="x" * 1000)) < 100


def test_a_request_that_is_no_object_gets_one_line(requests: ControlRequests) -> None:
    client = FakeClient()
    owner = types.SimpleNamespace(handler=requests.handle)
    server.Server.dispatch(owner, client, b"[1, 2")  # type: ignore[arg-type]
    assert client.sent[0]["ok"] is False and "\n" not in client.sent[0]["error"]


def test_handlers_raise_protocol_errors_not_others(requests: ControlRequests) -> None:
    with pytest.raises(ProtocolError):
        ask(requests, cmd="control", action="?")


def test_logs_of_a_group_are_its_instances_merged(
    services: FakeServices, requests: ControlRequests
) -> None:
    for i, place in ((1, 7), (2, 3)):
        services.add(FakeService(f"w@{i}", lines=[b"line %d" % i], places=[place],
                                 log_mode="prefix"))  # fmt: skip
    services.groups["w"] = ["w@1", "w@2"]
    assert ask(requests, cmd="logs", services=["w"]).sent == [
        {"ok": True, "follow": False, "services": ["w@1", "w@2"],
         "entries": [["w@2", "line 2"], ["w@1", "line 1"]]}
    ]  # fmt: skip
