"""The boot and shutdown sequence, read top to bottom (see Init.run).

One process, one event loop: every wait below is `loop.run_until(condition,
timeout)`, which keeps reaping, forwarding signals and supervising services
while the sequence waits. Nothing sleeps and nothing polls.
"""

from __future__ import annotations

import gc
import os
import signal
from typing import TYPE_CHECKING, Protocol

from pyinit.config import Config
from pyinit.core import signames
from pyinit.core.exits import ExitStatus
from pyinit.linux import prctl, signals
from pyinit.runtime import environment, events, log, rundir, spawn
from pyinit.runtime.endgame import Endgame, stop_signal_to
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.reaper import Reaper
from pyinit.runtime.scripts import Origin, ScriptRunner, executables, is_executable

if TYPE_CHECKING:
    from pyinit.control.health import HealthServer
    from pyinit.control.requests import ControlRequests
    from pyinit.control.server import Server
    from pyinit.runtime.hooks import Hooks
    from pyinit.services.api import Services as ServicesApi


class Services(Protocol):
    """What the boot sequence needs from service supervision."""

    def start(self, scan: bool) -> None: ...
    def reload(self) -> None: ...
    def hangup(self) -> None: ...
    def stop_all(self, timeout: float) -> None: ...
    def all_started(self) -> bool: ...
    def not_started(self) -> list[str]: ...
    def freeze(self) -> None: ...



def let_pass(policy: str, path: str, status: ExitStatus) -> bool:
    """Does the boot go on after this script? Always after a success; after a failure
    only with s6-overlay's /init (cli/s6_init.py): policy "ignore" (an info line),
    "warn" or "stop-after" (a warning; the boot stops with 1 once every script ran)."""
    if status.shell_code == 0:
        return True
    if policy == "stop":
        return False
    (log.info if policy == "ignore" else log.warning)(
        f"{path} failed with {status.describe()}; going on"
        + ("" if policy != "stop-after" else " (the container stops once every script ran)"))
    return True

