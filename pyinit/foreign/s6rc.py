"""s6-rc source definitions (s6-overlay v3's /etc/s6-overlay/s6-rc.d) into a plan of
pyinit services: pure decisions, no I/O (reading is s6rc_read.py, writing s6rc_write.py).

The source format is s6-rc-compile's: one directory per service holding `type`
(longrun, oneshot or bundle); a longrun's `run`, `finish`, `notification-fd`,
`timeout-up`, `timeout-down`, `timeout-kill`, `timeout-finish`, `down-signal`,
`producer-for`, `consumer-for`, `pipeline-name`; a oneshot's `up` and `down`
(execline command lines); `dependencies.d/` (or a `dependencies` file) and a
bundle's `contents.d/` (or `contents`). What starts is s6-overlay's: the `user`
bundle with everything it depends on, then `user2` after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pyinit.core import bounds, signames

MAX_SERVICES = 1000  # service directories read from s6-rc.d
MAX_NAME = 200  # characters of a service name
MAX_NESTING = 100  # bundles within bundles
MAX_SCRIPT = 64 * 1024  # bytes of an `up` or `down` file
MAX_SMALL = 256  # bytes of type, notification-fd, timeouts, down-signal, producer-for...
MAX_MS = bounds.MAX_SECONDS * 1000
# s6-overlay's own services: done before any service of the image starts under pyinit
# (cont-init.d runs first), so a dependency on them is met (docs/migration.md).
# legacy-services (the /etc/services.d longruns) depends on the `user` bundle, as in
# s6-overlay's sources: a dependency on it is on those longruns.
BUILTIN = frozenset({"base", "fix-attrs", "legacy-cont-init", "legacy-services"})
LEGACY = "legacy-services"
TOP_BUNDLES = ("user", "user2")
TYPES = ("longrun", "oneshot", "bundle")
SMALL_FILES = (
    "type",
    "notification-fd",
    "timeout-up",
    "timeout-down",
    "timeout-kill",
    "timeout-finish",
    "down-signal",
    "producer-for",
    "consumer-for",
    "pipeline-name",
)
IGNORED = {  # read by s6-rc or s6-supervise, not by pyinit: one warning each
    "flag-essential": "pyinit stops every service at shutdown",
    "max-death-tally": "pyinit keeps its own restart history",
    "lock-fd": "not supported",
    "nosetsid": "pyinit always starts run in a session of its own",
    "env": "not read: use with-contenv or export the variables in run",
    "instance": "not supported",
    "instances": "not supported",
    "template": "not supported",
}
EXECLINE_SPECIAL = frozenset("\"{}\\$'")


class SourceError(ValueError):
    """A definition pyinit cannot run as s6-rc would: one line naming the file."""


@dataclass
class Source:
    """One service directory of s6-rc.d as read: its small files' text, its lists
    (None: absent), the `up`/`down` text and which of run/finish exist."""

    name: str
    files: dict[str, str] = field(default_factory=dict)
    dependencies: Optional[list[str]] = None
    contents: Optional[list[str]] = None
    up: Optional[str] = None
    down: Optional[str] = None
    has_run: bool = False
    has_finish: bool = False
    others: list[str] = field(default_factory=list)  # the other entries' names


@dataclass
class Command:
    """An `up`/`down` command line: argv (the single-command form), nothing (comments
    only: argv empty, execline None), or execline text for execlineb."""

    argv: list[str] = field(default_factory=list)
    execline: Optional[str] = None


@dataclass
class Planned:
    """One pyinit service: a longrun (with its logger, when it produces for one) or a
    oneshot; times in seconds; requires and after as pyinit service names."""

    name: str
    kind: str
    requires: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    notification_fd: Optional[int] = None
    start_timeout: Optional[float] = None
    stop_timeout: Optional[float] = None
    finish_timeout: Optional[float] = None
    stop_signal: Optional[str] = None
    has_finish: bool = False
    logger: Optional[str] = None  # the consumer longrun whose run reads our stdout
    up: Optional[Command] = None
    down: Optional[Command] = None


@dataclass
class Plan:
    """The services to write in start order (dependencies first), and warnings."""

    services: list[Planned] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    legacy: list[Planned] = field(default_factory=list)  # /etc/services.d's longruns


def check_name(name: str, where: str) -> str:
    """A service name s6-rc and pyinit both accept, else SourceError."""
    if (
        not name
        or len(name) > MAX_NAME
        or name.startswith(".")
        or "/" in name
        or "@" in name
        or not name.isprintable()
        or any(c.isspace() for c in name)
    ):
        raise SourceError(f"{where}: bad service name {bounds.render(name)}")
    return name


def parse_command(text: str, where: str) -> Command:
    """An execline command line: comment lines dropped; words without quotes, braces,
    backslashes or `$` are run as one argv; anything else is execline text."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_SCRIPT:
        raise SourceError(f"{where}: larger than {MAX_SCRIPT} bytes")
    if "\0" in text:
        raise SourceError(f"{where}: holds a NUL byte")
    words: list[str] = []
    for line in text.splitlines():
        for word in line.split():
            if word.startswith("#"):
                break  # a comment to the end of the line
            words.append(word)
    if any(EXECLINE_SPECIAL & set(word) for word in words):
        return Command(execline=text)
    return Command(argv=words)


