"""pyinit's settings: every path and timeout has a flag and an environment variable.

Flags win over environment variables, which win over the defaults. Parsing is
pure (argv and environ in, Config or a usage error out).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from pyinit import __version__
from pyinit.core import bounds

LOG_MODES = ("inherit", "prefix", "file")
# Where the docs are once installed: the man page, and the .deb's doc dir (docs/ in the
# source tree); every command's --help names them.
DOC_DIR = "/usr/share/doc/pyinit-pid1"
DOCS = f"Documentation: `man pyinit`, {DOC_DIR}/docs/pyinit.md or docs/pyinit.md in the source."
DEFAULTS = {
    "env_dir": "/etc/container_environment",
    "init_dir": "/etc/my_init.d",
    "cont_init_dir": "/etc/cont-init.d",
    "rc_local": "/etc/rc.local",
    "pre_shutdown_dir": "/etc/my_init.pre_shutdown.d",
    "cont_finish_dir": "/etc/cont-finish.d",
    "post_shutdown_dir": "/etc/my_init.post_shutdown.d",
    "run_dir": "/run/pyinit",
    "config_file": "/etc/pyinit.yaml",
    "insecure_key_script": "/usr/sbin/enable_insecure_key",
}
DEFAULT_SERVICE_DIRS = ("/etc/service", "/etc/services.d")
ENV_VARS = {
    "env_dir": "PYINIT_ENV_DIR",
    "init_dir": "PYINIT_INIT_DIR",
    "cont_init_dir": "PYINIT_CONT_INIT_DIR",
    "rc_local": "PYINIT_RC_LOCAL",
    "pre_shutdown_dir": "PYINIT_PRE_SHUTDOWN_DIR",
    "cont_finish_dir": "PYINIT_CONT_FINISH_DIR",
    "post_shutdown_dir": "PYINIT_POST_SHUTDOWN_DIR",
    "run_dir": "PYINIT_RUN_DIR",
    "config_file": "PYINIT_CONFIG",
    "insecure_key_script": "PYINIT_INSECURE_KEY_SCRIPT",
    "services_ready_timeout": "PYINIT_SERVICES_READY_TIMEOUT",
    "health_listen": "PYINIT_HEALTH_LISTEN",
    "log_mode": "PYINIT_LOG_MODE",
    "log_format": "PYINIT_LOG_FORMAT",
    "log_timestamps": "PYINIT_LOG_TIMESTAMPS",
    "service_dirs": "PYINIT_SERVICE_DIR",
    "kill_timeout": "KILL_PROCESS_TIMEOUT",
    "kill_all_timeout": "KILL_ALL_PROCESSES_TIMEOUT",
    "shutdown_timeout": "PYINIT_SHUTDOWN_TIMEOUT",
}


@dataclass
class Config:
    command: list[str] = field(default_factory=list)
    env_dir: str = DEFAULTS["env_dir"]
    init_dir: str = DEFAULTS["init_dir"]
    cont_init_dir: str = DEFAULTS["cont_init_dir"]
    rc_local: str = DEFAULTS["rc_local"]
    pre_shutdown_dir: str = DEFAULTS["pre_shutdown_dir"]
    cont_finish_dir: str = DEFAULTS["cont_finish_dir"]
    post_shutdown_dir: str = DEFAULTS["post_shutdown_dir"]
    run_dir: str = DEFAULTS["run_dir"]  # as asked; the one in use is boot.Init.run_dir
    run_dir_set: bool = False  # given by flag or PYINIT_RUN_DIR: no fallback (rundir.py)
    config_file: str = DEFAULTS["config_file"]
    insecure_key_script: str = DEFAULTS["insecure_key_script"]
    enable_insecure_key: bool = False  # my_init's --enable-insecure-key (cli/my_init.py)
    service_dirs: list[str] = field(default_factory=lambda: list(DEFAULT_SERVICE_DIRS))
    kill_timeout: float = 5.0
    kill_all_timeout: float = 3.0
    shutdown_timeout: float = 9.5
    skip_startup_files: bool = False
    skip_services: bool = False
    kill_all_on_exit: bool = True
    verbosity: int = 2  # log.INFO
    # None: pyinit.yaml decides, then the default (wait, 60 s, no health endpoint)
    wait_for_services: bool | None = None
    services_ready_timeout: float | None = None
    health_listen: str | None = None
    service_defaults: dict = field(default_factory=dict)  # pyinit.yaml's `defaults`
    hooks: tuple = ()  # pyinit.yaml's `hooks` (schema.HookSpec)
    signalled_exit_code: int | None = None  # no main command, stopped by a signal (my_init: 2)
    # a failing boot script: "stop" at once with its code; s6-overlay's /init sets
    # "ignore", "warn" or "stop-after" (all run, then exit 1): Init.run_startup_scripts
    boot_failures: str = "stop"
    log_mode: str = "inherit"  # services without log/run or a `log: mode`
    log_format: str = "text"  # prefix mode: text (NAME | line) or json
    log_timestamps: bool = False


def make_absolute(cfg: Config, origin: str) -> None:
    """Relative paths (flags, environment) made absolute against origin, pyinit's cwd at
    start, so they keep their meaning once pyinit has left that cwd (boot.leave_cwd)."""
    for key in DEFAULTS:
        value = getattr(cfg, key)
        if value and not value.startswith("/"):
            setattr(cfg, key, os.path.join(origin, value))
    cfg.service_dirs = [d if d.startswith("/") else os.path.join(origin, d)
                        for d in cfg.service_dirs]


class UsageError(Exception):
    """A bad flag or environment value: print it with the usage line, exit 2."""


def _seconds(text: str) -> float:
    try:
        return bounds.seconds(text, bounds.MAX_SECONDS)
    except bounds.InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _PrintHelp(argparse.Action):
    """-h/--help printing a personality's own help text (on stdout), then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str,
                 text: Callable[[], str], **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)
        self.text = text

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        sys.stdout.write(self.text())
        parser.exit()


