"""How a service's processes are set up from its service.yaml: environment, env_file,
working directory, umask, nice, rlimits and the user, on top of spawn.Spec; an
instance's name as an argument and in the environment.

The environment is built in pyinit (pure, testable); the limits and the drop
run in the child between fork and exec, in that order (raising a limit needs
root, so it comes before the drop).
"""

from __future__ import annotations

import os
import re
from typing import Callable, Optional

from pyinit.core import bounds
from pyinit.core.model import Account
from pyinit.core.schema import ServiceConfig
from pyinit.linux import safefs
from pyinit.linux import users as privileges
from pyinit.runtime import log

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class LaunchError(Exception):
    """The process cannot be set up (e.g. a bad env_file); one line."""


def parse_env_file(text: str, path: str) -> list[tuple[str, str]]:
    """KEY=VALUE lines (`export` allowed, '#' comments, values optionally quoted)."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise LaunchError(f"{path}: line {number}: expected NAME=VALUE")
        name, value = match.groups()
        if "\0" in value:  # execve cannot pass it: say so here, not "cannot run ./run"
            raise LaunchError(f"{path}: line {number}: a NUL byte in the value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out.append((name, value))
    return out


MAX_ENV_FILE = 1024 * 1024  # bytes of an env_file


def environment(config: ServiceConfig, service_path: str, identity: Optional[Account],
                base: dict[str, str], name: Optional[str] = None) -> dict[str, str]:
    """The environment of run/finish/check: pyinit's, the user's HOME/USER, env_file,
    then `environment` (later wins); without what execve cannot take (bounds.exec_env:
    a warning, once per service and variable, for each variable left out)."""
    env = privileges.environment(identity, base, clear=False) if identity else dict(base)
    if config.env_file is not None:
        path = os.path.join(service_path, config.env_file)
        shown = bounds.clip(path, 300)  # env_file may be up to 64 KiB long
        try:
            fd = safefs.open_read(path)  # root reads it: never through another user's link
            data = bounds.read_fd(fd, MAX_ENV_FILE, f"env_file {shown}")
        except OSError as exc:
            raise LaunchError(f"env_file {shown}: {exc.strerror}") from None
        except bounds.InputError as exc:
            raise LaunchError(str(exc)) from None
        env.update(parse_env_file(data.decode("utf-8", "surrogateescape"), shown))
    env.update(config.environment)
    fits = bounds.exec_env(env, keep=base)
    for level, problems in ((log.WARNING, fits.too_long), (log.ERROR, fits.too_much)):
        for problem in problems:
            log.once(level, problem, name or service_path)
    return fits.env


def instance_args(argv: list[str], name: str, instance: Optional[str],
                  env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """PYINIT_SERVICE (the service's name) for every service process; for an instance,
    PYINIT_INSTANCE, and its NAME as $1 of the service dir's run, setup and check (and
    of finish after runit's two arguments, as nitro does)."""
    env["PYINIT_SERVICE"] = name
    env.pop("PYINIT_INSTANCE", None)
    if instance is None:
        return argv, env
    env["PYINIT_INSTANCE"] = instance
    if argv[0] == "./finish":
        return argv + [instance], env
    if argv[0] in ("./run", "./setup", "./check"):
        return argv[:1] + [instance] + argv[1:], env
    return argv, env


def working_directory(config: ServiceConfig, default: str) -> str:
    if config.working_directory is None:
        return default
    return os.path.join(default, config.working_directory)


def child_setup(config: ServiceConfig, identity: Optional[Account]
                ) -> Optional[Callable[[], None]]:
    """What the child does last before exec: rlimits, nice, umask, then the drop."""
    if not (config.rlimits or config.nice is not None or config.umask is not None or identity):
        return None

    def setup() -> None:
        import resource

        for name, soft, hard in config.rlimits:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (soft, hard))
        if config.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, config.nice)
        if config.umask is not None:
            os.umask(config.umask)
        if identity is not None:
            privileges.drop(identity)

    return setup
