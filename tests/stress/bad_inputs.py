"""The table of bad inputs in docs/reliability.md, produced by running each one.

`python tests/stress/bad_inputs.py` prints the table, `--write` puts it into
docs/reliability.md, `--check` fails when the doc is out of date. Each case runs for
real: pyinit (as a subreaper, with the bad file in place or the bad flag), svctl against
a running pyinit, or a raw line on its control socket. Paths under the scratch dir are
shown as the defaults they stand for (/etc/service/NAME, /run/pyinit, /etc/pyinit.yaml).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
PY = sys.executable


@dataclass
class Case:
    area: str
    shown: str  # the bad input, as a user would write it
    kind: str  # pyinit | svctl | socket | setuser
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path -> text ("+x" mode, "->" link)
    line: bytes = b""  # socket: what is sent
    stdout: str = ""  # svctl, tool: "broken" (reader gone), "closed" or "full" (/dev/full)


def ALIAS_BOMB(levels: int) -> str:  # noqa: N802 - reads as the constant it stands for
    """Issue 17's billion laughs: a list of `levels` lists, each 9 aliases of the last."""
    text = "  - &a [" + ",".join(["laugh"] * 9) + "]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"[: levels - 1]):
        text += f"  - &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def supervisord_case(shown: str, conf: str) -> Case:
    """`supervisord -c FILE` on a supervisord.conf of this text (pyinit's personality)."""
    code = (
        "import os, sys, tempfile\n"
        "path = os.path.join(tempfile.mkdtemp(), 'supervisord.conf')\n"
        f"open(path, 'w').write({conf!r})\n"
        "sys.argv = ['supervisord', '-c', path]\n"
        "from pyinit.cli.supervisord import main\n"
        "main()\n"
    )
    return Case("supervisord.conf", shown, "tool", args=["-c", code])
S6_RC = "etc/s6-overlay/s6-rc.d/"
LONGRUN = {"a/type": "longrun", "a/run": "+x#!/bin/sh\nexec sleep 30\n", "user/contents.d/a": ""}
S6_SVC = "from pyinit.cli.s6_svc import main; main()"
S6_SVSTAT = "from pyinit.cli.s6_svstat import main; main()"


def s6_case(shown: str, files: dict[str, str], env: dict[str, str] | None = None) -> Case:
    """`/init true` on an s6-rc.d tree (files relative to it) and S6_* variables."""
    placed = {S6_RC + rel: text for rel, text in files.items()}
    return Case("s6-rc.d" if files else "S6_* variable", shown, "s6", env=env or {}, files=placed)


def yaml_case(shown: str, text: str, area: str = "service.yaml") -> Case:
    return Case(area, shown, "pyinit", files={"etc/service/web/service.yaml": text})


