"""runit's `supervise/` directory, kept as runsv keeps it, so `sv`, `runsvstat` and
monitoring that read it work against pyinit.

For each service dir (and `log/` for the logger; not for instances, which share
their template's dir) pyinit maintains, as runsv.c does:

- `supervise/status`: the 20-byte daemontools-compatible record (see encode());
- `supervise/stat`: `run`, `down` or `finish` plus `, paused`, `, got TERM`,
  `, want down` / `, want exit` (see stat_text());
- `supervise/pid`: the pid and a newline, or empty;
- `supervise/control`: a FIFO; each byte written to it is a runit command letter,
  applied exactly as svctl's control request applies it;
- `supervise/ok`: a FIFO pyinit holds open for reading (sv opens it for writing
  to learn that a supervisor is running);
- `supervise/lock`: flock()ed, so a real runsv cannot supervise the same dir too.

Files are written as NAME.new and renamed. Nothing is removed at shutdown (runsv
leaves the dir too); the fds are closed, so sv then says "runsv not running".
A service dir pyinit cannot write to (read-only root, non-root pyinit) gets its
supervise/ under the run dir instead, as RUN_DIR/services/NAME/supervise (and
.../NAME/log/supervise), so `sv status RUN_DIR/services/NAME` works: one
warning for all services. When that fails too, or for any other reason (a
runsv holds the lock), the service is supervised as usual without it, with one
warning. A `supervise` symlink is followed (its target is created if missing),
unless the service dir is writable by a user other than root (or pyinit's):
there it is refused, as any link there (safefs).

What the files hold is pure (core/records.py: the record's encoding, the stat
text); this is the thin I/O shell, SuperviseDirs, called by the service manager
after every state change.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from pyinit.core.machine import LETTERS
from pyinit.core.records import Status, encode, from_machine, machine_key, pid_text, stat_text
from pyinit.linux import safefs
from pyinit.runtime import log

if TYPE_CHECKING:
    from pyinit.runtime.loop import EventLoop, Timer
    from pyinit.services.records import Service, Slot

READ_MAX = 4096  # control bytes handled per wake-up: a flood cannot hog the loop
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)  # a service dir that is not ours


# --- one supervise/ dir --------------------------------------------------------------------
class Supervise:
    """The open supervise/ dir of one slot: lock, control and ok FIFOs.

    The FIFOs are opened O_RDWR (Linux: never blocks, and pyinit is both a reader,
    so `sv` can open them for writing, and a writer, so a read never sees EOF and
    the loop never spins): one fd each instead of a read and a write end."""

    def __init__(self, path: str, owner: Slot, home: Optional[str] = None) -> None:
        self.path = path  # the service dir (or its log/)
        self.dir = os.path.join(home or path, "supervise")  # home: under the run dir
        self.owner = owner
        self.fds: list[int] = []
        self.dir_fd = -1  # supervise/ itself (O_PATH): every file is opened relative to it
        self.control = -1
        self.ok = -1
        self.key: Optional[tuple] = None  # machine_key() of what was written last
        self.pid: Optional[int] = None  # pid in supervise/pid

    def open(self) -> None:
        """Create what is missing and open it; OSError (everything closed) if not.
        The service dir may be its user's: the dir is walked to safely and every
        file in it opened relative to it (safefs), never through a link."""
        try:
            # the service dir must be there: supervise/ is made in it, never the dir
            self.dir_fd = self._add(
                safefs.open_dir_below(os.path.dirname(self.dir), self.dir, create=0o700)
            )
            lock = self._add(
                safefs.open_file(self.dir_fd, "lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            )
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OSError(0, "locked by another supervisor (a runsv?)") from None
            self.control = self._add(open_fifo(self.dir_fd, "control"))
            self.ok = self._add(open_fifo(self.dir_fd, "ok"))
        except OSError:
            self.close()
            raise

    def _add(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def read_control(self) -> bytes:
        return _read(self.control)

    def drain_ok(self) -> None:
        _read(self.ok)  # nobody should write here; keep the pipe from filling up

    def write(self, st: Status) -> None:
        """pid (when it changed), stat and status, each as *.new renamed into place."""
        if st.pid != self.pid:
            put(self.dir_fd, "pid", pid_text(st.pid).encode())
            self.pid = st.pid
        put(self.dir_fd, "stat", stat_text(st).encode())
        put(self.dir_fd, "status", encode(st))

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.dir_fd = self.control = self.ok = -1


def fallback_home(run_dir: str, name: str, label: str) -> str:
    """Where a read-only service dir's supervise/ goes: RUN_DIR/services/NAME[/log]."""
    home = os.path.join(run_dir, "services", name)
    return os.path.join(home, "log") if label == "log" else home


