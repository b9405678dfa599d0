"""Writing an s6rc.Plan as service dirs pyinit supervises: one dir per longrun or
oneshot under OUT/services (run and finish are symlinks to the image's files, the
settings in service.yaml; a oneshot with a `down` is a service that runs `up`,
stays up and runs `down` when stopped: UP_DOWN), one per /etc/services.d longrun,
and OUT/finish.d, the shutdown scripts: the image's /etc/cont-finish.d.

OUT is made fresh (a previous boot's copy is removed) inside pyinit's run dir,
which only root (or pyinit's user) can write.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import Optional

from pyinit.foreign.s6rc import Command, Plan, Planned, SourceError
from pyinit.foreign.s6rc_read import LEGACY_FILES

EXECLINEB = (
    "/command/execlineb",
    "/package/admin/execline/command/execlineb",
    "/usr/bin/execlineb",
    "/bin/execlineb",
)
SHELL = "/bin/sh"
TRUE = "/bin/true"


@dataclass
class Written:
    """Where the plan went: the service dir to scan and the shutdown scripts' dir."""

    services: str
    finish: str
    warnings: list[str] = field(default_factory=list)


def find_execlineb(path_env: str) -> Optional[str]:
    """execlineb where s6-overlay puts it, else on PATH (None: the image has none)."""
    for candidate in EXECLINEB:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("execlineb", path=path_env)


def script(cmd: Command, where: str, execlineb: Optional[str]) -> tuple[str, str]:
    """How a oneshot command becomes an executable: ("link", target) for one absolute
    path, else ("text", a script). An execline line needs execlineb (SourceError
    naming the file when the image has none); a command with arguments, /bin/sh."""
    if cmd.execline is not None:
        if execlineb is None:
            raise SourceError(
                f"{where}: needs execlineb, which is not installed (only a "
                "single command or comments run without it)"
            )
        return "text", f"#!{execlineb} -P\n{cmd.execline}\n"
    if not cmd.argv:  # comments only: nothing to do
        return ("link", TRUE) if os.path.exists(TRUE) else ("text", "#!/bin/sh\nexit 0\n")
    if len(cmd.argv) == 1 and cmd.argv[0].startswith("/"):
        return "link", cmd.argv[0]
    if not os.path.exists(SHELL) and execlineb is not None:
        return "text", f"#!{execlineb} -P\n{' '.join(cmd.argv)}\n"
    return "text", "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in cmd.argv) + "\n"


def settings(svc: Planned, source_dir: str, essential: bool) -> dict:
    """service.yaml for one planned service."""
    out: dict = {"working_directory": source_dir}
    if svc.requires:
        out["requires"] = svc.requires
    if svc.after:
        out["after"] = svc.after
    ready: dict = {}
    if svc.notification_fd is not None:
        ready["notification_fd"] = svc.notification_fd
    if svc.start_timeout is not None:
        ready["start_timeout"] = svc.start_timeout
    if ready:
        out["ready"] = ready
    if svc.kind == "oneshot" and svc.down is None:
        out.update(oneshot=True, restart="never", essential=essential)
    elif svc.kind == "oneshot":  # up, then stays up until stopped: down (UP_DOWN)
        out.update(restart="never", essential=essential, ready={"notification_fd": 3})
    for key in ("stop_signal", "stop_timeout", "finish_timeout"):
        if getattr(svc, key) is not None:
            out[key] = getattr(svc, key)
    return out


