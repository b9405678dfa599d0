"""services/manager.py's ServiceManager with no processes: a fake kernel (spawn, kill, exits), a
virtual clock, and real service dirs in a temp dir.

Covers reconcile (add, update, remove, instances, dependency gating) and the
shutdown order (dependents first, loggers after their service, bounded by the
budget). The machine itself is tested in test_supervisor.py; the real thing as
PID 1 in tests/integration/test_services.py.
"""

from __future__ import annotations

import os
import selectors
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

from pyinit.core.exits import ExitStatus
from pyinit.linux.signals import Inherited
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.spawn import Spec
from pyinit.services.manager import ServiceManager
from pyinit.services.records import Service
from pyinit.services.watcher import RESCAN_DELAY


class Kernel:
    """Fake processes: each start gets a pid; TERM (or the stop signal) and KILL end it,
    unless its service is stubborn (ignores everything but KILL) or stuck (ignores
    KILL too). Exits reach the reaper's callbacks at the loop's next wait, as real ones do."""

    def __init__(self) -> None:
        self.next_pid = 1000
        self.alive: dict[int, str] = {}  # pid -> argv[0] and cwd, for the test to read
        self.watchers: dict[int, Callable[[int, ExitStatus], None]] = {}
        self.pending: list[tuple[int, ExitStatus]] = []
        self.signals: list[tuple[int, int]] = []  # (pid, signum), in order
        self.stubborn: set[int] = set()
        self.stuck: set[int] = set()

    def spawn(self, spec: Spec, inherited: Inherited) -> int:
        self.next_pid += 1
        self.alive[self.next_pid] = f"{spec.cwd}:{spec.argv[0]}"
        return self.next_pid

    def kill(self, pid: int, signum: int, group: bool) -> None:
        self.signals.append((pid, signum))
        if pid not in self.alive or pid in self.stuck:
            return
        if signum == signal.SIGKILL or (
            signum in (signal.SIGTERM, signal.SIGINT) and pid not in self.stubborn
        ):
            self.exit(pid, ExitStatus(signal=signum))

    def exit(self, pid: int, status: ExitStatus) -> None:
        """pid exits (delivered at the next wait)."""
        if self.alive.pop(pid, None) is not None:
            self.pending.append((pid, status))

    def watch(self, pid: int, on_exit: Callable[[int, ExitStatus], None]) -> None:
        self.watchers[pid] = on_exit

    def deliver(self) -> None:
        pending, self.pending = self.pending, []
        for pid, status in pending:
            self.watchers.pop(pid)(pid, status)


