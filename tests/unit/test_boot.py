"""boot.Init's narrative with fakes, running no process: a fake services object, a fake
loop whose clock moves only from event to event, and fakes of the system calls boot
makes (spawn, kill, the signalfd, prctl, the env dir, /proc). The stages' order, a
failing startup script, the exit code rules (128+N) and the shutdown budget."""

from __future__ import annotations

import heapq
import itertools
import os
import signal
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from pyinit import boot
from pyinit.config import Config
from pyinit.linux import prctl, proctree, signals
from pyinit.runtime import environment, spawn
from pyinit.runtime.reaper import ExitStatus

TERM, KILL = int(signal.SIGTERM), int(signal.SIGKILL)


class FakeLoop:
    """run_until over a queue of timed events; the clock jumps from one to the next."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def at(self, when: float, event: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), event))

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        pass

    def run_until(self, done: Callable[[], bool], timeout: Optional[float] = None) -> bool:
        deadline = None if timeout is None else self.now + timeout
        while not done():
            if deadline is not None and self.now >= deadline:
                return False
            if not self._queue or (deadline is not None and self._queue[0][0] > deadline):
                assert deadline is not None, "boot would wait for ever: nothing more happens"
                self.now = deadline
                return False
            when, _, event = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            event()
        return True


class FakeReaper:
    def __init__(self, world: World) -> None:
        self.world = world
        self.owners: dict[int, Callable[[int, ExitStatus], None]] = {}
        self.strays = 0

    def watch(self, pid: int, on_exit: Callable[[int, ExitStatus], None]) -> None:
        self.owners[pid] = on_exit

    def reap(self) -> int:
        return 0

    @property
    def has_children(self) -> bool:
        return bool(self.world.live)


class FakeSignalFd:
    def __init__(self, signums: list[int]) -> None:
        self.fd = -1
        self.pending: list[signals.Received] = []

    def read(self) -> list[signals.Received]:
        out, self.pending = self.pending, []
        return out


class FakeExporter:
    def __init__(self, world: World, env_dir: str, fallback: Optional[str]) -> None:
        self.world, self.current = world, env_dir

    def export(self, env: Any) -> Optional[str]:
        self.world.note("env export")
        return self.current


class FakeServices:
    def __init__(self, world: World, ready_at: Optional[float]) -> None:
        self.world, self.ready_at = world, ready_at

    def start(self, scan: bool) -> None:
        self.world.note(f"services start scan={scan}")
        if self.ready_at is not None:  # the event that makes them ready wakes the loop
            self.world.loop.at(self.ready_at, lambda: self.world.note("services ready"))

    def reload(self) -> None:
        self.world.note("services reload")

    def hangup(self) -> None:
        self.world.note("services hangup")

    def stop_all(self, timeout: float) -> None:
        self.world.note(f"services stop_all {timeout:g}")

    def all_started(self) -> bool:
        return self.ready_at is not None and self.world.loop.now >= self.ready_at

    def not_started(self) -> list[str]:
        return [] if self.all_started() else [f"svc{i}" for i in range(8)]

    def freeze(self) -> None:
        self.world.note("services freeze")


class World:
    """The processes boot starts, as (program -> how it behaves), and what happened."""

    def __init__(self) -> None:
        self.loop = FakeLoop()
        self.reaper = FakeReaper(self)
        self.signalfd: Optional[FakeSignalFd] = None
        self.events: list[tuple[float, str]] = []
        # program -> (seconds until it exits by itself or None, its exit code, the
        # signals that end it); a program not listed exits 0 after 1 s
        self.programs: dict[str, tuple[Optional[float], int, set[int]]] = {}
        self.missing: set[str] = set()
        self.live: dict[int, str] = {}
        self._pids = itertools.count(100)

    def note(self, what: str) -> None:
        self.events.append((self.loop.now, what))

    def kinds(self) -> list[str]:
        return [what for _, what in self.events]

    # system calls
    def spawn(self, spec: spawn.Spec, inherited: Any) -> int:
        name = os.path.basename(spec.argv[0])
        if name in self.missing:
            raise spawn.SpawnError(f"{name}: not found", spawn.NOT_FOUND)
        pid = next(self._pids)
        self.live[pid] = name
        self.note(f"spawn {name}")
        runs_for, code, _ = self.programs.get(name, (1.0, 0, {TERM}))
        if runs_for is not None:
            self.loop.at(self.loop.now + runs_for, lambda: self.exit(pid, ExitStatus(code=code)))
        return pid

    def kill(self, pid: int, signum: int, group: bool = False) -> None:
        targets = list(self.live) if pid == -1 else [pid]
        self.note(
            f"kill {'all' if pid == -1 else self.live.get(pid, pid)} {signal.Signals(signum).name}"
        )
        for target in targets:
            name = self.live.get(target)
            if name is not None and (
                signum == KILL or signum in self.programs.get(name, (1.0, 0, {TERM}))[2]
            ):
                self.loop.at(
                    self.loop.now, lambda t=target: self.exit(t, ExitStatus(signal=signum))
                )

    def exit(self, pid: int, status: ExitStatus) -> None:
        name = self.live.pop(pid, None)
        if name is None:
            return
        self.note(f"exit {name} {status.shell_code}")
        owner = self.reaper.owners.pop(pid, None)
        if owner is not None:
            owner(pid, status)

    def signal_pyinit(self, when: float, signum: int, init: boot.Init) -> None:
        def deliver() -> None:
            assert self.signalfd is not None
            self.signalfd.pending.append(signals.Received(signum, 0, 4242, 0))
            init.on_signals()

        self.loop.at(when, deliver)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()

    def new_signalfd(signums: list[int]) -> FakeSignalFd:
        w.signalfd = FakeSignalFd(signums)
        return w.signalfd

    monkeypatch.setattr(signals, "SignalFd", new_signalfd)
    monkeypatch.setattr(signals, "kill_quietly", w.kill)
    monkeypatch.setattr(prctl, "set_name", lambda name: None)
    monkeypatch.setattr(prctl, "set_child_subreaper", lambda on: None)
    monkeypatch.setattr(spawn, "spawn", w.spawn)
    monkeypatch.setattr(spawn, "leave_cwd", lambda: w.note("leave cwd"))
    monkeypatch.setattr(
        environment, "import_dir", lambda path, override: w.note(f"env import override={override}")
    )
    monkeypatch.setattr(environment, "Exporter", lambda *a: FakeExporter(w, *a))
    monkeypatch.setattr(proctree, "parent_map", lambda proc="/proc": {})
    monkeypatch.setattr(proctree, "descendants", lambda parents, root: list(w.live))
    monkeypatch.delenv("PYINIT_RUN_DIR", raising=False)  # boot sets it; restored after
    return w


def script(directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def make_init(
    world: World,
    tmp_path: Path,
    command: list[str] | None = None,
    ready_at: Optional[float] = 0.0,
    **settings: Any,
) -> boot.Init:
    cfg = Config(command=command or [], **settings)
    for key in (
        "env_dir",
        "init_dir",
        "cont_init_dir",
        "pre_shutdown_dir",
        "cont_finish_dir",
        "post_shutdown_dir",
    ):
        if key not in settings:
            setattr(cfg, key, str(tmp_path / key))
    cfg.rc_local = settings.get("rc_local", str(tmp_path / "rc.local"))
    cfg.run_dir, cfg.run_dir_set = str(tmp_path / "run"), True
    cfg.services_ready_timeout = settings.get("services_ready_timeout", 60.0)
    cfg.wait_for_services = settings.get("wait_for_services", True)

    class TestInit(boot.Init):
        def new_services(self) -> tuple[boot.Services, Any]:
            return FakeServices(world, ready_at), None

        def serve_control(self, api: Any) -> None:
            world.note("control socket")

    return TestInit(
        cfg, signals.Inherited(frozenset(), frozenset()), loop=world.loop, reaper=world.reaper
    )


def test_the_stages_run_in_order(world: World, tmp_path: Path) -> None:
    script(tmp_path / "init_dir", "10-first")
    script(tmp_path / "cont_init_dir", "20-second")
    script(tmp_path / "pre_shutdown_dir", "pre")
    script(tmp_path / "post_shutdown_dir", "post")
    world.programs["app"] = (5.0, 0, {TERM})
    init = make_init(world, tmp_path, ["app"], ready_at=3.5)
    assert init.run() == 0
    assert world.kinds() == [
        "env import override=False",
        "env export",
        "spawn 10-first",
        "exit 10-first 0",
        "env import override=True",
        "env export",
        "spawn 20-second",
        "exit 20-second 0",
        "env import override=True",
        "env export",
        "control socket",
        "services start scan=True",
        "services ready",
        "spawn app",  # only once the services were ready
        "leave cwd",
        "exit app 0",
        "spawn pre",
        "exit pre 0",
        "services stop_all 5",
        "spawn post",
        "exit post 0",
        "services freeze",
    ]
    assert dict((what, when) for when, what in world.events)["spawn app"] == 3.5
    assert os.environ["PYINIT_RUN_DIR"] == str(tmp_path / "run")


def test_a_failing_startup_script_stops_the_boot_with_its_code(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = script(tmp_path / "init_dir", "10-fails")
    script(tmp_path / "init_dir", "20-never")
    world.programs["10-fails"] = (0.5, 3, {TERM})
    init = make_init(world, tmp_path, ["app"])
    assert init.run() == 3
    assert "spawn 20-never" not in world.kinds()
    assert "spawn app" not in world.kinds()
    assert not any(k.startswith("services") for k in world.kinds())
    assert f"{first} failed with exit code 3; stopping the boot" in capfd.readouterr().err


def test_exit_code_is_the_main_commands_or_128_plus_its_signal(
    world: World, tmp_path: Path
) -> None:
    world.programs["app"] = (2.0, 7, {TERM})
    assert make_init(world, tmp_path, ["app"]).run() == 7


def test_a_signal_that_ends_the_main_command_gives_128_plus_n(world: World, tmp_path: Path) -> None:
    world.programs["app"] = (None, 0, {TERM})
    init = make_init(world, tmp_path, ["app"])
    world.signal_pyinit(4.0, TERM, init)
    assert init.run() == 128 + TERM
    assert ("kill app SIGTERM") in world.kinds()


def test_a_main_command_that_ignores_sigterm_is_killed_after_the_kill_timeout(
    world: World, tmp_path: Path
) -> None:
    world.programs["app"] = (None, 0, set())
    init = make_init(world, tmp_path, ["app"], kill_timeout=2.0, kill_all_on_exit=False)
    world.signal_pyinit(1.0, TERM, init)
    assert init.run() == 128 + KILL
    assert (3.0, "kill app SIGKILL") in world.events


def test_stopped_before_the_main_command_started(world: World, tmp_path: Path) -> None:
    world.programs["10-slow"] = (None, 0, {TERM})
    script(tmp_path / "init_dir", "10-slow")
    init = make_init(world, tmp_path, ["app"])
    world.signal_pyinit(1.0, int(signal.SIGINT), init)
    assert init.run() == 128 + signal.SIGINT  # the script was stopped; app never ran
    assert "spawn app" not in world.kinds()


@pytest.mark.parametrize("signalled, expected", [(None, 0), (2, 2)])
def test_no_main_command_stopped_by_a_signal(
    world: World, tmp_path: Path, signalled: Optional[int], expected: int
) -> None:
    init = make_init(world, tmp_path, signalled_exit_code=signalled)
    world.signal_pyinit(1.0, TERM, init)
    assert init.run() == expected  # my_init's "aborted" code when it has one


def test_a_main_command_that_cannot_start_gives_127(world: World, tmp_path: Path) -> None:
    world.missing.add("nosuch")
    assert make_init(world, tmp_path, ["nosuch"]).run() == spawn.NOT_FOUND


def test_shutdown_container_exits_with_the_requested_code(world: World, tmp_path: Path) -> None:
    world.programs["app"] = (None, 0, {TERM})
    init = make_init(world, tmp_path, ["app"])
    world.loop.at(2.0, lambda: init.request_exit(9))
    assert init.run() == 9
    assert (2.0, "kill app SIGTERM") in world.events


def test_every_shutdown_stage_is_cut_to_one_budget(world: World, tmp_path: Path) -> None:
    """The budget (9.5 s) runs from the signal: the main command gets the kill timeout
    (5 s), a pre-shutdown script what is left of it (4.5 s), the services nothing, and
    the post-shutdown script is skipped."""
    world.programs["app"] = (None, 0, set())
    world.programs["pre"] = (None, 0, {TERM})
    script(tmp_path / "pre_shutdown_dir", "pre")
    script(tmp_path / "post_shutdown_dir", "post")
    init = make_init(
        world, tmp_path, ["app"], kill_timeout=5.0, shutdown_timeout=9.5, kill_all_on_exit=False
    )
    world.signal_pyinit(10.0, TERM, init)
    assert init.run() == 128 + KILL
    assert (15.0, "kill app SIGKILL") in world.events
    assert (19.5, "kill pre SIGTERM") in world.events
    assert (19.5, "services stop_all 0") in world.events
    assert "spawn post" not in world.kinds()


def test_kill_all_terms_then_kills_what_is_left(world: World, tmp_path: Path) -> None:
    world.programs["app"] = (1.0, 0, set())
    world.programs["stray"] = (None, 0, set())
    init = make_init(world, tmp_path, ["app"], kill_all_timeout=3.0)
    world.loop.at(0.5, lambda: world.spawn(spawn.Spec(["stray"]), None))  # an orphan
    assert init.run() == 0
    kills = [(when, what) for when, what in world.events if what.startswith("kill")]
    assert kills == [
        (1.0, "kill stray SIGTERM"),
        (1.0, "kill stray SIGCONT"),
        (4.0, "kill stray SIGKILL"),
    ]
    assert "exit stray 137" in world.kinds()


def test_a_startup_script_cannot_move_pyinit_run_dir(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The env dir's import after a script may carry another PYINIT_RUN_DIR: boot's
    choice is set again before the next script, the services and the main command."""
    seen: list[str] = []

    def import_dir(path: str, override: bool) -> None:
        if override:
            os.environ["PYINIT_RUN_DIR"] = "/elsewhere"  # what the script wrote

    def spawn_and_look(spec: spawn.Spec, inherited: Any) -> int:
        seen.append(os.environ.get("PYINIT_RUN_DIR", ""))
        return world.spawn(spec, inherited)

    monkeypatch.setattr(environment, "import_dir", import_dir)
    monkeypatch.setattr(spawn, "spawn", spawn_and_look)
    script(tmp_path / "init_dir", "10-first")
    script(tmp_path / "init_dir", "20-second")
    assert make_init(world, tmp_path, ["app"]).run() == 0
    assert seen == [str(tmp_path / "run")] * 3  # both scripts and the main command


def test_the_services_ready_timeout_names_who_held_the_main_command_up(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    world.programs["app"] = (1.0, 0, {TERM})
    init = make_init(world, tmp_path, ["app"], ready_at=None, services_ready_timeout=2.0)
    assert init.run() == 0
    assert dict((what, when) for when, what in world.events)["spawn app"] == 2.0
    assert (
        "pyinit: warning: services not ready after 2s: starting the main command anyway "
        "(not ready: svc0, svc1, svc2, svc3, svc4 and 3 more)\n"
    ) in capfd.readouterr().err
