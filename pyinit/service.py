"""Reading service directories (runit's layout) into definitions.

A service is a subdirectory (or a symlink to one) of a service dir, whose name
does not start with '.', holding an executable `run`. Optional: `finish`,
`check`, `down`, `log/run` for a logger, and `service.yaml` (schema.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from pyinit.privileges import Identity


@dataclass(frozen=True)
class ServiceDir:
    name: str
    path: str
    normally_up: bool
    has_log: bool
    error: Optional[str] = None  # why it cannot be started, shown by svctl status
    run_as: Optional[Identity] = None  # run, finish and check drop to this user
    log_as: Optional[Identity] = None  # the logger drops to this one
    user: Optional[str] = None  # run_as as written (USER[:GROUP]), for svctl


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def read_service(name: str, path: str) -> ServiceDir:
    run = os.path.join(path, "run")
    error = None
    if not os.path.lexists(run):
        error = "no run file"
    elif not os.path.isfile(run):
        error = "run is not a regular file"
    elif not os.access(run, os.X_OK):
        error = "run is not executable"
    run_as = log_as = user = None
    config_path = os.path.join(path, "service.yaml")
    if error is None and os.path.lexists(config_path):
        try:
            run_as, log_as, user = read_identities(config_path)
        except ValueError as exc:
            error = str(exc)
    return ServiceDir(
        name=name,
        path=path,
        normally_up=not os.path.exists(os.path.join(path, "down")),
        has_log=is_executable(os.path.join(path, "log", "run")),
        error=error,
        run_as=run_as,
        log_as=log_as,
        user=user,
    )


def read_identities(
    config_path: str,
) -> tuple[Optional[Identity], Optional[Identity], Optional[str]]:
    """The users service.yaml asks for, looked up now; ValueError with one line if not."""
    from pyinit import privileges, schema

    try:
        config = schema.load(config_path)
    except schema.ConfigError as exc:
        raise ValueError(str(exc)) from None
    out: list[Optional[Identity]] = []
    for key, wanted in (("user", config.run_as), ("log.user", config.log_as)):
        spec = wanted.spec()
        if spec is None:
            out.append(None)
            continue
        try:
            identity = privileges.resolve(spec)
        except privileges.PrivilegeError as exc:
            raise ValueError(f"{config_path}: {key}: {exc}") from None
        if os.geteuid() != 0 and identity.uid != os.geteuid():
            raise ValueError(f"{config_path}: {key}: pyinit is not root, cannot run as {spec}")
        out.append(identity)
    return out[0], out[1], config.run_as.spec()


def scan(service_dirs: list[str]) -> tuple[dict[str, ServiceDir], list[str]]:
    """Every service in service_dirs (first dir wins on a name clash), and problems."""
    found: dict[str, ServiceDir] = {}
    problems: list[str] = []
    for base in service_dirs:
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"cannot read service dir {base}: {exc.strerror}")
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(base, name)
            if not os.path.isdir(path):
                if os.path.islink(path):
                    problems.append(f"{path}: broken symlink, ignored")
                continue
            if name in found:
                problems.append(f"{path}: a service named {name!r} exists already, ignored")
                continue
            found[name] = read_service(name, path)
    return found, problems


# What a change in each kind of watched directory must touch to matter.
SERVICE_FILES = frozenset({"run", "finish", "down", "check", "log", "service.yaml"})


def change_matters(kind: str, name: str) -> bool:
    """Does a change to `name` in a watched dir of this kind ("base", "service" or
    "log") affect the set of services? Files a service writes for itself do not."""
    if kind == "base":
        return not name.startswith(".")
    if kind == "service":
        return name in SERVICE_FILES
    return name == "run"