class VirtualSelector:
    """The loop's selector on a virtual clock: a wait delivers exits, or dispatches
    fds ready now, or moves the clock to the timeout instead of sleeping."""

    def __init__(self, real: selectors.BaseSelector, host: Host) -> None:
        self.real = real
        self.host = host

    def select(self, timeout: Optional[float] = None) -> list:
        if self.host.kernel.pending:
            self.host.kernel.deliver()
            return self.real.select(0)
        events = self.real.select(0)  # fds ready now (inotify, FIFOs) come first
        if not events:
            assert timeout is not None, "the loop would wait forever"
            self.host.now += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class Host:
    """services.host.Host, faked: a virtual clock, the fake kernel as reaper."""

    def __init__(self, tmp: Path) -> None:
        self.now = 100.0
        self.loop = EventLoop(clock=lambda: self.now)
        self.loop._selector = VirtualSelector(self.loop._selector, self)  # type: ignore
        self.kernel = Kernel()
        self.reaper = self.kernel
        self.inherited = Inherited.capture()
        self.run_dir = None
        self.config = SimpleNamespace(
            service_dirs=[str(tmp / "service")],
            service_defaults={},
            skip_services=False,
            kill_timeout=5.0,
            log_mode="inherit",
            log_format="text",
            log_timestamps=False,
            run_dir=str(tmp / "run"),
        )
        self.exit_codes: list[int] = []
        self.deadline: Optional[float] = None

    def run_path(self, name: str) -> str:
        return os.path.join(self.config.run_dir, name)

    def remaining(self, wanted: float) -> float:
        if self.deadline is None:
            return wanted
        return max(0.0, min(wanted, self.deadline - self.now))

    def request_exit(self, code: int) -> None:
        self.exit_codes.append(code)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.dirs = tmp / "service"
        self.dirs.mkdir()
        self.host = Host(tmp)
        self.kernel = self.host.kernel
        self.m = ServiceManager(self.host)
        self.m.runner.spawn = self.kernel.spawn
        self.m.runner.kill = self.kernel.kill

    def service(self, name: str, yaml: str = "", log: bool = False) -> Path:
        path = self.dirs / name
        path.mkdir()
        run = path / "run"
        run.write_text("#!/bin/sh\nexec sleep 1000\n")
        run.chmod(0o755)
        (path / "supervise").mkdir()  # supervise/ files go where the test can see them
        if yaml:
            (path / "service.yaml").write_text(yaml)
        if log:
            (path / "log").mkdir()
            (path / "log" / "run").write_text("#!/bin/sh\nexec cat\n")
            (path / "log" / "run").chmod(0o755)
        return path

    def svc(self, name: str) -> Service:
        return self.m.services[name]

    def pid(self, name: str, label: str = "run") -> int:
        slot = self.svc(name).run if label == "run" else self.svc(name).log
        assert slot is not None and slot.machine.pid is not None
        return slot.machine.pid

    def running(self) -> set[str]:
        return {n for n, s in self.m.services.items() if s.run.machine.pid in self.kernel.alive}

    def settle(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        assert self.m.loop.run_until(done, timeout), "not within the (virtual) timeout"


@pytest.fixture
def rig(tmp_path: Path):
    rig = Rig(tmp_path)
    yield rig
    rig.m.supervise.close_all()
    for svc in rig.m.services.values():
        if svc.pipe:
            rig.m.runner.close_pipe(svc)


# --- reconcile ---------------------------------------------------------------------------
def test_a_scan_adds_every_service_dir_and_starts_it(rig: Rig) -> None:
    rig.service("a")
    rig.service("b", log=True)
    rig.service("c").joinpath("down").write_text("")
    rig.m.rescan()
    assert set(rig.m.services) == {"a", "b", "c"}
    assert rig.running() == {"a", "b"}
    assert rig.pid("b", "log") in rig.kernel.alive
    assert rig.svc("c").run.machine.want == "d"
    assert sorted(rig.kernel.alive.values()) == sorted(
        [f"{rig.dirs}/a:./run", f"{rig.dirs}/b:./run", f"{rig.dirs}/b/log:./run"]
    )


def test_a_changed_service_yaml_is_the_policy_from_the_next_event_on(rig: Rig) -> None:
    path = rig.service("a")
    rig.m.rescan()
    pid = rig.pid("a")
    (path / "service.yaml").write_text("restart: never\nstop_timeout: 2\n")
    rig.m.rescan()
    machine = rig.svc("a").run.machine
    assert (machine.policy.restart, machine.policy.kill_timeout) == ("never", 2.0)
    assert machine.pid == pid, "a new policy does not restart the running process"
    rig.kernel.exit(pid, ExitStatus(code=0))
    rig.settle(lambda: machine.is_down())
    assert machine.outcome == "exited" and rig.running() == set()


def test_a_removed_service_dir_is_stopped_then_forgotten(rig: Rig) -> None:
    path = rig.service("a", log=True)
    rig.service("b")
    rig.m.rescan()
    run, logger = rig.pid("a"), rig.pid("a", "log")
    for f in sorted(path.rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() else f.unlink()
    path.rmdir()
    rig.m.rescan()
    assert (run, signal.SIGTERM) in rig.kernel.signals
    rig.settle(lambda: "a" not in rig.m.services)
    assert logger not in rig.kernel.alive, "the logger goes after its service"
    assert rig.kernel.signals.index((run, signal.SIGTERM)) < rig.kernel.signals.index(
        (logger, signal.SIGTERM)
    )
    assert rig.running() == {"b"}


def test_counted_instances_scale_down_highest_first_one_at_a_time(rig: Rig) -> None:
    rig.service("w", "instances: 3\n")
    rig.m.rescan()
    assert set(rig.m.services) == {"w@1", "w@2", "w@3"} == rig.running()
    three, two = rig.pid("w@3"), rig.pid("w@2")
    rig.kernel.stubborn.add(three)  # w@3 takes until its kill_timeout to go
    rig.m.scale("w", 1)
    assert (three, signal.SIGTERM) in rig.kernel.signals
    assert (two, signal.SIGTERM) not in rig.kernel.signals, "w@2 waits for w@3 to be down"
    rig.settle(lambda: "w@3" not in rig.m.services)
    rig.settle(lambda: set(rig.m.services) == {"w@1"})
    assert rig.kernel.signals.index((three, signal.SIGKILL)) < rig.kernel.signals.index(
        (two, signal.SIGTERM)
    )
    assert rig.running() == {"w@1"}


def test_an_instance_on_demand_of_a_template(rig: Rig) -> None:
    rig.service("t@")
    rig.m.rescan()
    assert rig.m.services == {}
    assert rig.m.instantiate("t@x") is None
    assert rig.running() == {"t@x"}
    assert rig.m.instantiate("nope@x") is not None


def test_after_waits_for_its_dependency_to_be_ready(rig: Rig) -> None:
    rig.service("db", "ready:\n  notification_fd: 3\n")
    rig.service("app", "after: [db]\n")
    rig.m.rescan()
    assert rig.running() == {"db"}
    assert rig.svc("app").waiting_for == ["db"] and rig.svc("app").run.machine.waiting
    rig.m.ready.on_ready(rig.svc("db"))  # what the tracker reports when db writes "\n"
    assert rig.running() == {"db", "app"} and rig.svc("app").waiting_for == []


def test_requires_fails_with_the_service_it_requires(rig: Rig) -> None:
    rig.service("db", "restart: never\nready:\n  notification_fd: 3\n")
    rig.service("app", "requires: [db]\n")
    rig.m.rescan()
    rig.kernel.exit(rig.pid("db"), ExitStatus(code=1))
    rig.settle(lambda: rig.svc("app").run.machine.failed is not None)
    assert rig.svc("app").run.machine.failed == "requires db, which failed"
    assert rig.running() == set()


def test_a_dependency_cycle_fails_both_and_starts_neither(rig: Rig) -> None:
    rig.service("a", "after: [b]\n")
    rig.service("b", "after: [a]\n")
    rig.service("c")
    rig.m.rescan()
    assert rig.running() == {"c"}
    assert "cycle" in (rig.svc("a").defn.error or "")


def test_an_essential_service_that_fails_ends_the_container(rig: Rig) -> None:
    rig.service("e", "essential: true\nrestart: never\n")
    rig.m.rescan()
    rig.kernel.exit(rig.pid("e"), ExitStatus(code=3))
    rig.settle(lambda: rig.host.exit_codes != [])
    assert rig.host.exit_codes == [3]


# --- shutdown order ------------------------------------------------------------------------
def stops(rig: Rig, pids: dict[str, int]) -> list[str]:
    """The names in pids, in the order they were first sent a stop signal."""
    by_pid = {pid: name for name, pid in pids.items()}
    seen: list[str] = []
    for pid, signum in rig.kernel.signals:
        if pid in by_pid and signum != signal.SIGCONT and by_pid[pid] not in seen:
            seen.append(by_pid[pid])
    return seen


def test_stop_all_stops_dependents_first_and_loggers_after_their_service(rig: Rig) -> None:
    rig.service("db")
    rig.service("cache", "after: [db]\n")
    rig.service("web", "requires: [cache]\n", log=True)
    rig.service("lone")
    rig.m.rescan()
    assert rig.running() == {"db", "cache", "web", "lone"}
    pids = {n: rig.pid(n) for n in ("db", "cache", "web", "lone")}
    pids["web/log"] = rig.pid("web", "log")
    rig.m.stop_all(5.0)
    assert rig.m.table.all_down() and rig.kernel.alive == {}
    order = stops(rig, pids)
    assert order.index("web") < order.index("web/log")
    assert order.index("web") < order.index("cache") < order.index("db")
    assert set(order) == set(pids)


def test_stop_all_kills_a_stubborn_service_within_the_timeout(rig: Rig) -> None:
    rig.service("a", "stop_timeout: 60\n")
    rig.service("b", "after: [a]\n")
    rig.m.rescan()
    a, b = rig.pid("a"), rig.pid("b")
    rig.kernel.stubborn.add(b)
    start = rig.host.now
    rig.m.stop_all(2.0)
    assert rig.kernel.signals.index((b, signal.SIGKILL)) < rig.kernel.signals.index(
        (a, signal.SIGTERM)
    ), "a is stopped once b, which depends on it, is down"
    assert rig.host.now - start <= 2.0 + 1e-6, "the kill waits at most the shutdown timeout"
    assert rig.kernel.alive == {}


def test_stop_all_gives_up_at_the_budget_when_a_process_will_not_die(
    rig: Rig, capfd: pytest.CaptureFixture[str]
) -> None:
    rig.service("a")
    rig.service("b", "after: [a]\n")
    rig.m.rescan()
    rig.kernel.stuck.add(rig.pid("b"))
    rig.host.deadline = rig.host.now + 4.0
    rig.m.stop_all(1.0)
    assert rig.host.now <= rig.host.deadline + 1e-6
    assert "still running at the end of the shutdown budget" in capfd.readouterr().err
    assert rig.pid("a") in rig.kernel.alive, "a is never stopped while b still runs"
    assert not rig.m.table.all_down()


def test_nothing_restarts_or_starts_during_stop_all(rig: Rig) -> None:
    rig.service("a")
    rig.m.rescan()
    started = rig.kernel.next_pid
    rig.m.stop_all(1.0)
    assert rig.kernel.next_pid == started
    rig.service("late")
    rig.m.reload()  # a rescan at shutdown starts nothing
    assert "late" not in rig.m.services and rig.kernel.next_pid == started


def test_freeze_stops_every_machine_and_their_timers(rig: Rig) -> None:
    rig.service("a")
    rig.m.rescan()
    rig.kernel.exit(rig.pid("a"), ExitStatus(code=1))
    rig.kernel.deliver()  # a restart is now pending on a timer
    assert rig.svc("a").run.machine.start_at is not None
    rig.m.freeze()
    assert rig.m.table.all_down() and rig.svc("a").run.timer is None


def test_once_on_a_service_waiting_for_its_dependency_runs_when_it_is_ready(rig: Rig) -> None:
    rig.service("db", "ready:\n  notification_fd: 3\n")
    rig.service("job", "after: [db]\n").joinpath("down").write_text("")
    rig.m.rescan()
    job = rig.svc("job").run
    rig.m.apply(job, job.machine.command("o", rig.host.now))  # svctl once job
    assert job.machine.waiting and rig.running() == {"db"}
    rig.m.ready.on_ready(rig.svc("db"))
    assert rig.running() == {"db", "job"} and job.machine.want == "d"


# --- the dir watcher -----------------------------------------------------------------------
def test_a_burst_of_changes_is_one_rescan_after_the_debounce(rig: Rig) -> None:
    rig.m.start()
    assert rig.m.rescans == 1 and rig.m.services == {}
    rig.service("a")
    rig.service("b", log=True)
    start = rig.host.now
    rig.settle(lambda: rig.m.rescans == 2)
    assert rig.host.now - start == pytest.approx(RESCAN_DELAY)
    assert rig.running() == {"a", "b"} and rig.m.rescan_timer is None
    rig.m.loop.run_until(lambda: False, 5.0)  # nothing else was pending
    assert rig.m.rescans == 2


def test_a_service_dir_created_after_boot_is_watched_through_its_parent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.dirs.rmdir()  # the service dir does not exist at boot
    rig.m.start()
    rig.dirs.mkdir()
    rig.settle(lambda: rig.m.rescans == 2)
    rig.service("late")
    rig.settle(lambda: "late" in rig.m.services)
    assert rig.running() == {"late"}
    rig.m.supervise.close_all()


def test_no_rescan_is_armed_once_services_are_stopping(rig: Rig) -> None:
    rig.m.start()
    rig.m.stop_all(1.0)
    rig.service("a")
    rig.m.loop.run_until(lambda: False, RESCAN_DELAY / 2)  # the change is read
    assert rig.m.rescan_timer is None
    rig.m.loop.run_until(lambda: False, 5.0)
    assert rig.m.services == {} and rig.m.rescans == 1
