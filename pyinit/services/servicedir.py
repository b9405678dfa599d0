"""Reading service directories (runit's layout) into definitions.

A service is a subdirectory (or a symlink to one) of a service dir, whose name
does not start with '.', holding an executable `run`. Optional: `finish`,
`check`, `setup`, `down`, `log/run` for a logger, `notification-fd` (s6) and
`service.yaml` (core/schema.py), whose defaults come from pyinit.yaml. Templates
(`NAME@`) and instances are read like any other dir; core/instances.py expands
them. What a read yields is a core/model.py ServiceDir.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

from pyinit.core import bounds
from pyinit.core.instances import instance_of, is_template
from pyinit.core.model import Account, ServiceDir
from pyinit.core.schema import ConfigError, Probe, ServiceConfig
from pyinit.linux import safefs
from pyinit.runtime import log
from pyinit.runtime.scripts import is_executable


def _same(path: str) -> str:
    return path


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a scan reaches the files. Boot reads this system as it is (the default);
    `pyinit check --root DIR` reads an image tree: `host` turns a path of the image
    into the one to open (linux/rootfs.py), `accounts` are the image's passwd and
    group files, and neither who may write the dirs nor whether this process could
    switch users is asked (that is the container's business at boot)."""

    host: Callable[[str], str] = _same
    accounts: Any = None  # linux.users.Accounts; None: this system's
    at_boot: bool = True  # delegation and why_not, as boot asks them


BOOT = Reading()


def writers(stats: list[os.stat_result], trusted: tuple[int, ...]) -> Optional[frozenset[int]]:
    """The uids, other than trusted ones, that can change what these stat records
    describe (a service dir, its parent, its run, its service.yaml): their owners.
    None when a group other than root's, or everybody, may write one of them."""
    found = set()
    for st in stats:
        if st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0):
            return None
        if st.st_uid not in trusted:
            found.add(st.st_uid)
    return frozenset(found)


def delegation(path: str) -> tuple[Optional[int], Optional[str]]:
    """Whose service this is, when pyinit is root: (None, None) when only root (or
    pyinit's own uid) can change the service dir, its parent, run and service.yaml;
    (uid, None) when exactly that other user can: the service is theirs and runs as
    them (pin_to); (None, why) when more can: it is refused. Root never runs, as
    root, what another user may write (docs/security.md#service-dirs-another-user-can-write)."""
    if os.geteuid() != 0:
        return None, None  # pyinit runs as that user anyway: nothing to gain
    real = os.path.realpath(path)
    stats = []
    for where in (real, os.path.dirname(real), os.path.join(real, "run"),
                  os.path.join(real, "service.yaml")):
        try:
            stats.append(os.stat(where))
        except OSError:
            continue
    found = writers(stats, safefs.trusted_uids())
    if found is None:
        return None, "a group or every user may write the service dir, its run or service.yaml"
    if len(found) > 1:
        return None, "several users may write the service dir, its run or service.yaml"
    return (next(iter(found)) if found else None), None


def pin_to(owner: int, config: ServiceConfig, run_as: Optional[Account],
           log_as: Optional[Account], config_path: str
           ) -> tuple[Account, Account, Optional[str]]:
    """A service dir that user `owner` can write is theirs: run, finish, check and
    the logger run as them, whatever service.yaml says. (run_as, log_as, error): the
    error names what service.yaml asks that only root could grant."""
    from pyinit.linux import users as privileges

    own = privileges.resolve(str(owner))
    for key, wanted in (("user", run_as), ("log.user", log_as)):
        if wanted is not None and (wanted.uid, wanted.gid) != (own.uid, own.gid):
            return own, own, (f"{config_path}: {key}: the service dir is uid {owner}'s, "
                              f"so it runs as uid {owner} only")
    if config.env_file is not None and "/" in config.env_file:
        return own, own, (f"{config_path}: env_file: the service dir is uid {owner}'s: only "
                          "a file in it is read (root would read any file for them)")
    if config.log_dir is not None and (os.path.isabs(config.log_dir)
                                       or ".." in config.log_dir.split("/")):
        return own, own, (f"{config_path}: log.dir: the service dir is uid {owner}'s: only a "
                          "dir in it is written (root would write anywhere for them)")
    if config.nice is not None and config.nice < 0:
        return own, own, (f"{config_path}: nice: below 0 needs root, and the service is "
                          f"uid {owner}'s")
    return own, own, None


