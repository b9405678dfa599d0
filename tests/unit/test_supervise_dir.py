"""runit's supervise/ dir: the 20-byte status record and stat text as runsv.c writes
them (core/records.py), and the thin shell (files, FIFOs, control letters) on a real
event loop (services/supervise.py)."""

from __future__ import annotations

import errno
import itertools
import os
import stat
import struct

import pytest

from pyinit.core import tai64
from pyinit.core.machine import Machine, Policy
from pyinit.core.model import ServiceDir
from pyinit.core.records import Status, decode, encode, from_machine, pid_text, stat_text, wall_ns
from pyinit.runtime.loop import EventLoop
from pyinit.services import supervise as supervise_dir
from pyinit.services.records import Service, Slot
from pyinit.services.supervise import READ_MAX, SuperviseDirs

WALL = 1_700_000_000_123_456_789  # unix ns


# --- the 20-byte record --------------------------------------------------------------------
def test_tai_offset_is_runits() -> None:
    assert tai64.OFFSET == 4611686018427387914  # taia_now(): 4611686018427387914ULL + tv_sec


def test_record_layout_byte_by_byte() -> None:
    st = Status(when_ns=WALL, pid=0x01020304, state="run", want="u", paused=True,
                got_term=True)
    rec = encode(st)
    assert len(rec) == 20
    assert rec[:8] == (tai64.OFFSET + 1_700_000_000).to_bytes(8, "big")
    assert rec[8:12] == (123_456_789).to_bytes(4, "big")
    assert rec[12:16] == bytes([4, 3, 2, 1])  # pid little-endian, as sv.c reads it
    assert rec[16:] == bytes([1, ord("u"), 1, 1])


STATES = ("down", "run", "finish")
WANTS = ("u", "d", "x")  # x: want exit (`sv exit` / removed)


@pytest.mark.parametrize("state, paused, got_term, want",
                         list(itertools.product(STATES, (False, True), (False, True), WANTS)))
def test_record_for_every_combination(state, paused, got_term, want) -> None:
    pid = 0 if state == "down" else 4242
    st = Status(when_ns=WALL, pid=pid, state=state, want="d" if want == "x" else want,
                paused=paused, got_term=got_term, exiting=want == "x")
    rec = encode(st)
    label, nanos = struct.unpack(">QL", rec[:12])
    rpaused, rwant, rterm, rstate = rec[16:]
    assert label - tai64.OFFSET == WALL // 10**9 and nanos == WALL % 10**9
    assert int.from_bytes(rec[12:16], "little") == pid
    assert rpaused == int(paused) and rterm == int(got_term)
    assert chr(rwant) == ("u" if want == "u" else "d")  # runsv: W_UP 'u', else 'd'
    assert rstate == {"down": 0, "run": 1, "finish": 2}[state]
    back = decode(rec)
    assert (back.when_ns, back.pid, back.state, back.want, back.paused, back.got_term) == (
        WALL, pid, state, "u" if want == "u" else "d", paused, got_term)


def test_decode_rejects_bad_records() -> None:
    with pytest.raises(ValueError):
        decode(b"\0" * 19)
    with pytest.raises(ValueError):
        decode(b"\0" * 19 + b"\x07")


def test_large_pid_wraps_to_32_bits() -> None:
    assert decode(encode(Status(when_ns=WALL, pid=2**22, state="run"))).pid == 2**22


# --- supervise/stat and supervise/pid -------------------------------------------------------
@pytest.mark.parametrize("state, paused, got_term, want",
                         list(itertools.product(STATES, (False, True), (False, True), WANTS)))
def test_stat_text_for_every_combination(state, paused, got_term, want) -> None:
    st = Status(when_ns=WALL, pid=0 if state == "down" else 7, state=state,
                want="d" if want == "x" else want, paused=paused, got_term=got_term,
                exiting=want == "x")
    # runsv.c: the state, then paused, got TERM, then (not when down) want down / exit
    expected = state + (", paused" if paused else "") + (", got TERM" if got_term else "")
    if state != "down":
        expected += {"u": "", "d": ", want down", "x": ", want exit"}[want]
    assert stat_text(st) == expected + "\n"