def build_parser(my_init_help: Callable[[], str] | None = None) -> argparse.ArgumentParser:
    """pyinit's parser; with my_init_help, my_init's: the same flags, plus my_init's
    --enable-insecure-key (any number of times), and -h/--help printing my_init_help()."""
    p = argparse.ArgumentParser(
        add_help=my_init_help is None,
        allow_abbrev=False,  # a new flag must never change what an existing ENTRYPOINT means
        prog="pyinit",
        usage="pyinit [options] [--] [COMMAND [ARGS...]]",
        description="A small PID 1 for containers: reaps zombies, forwards signals, runs "
        "startup scripts, supervises services and shuts everything down in bounded time.",
        epilog="Every path and timeout can also be set by the environment variable named "
        "in brackets. `pyinit check [--root DIR] [--json]` checks the configuration "
        f"without starting anything. {DOCS}",
    )
    p.add_argument("--version", action="version", version=f"pyinit {__version__}")
    if my_init_help is not None:
        p.add_argument("-h", "--help", action=_PrintHelp, text=my_init_help,
                       help="my_init's help")
        p.add_argument("--enable-insecure-key", action="store_true",
                       help="run enable_insecure_key before the startup scripts")
    _add_stage_flags(p)
    _add_output_flags(p)
    _add_path_flags(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the main command")
    return p


def _add_stage_flags(p: argparse.ArgumentParser) -> None:
    """Messages, which stages run, and how long each may take."""
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages (repeat)")
    p.add_argument("--quiet", action="store_true", help="print warnings and errors only")
    p.add_argument("--skip-startup-files", action="store_true",
                   help="do not run the init dir, cont-init.d and rc.local")
    p.add_argument("--skip-runit", "--skip-services", dest="skip_services", action="store_true",
                   help="do not supervise services")
    p.add_argument("--no-kill-all-on-exit", dest="kill_all_on_exit", action="store_false",
                   help="at exit, do not TERM/KILL the processes that are left")
    p.add_argument("--kill-timeout", type=_seconds, metavar="SECS",
                   help="seconds the main command and each service get to exit after "
                   "SIGTERM before SIGKILL [KILL_PROCESS_TIMEOUT, 5]")
    p.add_argument("--kill-all-timeout", type=_seconds, metavar="SECS",
                   help="seconds left-over processes get after SIGTERM before SIGKILL "
                   "[KILL_ALL_PROCESSES_TIMEOUT, 3]")
    p.add_argument("--shutdown-timeout", type=_seconds, metavar="SECS",
                   help="bound on the whole shutdown; every stage's wait is cut to fit "
                   "[PYINIT_SHUTDOWN_TIMEOUT, 9.5]")
    p.add_argument("--no-wait-for-services", dest="wait_for_services", action="store_false",
                   default=None, help="start the main command without waiting for services "
                   "to be ready")
    p.add_argument("--services-ready-timeout", type=_seconds, metavar="SECS",
                   help="wait at most this long for services before starting the main "
                   "command anyway [PYINIT_SERVICES_READY_TIMEOUT, 60]")


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    """Where services' output goes, and the health endpoint."""
    p.add_argument("--log-mode", choices=LOG_MODES, help="where the output of services "
                   "without log/run or a `log:` setting goes [PYINIT_LOG_MODE, inherit]")
    p.add_argument("--log-format", choices=("text", "json"),
                   help="prefix mode lines: 'NAME | line' or JSON [PYINIT_LOG_FORMAT, text]")
    p.add_argument("--log-timestamps", action="store_true", default=None,
                   help="timestamp service lines in prefix and file mode "
                   "[PYINIT_LOG_TIMESTAMPS=1]")
    p.add_argument("--health-listen", metavar="ADDR:PORT",
                   help="serve /healthz, /readyz and /status over HTTP [PYINIT_HEALTH_LISTEN]")


def _add_path_flags(p: argparse.ArgumentParser) -> None:
    """Every directory and file pyinit reads or writes."""
    for key, flag, what in (
        ("env_dir", "--env-dir", "container environment directory"),
        ("init_dir", "--init-dir", "startup scripts directory"),
        ("cont_init_dir", "--cont-init-dir", "s6-overlay startup scripts, after the init dir"),
        ("rc_local", "--rc-local", "script run after the startup dirs"),
        ("pre_shutdown_dir", "--pre-shutdown-dir", "scripts run before services stop"),
        ("cont_finish_dir", "--cont-finish-dir", "s6-overlay scripts run before services stop"),
        ("post_shutdown_dir", "--post-shutdown-dir", "scripts run last"),
        ("run_dir", "--run-dir", "runtime state and control socket directory"),
        ("config_file", "--config", "defaults for every service.yaml, and boot settings"),
        ("insecure_key_script", "--insecure-key-script",
         "what my_init's --enable-insecure-key runs"),
    ):
        p.add_argument(flag, dest=key, metavar="PATH",
                       help=f"{what} [{ENV_VARS[key]}, {DEFAULTS[key]}]")
    p.add_argument("--service-dir", dest="service_dirs", action="append", metavar="DIR",
                   help="service directory, repeatable [PYINIT_SERVICE_DIR, colon-separated; "
                   "/etc/service and /etc/services.d]")


def parse(argv: Sequence[str], environ: Mapping[str, str],
          my_init_help: Callable[[], str] | None = None) -> Config:
    """Build a Config; raises UsageError for a bad environment value. With
    my_init_help, the command line is my_init's (build_parser)."""
    ns = build_parser(my_init_help).parse_args(list(argv))
    cfg = Config()
    cfg.enable_insecure_key = bool(getattr(ns, "enable_insecure_key", False))
    command = list(ns.command)
    if command and command[0] == "--":
        command = command[1:]
    cfg.command = command
    for key in DEFAULTS:
        value = getattr(ns, key) or environ.get(ENV_VARS[key]) or DEFAULTS[key]
        setattr(cfg, key, value)
    cfg.run_dir_set = bool(ns.run_dir or environ.get(ENV_VARS["run_dir"]))
    if ns.service_dirs:
        cfg.service_dirs = list(ns.service_dirs)
    elif environ.get("PYINIT_SERVICE_DIR"):
        cfg.service_dirs = [d for d in environ["PYINIT_SERVICE_DIR"].split(":") if d]
    for key in ("kill_timeout", "kill_all_timeout", "shutdown_timeout", "services_ready_timeout"):
        value = getattr(ns, key)
        if value is None and environ.get(ENV_VARS[key]):
            try:
                value = _seconds(environ[ENV_VARS[key]])
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{ENV_VARS[key]}: {exc}") from None
        if value is not None:
            setattr(cfg, key, value)
    for key, allowed in (("log_mode", LOG_MODES), ("log_format", ("text", "json"))):
        value = getattr(ns, key) or environ.get(ENV_VARS[key])
        if value and value not in allowed:
            raise UsageError(f"{ENV_VARS[key]}: must be one of {', '.join(allowed)}, "
                             f"not {bounds.render(value)}")
        if value:
            setattr(cfg, key, value)
    stamps = environ.get(ENV_VARS["log_timestamps"], "")
    cfg.log_timestamps = bool(ns.log_timestamps) or stamps.lower() in ("1", "true", "yes")
    cfg.wait_for_services = ns.wait_for_services
    cfg.health_listen = ns.health_listen or environ.get(ENV_VARS["health_listen"]) or None
    cfg.skip_startup_files = ns.skip_startup_files
    cfg.skip_services = ns.skip_services
    cfg.kill_all_on_exit = ns.kill_all_on_exit
    cfg.verbosity = 1 if ns.quiet else 2 + ns.verbose  # log.WARNING / log.INFO + n
    return cfg


SERVICES_READY_TIMEOUT = 60.0


def read_config_file(cfg: Config) -> Config:
    """Fill what flags and environment left open from pyinit.yaml, then the defaults.
    A bad file is a UsageError naming the file and the key."""
    from pyinit.core import schema

    try:
        if os.path.lexists(cfg.config_file):
            from pyinit.runtime import yamlfile  # only with a pyinit.yaml

            settings = yamlfile.load_global(cfg.config_file)
        else:
            settings = schema.GlobalConfig()  # a missing file is an empty one
    except schema.ConfigError as exc:
        raise UsageError(str(exc)) from None
    cfg.service_defaults = settings.defaults
    cfg.hooks = settings.hooks
    if cfg.wait_for_services is None:
        cfg.wait_for_services = settings.wait_for_services is not False
    if cfg.services_ready_timeout is None:
        cfg.services_ready_timeout = settings.services_ready_timeout
    if cfg.services_ready_timeout is None:
        cfg.services_ready_timeout = SERVICES_READY_TIMEOUT
    cfg.health_listen = cfg.health_listen or settings.health_listen
    if cfg.health_listen:
        from pyinit.core import addresses

        try:
            addresses.parse_listen(cfg.health_listen, "health listen address")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return cfg
