"""pyinit as s6-overlay v3's `/init` (argv[0] exactly `/init`, or a name `s6-init`): the image's
/etc/s6-overlay/s6-rc.d written as pyinit service dirs, S6_* variables as pyinit's
flags, then pyinit's boot with `/init`'s arguments as the main command (CMD).

The order is s6-overlay's: S6_STAGE2_HOOK, /etc/cont-init.d, the `user` bundle
(dependencies first), then the /etc/services.d longruns (legacy-services) and
`user2`, then CMD once they are up (or after S6_CMD_WAIT_FOR_SERVICES_MAXTIME); at
shutdown CMD, the services in reverse order, the `down` of each oneshot whose `up`
succeeded, /etc/cont-finish.d. docs/migration.md#from-s6-overlay.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyinit.config import Config

CONTAINER_ENV = "/run/s6/container_environment"  # with-contenv's, as in s6-overlay
SUBDIR = "s6-rc"  # in pyinit's run dir: the written service dirs
SOFTWARE_ERROR = 70
CONFIG_ERROR = 78  # EX_CONFIG: an s6-rc.d definition pyinit cannot run
# S6_BEHAVIOUR_IF_STAGE2_FAILS for /etc/cont-init.d, as s6-overlay's cont-init script:
# every script runs; then 0 goes on silently, 1 warns, 2 stops the container, exit 1
# (s6-rc's code when legacy-cont-init fails, which rc.init writes as the exit code)
BOOT_FAILURES = {0: "ignore", 1: "warn", 2: "stop-after"}


def say(level: str, text: str) -> None:
    try:
        sys.stderr.write(f"pyinit: {level}: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def run_hook(argv: list[str]) -> None:
    """S6_STAGE2_HOOK, before the tree is read (it may change it); waited for, with
    the signal state pyinit was started with; a failure is a warning, as in s6-overlay."""
    from pyinit.core.bounds import render
    from pyinit.linux import signals

    inherited = signals.Inherited.capture()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            inherited.restore_in_child()
            os.execvp(argv[0], argv)
        except BaseException:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        say("warning", f"S6_STAGE2_HOOK {render(' '.join(argv))} exited {code}")


def run_dir(environ: dict[str, str]) -> str | None:
    """pyinit's run dir, chosen now as boot would (so both use the same one)."""
    from pyinit.runtime import rundir

    explicit = environ.get("PYINIT_RUN_DIR") or None
    choice = rundir.choose(explicit, environ, os.geteuid(), rundir.prepare)
    return choice.path


def container_env_dir() -> str | None:
    """/run/s6/container_environment made (0755, walked without following another
    user's symlinks), as s6-overlay's stage 1 does; None when it cannot be."""
    from pyinit.linux import safefs

    try:
        os.close(safefs.open_dir(CONTAINER_ENV, create=0o755))
    except OSError as exc:
        say(
            "warning",
            f"{CONTAINER_ENV}: {exc.strerror or exc}; with-contenv reads "
            "/etc/container_environment",
        )
        return None
    return CONTAINER_ENV


def translate(etc: str, out: str, stop_on_failure: bool) -> list[str]:
    """The s6-rc.d tree and the services.d longruns under etc written to out:
    pyinit's flags for them."""
    from pyinit.foreign import s6rc, s6rc_read, s6rc_write

    root = os.path.join(etc, "s6-overlay", "s6-rc.d")
    sources = s6rc_read.read_tree(root, os.path.join(etc, "s6-overlay", "user-bundles.d"))
    legacy_root = os.path.join(etc, "services.d")
    legacy, as_is = s6rc_read.read_legacy(legacy_root)
    plan = s6rc.plan(sources or {}, root, tuple(legacy), legacy_root)
    execlineb = s6rc_write.find_execlineb(os.environ.get("PATH", "/usr/bin:/bin"))
    finish = [os.environ.get("PYINIT_CONT_FINISH_DIR") or "/etc/cont-finish.d"]
    written = s6rc_write.write(plan, root, out, finish, stop_on_failure, execlineb,
                               legacy_root, as_is)  # fmt: skip
    for line in plan.warnings + written.warnings:
        say("warning", line)
    dirs = [d for d in os.environ.get("PYINIT_SERVICE_DIR", "").split(":") if d]
    flags = ["--service-dir", written.services]
    for directory in dirs or ["/etc/service"]:
        if os.path.normpath(directory) != os.path.normpath(legacy_root):
            flags += ["--service-dir", directory]
    return flags + [
        "--cont-finish-dir",
        os.path.join(out, "none"),
        "--post-shutdown-dir",
        written.finish,
    ]


def main(argv: list[str] | None = None) -> None:
    """`/init [CMD...]`: never returns."""
    from pyinit.cli import init_command
    from pyinit.cli.stdio import guarded
    from pyinit.foreign import s6env
    from pyinit.foreign.s6rc import SourceError

    cmd = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    wanted = s6env.settings(environ)
    for line in wanted.warnings:
        say("warning", line)
    if wanted.hook:
        run_hook(wanted.hook)
    where = run_dir(environ)
    if where is None:
        say("error", "no run dir to write the s6-rc services to (see pyinit --run-dir)")
        sys.exit(SOFTWARE_ERROR)
    try:
        etc = environ.get("PYINIT_S6_ETC") or wanted.etc
        flags = translate(etc, os.path.join(where, SUBDIR), wanted.stop_on_failure)
    except SourceError as exc:
        say("error", str(exc))
        sys.exit(CONFIG_ERROR)
    except OSError as exc:
        say("error", f"writing the s6-rc services: {exc.strerror or exc}")
        sys.exit(SOFTWARE_ERROR)
    flags += ["--run-dir", where]
    env_dir = None if "PYINIT_ENV_DIR" in environ else container_env_dir()
    if env_dir is not None:
        flags += ["--env-dir", env_dir]
    args = [*wanted.flags, *flags]
    if cmd:  # S6_CMD_ARG0 goes in front of a CMD only
        args += ["--", *wanted.arg0, *cmd]
    policy = BOOT_FAILURES[wanted.behaviour]

    def adjust(config: Config) -> None:
        config.boot_failures = policy

    # no CMD, stopped by a signal: s6-overlay's halt exits 0
    guarded("pyinit")(init_command.run)(args, 0, None, adjust)
