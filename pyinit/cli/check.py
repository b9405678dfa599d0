"""`pyinit check [--root DIR] [--json]`: what boot would refuse, found before boot.

Reads everything boot reads, with boot's own readers, and starts nothing:
pyinit.yaml (config.py's file, core/schema.py), the service dirs
(services/servicedir.py's scan: run, service.yaml, notification-fd, users and
groups through linux/users.py), templates and counted services
(core/instances.py), dependencies and cycles (services/gates.py's graph), and
what those readers leave to run time: each script's `#!` interpreter, readiness
and liveness check commands, file-mode log dirs and runit `log/` dirs. Every
problem is one line, as boot would print it; the exit code is 0 when there is
none, 1 otherwise (2 for a usage error).

`--root DIR` reads an unpacked image tree: every path (the service dirs,
/etc/pyinit.yaml, interpreters, /etc/passwd and /etc/group) is the image's,
resolved inside DIR (linux/rootfs.py). Needs no root and writes nothing.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any, Optional

from pyinit import __version__, config
from pyinit.config import DEFAULT_SERVICE_DIRS, DEFAULTS, ENV_VARS, LOG_MODES
from pyinit.core import instances
from pyinit.core.model import ServiceDir
from pyinit.core.schema import ConfigError, Probe
from pyinit.linux import rootfs, users
from pyinit.services import servicedir
from pyinit.services.captures import log_directory
from pyinit.services.gates import dependency_graph

SCRIPTS = ("run", "finish", "setup", "check", "log/run")  # what pyinit may exec in a dir
# boot's and shutdown's scripts: config.py's keys, dirs (every executable in them) and rc.local
SCRIPT_DIRS = (
    "init_dir",
    "cont_init_dir",
    "pre_shutdown_dir",
    "cont_finish_dir",
    "post_shutdown_dir",
)
MAX_SCRIPTS = 10000  # names read from one scripts dir
MAX_SHEBANG = 256  # bytes of a script read for its #! line
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # --root's PATH
DOCS = config.DOCS


@dataclass(frozen=True)
class Problem:
    level: str  # "error" or "warning", as boot would log it
    text: str
    service: Optional[str] = None

    def line(self) -> str:
        where = f"[{self.service}] " if self.service else ""
        return f"pyinit: {self.level}: {where}{' '.join(self.text.splitlines())}"

    def record(self) -> dict[str, Any]:
        return {"level": self.level, "service": self.service, "text": self.text}


class Checker:
    """One check of one tree: run() returns every problem found."""

    def __init__(
        self,
        root: Optional[str],
        service_dirs: list[str],
        config_file: str,
        log_mode: str = "inherit",
        path: Optional[str] = None,
    ) -> None:
        self.root = rootfs.Root(root)
        self.service_dirs = service_dirs
        self.config_file = config_file
        self.log_mode = log_mode
        self.path = (
            path
            if path is not None
            else (IMAGE_PATH if root else os.environ.get("PATH", os.defpath))
        )
        self.problems: list[Problem] = []
        self.services = 0
        self.script_paths: dict[str, str] = {k: DEFAULTS[k] for k in (*SCRIPT_DIRS, "rc_local")}
        accounts = self.image_accounts() if root else None
        self.reading = servicedir.Reading(host=self.root.path, accounts=accounts, at_boot=False)

    def add(self, text: str, service: Optional[str] = None, level: str = "error") -> None:
        problem = Problem(level, text, service)
        if problem not in self.problems:
            self.problems.append(problem)

    def run(self) -> list[Problem]:
        defaults = self.global_config()
        found, scanned = servicedir.scan(self.service_dirs, defaults, self.reading)
        self.services = len(found)
        for text in scanned:
            self.add(text, level="warning")
        for defn in found.values():
            for line in (defn.error or "").splitlines():  # each problem of its service.yaml
                self.add(line, defn.name)
            self.scripts(defn)  # whatever else is wrong: every problem at once
            if not defn.error:
                self.check_dir(defn)
        expansion = instances.expand(found, {}, ())
        for text in expansion.problems:
            self.add(text, level="warning")
        _, errors = dependency_graph(dict(expansion.services), expansion.groups)
        for name, error in sorted(errors.items(), key=lambda e: instances.sort_key(e[0])):
            defn = expansion.services[name]
            self.add(error, expansion.member_of.get(name, name) if defn.instance else name)
        self.startup_scripts()
        return self.problems

    def startup_scripts(self) -> None:
        """The #! interpreters of the boot and shutdown scripts (runtime/scripts.py
        runs every executable file of the dirs, and rc.local)."""
        paths = []
        for key in SCRIPT_DIRS:
            directory = self.script_paths[key]
            try:
                names = sorted(os.listdir(self.root.path(directory)))[:MAX_SCRIPTS]
            except OSError:
                continue
            paths += [os.path.join(directory, n) for n in names if not n.startswith(".")]
        paths.append(self.script_paths["rc_local"])
        for path in paths:
            host = self.root.path(path)
            if _runnable(host):
                problem = self.interpreter(host, path)
                if problem:
                    self.add(problem)

    # --- pyinit.yaml ------------------------------------------------------------------
    def global_config(self) -> dict[str, Any]:
        """pyinit.yaml's defaults for every service.yaml (none when it is bad)."""
        from pyinit.core import addresses

        source = self.root.path(self.config_file)
        if not os.path.lexists(source):
            return {}
        from pyinit.runtime import yamlfile

        try:
            settings = yamlfile.load_global(self.config_file, source)
        except ConfigError as exc:
            for line in exc.problems:
                self.add(line)
            return {}
        if settings.health_listen:
            try:
                addresses.parse_listen(settings.health_listen, "health listen address")
            except ValueError as exc:
                self.add(f"{self.config_file}: health_listen: {exc}")
        return settings.defaults

    def image_accounts(self) -> users.Accounts:
        texts = []
        for name in ("/etc/passwd", "/etc/group"):
            try:
                data = _head(self.root.path(name), users.MAX_DATABASE + 1)
            except OSError:
                data = b""
            if len(data) > users.MAX_DATABASE:
                self.add(f"{name}: larger than {users.MAX_DATABASE} bytes: not read")
                data = b""
            texts.append(data.decode("utf-8", "replace"))
        return users.AccountFiles(*texts)

    # --- one service dir ------------------------------------------------------------
    def scripts(self, defn: ServiceDir) -> None:
        """What boot finds out only when it execs a script: its #! interpreter."""
        for script in SCRIPTS:
            path = os.path.join(defn.path, script)
            host = self.root.path(path)
            if _runnable(host):
                problem = self.interpreter(host, path)
                if problem:
                    self.add(problem, defn.name)

    def check_dir(self, defn: ServiceDir) -> None:
        """What boot finds out only when it runs the service: check commands, logs."""
        log_dir = os.path.join(defn.path, "log")
        if os.path.isdir(self.root.path(log_dir)) and not defn.has_log:
            self.add(
                f"{log_dir}: no executable run in it: the service's output is not logged by it",
                defn.name,
                "warning",
            )
        config = defn.config
        for key, probe in (("ready", config.ready), ("liveness", config.liveness)):
            problem = self.probe(defn, probe)
            if problem:
                self.add(f"{os.path.join(defn.path, 'service.yaml')}: {key}: {problem}", defn.name)
        self.log_dir(defn)

    def interpreter(self, host: str, path: str) -> Optional[str]:
        """Why the kernel would not run the script at host (shown as path), or None."""
        try:
            head = _head(host, MAX_SHEBANG)
        except OSError as exc:
            return f"{path}: cannot read: {exc.strerror}"
        if head.startswith(b"\x7fELF"):
            return None
        if not head.startswith(b"#!"):
            return f"{path}: no #! line and not a binary: exec fails (ENOEXEC)"
        words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
        if not words:
            return f"{path}: the #! line names no interpreter"
        interp = words[0]
        problem = self.program(interp, os.path.dirname(path), search=False)
        if problem:
            return f"{path}: interpreter {problem}"
        args = [w for w in words[1:] if not w.startswith("-")]
        if os.path.basename(interp) == "env" and args and "=" not in args[0]:
            problem = self.program(args[0], os.path.dirname(path))
            if problem:
                return f"{path}: {interp} {problem}"
        return None

    def program(self, name: str, cwd: str, search: bool = True) -> Optional[str]:
        """Why name (absolute, relative to cwd, or looked up on PATH) is not an
        executable file of the image, or None."""
        if "/" not in name and search:
            for directory in self.path.split(":"):
                if directory and _runnable(self.root.path(os.path.join(directory, name))):
                    return None
            return f"{name}: not found on PATH"
        host = self.root.path(os.path.join(cwd, name))
        if not os.path.lexists(host) or not os.path.exists(host):
            return f"{name}: not found"
        if not _runnable(host):
            return f"{name}: not an executable file"
        return None

    def probe(self, defn: ServiceDir, probe: Optional[Probe]) -> Optional[str]:
        """A check command that cannot run (tcp and http targets were parsed already)."""
        if probe is None or probe.kind != "check" or not probe.target:
            return None
        return self.program(probe.target[0], defn.path)

    def log_dir(self, defn: ServiceDir) -> None:
        """File mode's directory: a directory, or one that can be made."""
        mode = "runit" if defn.has_log else (defn.config.log_mode or self.log_mode)
        if mode != "file":
            return
        directory = log_directory(defn)
        where = os.path.join(defn.path, "service.yaml")
        host = self.root.path(directory)
        if os.path.lexists(host):
            if not os.path.isdir(host):
                self.add(f"{where}: log.dir {directory}: not a directory", defn.name)
            return
        parent = os.path.dirname(directory)
        while parent != "/" and not os.path.lexists(self.root.path(parent)):
            parent = os.path.dirname(parent)
        if not os.path.isdir(self.root.path(parent)):
            self.add(
                f"{where}: log.dir {directory}: cannot be made ({parent} is not a directory)",
                defn.name,
            )