class Init:
    """PID 1's life: boot (run), the wait for the end, shutdown. Owns the run dir and
    the shutdown budget; scripts, the endgame and services are its parts."""

    def __init__(self, config: Config, inherited: signals.Inherited | None = None,
                 loop: EventLoop | None = None, reaper: Reaper | None = None) -> None:
        self.config = config
        self.loop = loop or EventLoop()
        self.reaper = reaper or Reaper()
        self.inherited = inherited or signals.Inherited.capture()
        self.signalfd: signals.SignalFd | None = None
        self.services: Services | None = None
        self.main_pid: int | None = None
        self.main_status: ExitStatus | None = None
        self.stop_signal: int | None = None
        self.exit_request: int | None = None  # set by `svctl shutdown-container`
        self.shutdown_deadline: float | None = None
        self.health: HealthServer | None = None  # with --health-listen
        self.control: ControlRequests | None = None  # svctl's requests (and /status)
        self.control_server: Server | None = None  # the control socket in the run dir
        self.is_pid1 = os.getpid() == 1
        self.run_dir: str | None = None  # None: no usable run dir (no control socket)
        self.run_dir_fd: int | None = None  # held open: sockets are reached through it
        self.hooks: Hooks | None = None  # pyinit.yaml's hooks (runtime/hooks.py), if any
        origin = Origin.capture()  # the start cwd; None if gone
        if origin is not None:
            from pyinit.config import make_absolute

            make_absolute(config, origin.path)
        self.env = environment.Exporter(config.env_dir, None)
        self.endgame = Endgame(self.loop, self.reaper, self.remaining, self.is_pid1)
        self.scripts = ScriptRunner(self.loop, self.reaper, self.inherited, self.endgame,
                                    self.stopping, config.kill_timeout, origin)

    # --- the narrative -------------------------------------------------------
    def run(self) -> int:
        """Boot, wait for the end, shut down; returns pyinit's exit code."""
        self.take_signals()
        self.become_reaper()
        self.choose_run_dir()
        self.import_environment()
        self.hooks = start_hooks(self)
        failure = self.install_insecure_key()
        if failure is None and not self.stopping() and not self.config.skip_startup_files:
            failure = self.run_startup_scripts()
        if failure is None and not self.stopping():
            self.start_services()
            self.start_health_endpoint()
            self.wait_for_services()
        if failure is None and not self.stopping():
            failure = self.start_main_command()
        leave_cwd()
        gc.freeze()  # what boot made lives on: later collections skip it
        if failure is None:
            self.loop.run_until(self.stopping)
        return self.shutdown(failure)

    def shutdown(self, failure: int | None) -> int:
        self.start_shutdown_clock()
        log.debug("shutting down")
        events.emit("shutdown.begin", reason=stop_reason(self, failure))
        self.stop_main_command()
        self.scripts.run_dir(self.config.pre_shutdown_dir, "pre-shutdown", self.remaining)
        self.scripts.run_dir(self.config.cont_finish_dir, "cont-finish", self.remaining)
        self.stop_services()
        if self.health is not None:
            self.health.close()
        self.scripts.run_dir(self.config.post_shutdown_dir, "post-shutdown", self.remaining)
        self.close_spawning()
        if self.config.kill_all_on_exit:
            self.endgame.kill_all(self.config.kill_all_timeout)
        code = self.exit_code(failure)
        log.debug(f"exiting with code {code} ({self.reaper.strays} orphans reaped)")
        return code

    # --- boot steps ----------------------------------------------------------
    def take_signals(self) -> None:
        """Block every handled signal and read them from a signalfd in the loop; act on
        those already pending (sent while pyinit started: a SIGTERM then stops the boot
        before anything starts)."""
        self.signalfd = signals.SignalFd(signames.handled())
        self.loop.add_reader(self.signalfd.fd, self.on_signals)
        self.on_signals()
        try:
            prctl.set_name("pyinit")
        except OSError:
            pass

    def become_reaper(self) -> None:
        if self.is_pid1:
            return
        try:
            prctl.set_child_subreaper(True)
            log.debug("not PID 1: registered as child subreaper")
        except OSError as exc:
            log.warning(
                f"not PID 1 and cannot become a child subreaper ({exc.strerror}): "
                "orphans will not be reaped by pyinit"
            )

    def choose_run_dir(self) -> None:
        """--run-dir as given, else the first of /run/pyinit, $XDG_RUNTIME_DIR/pyinit,
        /tmp/pyinit-UID pyinit can write to (rundir.py); exported as PYINIT_RUN_DIR."""
        cfg = self.config
        choice = rundir.choose(cfg.run_dir if cfg.run_dir_set else None, os.environ,
                               os.geteuid(), rundir.prepare)
        if choice.path is None:
            log.warning(f"no usable run dir ({rundir.describe(choice.refused)}): no control "
                        "socket, svctl will not work")
            return
        try:
            self.run_dir_fd = rundir.hold(choice.path, os.geteuid())
        except OSError as exc:
            log.warning(f"no usable run dir ({choice.path}: {exc.strerror or exc}): no control "
                        "socket, svctl will not work")
            return
        if choice.refused:
            log.info(f"run dir {choice.path} ({rundir.describe(choice.refused)})")
        self.run_dir = choice.path
        self.export_run_dir()

    def export_run_dir(self) -> None:
        """PYINIT_RUN_DIR, so services, scripts and svctl find the run dir; the one place
        it is set (again after a startup script's env import: pyinit's choice wins)."""
        if self.run_dir is not None:
            os.environ[rundir.ENV_VAR] = self.run_dir

    def run_path(self, name: str) -> str:
        """name in the run dir, reached through its fd (rundir.at)."""
        assert self.run_dir is not None
        return rundir.at(self.run_dir_fd, self.run_dir, name)

    def import_environment(self) -> None:
        """Import the env dir, then dump the environment: to the env dir, or to the
        run dir when the env dir cannot be written (environment.Exporter)."""
        environment.import_dir(self.config.env_dir, override=False)
        fallback = os.path.join(self.run_dir, "container_environment") if self.run_dir else None
        self.env = environment.Exporter(self.config.env_dir, fallback)
        self.env.export(os.environ)

    def install_insecure_key(self) -> int | None:
        """my_init's --enable-insecure-key: run enable_insecure_key (killable, like a
        startup script) before the startup scripts; its failure stops the boot."""
        if not self.config.enable_insecure_key:
            return None
        path = self.config.insecure_key_script
        if not os.path.exists(path):
            log.warning(f"--enable-insecure-key: {path} does not exist: no SSH key installed")
            return None
        log.info(f"installing the insecure SSH key: running {path}")
        return boot_failure(path, self.scripts.run(path, timeout=None))

    def run_startup_scripts(self) -> int | None:
        """Run the init dir, cont-init.d, rc.local: None, or a failure's code (let_pass)."""
        scripts = executables(self.config.init_dir) + executables(self.config.cont_init_dir)
        if is_executable(self.config.rc_local):
            scripts.append(self.config.rc_local)
        if scripts:
            events.emit("boot.scripts", count=len(scripts))
        failed = False
        for path in scripts:
            log.info(f"running {path}")
            status = self.scripts.run(path, timeout=None)
            if status is None:  # stopped by a signal to pyinit
                return None
            environment.import_dir(self.env.current, override=True)
            self.export_run_dir()
            self.env.export(os.environ)
            if not let_pass(self.config.boot_failures, path, status):
                return boot_failure(path, status)
            failed = failed or status.shell_code != 0
        return 1 if failed and self.config.boot_failures == "stop-after" else None

    def start_services(self) -> None:
        """Serve the control socket and supervise services (with --skip-runit only the
        control socket is served)."""
        self.services, api = self.new_services()
        events.emit("boot.services")
        self.serve_control(api)
        self.services.start(scan=not self.config.skip_services)

    def serve_control(self, api: ServicesApi) -> None:
        """svctl's requests, on the control socket in the run dir (when there is one)."""
        from pyinit.control import server
        from pyinit.control.requests import ControlRequests

        self.control = ControlRequests(api, self.loop)
        if self.run_dir is not None:
            self.control_server = server.open_in(self.loop, self.run_dir, self.run_path,
                                                 self.control.handle)

    def new_services(self) -> tuple[Services, ServicesApi]:
        """The service manager (self is its services.host.Host) and control's view of it."""
        from pyinit.services.api import ManagerServices
        from pyinit.services.manager import ServiceManager

        manager = ServiceManager(self)
        return manager, ManagerServices(manager)

    def start_health_endpoint(self) -> None:
        """--health-listen: /healthz, /readyz, /status and /metrics over HTTP, in this loop."""
        if not self.config.health_listen or self.control is None:
            return
        from pyinit.control import health
        from pyinit.core import addresses

        status, counters = self.control.status, self.control.services.counters
        host, port = addresses.parse_listen(self.config.health_listen)

        def metrics() -> str:
            from pyinit import __version__
            from pyinit.core import metrics

            return metrics.render(status.status([]), counters(), __version__)

        try:
            self.health = health.HealthServer(
                self.loop, host, port, ready=status.all_ready,
                status=lambda: {"services": status.status([])}, metrics=metrics)
        except OSError as exc:
            log.error(f"cannot serve health checks on {self.config.health_listen}: {exc}")

    def wait_for_services(self) -> None:
        """Before the main command: wait until every service wanted up was ready once."""
        services = self.services
        if not self.config.command or not self.config.wait_for_services or services is None:
            return
        timeout = self.config.services_ready_timeout
        if not self.loop.run_until(lambda: services.all_started() or self.stopping(), timeout):
            from pyinit.core.statustable import listing

            held = listing(services.not_started())
            suffix = f" (not ready: {held})" if held else ""
            log.warning(f"services not ready after {timeout:g}s: starting the main command "
                        f"anyway{suffix}")

    def start_main_command(self) -> int | None:
        if not self.config.command:
            return None
        argv = self.config.command
        spec = spawn.Spec(argv, pgroup=True, foreground=True)
        try:
            self.main_pid = spawn.spawn(spec, self.inherited)
        except spawn.SpawnError as exc:
            log.error(f"main command {exc}")
            return exc.exit_code
        self.reaper.watch(self.main_pid, self.on_main_exit)
        events.emit("boot.main", pid=self.main_pid)
        log.debug(f"main command started: pid {self.main_pid}: {' '.join(argv)}")
        return None

    # --- events --------------------------------------------------------------
    def on_signals(self) -> None:
        assert self.signalfd is not None
        for got in self.signalfd.read():
            if got.signum == signal.SIGCHLD:
                self.reaper.reap()
                continue
            if got.code == signals.SI_USER and got.pid == os.getpid():
                continue  # raised by pyinit itself (e.g. SIGPIPE from its own write)
            self.on_signal(got.signum)
        self.reaper.reap()

    def on_signal(self, signum: int) -> None:
        log.debug(f"received {signames.name(signum)}")
        if self.main_pid is not None and self.main_status is None:
            if signum in signames.SHUTDOWN_SIGNALS:
                stop_signal_to(self.main_pid, signum)
            else:
                signals.kill_quietly(self.main_pid, signum)
        if signum in signames.SHUTDOWN_SIGNALS and self.stop_signal is None:
            self.stop_signal = signum
            self.start_shutdown_clock()
        elif signum == signal.SIGHUP and self.services is not None:
            self.services.hangup()

    def start_shutdown_clock(self) -> None:
        """The shutdown budget runs from the first request to stop (a signal may
        arrive while a startup script still runs), not from when shutdown() starts."""
        if self.shutdown_deadline is None:
            self.shutdown_deadline = self.loop.clock() + self.config.shutdown_timeout

    def on_main_exit(self, pid: int, status: ExitStatus) -> None:
        self.main_status = status
        log.debug(f"main command (pid {pid}) ended with {status.describe()}")

    def request_exit(self, code: int) -> None:
        """Shut the container down and exit with code (from the control socket)."""
        if self.exit_request is None:
            self.exit_request = code
            self.start_shutdown_clock()
            if self.main_pid is not None and self.main_status is None:
                stop_signal_to(self.main_pid, signal.SIGTERM)

    def stopping(self) -> bool:
        return (
            self.stop_signal is not None
            or self.exit_request is not None
            or (self.main_pid is not None and self.main_status is not None)
        )

    # --- shutdown steps --------------------------------------------------------
    def remaining(self, wanted: float) -> float:
        """wanted, cut to what is left of the shutdown budget."""
        if self.shutdown_deadline is None:
            return wanted
        return max(0.0, min(wanted, self.shutdown_deadline - self.loop.clock()))

    def stop_main_command(self) -> None:
        if self.main_pid is None or self.main_status is not None:
            return
        self.endgame.finish(self.main_pid, lambda: self.main_status is not None,
                            self.config.kill_timeout, f"main command (pid {self.main_pid})",
                            warn=True)

    def stop_services(self) -> None:
        if self.services is not None:
            events.emit("shutdown.services")
            self.services.stop_all(self.remaining(self.config.kill_timeout))
            events.emit("shutdown.end")
        if self.control_server is not None:
            self.control_server.close()

    def close_spawning(self) -> None:
        """From kill-all on nothing starts: no run, setup, finish, logger, check or
        instance (ServiceManager.freeze). The boot sequence has started its last
        process by then: post-shutdown scripts run before kill-all, as my_init's."""
        if self.hooks is not None:
            self.hooks.close()
        if self.services is not None:
            self.services.freeze()

    def exit_code(self, failure: int | None) -> int:
        if failure is not None:
            return failure
        if self.exit_request is not None:
            return self.exit_request
        if self.main_status is not None:
            return self.main_status.shell_code
        if self.main_pid is not None:  # stop_main_command SIGKILLed it; never reaped
            return 128 + signal.SIGKILL
        if self.config.command and self.stop_signal is not None:
            return 128 + self.stop_signal  # stopped before the main command could start
        if self.stop_signal is not None and self.config.signalled_exit_code is not None:
            return self.config.signalled_exit_code  # my_init: "Init system aborted." (2)
        return 0