def _put(path: str, kind: str, value: str) -> None:
    if kind == "link":
        os.symlink(value, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def write(
    plan: Plan,
    root: str,
    out: str,
    finish_dirs: list[str],
    essential: bool,
    execlineb: Optional[str],
    legacy_root: str = "/etc/services.d",
    as_is: Optional[dict[str, str]] = None,
) -> Written:
    """Write plan (its sources under root, its legacy longruns under legacy_root) to
    out, made fresh; SourceError when a oneshot needs execlineb and there is none."""
    scripts = {}
    for svc in plan.services:  # check every command before writing anything
        if svc.up is not None:
            scripts[svc.name] = script(svc.up, f"{root}/{svc.name}/up", execlineb)
        if svc.down is not None:
            scripts[svc.name + "/down"] = script(svc.down, f"{root}/{svc.name}/down", execlineb)
    if os.path.lexists(out):
        shutil.rmtree(out)
    written = Written(os.path.join(out, "services"), os.path.join(out, "finish.d"))
    os.mkdir(out, 0o755)
    for directory in (written.services, written.finish, os.path.join(out, "scripts")):
        os.mkdir(directory, 0o755)
    for svc in plan.services:
        _write_service(svc, root, out, scripts, essential)
    for svc in plan.legacy:
        why = (as_is or {}).get(svc.name)
        if why is None:
            _write_legacy(svc, legacy_root, written.services)
        else:
            os.symlink(
                os.path.join(legacy_root, svc.name), os.path.join(written.services, svc.name)
            )
            written.warnings.append(f"{legacy_root}/{svc.name}: read as it is, not started "
                                    f"after the user bundle ({why})")  # fmt: skip
    for n, directory in enumerate(finish_dirs):
        _link_scripts(directory, written.finish, f"b{n}-")
    return written


def _python() -> Optional[str]:
    """The Python that runs pyinit, for UP_DOWN (a shebang line takes one short
    path without blanks; else the /bin/sh form is written)."""
    exe = sys.executable or ""
    if exe.startswith("/") and len(exe) < 200 and exe.isprintable() and " " not in exe:
        return exe
    return None


# A oneshot with a `down`, as s6-rc runs it: `up`; if it failed, exit with its code
# (not up: no down); else ready on fd 3 and wait for the stop signal (pyinit sends
# it once nothing that depends on it runs: reverse dependency order), then exec
# `down`. A stop asked while `up` runs waits for `up`, as s6-rc's does.
UP_DOWN = """import os
import signal
import sys

up, down = {up!r}, {down!r}
mask = signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}})
pid = os.fork()
if pid == 0:
    try:
        os.closerange(3, 4)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.execv(up, [up])
    finally:
        os._exit(127)
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
if code != 0:
    sys.exit(code if code > 0 else 128 - code)
os.write(3, b"\\n")
os.close(3)
signal.sigwait({{signal.SIGTERM}})
signal.pthread_sigmask(signal.SIG_SETMASK, mask)
os.execv(down, [down])
"""
UP_DOWN_SH = """pid=
trap 'stop=1; [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null' TERM
{up} 3>&-
code=$?
[ "$code" = 0 ] || exit "$code"
echo >&3
exec 3>&-
while [ -z "$stop" ]; do
    sleep 86400 & pid=$!
    [ -z "$stop" ] || kill -9 "$pid" 2>/dev/null
    wait "$pid"
done
kill -9 "$pid" 2>/dev/null
exec {down}
"""


def _up_down(name: str, scripts: dict, out: str) -> str:
    """The run script of a oneshot with a `down` (UP_DOWN)."""
    paths = []
    for key in (name, name + "/down"):
        kind, value = scripts[key]
        if kind == "text":
            value = os.path.join(out, "scripts", key.replace("/", "."))
            _put(value, "text", scripts[key][1])
        paths.append(value)
    python = _python()
    if python is None:
        up, down = (shlex.quote(p) for p in paths)
        return "#!/bin/sh\n" + UP_DOWN_SH.format(up=up, down=down)
    return f"#!{python} -I\n" + UP_DOWN.format(up=paths[0], down=paths[1])


def _write_legacy(svc: Planned, legacy_root: str, services: str) -> None:
    """An /etc/services.d longrun as s6-overlay's services-up copies it: its run,
    finish, log and notification-fd (and its down file), started after `user`."""
    source = os.path.join(legacy_root, svc.name)
    here = os.path.join(services, svc.name)
    os.mkdir(here, 0o755)
    for name in LEGACY_FILES:
        if os.path.lexists(os.path.join(source, name)):
            os.symlink(os.path.join(source, name), os.path.join(here, name))
    if os.path.lexists(os.path.join(source, "down")):
        _put(os.path.join(here, "down"), "text", "")
    settings = {"working_directory": source}
    if svc.requires:
        settings["requires"] = svc.requires
    _put(os.path.join(here, "service.yaml"), "text", json.dumps(settings, indent=1) + "\n")
    os.chmod(os.path.join(here, "service.yaml"), 0o644)


def _write_service(svc: Planned, root: str, out: str, scripts: dict, essential: bool) -> None:
    here = os.path.join(out, "services", svc.name)
    source = os.path.join(root, svc.name)
    os.mkdir(here, 0o755)
    if svc.kind == "longrun":
        os.symlink(os.path.join(source, "run"), os.path.join(here, "run"))
        if svc.has_finish:
            os.symlink(os.path.join(source, "finish"), os.path.join(here, "finish"))
        if svc.logger is not None:
            os.mkdir(os.path.join(here, "log"), 0o755)
            os.symlink(os.path.join(root, svc.logger, "run"), os.path.join(here, "log", "run"))
    elif svc.name + "/down" in scripts:
        _put(os.path.join(here, "run"), "text", _up_down(svc.name, scripts, out))
    else:
        kind, value = scripts[svc.name]
        _put(os.path.join(here, "run"), kind, value)
    text = json.dumps(settings(svc, source, essential), indent=1, sort_keys=True)
    _put(os.path.join(here, "service.yaml"), "text", text + "\n")
    os.chmod(os.path.join(here, "service.yaml"), 0o644)


def _link_scripts(directory: str, finish: str, prefix: str) -> None:
    """Links to the executables of directory (cont-finish.d), in lexical order."""
    from pyinit.runtime.scripts import executables

    for path in executables(directory):
        os.symlink(path, os.path.join(finish, prefix + os.path.basename(path)))
