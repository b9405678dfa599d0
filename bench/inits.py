"""pyinit and its peers: how each is started as PID 1, which of its processes are
supervision (not services), and how to ask it for the status of its services."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bench.common import PY, PYINIT_BIN, comm, descendants

# Processes that belong to supervision, not to the services (runit and s6 run one
# supervisor per service; pyinit and supervisord are one process).
SUPERVISION_COMMS = {"runsvdir", "runsv", "s6-svscan", "s6-supervise"}


def pyinit_command(tree: Path | None = None) -> list[str]:
    """How pyinit is started: its installed launcher (`#!python -I`) in the bench venv,
    else `python -m pyinit`; for a baseline `tree`, a launcher of the same shape that
    puts the tree first on sys.path."""
    if tree is not None:
        return (
            [str(tree / "bin" / "pyinit")]
            if PYINIT_BIN
            else ["env", "-C", str(tree), PY, "-m", "pyinit"]
        )
    return [str(PYINIT_BIN / "pyinit")] if PYINIT_BIN else [PY, "-m", "pyinit"]


def pyinit_argv(work: Path, *flags: str, tree: Path | None = None) -> list[str]:
    none = str(work / "none")
    return [
        *pyinit_command(tree),
        "--skip-startup-files",
        "--config",
        none,
        "--env-dir",
        str(work / "env"),
        "--run-dir",
        str(work / "run"),
        "--pre-shutdown-dir",
        none,
        "--post-shutdown-dir",
        none,
        "--cont-finish-dir",
        none,
        *flags,
    ]


def supervisord_conf(work: Path, mnt: Path, names: Sequence[str]) -> Path:
    """supervisord running every service's ./run, restarting it whatever it exits with
    (startsecs=0: a run that exits is restarted, never given up as FATAL)."""
    lines = [
        "[supervisord]",
        f"logfile={work}/supervisord.log",
        f"pidfile={work}/sd.pid",
        "nodaemon=true",
        "minfds=16384",
        "minprocs=200",
        "loglevel=warn",
        "[unix_http_server]",
        f"file={work}/supervisor.sock",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{work}/supervisor.sock",
    ]
    for name in names:
        lines += [
            f"[program:{name}]",
            f"command={mnt}/{name}/run",
            f"directory={mnt}/{name}",
            "autorestart=true",
            "startsecs=0",
            "startretries=1000000",
            "stopsignal=TERM",
            "stopwaitsecs=5",
            "stdout_logfile=NONE",
            "stderr_logfile=NONE",
        ]
    path = work / "supervisord.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Init:
    name: str
    package: str  # the Debian package ("" for pyinit)
    binary: str
    # (work dir, command) -> argv, for inits that run a main command
    main: Callable[[Path, Sequence[str]], list[str]] | None = None
    # (work dir, mounted service dir, service names) -> argv, for supervisors
    supervise: Callable[[Path, Path, Sequence[str]], list[str]] | None = None
    # (work dir, service dir as seen from the host) -> the status command
    status: Callable[[Path, Path], list[str]] | None = None

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def supervision(self, pid1: int) -> list[int]:
        """PID 1 plus the per-service supervisors below it."""
        return [pid1, *(p for p in descendants(pid1) if comm(p) in SUPERVISION_COMMS)]


PYINIT = Init(
    "pyinit",
    "",
    "unshare",
    main=lambda w, cmd: [*pyinit_argv(w, "--skip-runit"), "--", *cmd],
    supervise=lambda w, mnt, names: pyinit_argv(w, "--service-dir", str(mnt)),
    status=lambda w, src: [str(Path(PY).parent / "svctl"), "--run-dir", str(w / "run"), "status"],
    # the working copy's svctl: the bench venv's launcher, else .venv's console script
)

PEERS = [
    Init("tini", "tini", "tini", main=lambda w, cmd: ["tini", "--", *cmd]),
    Init("dumb-init", "dumb-init", "dumb-init", main=lambda w, cmd: ["dumb-init", *cmd]),
    Init("catatonit", "catatonit", "catatonit", main=lambda w, cmd: ["catatonit", "--", *cmd]),
    Init(
        "runit",
        "runit",
        "runsvdir",
        supervise=lambda w, mnt, names: ["runsvdir", str(mnt)],
        status=lambda w, src: ["sh", "-c", f"exec sv status {src}/*"],
    ),
    # -c: room for 1000 services (s6-svscan's default maximum is 500)
    Init(
        "s6",
        "s6",
        "s6-svscan",
        supervise=lambda w, mnt, names: ["s6-svscan", "-c", "4096", str(mnt)],
    ),
    Init(
        "supervisord",
        "supervisor",
        "supervisord",
        supervise=lambda w, mnt, names: [
            "supervisord",
            "-n",
            "-c",
            str(supervisord_conf(w, mnt, names)),
        ],
        status=lambda w, src: ["supervisorctl", "-c", str(w / "supervisord.conf"), "status"],
    ),
]

ALL = [PYINIT, *PEERS]


def add_baseline(rev: str, tree: Path) -> Init:
    """pyinit as of git revision `rev` (unpacked in `tree`), run beside the working copy in
    the same run: `python -m bench --baseline REV` shows what a change costs or saves.
    It starts exactly as the working copy does (`python -m pyinit`), from `tree` as the
    working directory, which `-m` searches first: no PYTHONPATH, which would make
    pyinit re-execute itself isolated (-I) and pay a second interpreter start."""

    def argv(w: Path, *flags: str) -> list[str]:
        return pyinit_argv(w, *flags, tree=tree)

    if PYINIT_BIN:
        write_launchers(tree)
        svctl: tuple[str, ...] = (str(tree / "bin" / "svctl"),)
    else:
        svctl = ("env", "-C", str(tree), PY, "-c", "from pyinit.entry import svctl; svctl()")
    base = Init(
        f"pyinit@{rev}",
        "",
        "unshare",
        main=lambda w, cmd: [*argv(w, "--skip-runit"), "--", *cmd],
        supervise=lambda w, mnt, names: argv(w, "--service-dir", str(mnt)),
        status=lambda w, src: [*svctl, "--run-dir", str(w / "run"), "status"],
    )
    ALL.insert(1, base)
    return base


def write_launchers(tree: Path) -> None:
    """tree/bin/{pyinit,svctl}: the bench venv's launchers, with the tree first on sys.path
    (the venv's .pth puts the working copy there too)."""
    (tree / "bin").mkdir()
    for name, function in (("pyinit", "pyinit"), ("svctl", "svctl")):
        path = tree / "bin" / name
        path.write_text(
            f"#!{PY} -I\nimport sys\nsys.path.insert(0, {str(tree)!r})\n"
            f"import pyinit.entry\npyinit.entry.{function}()\n"
        )
        path.chmod(0o755)


def main_inits() -> list[Init]:
    return [i for i in ALL if i.main and i.available()]


def supervisors() -> list[Init]:
    return [i for i in ALL if i.supervise and i.available()]


def missing() -> list[Init]:
    return [i for i in ALL if not i.available()]