@pytest.mark.parametrize("st, text", [
    (Status(WALL, 12, "run", "u"), "run\n"),
    (Status(WALL, 12, "run", "d", got_term=True), "run, got TERM, want down\n"),
    (Status(WALL, 12, "run", "u", paused=True), "run, paused\n"),
    (Status(WALL, 13, "finish", "d"), "finish, want down\n"),
    (Status(WALL, 0, "down", "d"), "down\n"),
    (Status(WALL, 0, "down", "u"), "down\n"),
    (Status(WALL, 12, "run", "d", got_term=True, exiting=True), "run, got TERM, want exit\n"),
])
def test_stat_text_examples(st, text) -> None:
    assert stat_text(st) == text


def test_pid_text() -> None:
    assert pid_text(123) == "123\n"
    assert pid_text(0) == ""
    assert pid_text(-1) == ""


# --- from a Machine ------------------------------------------------------------------------
def test_wall_ns_maps_the_monotonic_clock() -> None:
    assert wall_ns(since=90.5, mono_now=100.0, wall_now_ns=WALL) == WALL - 9_500_000_000


def test_from_machine_through_a_life() -> None:
    m = Machine()
    m.boot(10.0, normally_up=True)
    m.spawned(321, 10.1)
    st = from_machine(m, 12.1, WALL)
    assert (st.state, st.pid, st.want, st.paused, st.got_term, st.exiting) == (
        "run", 321, "u", False, False, False)
    assert st.when_ns == WALL - 2_000_000_000
    m.command("p", 12.2)
    assert from_machine(m, 12.2, WALL).paused
    m.command("d", 12.3)
    st = from_machine(m, 12.3, WALL)
    assert (st.want, st.got_term, st.paused) == ("d", True, False)
    assert stat_text(st) == "run, got TERM, want down\n"
    m.command("x", 12.4)
    assert stat_text(from_machine(m, 12.4, WALL)) == "run, got TERM, want exit\n"
    down = Machine()
    down.boot(1.0, normally_up=False)
    down.pid = -1  # a failed spawn: no pid in the record
    assert from_machine(down, 1.0, WALL).pid == 0


def test_setup_is_down_to_runit_tools() -> None:
    m = Machine(Policy(has_setup=True))
    m.boot(1.0, normally_up=True)
    m.spawned(55, 1.0)
    st = from_machine(m, 2.0, WALL)
    assert (st.state, st.pid, st.want) == ("down", 0, "u")
    assert encode(st)[-1] == 0