def _head(host: str, limit: int) -> bytes:
    """At most limit bytes of a regular file (a FIFO in the tree cannot block)."""
    fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _runnable(host: str) -> bool:
    return os.path.isfile(host) and os.access(host, os.X_OK)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyinit check",
        allow_abbrev=False,
        description="Check the service dirs, service.yaml, pyinit.yaml, dependencies, "
        "users, templates, log dirs and readiness checks as boot would read them, "
        "starting nothing. Exit 0: all is well; 1: problems (one line each).",
        epilog=DOCS,
    )
    p.add_argument("--version", action="version", version=f"pyinit {__version__}")
    p.add_argument(
        "--root",
        metavar="DIR",
        help="check the unpacked image tree in DIR "
        "(every path, link, interpreter and /etc/passwd is DIR's)",
    )
    p.add_argument("--json", action="store_true", help="print the problems as a JSON list")
    p.add_argument(
        "--service-dir",
        dest="service_dirs",
        action="append",
        metavar="DIR",
        help="service directory, repeatable [PYINIT_SERVICE_DIR; /etc/service and /etc/services.d]",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help=f"pyinit.yaml [{ENV_VARS['config_file']}, {DEFAULTS['config_file']}]",
    )
    return p


def checker(ns: argparse.Namespace, environ: dict[str, str]) -> Checker:
    """The Checker the flags and (without --root) pyinit's variables ask for."""
    env = {} if ns.root else environ
    dirs = ns.service_dirs or [d for d in env.get("PYINIT_SERVICE_DIR", "").split(":") if d]
    config_file = ns.config or env.get(ENV_VARS["config_file"]) or DEFAULTS["config_file"]
    log_mode = env.get(ENV_VARS["log_mode"], "")
    check = Checker(
        ns.root,
        dirs or list(DEFAULT_SERVICE_DIRS),
        config_file,
        log_mode if log_mode in LOG_MODES else "inherit",
    )
    for key in check.script_paths:  # PYINIT_INIT_DIR, ... as boot reads them
        check.script_paths[key] = env.get(ENV_VARS[key]) or DEFAULTS[key]
    return check


def main(argv: list[str]) -> int:
    """`pyinit check ARGS`: print the problems; 0 if none, 1 if any, 2 for bad usage."""
    ns = build_parser().parse_args(argv)
    if ns.root is not None and not os.path.isdir(ns.root):
        sys.stderr.write(f"pyinit: error: --root {ns.root}: not a directory\n")
        return 2
    check = checker(ns, dict(os.environ))
    problems = check.run()
    if ns.json:
        import json

        sys.stdout.write(json.dumps([p.record() for p in problems], indent=1) + "\n")
    elif problems:
        for problem in problems:  # on stderr, as boot prints them
            sys.stderr.write(problem.line() + "\n")
    else:
        plural = "" if check.services == 1 else "s"
        sys.stdout.write(f"pyinit check: {check.services} service dir{plural}, no problems\n")
    return 1 if problems else 0
