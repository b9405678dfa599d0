"""Reading service.yaml and pyinit.yaml from disk: one YAML document, bounded.

The file is opened without following another user's link (safefs) and read to
at most MAX_DOCUMENT bytes; pyyaml's safe loader then builds it only after the
node graph was measured (MAX_NODES values with every alias expanded, MAX_DEPTH
levels). What the document means is checked by core/schema.py, which is pure.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from pyinit.core import bounds
from pyinit.core.bounds import InputError, clip
from pyinit.core.schema import (
    ConfigError,
    GlobalConfig,
    ServiceConfig,
    validate,
    validate_global,
)
from pyinit.linux import safefs

MAX_DOCUMENT = 64 * 1024  # bytes of a service.yaml or pyinit.yaml
MAX_NODES = 10_000  # YAML nodes of a document, with every alias expanded
MAX_DEPTH = 32  # nesting of YAML collections


def load_service(
    path: str, defaults: Optional[dict[str, Any]] = None, source: Optional[str] = None
) -> ServiceConfig:
    """Read and validate one service.yaml (over pyinit.yaml's defaults). source: the
    file to open when it is not path (`pyinit check --root`: path is the image's)."""
    return validate(load_yaml(path, source), path, defaults)


def load_global(path: str, source: Optional[str] = None) -> GlobalConfig:
    """Read pyinit.yaml; a missing file is an empty one. ConfigError lists every problem."""
    if not os.path.lexists(source or path):
        return GlobalConfig()
    return validate_global(load_yaml(path, source), path)


def load_yaml(path: str, source: Optional[str] = None) -> Any:
    """One YAML document, read with pyyaml's safe loader (the C one when present), in
    bounded memory and time: at most MAX_DOCUMENT bytes (a FIFO or device refused),
    at most MAX_NODES nodes with every alias expanded, nested at most MAX_DEPTH deep.
    Messages name path; the file opened is source, if given."""
    import yaml

    try:
        text = bounds.read_fd(safefs.open_read(source or path), MAX_DOCUMENT, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    loader = _bounded_loader()(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {clip(problem, 100)}") from None
    except _TooBig as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:  # the pure-Python parser, on deep nesting
        raise ConfigError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, ArithmeticError):
        # a number longer than int() takes (sys.set_int_max_str_digits), a date that
        # is no date (2001-13-45), a float whose sexagesimal integer part overflows
        raise ConfigError(f"{path}: not valid YAML: a number or date out of range") from None
    finally:
        loader.dispose()


class _TooBig(Exception):
    """A YAML document over MAX_NODES or MAX_DEPTH, or with a recursive alias."""


def _bounded_loader() -> type:
    """pyyaml's safe loader that measures the node graph before building any value.

    Aliases stay allowed (`<<: *defaults` is common), but they are counted as what
    they expand to: the billion-laughs document of a few hundred bytes is refused
    before a single list is built, and nothing later can walk or print more than
    MAX_NODES values."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            measure(node)
            return self.construct_document(node)

    return Loader


def measure(root: Any, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """The node count of a YAML node graph with every alias expanded (_TooBig past
    max_nodes, max_depth or on a cycle); iterative and linear in the distinct nodes."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > max_nodes:
                raise _TooBig(f"more than {max_nodes} YAML values, with aliases expanded")
            if height[key] > max_depth:
                raise _TooBig(f"nested deeper than {max_depth} levels")
            continue
        if key in size:
            continue
        if key in on_path:
            raise _TooBig("an alias refers to a value that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in kids)
    return size[id(root)]


def _children(node: Any) -> list[Any]:
    value = node.value
    if not isinstance(value, list):
        return []
    out: list[Any] = []
    for item in value:
        if isinstance(item, tuple):
            out.extend(item)
        else:
            out.append(item)
    return out
