"""s6-overlay v3's S6_* variables as pyinit flags: pure (environ in, flags and
warnings out). docs/migration.md#from-s6-overlay lists each one and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from pyinit.core import bounds

MAX_MS = bounds.MAX_SECONDS * 1000
DEFAULT_SHUTDOWN = 9.5  # pyinit's --shutdown-timeout default (config.Config)
FOREVER = str(bounds.MAX_SECONDS)  # "no limit": the longest timeout pyinit takes
# Set to anything but their default, these only get a warning: pyinit has no such thing.
UNSUPPORTED = {
    "S6_LOGGING": ("0", "the catch-all logger is not provided: output stays on stdout/stderr"),
    "S6_LOGGING_SCRIPT": ("", "the catch-all logger is not provided"),
    "S6_CATCHALL_USER": ("", "the catch-all logger is not provided"),
    "S6_FIX_ATTRS_HIDDEN": ("0", "/etc/fix-attrs.d is not read"),
    "S6_KILL_FINISH_MAXTIME": (
        "",
        "each shutdown script gets the kill timeout (S6_SERVICES_GRACETIME)",
    ),
    "S6_SYNC_DISKS": ("0", "pyinit does not sync filesystems"),
    "S6_CMD_USE_TERMINAL": ("0", "the main command always gets the terminal"),
    "S6_SERVICES_READYTIME": ("", "not needed: pyinit knows when a service started"),
}


@dataclass
class Settings:
    """What the S6_* variables ask for: pyinit flags, the stage-2 hook, CMD's argv0
    words, the tree's /etc, whether oneshot failures stop the container."""

    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hook: list[str] = field(default_factory=list)
    arg0: list[str] = field(default_factory=list)
    etc: str = "/etc"
    stop_on_failure: bool = False
    behaviour: int = 0  # S6_BEHAVIOUR_IF_STAGE2_FAILS: 0 silent, 1 warn, 2 stop


def _ms(env: Mapping[str, str], key: str, out: Settings) -> Optional[float]:
    text = env.get(key)
    if text is None or text == "":
        return None
    value = bounds.small_number(text.strip(), MAX_MS)
    if value is None:
        out.warnings.append(f"{key}={bounds.render(text)}: not a number of milliseconds; ignored")
        return None
    return value / 1000


def _seconds(value: float) -> str:
    return f"{value:g}" if value < 1e6 else str(int(value))


def settings(env: Mapping[str, str]) -> Settings:
    """The flags and settings env's S6_* variables ask for (PYINIT_* ones win: they
    are read after, by pyinit's own parser, only where no flag is given here)."""
    out = Settings()
    wait = _ms(env, "S6_CMD_WAIT_FOR_SERVICES_MAXTIME", out)
    if "PYINIT_SERVICES_READY_TIMEOUT" not in env:  # 0 or unset: wait for ever
        out.flags += ["--services-ready-timeout", _seconds(wait) if wait else FOREVER]
    grace = _ms(env, "S6_SERVICES_GRACETIME", out)
    if grace is not None and "KILL_PROCESS_TIMEOUT" not in env:
        out.flags += ["--kill-timeout", _seconds(grace)]
    kill = _ms(env, "S6_KILL_GRACETIME", out)
    if kill is not None and "KILL_ALL_PROCESSES_TIMEOUT" not in env:
        out.flags += ["--kill-all-timeout", _seconds(kill)]
    budget = (grace if grace is not None else 5.0) + (kill if kill is not None else 3.0) + 1.5
    if (
        (grace, kill) != (None, None)
        and budget > DEFAULT_SHUTDOWN
        and ("PYINIT_SHUTDOWN_TIMEOUT" not in env)
    ):
        out.flags += ["--shutdown-timeout", _seconds(min(budget, bounds.MAX_SECONDS))]
    _verbosity(env, out)
    # s6-overlay's scripts read it as `0$S6_BEHAVIOUR_IF_STAGE2_FAILS` (0 when unset)
    # and test -ne 0, -ge 2: any number of 2 or more stops the container
    text = env.get("S6_BEHAVIOUR_IF_STAGE2_FAILS", "").strip() or "0"
    behaviour = bounds.small_number(text, 10**18)
    if behaviour is None:
        out.warnings.append(
            f"S6_BEHAVIOUR_IF_STAGE2_FAILS={bounds.render(text)}: not a number; using 0"
        )
    out.behaviour = min(behaviour or 0, 2)
    out.stop_on_failure = out.behaviour == 2
    out.hook = env.get("S6_STAGE2_HOOK", "").split()
    out.arg0 = env.get("S6_CMD_ARG0", "").split()
    profile = env.get("S6_RUNTIME_PROFILE", "")
    if profile:
        if "/" in profile or profile in (".", ".."):
            out.warnings.append(
                f"S6_RUNTIME_PROFILE={bounds.render(profile)}: not a profile name; ignored"
            )
        else:
            out.etc = f"/etc/cont-profile.d/{profile}"
    for key, (default, why) in UNSUPPORTED.items():
        value = env.get(key)
        if value is not None and value.strip() not in (default, ""):
            out.warnings.append(f"{key}={bounds.render(value)}: ignored ({why})")
    return out


def _verbosity(env: Mapping[str, str], out: Settings) -> None:
    """S6_VERBOSITY (default 2): 0 and 1 print warnings and errors only, 3 and more
    add pyinit's debug lines."""
    text = env.get("S6_VERBOSITY", "").strip()
    level = bounds.small_number(text, 1000) if text else None
    if level is None:
        if text:
            out.warnings.append(f"S6_VERBOSITY={bounds.render(text)}: not a number; ignored")
        return
    if level < 2:
        out.flags.append("--quiet")
    elif level > 2:
        out.flags.append("-v")