CASES = [
    # --- pyinit flags and environment
    Case("flag", "`--kill-timeout abc`", "pyinit", args=["--kill-timeout", "abc"]),
    Case("flag", "`--kill-timeout -1`", "pyinit", args=["--kill-timeout", "-1"]),
    Case("flag", "`--log-mode syslog`", "pyinit", args=["--log-mode", "syslog"]),
    Case("flag", "`--health-listen nowhere`", "pyinit", args=["--health-listen", "nowhere"]),
    Case("flag", "`--frobnicate`", "pyinit", args=["--frobnicate"]),
    Case(
        "environment", "`KILL_PROCESS_TIMEOUT=soon`", "pyinit", env={"KILL_PROCESS_TIMEOUT": "soon"}
    ),
    Case("environment", "`PYINIT_LOG_FORMAT=xml`", "pyinit", env={"PYINIT_LOG_FORMAT": "xml"}),
    Case("main command", "`pyinit -- /nonexistent`", "pyinit", args=["--", "/nonexistent"]),
    Case(
        "main command",
        "`pyinit -- ./notes.txt` (not executable)",
        "pyinit",
        args=["--", "./notes.txt"],
        files={"notes.txt": "hello"},
    ),
    # --- pyinit.yaml
    Case(
        "pyinit.yaml",
        "`wait_for_service: true` (typo)",
        "pyinit",
        files={"etc/pyinit.yaml": "wait_for_service: true\n"},
    ),
    Case(
        "pyinit.yaml",
        "`defaults: {restart: sometimes}`",
        "pyinit",
        files={"etc/pyinit.yaml": "defaults:\n  restart: sometimes\n"},
    ),
    Case(
        "pyinit.yaml",
        "`services_ready_timeout: soon`",
        "pyinit",
        files={"etc/pyinit.yaml": "services_ready_timeout: soon\n"},
    ),
    # --- service.yaml
    yaml_case("`restrat: always` (typo)", "restrat: always\n"),
    yaml_case("`restart: sometimes`", "restart: sometimes\n"),
    yaml_case("`stop_signal: FOO`", "stop_signal: FOO\n"),
    yaml_case("`umask: '999'`", "umask: '999'\n"),
    yaml_case("`nice: 30`", "nice: 30\n"),
    yaml_case("`rlimits: {nofiles: 10}`", "rlimits:\n  nofiles: 10\n"),
    yaml_case("`rlimits: {nofile: [10, 5]}`", "rlimits:\n  nofile: [10, 5]\n"),
    yaml_case("`backoff: {factor: 0.5}`", "backoff:\n  factor: 0.5\n"),
    yaml_case("`stop_timeout: -1`", "stop_timeout: -1\n"),
    yaml_case("`user: nosuchuser`", "user: nosuchuser\n"),
    yaml_case("`environment: {1X: a}`", "environment:\n  1X: a\n"),
    yaml_case("`log: {mode: fil}`", "log:\n  mode: fil\n"),
    yaml_case("`log: {mode: file, max_size: 1024}`", "log:\n  mode: file\n  max_size: 1024\n"),
    yaml_case("`ready: {tcp: db:5432}` (a host name)", "ready:\n  tcp: db:5432\n"),
    yaml_case("`ready: {http: https://127.0.0.1/}`", "ready:\n  http: https://127.0.0.1/\n"),
    yaml_case("`oneshot: true` with `ready`", "oneshot: true\nready:\n  tcp: 127.0.0.1:80\n"),
    yaml_case("`liveness: {interval: 5}` (no probe)", "liveness:\n  interval: 5\n"),
    yaml_case("`max_restarts: -1`", "max_restarts: -1\n"),
    yaml_case("a list instead of a mapping", "- restart\n- always\n"),
    yaml_case("broken YAML `restart: [always`", "restart: [always\n"),
    yaml_case("`requires: [db]`, no such service", "requires: [db]\n", area="dependencies"),
    Case(
        "dependencies",
        "`a` requires `b`, `b` requires `a`",
        "pyinit",
        files={
            "etc/service/a/run": "+x#!/bin/sh\nexec sleep 5\n",
            "etc/service/a/service.yaml": "requires: [b]\n",
            "etc/service/b/run": "+x#!/bin/sh\nexec sleep 5\n",
            "etc/service/b/service.yaml": "requires: [a]\n",
        },
    ),
    yaml_case("`env_file: app.env`, missing", "env_file: app.env\n", area="service start"),
    Case(
        "service dir",
        "`run` not executable",
        "pyinit",
        files={"etc/service/web/run": "#!/bin/sh\nexec sleep 5\n"},
    ),
    # --- svctl
    Case("svctl", "`svctl status nosuch`", "svctl", args=["status", "nosuch"]),
    Case("svctl", "`svctl frobnicate`", "svctl", args=["frobnicate"]),
    Case("svctl", "`svctl -w soon restart web`", "svctl", args=["-w", "soon", "restart", "web"]),
    Case("svctl", "`svctl logs`", "svctl", args=["logs"]),
    Case("svctl", "`svctl logs -n all web`", "svctl", args=["logs", "-n", "all", "web"]),
    Case(
        "svctl",
        "`svctl shutdown-container --exit-code 256`",
        "svctl",
        args=["shutdown-container", "--exit-code", "256"],
    ),
    Case(
        "svctl",
        "`svctl status` with no pyinit running",
        "svctl",
        args=["--run-dir", "/nonexistent", "status"],
    ),
    # --- the control socket
    Case("control socket", "`hello` (not JSON)", "socket", line=b"hello\n"),
    Case(
        "control socket", '`{"v": 2, "cmd": "ping"}`', "socket", line=b'{"v": 2, "cmd": "ping"}\n'
    ),
    Case(
        "control socket",
        '`{"v": 1, "cmd": "reboot"}`',
        "socket",
        line=b'{"v": 1, "cmd": "reboot"}\n',
    ),
    Case(
        "control socket",
        '`{"v": 1, "cmd": "control", "action": "z"}`',
        "socket",
        line=b'{"v": 1, "cmd": "control", "action": "z", "services": ["web"]}\n',
    ),
    Case(
        "control socket",
        '`{"v": 1, "cmd": "status", "services": "web"}`',
        "socket",
        line=b'{"v": 1, "cmd": "status", "services": "web"}\n',
    ),
    Case("control socket", "a 70000-byte line", "socket", line=b"x" * 70000 + b"\n"),
    # --- my_init's flag (phusion): only the `my_init` name takes it
    Case(
        "flag",
        "`pyinit --enable-insecure-key` (my_init's flag)",
        "pyinit",
        args=["--enable-insecure-key"],
    ),
    # --- issue 18.8 (dropin): sv's command syntax in svctl
    Case(
        "svctl", "`svctl check -w 1` (option after the command)", "svctl", args=["check", "-w", "1"]
    ),
    Case("svctl", "`svctl help` (sv's first-letter form, no SERVICE)", "svctl", args=["help"]),
    Case("svctl", "`svctl rload web` (r: whole words only, as sv)", "svctl", args=["rload", "web"]),
    # --- paths root must not follow (issue 17: a link where a service user could put one)
    Case(
        "log dir",
        "`current` in a file-mode log dir is a symlink",
        "pyinit",
        files={
            "etc/service/web/service.yaml": "log: {mode: file, dir: logs}\n",
            "secret": "root only\n",
            "etc/service/web/logs/current": "->secret",
        },
    ),
    Case(
        "service dir",
        "`supervise/lock` is a symlink",
        "pyinit",
        files={"etc/service/web/supervise/lock": "->secret", "secret": "root only\n"},
    ),
    Case(
        "env dir",
        "a variable file is a symlink",
        "pyinit",
        files={"env/LEAK": "->secret", "secret": "root only\n"},
    ),
    # --- broken or closed output (issue 17: every tool on a broken stdout)
    Case(
        "output",
        "`svctl status \\| head -0` (reader gone)",
        "svctl",
        args=["status"],
        stdout="broken",
    ),
    Case(
        "output", "`svctl tree \\| head -0` (reader gone)", "svctl", args=["tree"], stdout="broken"
    ),
    Case("output", "`svctl status >/dev/full`", "svctl", args=["status"], stdout="full"),
    Case("output", "`svctl status >&-`", "svctl", args=["status"], stdout="closed"),
    Case(
        "output",
        "`setuser --help \\| head -0` (reader gone)",
        "tool",
        args=["-m", "pyinit.cli.setuser_main", "--help"],
        stdout="broken",
    ),
    Case(
        "output",
        "`pyinit-env --help >/dev/full`",
        "tool",
        args=["-c", "from pyinit.cli.pyinit_env import main; main()", "--help"],
        stdout="full",
    ),
    # --- bounded and strict input (issue 17 findings 2, 3 and 5; issue 18 item 10)
    yaml_case("288-byte alias bomb under `restart:` (7 levels x 9)", "restart:\n" + ALIAS_BOMB(7)),
    yaml_case("360-byte alias bomb under `restart:` (9 levels x 9)", "restart:\n" + ALIAS_BOMB(9)),
    yaml_case("`a: &x [1, *x]` (a recursive alias)", "a: &x [1, *x]\n"),
    yaml_case("a 70 KiB service.yaml", "# " + "x" * 70 * 1024 + "\n"),
    yaml_case(
        "`restart: sometimes`, `nice: 30`, `usr: x` (three problems)",
        "restart: sometimes\nnice: 30\nusr: x\n",
    ),
    yaml_case('`user: "٠"` (an Arabic-Indic zero)', 'user: "٠"\n'),
    yaml_case("`user: 99999999999`", "user: 99999999999\n"),
    Case(
        "environment",
        "`/etc/container_environment/CA_BUNDLE` of 200 KiB",
        "pyinit",
        files={"env/CA_BUNDLE": "-----BEGIN CERTIFICATE-----\n" * 7300},
    ),
    Case(
        "service start",
        "`env_file` with a 200 KiB value",
        "pyinit",
        files={
            "etc/service/web/service.yaml": "env_file: app.env\n",
            "etc/service/web/app.env": "BUNDLE=" + "c" * 200 * 1024 + "\n",
        },
    ),
    Case("environment", "`KILL_PROCESS_TIMEOUT=٣`", "pyinit", env={"KILL_PROCESS_TIMEOUT": "٣"}),
    Case("setuser", "`setuser 'nobody:٠' id`", "setuser", args=["nobody:٠", "id"]),
    Case("setuser", "`setuser 4294967296 id`", "setuser", args=["4294967296", "id"]),
    Case("setuser", "`setuser ² id`", "setuser", args=["²", "id"]),
    Case("svctl", "`svctl scale web ²`", "svctl", args=["scale", "web", "²"]),
    Case(
        "control socket",
        '`{"v": true, "cmd": "ping"}`',
        "socket",
        line=b'{"v": true, "cmd": "ping"}\n',
    ),
    Case(
        "control socket",
        "`status` naming 1001 services",
        "socket",
        line=json.dumps({"v": 1, "cmd": "status", "services": ["web"] * 1001}).encode() + b"\n",
    ),
    # --- review-sec: the adversarial pass over issues 17 and 23
    yaml_case(
        "`stop_timeout: 1:59:...:59.5` (a sexagesimal float too large, 45 KB)",
        "stop_timeout: 1" + ":59" * 15000 + ".5\n",
    ),
    yaml_case("`stop_timeout: 2001-13-45` (no such date)", "stop_timeout: 2001-13-45\n"),
    Case(
        "service start",
        "`env_file` with a NUL byte in a value",
        "pyinit",
        files={
            "etc/service/web/service.yaml": "env_file: app.env\n",
            "etc/service/web/app.env": "A=x\0y\n",
        },
    ),
    # --- ops-view: status tables and merged logs (issue 21)
    Case("svctl", "`svctl logs web nosuch`", "svctl", args=["logs", "web", "nosuch"]),
    Case("svctl", "`svctl up -l web`", "svctl", args=["up", "-l", "web"]),
    # --- supervisord personality (issue 24)
    Case(
        "supervisord.conf",
        "`supervisord -c /nonexistent.conf`",
        "tool",
        args=[
            "-c",
            "import sys; sys.argv = ['supervisord', '-c', '/nonexistent.conf']; "
            "from pyinit.cli.supervisord import main; main()",
        ],  # fmt: skip
    ),
    supervisord_case(
        "`autostart=maybe`", "[supervisord]\n[program:a]\ncommand=a\nautostart=maybe\n"
    ),
    supervisord_case(
        "`command=%(ENV_NOPE)s`", "[supervisord]\n[program:a]\ncommand=%(ENV_NOPE)s\n"
    ),
    supervisord_case(
        "`command=%(x)99999999s`", "[supervisord]\n[program:a]\ncommand=%(x)99999999s\n"
    ),
    supervisord_case(
        "`numprocs=2` without `%(process_num)`",
        "[supervisord]\n[program:a]\ncommand=a\nnumprocs=2\n",
    ),
    supervisord_case("`stopsignal=FOO`", "[supervisord]\n[program:a]\ncommand=a\nstopsignal=FOO\n"),
    supervisord_case(
        "`environment=A` (no value)", "[supervisord]\n[program:a]\ncommand=a\nenvironment=A\n"
    ),
    supervisord_case(
        "`[program:a+b]` (not a service name)", "[supervisord]\n[program:a+b]\ncommand=a\n"
    ),
    supervisord_case("`[group:g]` naming no program", "[supervisord]\n[group:g]\nprograms=nope\n"),
    supervisord_case(
        "`startsecs=` 40 digits",
        "[supervisord]\n[program:a]\ncommand=a\nstartsecs=" + "9" * 40 + "\n",
    ),
    # --- sched: scheduled jobs (issue 22)
    yaml_case("`schedule: '61 * * * *'`", "schedule: '61 * * * *'\n"),
    yaml_case("`schedule: '0 0 30 2 *'` (never runs)", "schedule: '0 0 30 2 *'\n"),
    yaml_case("`schedule: '@reboot'`", "schedule: '@reboot'\n"),
    yaml_case("`every: 0s`", "every: 0s\n"),
    yaml_case("`timezone: Mars/Olympus`", "schedule: '@daily'\ntimezone: Mars/Olympus\n"),
    yaml_case("`schedule` with `restart: always`", "schedule: '@daily'\nrestart: always\n"),
    yaml_case("`every` with `ready: {tcp: 80}`", "every: 5m\nready: {tcp: 80}\n"),
    yaml_case("`schedule` with `instances: 2`", "schedule: '@daily'\ninstances: 2\n"),
    Case("svctl", "`svctl run` (no service)", "svctl", args=["run"]),
    Case("svctl", "`svctl run web` (not a scheduled job)", "svctl", args=["run", "web"]),
    # --- s6ov: s6-overlay v3's /init reading /etc/s6-overlay/s6-rc.d (issue 24)
    s6_case("`type` `daemon`", {"a/type": "daemon\n"}),
    s6_case("`dependencies.d/nope`, not defined", {**LONGRUN, "a/dependencies.d/nope": ""}),
    s6_case(
        "a dependency cycle",
        {
            **LONGRUN,
            "a/dependencies.d/b": "",
            "b/type": "oneshot",
            "b/up": "true",
            "b/dependencies.d/a": "",
        },
    ),  # fmt: skip
    s6_case("`notification-fd` `2`", {**LONGRUN, "a/notification-fd": "2"}),
    s6_case("`timeout-up` `soon`", {**LONGRUN, "a/timeout-up": "soon"}),
    s6_case("`down-signal` `SIGFOO`", {**LONGRUN, "a/down-signal": "SIGFOO"}),
    s6_case(
        "`producer-for` without the consumer's `consumer-for`",
        {**LONGRUN, "a/producer-for": "b", "b/type": "longrun", "b/run": LONGRUN["a/run"]},
    ),
    s6_case("`up` of 65 KiB", {"a/type": "oneshot", "a/up": "x" * 66560, "user/contents.d/a": ""}),
    s6_case("`type` of 1 MiB", {"a/type": "longrun" + " " * 2**20, "user/contents.d/a": ""}),
    s6_case("service dir `a@1`", {"a@1/type": "longrun", "a@1/run": LONGRUN["a/run"]}),
    s6_case("`S6_BEHAVIOUR_IF_STAGE2_FAILS=often`", {}, {"S6_BEHAVIOUR_IF_STAGE2_FAILS": "often"}),
    s6_case(
        "`S6_CMD_WAIT_FOR_SERVICES_MAXTIME=soon`", {}, {"S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "soon"}
    ),  # fmt: skip
    s6_case("`S6_LOGGING=1`", {}, {"S6_LOGGING": "1"}),
    # --- s6fix: /etc/services.d after the user bundle (legacy-services)
    s6_case("`user` service depending on `legacy-services`", {
        **LONGRUN, "a/dependencies.d/legacy-services": "", "../../services.d/x/run": "+x#!/bin/sh\n"
    }),  # fmt: skip
    s6_case("`/etc/services.d/bad name`", {"../../services.d/bad name/run": "+x#!/bin/sh\n"}),
    Case("s6-svc", "`s6-svc -b svc`", "tool", args=["-c", S6_SVC, "-b", "svc"]),
    Case("s6-svstat", "`s6-svstat -o pgid svc`", "tool", args=["-c", S6_SVSTAT, "-o", "pgid", "x"]),
    # --- jobfix: scheduled jobs (issue 22): a jitter that would push a run past the next
    yaml_case("`every: 1m` with `jitter: 120`", "every: 1m\njitter: 120\n"),
    # --- ops-check: exact long options, svctl's hint (issue 21)
    Case("flag", "`--kill-t 3` (an abbreviation)", "pyinit", args=["--kill-t", "3"]),
    Case("svctl", "`svctl rescna`", "svctl", args=["rescna"]),
    # --- ops-events: pyinit.yaml's hooks, `svctl events`
    Case(
        "pyinit.yaml",
        "`hooks: [{on: [failed], command: alert}]` (YAML reads `on` as true)",
        "pyinit",
        files={"etc/pyinit.yaml": "hooks:\n  - on: [failed]\n    command: alert\n"},
    ),
    Case(
        "pyinit.yaml",
        "`hooks: [{events: [crashed], command: alert}]`",
        "pyinit",
        files={"etc/pyinit.yaml": "hooks:\n  - events: [crashed]\n    command: alert\n"},
    ),
    Case(
        "pyinit.yaml",
        "`hooks: [{events: [failed]}]` (no command)",
        "pyinit",
        files={"etc/pyinit.yaml": "hooks:\n  - events: [failed]\n"},
    ),
    Case(
        "pyinit.yaml",
        "`hooks: [{events: [failed], command: alert, timeout: 0}]`",
        "pyinit",
        files={"etc/pyinit.yaml": "hooks:\n  - {events: [failed], command: alert, timeout: 0}\n"},
    ),
    Case("svctl", "`svctl events --json`", "svctl", args=["events", "--json"]),
    Case(
        "control socket",
        '`{"v": 1, "cmd": "events", "services": [""]}`',
        "socket",
        line=b'{"v": 1, "cmd": "events", "services": [""]}\n',
    ),
    # --- evbridge: supervisord [eventlistener:x] through the bridge (issue 24)
    supervisord_case(
        "`[eventlistener:x] events=PROCESS_STATE_CRASHED`",
        "[supervisord]\n[eventlistener:x]\ncommand=l\nevents=PROCESS_STATE_CRASHED\n",
    ),
    supervisord_case(
        "`[eventlistener:x]` without `events=`", "[supervisord]\n[eventlistener:x]\ncommand=l\n"
    ),
    supervisord_case(
        "`[eventlistener:x] buffer_size=0`",
        "[supervisord]\n[eventlistener:x]\ncommand=l\nevents=TICK_5\nbuffer_size=0\n",
    ),
    supervisord_case(
        "`[eventlistener:x] buffer_size=lots`",
        "[supervisord]\n[eventlistener:x]\ncommand=l\nevents=TICK_5\nbuffer_size=lots\n",
    ),
]

RUN = "#!/bin/sh\nexec sleep 30\n"


def place(top: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("->"):  # a symlink to top/TARGET
            path.symlink_to(top / text[2:])
            continue
        executable = text.startswith("+x")
        path.write_text(text[2:] if executable else text)
        if executable:
            path.chmod(0o755)


def pyinit_argv(top: Path) -> list[str]:
    none = str(top / "none")
    return [
        PY,
        "-m",
        "pyinit",
        "--skip-startup-files",
        "--env-dir",
        str(top / "env"),
        "--pre-shutdown-dir",
        none,
        "--post-shutdown-dir",
        none,
        "--cont-finish-dir",
        none,
        "--run-dir",
        str(top / "run" / "pyinit"),
        "--config",
        str(top / "etc/pyinit.yaml"),
        "--service-dir",
        str(top / "etc/service"),
        "--no-wait-for-services",
    ]


def env_for(case_env: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYINIT_") and k not in ("KILL_PROCESS_TIMEOUT",)
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(case_env)
    return env


def clean(text: str, top: Path) -> str:
    text = text.replace(str(top) + "/", "/").replace(str(top), "/")
    return re.sub(r"\(pid \d+\)", "(pid N)", text)


def answer_lines(stderr: str) -> list[str]:
    """What pyinit said about the bad input (not its routine info lines)."""
    keep = [
        ln
        for ln in stderr.splitlines()
        if ln.startswith(("pyinit: error", "pyinit: warning", "svctl:", "fail:"))
        or ln.startswith(("setuser:", "pyinit-env:", "s6-svc:", "s6-svstat:"))
        or "Traceback" in ln
        or ln.startswith(("usage:", "Error"))
    ]
    return [ln for ln in keep if not ln.startswith("usage:")]


def run_pyinit(case: Case, top: Path) -> tuple[str, int]:
    (top / "etc/service").mkdir(parents=True)
    files = dict(case.files)
    if any(k.startswith("etc/service/web/") for k in files) and "etc/service/web/run" not in files:
        files["etc/service/web/run"] = "+x" + RUN
    place(top, files)
    args = case.args if "--" in case.args else [*case.args, "--", "sleep", "0.5"]
    r = subprocess.run(
        [*pyinit_argv(top), *args],
        cwd=top,
        capture_output=True,
        text=True,
        env=env_for(case.env),
        timeout=60,
    )
    return clean(" / ".join(answer_lines(r.stderr)), top), r.returncode


def run_s6(case: Case, top: Path) -> tuple[str, int]:
    """pyinit as s6-overlay's /init, `/init true`, the tree under top/etc."""
    place(top, case.files)
    none = str(top / "none")
    env = {"PYINIT_S6_ETC": str(top / "etc"), "PYINIT_RUN_DIR": str(top / "run" / "pyinit"),
           "PYINIT_ENV_DIR": str(top / "env"), "PYINIT_CONFIG": none, "PYINIT_INIT_DIR": none,
           "PYINIT_CONT_INIT_DIR": none, "PYINIT_CONT_FINISH_DIR": none, "PYINIT_RC_LOCAL": none,
           "PYINIT_SERVICE_DIR": none, **case.env}  # fmt: skip
    r = subprocess.run(
        [PY, "-c", "from pyinit.cli.s6_init import main; main()", "true"],
        cwd=top,
        capture_output=True,
        text=True,
        env=env_for(env),
        timeout=60,
    )
    return clean(" / ".join(answer_lines(r.stderr)), top), r.returncode


def run_tool(argv: list[str], case: Case, top: Path) -> tuple[str, int]:
    """Run a command-line tool with case.stdout: captured, a pipe whose reader is
    gone, closed, or /dev/full; what it said (stderr first) and its exit code."""
    if case.stdout == "closed":
        argv = ["sh", "-c", '"$@" >&-', "sh", *argv]
    out: int | None = subprocess.PIPE
    if case.stdout == "broken":
        r, out = os.pipe()
        os.close(r)
    elif case.stdout == "full":
        out = os.open("/dev/full", os.O_WRONLY)
    try:
        p = subprocess.run(
            argv, stdout=out, stderr=subprocess.PIPE, text=True, env=env_for({}), timeout=30
        )
    finally:
        if out is not None and out != subprocess.PIPE:
            os.close(out)
    said = answer_lines(p.stderr) or (p.stdout or "").strip().splitlines()[:1]
    return clean(" / ".join(said), top), p.returncode


def run_setuser(case: Case) -> tuple[str, int]:
    r = subprocess.run(
        [PY, "-m", "pyinit.cli.setuser_main", *case.args],
        capture_output=True,
        text=True,
        env=env_for({}),
        timeout=30,
    )
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("setuser:") or "Traceback" in ln]
    return " / ".join(said), r.returncode


class Running:
    """One pyinit (subreaper) with a service `web`, for the svctl and socket cases."""

    def __init__(self, top: Path) -> None:
        place(top, {"etc/service/web/run": LONGRUN["a/run"]})
        self.top = top
        self.sock = top / "run" / "pyinit" / "control.sock"
        self.proc = subprocess.Popen(
            [*pyinit_argv(top), "--", "sleep", "300"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env_for({}),
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not self.answers():  # the socket file appears at bind(), before listen()
            if time.monotonic() > deadline or self.proc.poll() is not None:
                try:
                    self.stop()
                except ProcessLookupError:
                    pass
                raise RuntimeError("pyinit's control socket never answered a ping")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(str(self.sock))
                s.sendall(b'{"v":1,"cmd":"ping"}\n')
                return b'"ok":true' in s.recv(65536).replace(b" ", b"")
        except OSError:
            return False

    def svctl(self, case: Case) -> tuple[str, int]:
        args = (
            case.args
            if "--run-dir" in case.args
            else ["--run-dir", str(self.top / "run" / "pyinit"), *case.args]
        )
        return run_tool(
            [PY, "-c", "from pyinit.cli.svctl import main; main()", *args], case, self.top
        )

    def send(self, case: Case) -> tuple[str, int]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.sock))
            try:
                s.sendall(case.line)
            except OSError:
                pass
            reply = b""
            while b"\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        one = json.loads(reply.split(b"\n", 1)[0])
        return json.dumps(one, separators=(", ", ": ")), 0

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def run_all(cases: list[Case] = CASES) -> list[tuple[Case, str, int]]:
    out = []
    scratch = Path(tempfile.mkdtemp(prefix="pyinit-bad-"))
    server = None
    try:
        for i, case in enumerate(cases):
            if case.kind == "pyinit":
                top = scratch / f"c{i}"
                top.mkdir()
                out.append((case, *run_pyinit(case, top)))
                continue
            if case.kind == "tool":
                out.append((case, *run_tool([PY, *case.args], case, scratch)))
                continue
            if case.kind == "s6":
                top = scratch / f"c{i}"
                top.mkdir()
                out.append((case, *run_s6(case, top)))
                continue
            if case.kind == "setuser":
                out.append((case, *run_setuser(case)))
                continue
            if server is None:
                server = Running(scratch / "server")
            said = server.svctl(case) if case.kind == "svctl" else server.send(case)
            out.append((case, *said))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def table(results: list[tuple[Case, str, int]]) -> str:
    rows = [
        "| # | where | bad input | what pyinit answered | exit |",
        "| ---: | --- | --- | --- | ---: |",
    ]
    for i, (case, said, code) in enumerate(results, 1):
        said = said.replace("|", "\\|") or "(nothing)"
        exit_code = "-" if case.kind == "socket" else str(code)
        rows.append(f"| {i} | {case.area} | {case.shown} | `{said}` | {exit_code} |")
    return "\n".join(rows) + "\n"


def replace_table(doc: str, text: str) -> str:
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{text}{END}{tail}"


def main() -> int:
    text = table(run_all())
    if "--write" in sys.argv or "--check" in sys.argv:
        doc = DOC.read_text()
        new = replace_table(doc, text)
        if "--check" in sys.argv:
            if new != doc:
                print(
                    "docs/reliability.md is out of date: run "
                    "`python tests/stress/bad_inputs.py --write`",
                    file=sys.stderr,
                )
                return 1
            return 0
        DOC.write_text(new)
        print(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