def start_hooks(init: Init) -> Hooks | None:
    """pyinit.yaml's hooks, listening to the events; the hook code is imported only
    when there are some."""
    if not init.config.hooks:
        return None
    from pyinit.runtime.hooks import Hooks

    hooks = Hooks(init.loop, init.reaper, init.inherited, init.config.hooks, init.remaining)
    hooks.listen(events.BUS)
    return hooks


def stop_reason(init: Init, failure: int | None) -> str:
    """Why pyinit shuts down, for the shutdown.begin event."""
    if failure is not None:
        return "boot failed"
    if init.stop_signal is not None:
        return signames.name(init.stop_signal)
    if init.exit_request is not None:
        return "shutdown requested"
    return "main command exited" if init.main_status is not None else "no main command"


def boot_failure(path: str, status: ExitStatus | None) -> int | None:
    """A boot script that failed stops the boot: its exit code (logged), else None."""
    if status is None or status.shell_code == 0:
        return None
    log.error(f"{path} failed with {status.describe()}; stopping the boot")
    return status.shell_code


def leave_cwd() -> None:
    """PID 1 moves to "/" (spawn.leave_cwd); shutdown scripts still get the original
    cwd (scripts.Origin)."""
    why = spawn.leave_cwd()
    if why is not None:
        log.warning(f"cannot leave the working directory: {why}")