# --- the shell: files, FIFOs, letters -------------------------------------------------------
class Manager:
    """What SuperviseDirs needs of the service manager (supervise.Owner)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.loop = EventLoop(clock=lambda: self.now)
        self.shutting_down = False
        self.letters: list[tuple[str, str]] = []
        self.forgotten: list[Service] = []
        self.supervise = SuperviseDirs(self, wall_clock=lambda: WALL)

    def apply(self, slot: Slot, actions: list) -> None:
        self.supervise.update(slot)

    def command(self, slot: Slot, letter: str) -> None:
        self.apply(slot, slot.machine.command(letter, self.loop.clock()))

    def forget(self, svc: Service) -> None:
        self.forgotten.append(svc)
        self.supervise.close(svc)

    def service(self, path, log: bool = False, error: str | None = None) -> Service:
        defn = ServiceDir(name=os.path.basename(path), path=str(path), normally_up=True,
                          has_log=log, error=error)
        svc = Service(defn)
        svc.run = Slot(svc, "run", Machine())
        os.makedirs(path, exist_ok=True)
        if log:
            os.makedirs(os.path.join(path, "log"), exist_ok=True)
            svc.log = Slot(svc, "log", Machine())
        return svc

    def dispatch(self) -> None:
        self.loop.run_once(self.now)  # fds ready now only: never waits


class Recording(Machine):
    """A machine that records the letters it was given."""

    def __init__(self, seen: list) -> None:
        super().__init__()
        self.seen = seen

    def command(self, letter: str, now: float) -> list:
        self.seen.append(letter)
        return super().command(letter, now)


@pytest.fixture
def mgr(monkeypatch):
    warnings: list[str] = []
    def emit(level: int, text: str, service=None) -> None:  # log.warning and log.once's
        if level == supervise_dir.log.WARNING:
            warnings.append(f"[{service}] {text}")

    monkeypatch.setattr(supervise_dir.log, "emit", emit)
    m = Manager()
    m.warnings = warnings
    yield m
    m.supervise.close_all()


def running(mgr: Manager, svc: Service, pid: int = 4242) -> None:
    svc.run.machine.boot(mgr.now - 3, True)
    svc.run.machine.spawned(pid, mgr.now - 3)
    mgr.supervise.update(svc.run)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_creates_runsvs_files(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web", log=True)
    running(mgr, svc)
    sup = tmp_path / "web" / "supervise"
    assert stat.S_IMODE(os.stat(sup).st_mode) == 0o700
    for fifo in ("control", "ok"):
        mode = os.stat(sup / fifo).st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) & 0o077 == 0
    assert (sup / "lock").is_file()
    assert read(sup / "stat") == b"run\n"
    assert read(sup / "pid") == b"4242\n"
    st = decode(read(sup / "status"))
    assert (st.state, st.pid, st.want, st.when_ns) == ("run", 4242, "u", WALL - 3 * 10**9)
    assert not [n for n in os.listdir(sup) if n.endswith(".new")]
    # the logger's own dir, from its own machine
    svc.log.machine.boot(mgr.now, True)
    svc.log.machine.spawned(4243, mgr.now)
    mgr.supervise.update(svc.log)
    assert read(tmp_path / "web" / "log" / "supervise" / "pid") == b"4243\n"
    assert read(tmp_path / "web" / "log" / "supervise" / "stat") == b"run\n"


def test_sv_can_tell_a_supervisor_runs_only_while_open(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web")
    running(mgr, svc)
    ok = tmp_path / "web" / "supervise" / "ok"
    os.close(os.open(ok, os.O_WRONLY | os.O_NONBLOCK))  # what sv does: works
    mgr.supervise.close(svc)
    with pytest.raises(OSError) as exc:
        os.open(ok, os.O_WRONLY | os.O_NONBLOCK)
    assert exc.value.errno == errno.ENXIO  # sv: "runsv not running"
    assert (tmp_path / "web" / "supervise" / "status").exists()  # nothing removed


def test_control_letters_reach_the_right_machine(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web", log=True)
    seen_run: list[str] = []
    seen_log: list[str] = []
    svc.run.machine = Recording(seen_run)
    svc.log.machine = Recording(seen_log)
    running(mgr, svc)
    mgr.supervise.update(svc.log)
    fd = os.open(tmp_path / "web" / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"tcZ\n\0u")  # unknown bytes are ignored, as runsv ignores them
    os.close(fd)
    fd = os.open(tmp_path / "web" / "log" / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"h")
    os.close(fd)
    mgr.dispatch()
    assert seen_run == ["t", "c", "u"]
    assert seen_log == ["h"]
    # `t` set got TERM: written once, after the batch
    assert read(tmp_path / "web" / "supervise" / "stat") == b"run, got TERM\n"
    mgr.dispatch()  # nothing left: no spin on EOF (pyinit holds a write end)
    assert seen_run == ["t", "c", "u"]


def test_down_then_exit_forgets_the_service(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web")
    svc.run.machine.boot(mgr.now, normally_up=False)
    mgr.supervise.update(svc.run)
    fd = os.open(tmp_path / "web" / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"x")
    os.close(fd)
    mgr.dispatch()
    assert mgr.forgotten == [svc]
    assert svc.run.machine.removed
    with pytest.raises(OSError):
        os.open(tmp_path / "web" / "supervise" / "ok", os.O_WRONLY | os.O_NONBLOCK)


def test_letters_ignored_while_shutting_down_or_broken(mgr, tmp_path) -> None:
    seen: list[str] = []
    svc = mgr.service(tmp_path / "web")
    svc.run.machine = Recording(seen)
    svc.run.machine.boot(mgr.now, normally_up=False)
    mgr.supervise.update(svc.run)
    mgr.shutting_down = True
    mgr.supervise.command(svc.run, "u")
    mgr.shutting_down = False
    broken = mgr.service(tmp_path / "bad", error="run is not executable")
    broken.run.machine = Recording(seen)
    mgr.supervise.command(broken.run, "u")
    assert seen == []


def test_a_flood_is_read_in_bounded_bites(mgr, tmp_path) -> None:
    seen: list[str] = []
    svc = mgr.service(tmp_path / "web")
    svc.run.machine = Recording(seen)
    running(mgr, svc)
    fd = os.open(tmp_path / "web" / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"a" * (3 * READ_MAX))
    os.close(fd)
    mgr.dispatch()
    assert len(seen) == READ_MAX
    mgr.dispatch()
    mgr.dispatch()
    assert len(seen) == 3 * READ_MAX


def test_writes_only_when_something_changed(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web")
    running(mgr, svc)
    status = tmp_path / "web" / "supervise" / "status"
    ino = os.stat(status).st_ino
    mgr.now += 5
    mgr.supervise.update(svc.run)
    assert os.stat(status).st_ino == ino  # renamed over = a new inode: not rewritten
    svc.run.machine.command("p", mgr.now)
    mgr.supervise.update(svc.run)
    assert os.stat(status).st_ino != ino
    assert decode(read(status)).paused


def test_supervise_symlink_is_followed_and_its_target_created(mgr, tmp_path) -> None:
    (tmp_path / "web").mkdir()  # before the symlink in it
    target = tmp_path / "run" / "runit" / "supervise.web"
    os.symlink(target, tmp_path / "web" / "supervise")
    svc = mgr.service(tmp_path / "web")
    running(mgr, svc)
    assert (tmp_path / "web" / "supervise").is_symlink()
    assert read(target / "stat") == b"run\n"
    assert stat.S_ISFIFO(os.stat(target / "control").st_mode)
    # a relative link is relative to the service dir
    (tmp_path / "api").mkdir()
    os.symlink("../sup.api", tmp_path / "api" / "supervise")
    api = mgr.service(tmp_path / "api")
    running(mgr, api, 99)
    assert read(tmp_path / "sup.api" / "pid") == b"99\n"


def test_unusable_dir_warns_once_and_the_service_goes_on(mgr, tmp_path, monkeypatch) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "supervise").write_text("not a dir")
    svc = mgr.service(tmp_path / "web")
    running(mgr, svc)
    svc.run.machine.command("d", mgr.now)
    mgr.supervise.update(svc.run)
    svc.run.machine.command("u", mgr.now)
    mgr.supervise.update(svc.run)
    assert len(mgr.warnings) == 1 and "[web]" in mgr.warnings[0], mgr.warnings
    assert svc.run.machine.want == "u"

    real_mkdir = os.mkdir

    def read_only(path, mode=0o777, **kw):
        if str(path).endswith("supervise"):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", read_only)
    ro = mgr.service(tmp_path / "ro")
    running(mgr, ro)
    running(mgr, ro, 555)
    assert len(mgr.warnings) == 2 and "Read-only file system" in mgr.warnings[1]


def test_read_only_service_dirs_keep_supervise_under_the_run_dir(mgr, tmp_path,
                                                                 monkeypatch) -> None:
    """--read-only: supervise/ goes to RUN_DIR/services/NAME[/log], one warning for all
    services and events, and the control FIFO there works like the real one."""
    services = tmp_path / "service"
    run_dir = tmp_path / "run"
    mgr.supervise.run_dir = str(run_dir)
    real_mkdir = os.mkdir

    def read_only(path, mode=0o777, **kw):
        if "dir_fd" in kw:  # safefs walks: the name is relative to an open dir
            path = os.path.join(os.readlink(f"/proc/self/fd/{kw['dir_fd']}"), path)
        if str(path).startswith(str(services)) and str(path).endswith("supervise"):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", read_only)
    web = mgr.service(services / "web", log=True)
    api = mgr.service(services / "api")
    for pid, svc in enumerate((web, api, web, api), 100):
        running(mgr, svc, pid)
    web.log.machine.boot(mgr.now, True)
    web.log.machine.spawned(7, mgr.now)
    mgr.supervise.update(web.log)
    assert read(run_dir / "services" / "web" / "supervise" / "pid") == b"102\n"
    assert read(run_dir / "services" / "api" / "supervise" / "stat") == b"run\n"
    assert read(run_dir / "services" / "web" / "log" / "supervise" / "pid") == b"7\n"
    assert not (services / "web" / "supervise").exists()
    assert mgr.warnings == [
        f"[None] cannot create supervise/ in service dirs such as {services}/web/supervise "
        f"(Read-only file system): keeping them in {run_dir}/services instead"]
    seen: list[str] = []
    web.run.machine = Recording(seen)
    running(mgr, web)
    fd = os.open(run_dir / "services" / "web" / "supervise" / "control", os.O_WRONLY)
    os.write(fd, b"d")
    os.close(fd)
    mgr.dispatch()
    assert seen == ["d"]


def test_no_run_dir_either_warns_once_for_all_services(mgr, tmp_path, monkeypatch) -> None:
    (tmp_path / "run").write_text("not a dir")
    mgr.supervise.run_dir = str(tmp_path / "run")
    real_mkdir = os.mkdir

    def no_access(path, mode=0o777, **kw):
        if str(path).endswith("supervise"):
            raise OSError(errno.EACCES, "Permission denied", path)
        return real_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", no_access)
    for name in ("a", "b", "c"):
        svc = mgr.service(tmp_path / name)
        running(mgr, svc)
        running(mgr, svc, 77)
    assert len(mgr.warnings) == 1, mgr.warnings
    assert mgr.warnings[0].startswith(
        f"[None] cannot keep runit's supervise/ dirs (such as {tmp_path}/a/supervise "
        f"(Permission denied); {tmp_path}/run/services/a/supervise (")
    assert mgr.warnings[0].endswith("): sv and runit's tools will not see the services")


def test_control_that_is_no_fifo_is_refused(mgr, tmp_path) -> None:
    (tmp_path / "web" / "supervise").mkdir(parents=True)
    (tmp_path / "web" / "supervise" / "control").write_text("")
    running(mgr, mgr.service(tmp_path / "web"))
    assert len(mgr.warnings) == 1 and "not a FIFO" in mgr.warnings[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="chowns the dir to another user")
def test_a_hard_linked_fifo_in_a_dir_others_may_write_is_refused(tmp_path) -> None:
    """supervise/control is opened by safefs.open_file: in a dir another user may
    write, a FIFO with a second link (to one the user cannot reach otherwise) is
    refused, as a regular file would be."""
    sup = tmp_path / "supervise"
    sup.mkdir()
    os.mkfifo(tmp_path / "roots-fifo", 0o600)
    os.link(tmp_path / "roots-fifo", sup / "control")
    os.chown(sup, 65534, 65534)
    fd = supervise_dir.safefs.open_dir(str(sup))
    try:
        with pytest.raises(OSError) as info:
            supervise_dir.open_fifo(fd, "control")
        assert info.value.strerror == "control has other hard links: not used"
        ok = supervise_dir.open_fifo(fd, "ok")  # made here: one link
        assert stat.S_ISFIFO(os.fstat(ok).st_mode)
        os.close(ok)
    finally:
        os.close(fd)


def test_a_dir_locked_by_a_runsv_is_left_alone(mgr, tmp_path) -> None:
    import fcntl

    (tmp_path / "web" / "supervise").mkdir(parents=True)
    lock = os.open(tmp_path / "web" / "supervise" / "lock", os.O_WRONLY | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        running(mgr, mgr.service(tmp_path / "web"))
    finally:
        os.close(lock)
    assert len(mgr.warnings) == 1 and "locked" in mgr.warnings[0]
    assert not (tmp_path / "web" / "supervise" / "status").exists()


def test_re_added_service_takes_over_the_dir(mgr, tmp_path) -> None:
    old = mgr.service(tmp_path / "web")
    running(mgr, old, 10)
    new = mgr.service(tmp_path / "web")
    running(mgr, new, 20)  # the same dir: reused, now owned by the new service
    mgr.supervise.close(old)  # the old one's logger finally went: the dir stays open
    os.close(os.open(tmp_path / "web" / "supervise" / "ok", os.O_WRONLY | os.O_NONBLOCK))
    assert read(tmp_path / "web" / "supervise" / "pid") == b"20\n"
    mgr.supervise.close(new)
    with pytest.raises(OSError):
        os.open(tmp_path / "web" / "supervise" / "ok", os.O_WRONLY | os.O_NONBLOCK)


def test_nothing_reopened_after_close_all(mgr, tmp_path) -> None:
    svc = mgr.service(tmp_path / "web")
    mgr.supervise.close_all()
    running(mgr, svc)
    assert not (tmp_path / "web" / "supervise").exists()


def test_a_removed_service_dir_is_not_made_again(tmp_path) -> None:
    """supervise/ is made in the service dir, never the dir: one removed while its
    state was still to be written (rm -rf of a service dir) stayed away, instead of
    coming back root's and half-empty, read by the next scan as a service without run."""
    from pyinit.services.supervise import Supervise

    gone = tmp_path / "services" / "gone"
    sup = Supervise(str(gone), owner=None)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        sup.open()
    assert not (tmp_path / "services").exists()
    gone.mkdir(parents=True)
    sup.open()
    try:
        assert (gone / "supervise" / "lock").exists()
    finally:
        sup.close()


def test_a_relative_log_dir_is_not_made_without_its_service_dir(tmp_path) -> None:
    from pyinit.output.logdir import FileLog

    service = tmp_path / "svc"
    log = FileLog(str(service / "logs"), "svc", within=str(service))
    with pytest.raises(FileNotFoundError):
        log.open()
    assert not service.exists()
    service.mkdir()
    log.open()
    try:
        assert (service / "logs" / "current").exists()
    finally:
        os.close(log.fd)
        os.close(log.dir_fd)
