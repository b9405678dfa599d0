"""Event hooks: pyinit.yaml's commands, run for the events they name (the decisions
are core/hooks.py's; this is the shell). Imported only when pyinit.yaml has hooks.

Each run is a new session with the event as JSON on stdin (written into a fresh
pipe before the fork: it fits, so it never blocks) and in PYINIT_* variables. Its
stdout and stderr come back through a non-blocking pipe read by the loop, as
`pyinit: INFO: [hook NAME] line`, at most MAX_OUTPUT bytes a run. At its timeout
the session gets SIGTERM and SIGCONT, then SIGKILL after KILL_GRACE; every run
is reaped (Reaper.watch); when it exits, what it left in its session is killed
(SIGKILL to the group). A hook that cannot start is logged, once until it
starts again. close() at shutdown drops the queue and ends what runs within the
shutdown budget.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections import deque
from typing import Any, Callable, Optional

from pyinit.core import hooks as rules
from pyinit.core.bounds import clip
from pyinit.core.exits import ExitStatus
from pyinit.core.lines import Splitter, split_block
from pyinit.core.repeats import Repeats
from pyinit.core.schema import HookSpec, ServiceConfig
from pyinit.linux import users
from pyinit.linux.signals import Inherited, kill_quietly
from pyinit.runtime import launch, log, spawn
from pyinit.runtime.loop import EventLoop, Timer

MAX_LINE = 1000  # bytes of one logged line of a hook's output (longer ones are cut)
READS = 4  # reads of a hook's output per wake-up, so a flood cannot hold the loop


class Run:
    """One hook process."""

    def __init__(self, hook: HookSpec, pid: int, out: int) -> None:
        self.hook = hook
        self.pid = pid
        self.out = out  # our read end of its stdout/stderr (-1: closed)
        self.logged = 0  # bytes of output logged
        self.lines = Splitter(MAX_LINE)
        self.timers: list[Timer] = []
        self.timed_out = False


class Hooks:
    def __init__(
        self,
        loop: EventLoop,
        reaper: Any,
        inherited: Inherited,
        specs: tuple[HookSpec, ...],
        remaining: Callable[[float], float],
    ) -> None:
        self.loop = loop
        self.reaper = reaper
        self.inherited = inherited
        self.specs = specs
        self.remaining = remaining  # the shutdown budget left (boot.Init.remaining)
        self.running: dict[int, Run] = {}
        self.queue: deque[tuple[HookSpec, dict[str, Any]]] = deque()
        self.overflow = rules.Overflow()
        self.failures = Repeats()
        self.closed = False
        self.stop: Optional[Callable[[], None]] = None

    def listen(self, bus: Any) -> None:
        self.stop = bus.subscribe(self.on_event)

    # --- deciding ------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        for hook in self.specs:
            if not self.closed and rules.wants(hook, event):
                self.submit(hook, event)

    def submit(self, hook: HookSpec, event: dict[str, Any]) -> None:
        decision = rules.admit(len(self.running), len(self.queue))
        if decision == rules.RUN:
            self.start(hook, event)
        elif decision == rules.QUEUE:
            self.queue.append((hook, event))
        elif self.overflow.dropped():
            log.warning(
                f"hooks: {rules.MAX_RUNNING} running and {rules.MAX_QUEUED} waiting: "
                "dropping further events until the queue has room"
            )

    def next(self) -> None:
        """A run ended: start what waits, while there is room."""
        while self.queue and len(self.running) < rules.MAX_RUNNING and not self.closed:
            self.start(*self.queue.popleft())
        if len(self.queue) < rules.MAX_QUEUED:
            dropped = self.overflow.drained()
            if dropped:
                log.warning(
                    f"hooks: {dropped} hook run{'s' if dropped != 1 else ''} dropped "
                    "(the queue was full)"
                )

    # --- running -------------------------------------------------------------------
    def start(self, hook: HookSpec, event: dict[str, Any]) -> None:
        where = f"hook {hook.name}"
        stdin, out_r, out_w = self.pipes(rules.payload(event))
        try:
            account = users.resolve(hook.user.spec()) if hook.user.spec() else None
            env = dict(os.environ)
            if account is not None:
                env = users.environment(account, env, clear=False)
            env.update(rules.environment(event, hook))
            spec = spawn.Spec(
                hook.command,
                env=env,
                cwd="/",
                session=True,
                stdin=stdin,
                stdout=out_w,
                stderr=out_w,
                pre_exec=launch.child_setup(ServiceConfig(), account),
            )
            pid = spawn.spawn(spec, self.inherited)
        except (spawn.SpawnError, users.PrivilegeError, OSError) as exc:
            for fd in (stdin, out_r, out_w):
                os.close(fd)
            if self.failures.failed(hook.name, str(exc)):
                log.error(f"cannot run: {clip(str(exc), 300)} (said once until it runs)", where)
            return
        os.close(stdin)
        os.close(out_w)
        if self.failures.succeeded(hook.name):
            log.info("runs again", where)
        run = Run(hook, pid, out_r)
        self.running[pid] = run
        self.loop.add_reader(out_r, lambda: self.read(run))
        self.reaper.watch(pid, lambda _pid, status: self.on_exit(run, status))
        timeout = self.remaining(hook.timeout)  # at shutdown: no longer than the budget
        run.timers.append(self.loop.call_later(timeout, lambda: self.on_timeout(run)))
        log.debug(f"started for {event.get('event')} (pid {pid})", where)

    @staticmethod
    def pipes(data: bytes) -> tuple[int, int, int]:
        """stdin's read end, already holding data and at EOF; the output pipe (read end
        non-blocking, for the loop; write end for the hook)."""
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        try:
            flags = fcntl.fcntl(stdin_w, fcntl.F_GETFL)
            fcntl.fcntl(stdin_w, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # never blocks PID 1
            os.write(stdin_w, data[: rules.MAX_PAYLOAD])  # < PIPE_BUF: all of it, at once
        finally:
            os.close(stdin_w)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        flags = fcntl.fcntl(out_r, fcntl.F_GETFL)
        fcntl.fcntl(out_r, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return stdin_r, out_r, out_w

    def read(self, run: Run) -> None:
        """The hook wrote: log whole lines, up to MAX_OUTPUT bytes a run; past that
        its output pipe is closed (further writes fail with EPIPE)."""
        for _ in range(READS):
            if run.out < 0:
                return
            try:
                data = os.read(run.out, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close_output(run)
                return
            for line in split_block(run.lines.feed(data)):
                self.say(run, line)

    def say(self, run: Run, line: bytes) -> None:
        where = f"hook {run.hook.name}"
        if run.logged >= rules.MAX_OUTPUT:
            return
        run.logged += len(line) + 1
        if run.logged >= rules.MAX_OUTPUT:
            log.warning(f"output past {rules.MAX_OUTPUT} bytes: the rest is dropped", where)
            self.close_output(run, flush=False)
            return
        log.info(line.decode("utf-8", "backslashreplace"), where)

    def close_output(self, run: Run, flush: bool = True) -> None:
        if run.out >= 0:
            out, run.out = run.out, -1
            self.loop.remove(out)
            os.close(out)
            if flush:
                for line in split_block(run.lines.flush()):
                    self.say(run, line)

    def on_exit(self, run: Run, status: ExitStatus) -> None:
        # what it left in its session (`alert &`) goes with it: else each run could
        # leave a process behind, past the timeout and MAX_RUNNING (the group's id
        # is not reused while a member lives)
        kill_quietly(run.pid, signal.SIGKILL, True)
        self.read(run)  # what it wrote last; a child that keeps the pipe gets EPIPE
        self.close_output(run)
        for timer in run.timers:
            timer.cancel()
        self.running.pop(run.pid, None)
        where = f"hook {run.hook.name}"
        if self.closed:
            log.debug(f"ended at shutdown: {status.describe()}", where)
        elif run.timed_out:
            log.warning(
                f"killed at its timeout ({run.hook.timeout:g}s): {status.describe()}", where
            )
        elif status.shell_code != 0:
            log.warning(f"failed with {status.describe()}", where)
        self.next()

    def on_timeout(self, run: Run) -> None:
        run.timed_out = True
        kill_quietly(run.pid, signal.SIGTERM, True)
        kill_quietly(run.pid, signal.SIGCONT, True)
        grace = self.remaining(rules.KILL_GRACE)
        run.timers.append(self.loop.call_later(grace, lambda: self.kill(run)))

    @staticmethod
    def kill(run: Run) -> None:
        kill_quietly(run.pid, signal.SIGKILL, True)

    # --- shutdown ------------------------------------------------------------------
    def close(self) -> None:
        """No more runs; those running get SIGTERM, then SIGKILL within the budget
        (at once when it is spent), and are reaped."""
        self.closed = True
        if self.stop is not None:
            self.stop()
        self.queue.clear()
        for run in self.running.values():
            for timer in run.timers:
                timer.cancel()
            run.timers.clear()
            kill_quietly(run.pid, signal.SIGTERM, True)
            kill_quietly(run.pid, signal.SIGCONT, True)
        self.loop.run_until(lambda: not self.running, self.remaining(rules.KILL_GRACE))
        for run in self.running.values():
            self.kill(run)
        self.loop.run_until(lambda: not self.running, self.remaining(1.0))