def _ms(text: str, where: str) -> Optional[float]:
    """A millisecond count as seconds (0: none), else SourceError."""
    value = bounds.small_number(text.strip(), MAX_MS)
    if value is None:
        raise SourceError(f"{where}: not a number of milliseconds: {bounds.render(text)}")
    return value / 1000 if value else None


def _one_name(src: Source, key: str, root: str) -> Optional[str]:
    text = src.files.get(key)
    if text is None:
        return None
    return check_name(text.strip(), f"{root}/{src.name}/{key}")


def service_type(src: Source, root: str) -> str:
    """longrun, oneshot or bundle; `user` and `user2` without a type are bundles
    (s6-overlay ships their `type`; an image often carries only contents.d)."""
    text = src.files.get("type")
    if text is None:
        if src.name in TOP_BUNDLES:
            return "bundle"
        raise SourceError(f"{root}/{src.name}/type: missing")
    kind = text.strip()
    if kind not in TYPES:
        raise SourceError(
            f"{root}/{src.name}/type: {bounds.render(kind)} is not longrun, oneshot or bundle"
        )
    return kind


class Graph:
    """The definitions of one s6-rc.d tree, resolved: types, pipelines, bundles."""

    def __init__(self, sources: dict[str, Source], root: str, legacy: tuple[str, ...] = ()
                 ) -> None:  # fmt: skip
        if len(sources) > MAX_SERVICES:
            raise SourceError(f"{root}: more than {MAX_SERVICES} service directories")
        self.root = root
        self.sources = sources
        self.legacy = legacy
        for name in sources:
            check_name(name, f"{root}/{name}")
        self.types = {name: service_type(src, root) for name, src in sources.items()}
        self.consumer_of: dict[str, str] = {}  # producer -> consumer
        self.producer_of: dict[str, str] = {}  # consumer -> producer
        self.pipelines: dict[str, str] = {}  # pipeline-name -> producer
        self.expanded: dict[str, list[str]] = {}  # bundle -> its atoms (atoms())
        for name in sorted(sources):
            self._check(name)
        for name in sorted(sources):
            self._link(name)

    def where(self, name: str, key: str) -> str:
        return f"{self.root}/{name}/{key}"

    def _check(self, name: str) -> None:
        src, kind = self.sources[name], self.types[name]
        if kind == "longrun" and not src.has_run:
            raise SourceError(f"{self.where(name, 'run')}: missing (a longrun needs one)")
        if kind == "oneshot" and src.up is None:
            raise SourceError(f"{self.where(name, 'up')}: missing (a oneshot needs one)")
        if kind == "bundle" and src.contents is None and name not in TOP_BUNDLES:
            raise SourceError(f"{self.where(name, 'contents.d')}: missing (a bundle needs one)")

    def _link(self, name: str) -> None:
        """producer-for and consumer-for, both sides named (as s6-rc-compile wants);
        pipelines of more than one producer and one consumer are refused."""
        src = self.sources[name]
        consumer = _one_name(src, "producer-for", self.root)
        if consumer is None:
            return
        if self.types[name] != "longrun" or self.types.get(consumer) != "longrun":
            raise SourceError(f"{self.where(name, 'producer-for')}: a pipeline links longruns")
        back = self.sources[consumer].files.get("consumer-for", "").split()
        if back != [name]:
            raise SourceError(
                f"{self.where(consumer, 'consumer-for')}: must name {name} "
                "(its producer-for names it); one producer per consumer"
            )
        if "producer-for" in self.sources[consumer].files or name in self.producer_of:
            raise SourceError(
                f"{self.where(consumer, 'producer-for')}: pipelines of more "
                "than one producer and one consumer are not supported"
            )
        self.consumer_of[name], self.producer_of[consumer] = consumer, name
        pipeline = _one_name(self.sources[consumer], "pipeline-name", self.root)
        if pipeline is not None:
            if pipeline in self.sources:
                raise SourceError(
                    f"{self.where(consumer, 'pipeline-name')}: {pipeline} is also a service"
                )
            self.pipelines[pipeline] = name

    def atoms(self, name: str, where: str, seen: tuple[str, ...] = ()) -> list[str]:
        """The longruns and oneshots a name stands for, as pyinit services (a consumer
        is its producer's logger); builtins stand for nothing."""
        if name in seen:
            raise SourceError(f"{where}: bundle cycle {' -> '.join((*seen, name))}")
        if len(seen) > MAX_NESTING:  # Python's own recursion limit is 1000
            raise SourceError(f"{where}: bundles nested more than {MAX_NESTING} deep")
        if name in self.expanded:  # each bundle once: nested diamonds are not exponential
            return list(self.expanded[name])
        if name in self.pipelines:
            return [self.pipelines[name]]
        if name == LEGACY and name not in self.sources:
            return list(self.legacy)
        if name not in self.sources:
            if name in BUILTIN or name in TOP_BUNDLES:
                return []
            raise SourceError(f"{where}: {bounds.render(name)} is not defined")
        if self.types[name] != "bundle":
            return [self.producer_of.get(name, name)]
        out: list[str] = []
        for member in self.sources[name].contents or []:
            for atom in self.atoms(member, self.where(name, "contents.d"), (*seen, name)):
                if atom not in out:
                    out.append(atom)
        self.expanded[name] = list(out)
        return out

    def direct_deps(self, atom: str) -> list[str]:
        """What atom (and its logger) depends on, as pyinit services."""
        out: list[str] = []
        for name in (atom, self.consumer_of.get(atom)):
            if name is None or name not in self.sources:  # a legacy longrun: none here
                continue
            for dep in self.sources[name].dependencies or []:
                for target in self.atoms(dep, self.where(name, "dependencies.d")):
                    if target != atom and target not in out:
                        out.append(target)
        return out

    def closure(self, roots: list[str]) -> list[str]:
        """roots and everything they depend on, dependencies first; a cycle is an error."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for root in roots:
            stack: list[tuple[str, list[str]]] = [(root, list(reversed(self.direct_deps(root))))]
            if state.get(root) == 2:
                continue
            state[root] = 1
            while stack:
                node, pending = stack[-1]
                if not pending:
                    stack.pop()
                    state[node] = 2
                    order.append(node)
                    continue
                dep = pending.pop()
                if state.get(dep) == 1:
                    path = " -> ".join([n for n, _ in stack] + [dep])
                    raise SourceError(f"{self.where(node, 'dependencies.d')}: cycle {path}")
                if state.get(dep) is None:
                    state[dep] = 1
                    stack.append((dep, list(reversed(self.direct_deps(dep)))))
        return order


def plan(sources: dict[str, Source], root: str, legacy: tuple[str, ...] = (),
         legacy_root: str = "/etc/services.d") -> Plan:  # fmt: skip
    """What pyinit runs for this tree, in s6-overlay's order: the `user` bundle's
    closure; the legacy longruns (names in legacy_root), which require all of it;
    then what `user2` adds, each after every service of the first set (and after the
    legacy longruns when it depends on legacy-services). SourceError on the first
    problem."""
    for name in legacy:
        if name in sources:
            raise SourceError(f"{legacy_root}/{name}: {root}/{name} has the same name")
    graph = Graph(sources, root, legacy)
    result = Plan()
    first = graph.closure(graph.atoms("user", f"{root}/user"))
    for atom in first:
        if any(dep in legacy for dep in graph.direct_deps(atom)):
            raise SourceError(
                f"{graph.where(atom, 'dependencies.d')}: cycle: {atom} is in the user "
                f"bundle, which {LEGACY} ({legacy_root}) starts after"
            )
    second = [
        a
        for a in graph.closure(graph.atoms("user2", f"{root}/user2"))
        if a not in first and a not in legacy
    ]
    for atom in first + second:
        planned = _service(graph, atom, result.warnings)
        if atom in second:
            planned.after = [a for a in first if a not in planned.requires]
        result.services.append(planned)
    result.legacy = [Planned(name, "legacy", requires=list(first)) for name in legacy]
    return result


def _service(graph: Graph, atom: str, warnings: list[str]) -> Planned:
    src = graph.sources[atom]
    out = Planned(atom, graph.types[atom], requires=graph.direct_deps(atom))
    _times(graph, src, out)
    if out.kind == "oneshot":
        out.up = parse_command(src.up or "", graph.where(atom, "up"))
        if src.down is not None:  # comments only: no down to run
            down = parse_command(src.down, graph.where(atom, "down"))
            out.down = down if down.argv or down.execline is not None else None
    else:
        out.has_finish = src.has_finish
        out.logger = graph.consumer_of.get(atom)
        text = src.files.get("notification-fd")
        if text is not None:
            out.notification_fd = bounds.small_number(text.strip(), 1023)
            if out.notification_fd is None or out.notification_fd < 3:
                raise SourceError(
                    f"{graph.where(atom, 'notification-fd')}: not an fd "
                    f"from 3 to 1023: {bounds.render(text.strip())}"
                )
        text = src.files.get("down-signal")
        if text is not None:
            try:
                out.stop_signal = signames.name(signames.parse(text.strip()))
            except ValueError as exc:
                raise SourceError(f"{graph.where(atom, 'down-signal')}: {exc}") from None
    for name in (atom, out.logger):
        if name is not None:
            warnings.extend(_ignored(graph, name, graph.consumer_of.get(atom) == name))
    return out


def _times(graph: Graph, src: Source, out: Planned) -> None:
    """timeout-up: the start (readiness) limit; timeout-kill, else timeout-down: the
    stop limit; timeout-finish: finish's."""
    values = {
        key: _ms(src.files[key], graph.where(src.name, key))
        for key in ("timeout-up", "timeout-down", "timeout-kill", "timeout-finish")
        if key in src.files
    }
    if out.kind == "longrun":
        out.start_timeout = values.get("timeout-up")
        out.stop_timeout = values.get("timeout-kill", values.get("timeout-down"))
        out.finish_timeout = values.get("timeout-finish")
    elif src.down is not None:  # the time its down gets (s6rc_write.UP_DOWN)
        out.stop_timeout = values.get("timeout-down")


def _ignored(graph: Graph, name: str, logger: bool) -> list[str]:
    """One warning per file pyinit does not act on."""
    src = graph.sources[name]
    out = [
        f"{graph.where(name, key)}: ignored ({why})"
        for key, why in IGNORED.items()
        if key in src.others or key in src.files
    ]
    if graph.types[name] == "oneshot":
        for key, why in (("timeout-up", "a oneshot's up has no time limit in pyinit"),
                         ("timeout-down", "this oneshot has no down")):  # fmt: skip
            if key in src.files and (key == "timeout-up" or src.down is None):
                out.append(f"{graph.where(name, key)}: ignored ({why})")
    if logger:
        for key in ("notification-fd", "timeout-up", "timeout-down", "timeout-kill", "down-signal"):
            if key in src.files:
                out.append(f"{graph.where(name, key)}: ignored (a logger's {key} is not supported)")
    return out