def read_service(name: str, path: str, defaults: Optional[dict[str, Any]] = None,
                 reading: Reading = BOOT) -> ServiceDir:
    host = reading.host
    run = host(os.path.join(path, "run"))
    error = None
    if not os.path.lexists(run):
        error = "no run file"
    elif not os.path.isfile(run):
        error = "run is not a regular file"
    elif not os.access(run, os.X_OK):
        error = "run is not executable"
    run_as = log_as = user = None
    config = ServiceConfig()
    has_log = is_executable(host(os.path.join(path, "log", "run")))
    owner, refused = delegation(host(path)) if reading.at_boot else (None, None)
    if error is None and refused is not None:
        error = f"not run: {refused} (root would run what they write)"
    if error is None:
        try:
            config = read_config(path, defaults, reading)
            run_as, log_as, user = read_identities(config, os.path.join(path, "service.yaml"),
                                                   reading)
        except ValueError as exc:
            error = str(exc)
    if error is None and owner is not None:
        run_as, log_as, error = pin_to(owner, config, run_as, log_as,
                                       os.path.join(path, "service.yaml"))
        user = user or str(owner)
    instance = instance_of(name, os.path.basename(os.path.realpath(host(path))))
    if error is None and config.instances is not None and (is_template(name) or instance):
        error = (f"{os.path.join(path, 'service.yaml')}: key 'instances' does not apply to "
                 "a template (its instances come from symlinks or svctl up)")
    return ServiceDir(
        name=name,
        path=path,
        normally_up=not os.path.exists(host(os.path.join(path, "down"))),
        has_log=has_log,
        error=error,
        run_as=run_as,
        log_as=log_as,
        user=user,
        config=config,
        instance=instance,
        has_setup=is_executable(host(os.path.join(path, "setup"))),
    )


def read_config(path: str, defaults: Optional[dict[str, Any]],
                reading: Reading = BOOT) -> ServiceConfig:
    """service.yaml over pyinit.yaml's defaults, plus s6's notification-fd file;
    ValueError with one line if either is bad."""
    from pyinit.core import schema

    config_path = os.path.join(path, schema.FILE_NAME)
    try:
        if os.path.lexists(reading.host(config_path)):
            from pyinit.runtime import yamlfile  # only with a service.yaml

            config = yamlfile.load_service(config_path, defaults,
                                           source=reading.host(config_path))
        else:
            config = schema.validate({}, config_path, defaults)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if config.schedule is not None and config.timezone is not None:
        from pyinit.services.scheduler import zone  # only for a job with a time zone

        try:
            zone(config.timezone)
        except ValueError as exc:
            raise ValueError(f"{config_path}: key 'timezone': {exc}") from None
    fd_path = os.path.join(path, "notification-fd")
    if config.ready is None and os.path.lexists(reading.host(fd_path)):
        try:
            fd_file = safefs.open_read(reading.host(fd_path))  # never another user's link
            text = bounds.read_fd(fd_file, 64, fd_path).decode("ascii").strip()
            fd = bounds.small_number(text, 1023)
        except (OSError, ValueError):  # bounds.InputError, UnicodeDecodeError
            fd = None
        if fd is None or fd < 3:
            raise ValueError(f"{fd_path}: must hold a number from 3 to 1023")
        config = dataclasses.replace(config, ready=Probe("notification_fd", target=fd))
    return config


def read_identities(
    config: ServiceConfig, config_path: str, reading: Reading = BOOT
) -> tuple[Optional[Account], Optional[Account], Optional[str]]:
    """The users service.yaml asks for, looked up now; ValueError with one line if not."""
    from pyinit.linux import users as privileges

    out: list[Optional[Account]] = []
    for key, wanted in (("user", config.run_as), ("log.user", config.log_as)):
        spec = wanted.spec()
        if spec is None:
            out.append(None)
            continue
        try:
            identity = privileges.resolve(spec, reading.accounts)
        except privileges.PrivilegeError as exc:
            raise ValueError(f"{config_path}: {key}: {exc}") from None
        reason = privileges.why_not(identity) if reading.at_boot else None
        if reason is not None:
            raise ValueError(f"{config_path}: {key}: {reason}, cannot run as {spec}")
        out.append(identity)
    return out[0], out[1], config.run_as.spec()


def scan(
    service_dirs: list[str], defaults: Optional[dict[str, Any]] = None,
    reading: Reading = BOOT,
) -> tuple[dict[str, ServiceDir], list[str]]:
    """Every service in service_dirs (first dir wins on a name clash), and problems."""
    found: dict[str, ServiceDir] = {}
    problems: list[str] = []
    for base in service_dirs:
        try:
            names = sorted(os.listdir(reading.host(base)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"cannot read service dir {base}: {exc.strerror}")
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(base, name)
            if not os.path.isdir(reading.host(path)):
                if os.path.islink(os.path.join(reading.host(base), name)):
                    problems.append(f"{path}: broken symlink, ignored")
                continue
            if name in found:
                problems.append(f"{path}: a service named {name!r} exists already, ignored")
                continue
            try:
                found[name] = read_service(name, path, defaults, reading)
            except Exception:  # a bug on one service's files must not stop the others
                log.bug(f"reading {bounds.clip(path, 300)}")
                found[name] = ServiceDir(name=name, path=path, normally_up=False,
                                         has_log=False,
                                         error="pyinit could not read it (see its log)")
    return found, problems


# What a change in each kind of watched directory must touch to matter.
SERVICE_FILES = frozenset(
    {"run", "finish", "down", "check", "setup", "log", "service.yaml", "notification-fd"})


def change_matters(kind: str, name: str) -> bool:
    """Does a change to `name` in a watched dir of this kind ("base", "service" or
    "log") affect the set of services? Files a service writes for itself do not."""
    if kind == "base":
        return not name.startswith(".")
    if kind == "service":
        return name in SERVICE_FILES
    return name == "run"