def open_fifo(dir_fd: int, name: str) -> int:
    """Create (0600) and open the FIFO name in dir_fd, by safefs.open_file: never
    through a link, never anything but a FIFO (looked at before the open), one link
    where others may write the dir; O_NONBLOCK and O_NOCTTY."""
    try:
        os.mkfifo(name, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return safefs.open_file(dir_fd, name, os.O_RDWR, kind=stat.S_IFIFO)


def put(dir_fd: int, name: str, data: bytes) -> None:
    """Write NAME.new, rename it to NAME (readers never see a partial file). NAME.new
    is created O_EXCL: whatever is there (a link to another file, left by someone
    else) is never opened, let alone truncated, but removed and the create retried
    (pyinit's own NAME.new never outlives a put, so that is one syscall saved)."""
    new = name + ".new"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(new, flags, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        _unlink(dir_fd, new)
        fd = os.open(new, flags, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        os.close(fd)
        _unlink(dir_fd, new)
        raise
    os.close(fd)
    os.rename(new, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # never follows a link


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, READ_MAX)
    except OSError:  # EAGAIN: nothing there
        return b""


def _unlink(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


# --- every slot's dir: the shell the manager calls -----------------------------------------
class Owner(Protocol):
    """What SuperviseDirs needs of the service manager: its loop, and a way to apply
    a control letter as svctl does."""

    loop: EventLoop

    @property
    def shutting_down(self) -> bool: ...
    def apply(self, slot: Slot, actions: list) -> None: ...
    def command(self, slot: Slot, letter: str) -> None: ...
    def forget(self, svc: Service) -> None: ...


class SuperviseDirs:
    """The supervise/ dirs of all services, keyed by the dir they are in.

    Keyed by path, not by Service: a service removed and re-added while its old
    logger still drains shares the dir; the newest slot owns it."""

    def __init__(self, manager: Owner, wall_clock: Callable[[], int] = time.time_ns,
                 run_dir: Optional[str] = None) -> None:
        self.m = manager
        self.run_dir = run_dir  # None: no fallback for read-only service dirs
        self.wall_clock = wall_clock
        self.open_dirs: dict[str, Supervise] = {}
        self.paths: dict[int, str] = {}  # id(slot) -> the path it owns
        self.failed: set[str] = set()  # paths that could not be opened (retried on re-add)
        self._batch: Optional[dict[int, Slot]] = None  # slots changed by a control read
        self._due: dict[int, Slot] = {}  # slots to write at the end of this loop turn
        self._due_timer: Optional[Timer] = None
        self.closed = False  # after shutdown: nothing is reopened

    # --- hooks ---------------------------------------------------------------------------
    def update(self, slot: Slot) -> None:
        """After a state change of slot: open its dir if needed, write what changed."""
        if self.closed or slot.service.defn.instance is not None:
            return  # instances share their template's dir: svctl only
        if self._batch is not None:
            self._batch[id(slot)] = slot
            return
        path = slot.cwd
        old = self.paths.get(id(slot))
        if old is not None and old != path:  # the service moved to another service dir
            self._close_path(old, slot)
        sup = self.open_dirs.get(path)
        if sup is None:
            sup = self._open(path, slot)
            if sup is None:
                return
        if sup.owner is not slot:  # taken over: write the new owner's state
            sup.owner, sup.key = slot, None
        self.paths[id(slot)] = path
        key = machine_key(slot.machine)
        if key == sup.key:
            return
        try:
            sup.write(from_machine(slot.machine, self.m.loop.clock(), self.wall_clock()))
        except OSError as exc:
            log.once(log.WARNING, f"cannot update {sup.dir}: {exc.strerror or exc}",
                     slot.service.name)
            return
        sup.key = key

    def soon(self, slot: Slot) -> None:
        """update(slot) at the end of this loop turn: a burst of changes (started,
        then ready at once; fifty services at boot) is one write of the last state."""
        self._due[id(slot)] = slot
        if self._due_timer is None:
            self._due_timer = self.m.loop.call_later(0, self.write_due)

    def write_due(self) -> None:
        """Write what soon() collected (the loop's timer, or before a close)."""
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        due, self._due = self._due, {}
        for slot in due.values():
            self.update(slot)

    def close(self, svc: Service) -> None:
        """The service is forgotten: close its fds (the files stay, as with runsv)."""
        if any(id(slot) in self._due for slot in svc.slots()):
            self.write_due()  # its last state first
        for slot in svc.slots():
            if self._batch is not None:
                self._batch.pop(id(slot), None)
            path = self.paths.pop(id(slot), None)
            if path is not None:
                self._close_path(path, slot)
            self.failed.discard(slot.cwd)

    def close_all(self) -> None:
        self.write_due()
        self.closed = True
        for sup in self.open_dirs.values():
            self._unwatch(sup)
            sup.close()
        self.open_dirs.clear()
        self.paths.clear()

    # --- control -------------------------------------------------------------------------
    def command(self, slot: Slot, letters: str) -> None:
        """Letters from supervise/control, applied as svctl's control request does
        (unknown letters are ignored, as runsv ignores them)."""
        m = self.m
        svc = slot.service
        if m.shutting_down or (svc.defn.error and slot.machine.is_down()):
            return
        self._batch = {}
        try:
            for letter in letters:
                if letter in LETTERS:
                    m.command(slot, letter)
            if svc.run.machine.removed and svc.run.machine.is_down():
                m.forget(svc)
        finally:
            changed, self._batch = self._batch, None
        for changed_slot in changed.values():
            self.update(changed_slot)

    # --- internals -----------------------------------------------------------------------
    def _open(self, path: str, slot: Slot) -> Optional[Supervise]:
        if path in self.failed:
            return None
        sup = Supervise(path, slot)
        try:
            sup.open()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not os.path.isdir(path):
                return None  # the service dir is going away: its rescan removes the service
            problem = f"{sup.dir} ({exc.strerror or exc})"
            unwritable = exc.errno in UNWRITABLE
            sup = self._open_fallback(path, slot, problem) if unwritable else None
            if sup is None:
                if not unwritable:
                    log.once(log.WARNING, f"cannot keep {problem}: sv and runit's tools will "
                             "not see it", slot.service.name, key=("cannot keep", path))
                self.failed.add(path)
                return None
        self.open_dirs[path] = sup
        loop = self.m.loop
        loop.add_reader(sup.control, lambda: self._on_control(sup))
        loop.add_reader(sup.ok, sup.drain_ok)
        return sup

    def _open_fallback(self, path: str, slot: Slot, problem: str) -> Optional[Supervise]:
        """A service dir pyinit cannot write to: supervise/ under the run dir (one
        warning for all services, whether that works or not)."""
        run_dir = self.run_dir
        sup = None
        if run_dir is not None:
            home = fallback_home(run_dir, slot.service.name, slot.label)
            sup = Supervise(path, slot, home)
            try:
                os.close(safefs.open_dir(home, create=0o755))
                sup.open()
            except OSError as exc:
                problem += f"; {sup.dir} ({exc.strerror or exc})"
                sup = None
        if sup is not None:  # one warning for all services, whichever comes first
            log.once(log.WARNING, f"cannot create supervise/ in service dirs such as {problem}: "
                     f"keeping them in {os.path.join(run_dir or '', 'services')} instead",
                     key="supervise/ fallback")
        else:
            log.once(log.WARNING, f"cannot keep runit's supervise/ dirs (such as {problem}): "
                     "sv and runit's tools will not see the services", key="no supervise/")
        return sup

    def _on_control(self, sup: Supervise) -> None:
        data = sup.read_control()
        if data and sup.fds:
            self.command(sup.owner, data.decode("latin-1"))

    def _close_path(self, path: str, slot: Any) -> None:
        sup = self.open_dirs.get(path)
        if sup is not None and sup.owner is slot:
            self._unwatch(sup)
            sup.close()
            del self.open_dirs[path]

    def _unwatch(self, sup: Supervise) -> None:
        for fd in (sup.control, sup.ok):
            if fd >= 0:
                self.m.loop.remove(fd)
