"""JSON Schemas of service.yaml and pyinit.yaml, generated from core/schema.py's tables.

Each key of SERVICE_KEYS, LOG_KEYS, READY_KEYS, ... becomes a property whose
schema says what its kind accepts (KINDS: one fragment per kind, the parameters
of `_integer`, `_choice`, `_list_of` and `_mapping` read from the kind itself),
so a key added to a table is in the schema at the next generation. The rules
validate() checks across keys (one readiness kind, liveness needs a probe, no
`ready` on a oneshot, backoff factor >= 1) are added here. A kind this module
does not know becomes `{}` (anything): the agreement test then fails.

`python -m pyinit.core.schema_json [--check]` writes (or compares) the files in
pyinit/core/schemas/, shipped in the wheel for editors (yaml-language-server's
`# yaml-language-server: $schema=...`).
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
from typing import Any, Callable

from pyinit.core import bounds, schema

DRAFT = "http://json-schema.org/draft-07/schema#"
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
FILES = {"service.schema.json": "service", "pyinit.schema.json": "pyinit"}
END = "$(?![\\s\\S])"  # the end, also for Python's re (whose $ matches before a last \n)
NO_NUL = "^[^\\u0000]*$"
Fragment = dict[str, Any]


def number_range(low: int, high: int) -> str:
    """A regex alternation for the decimal integers low..high (no leading zeros)."""
    out: list[str] = []
    for width in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (width - 1) if width > 1 else 0)
        b = min(high, 10**width - 1)
        if a <= b:
            out += _same_width(str(a), str(b))
    return "|".join(out)


def _same_width(a: str, b: str) -> list[str]:
    if a == b:
        return [a]
    if len(a) == 1:
        return [f"[{a}-{b}]"]
    if a[0] == b[0]:
        return [a[0] + rest for rest in _same_width(a[1:], b[1:])]
    n = len(a) - 1
    out: list[str] = []
    first, last = int(a[0]), int(b[0])
    if a[1:] != "0" * n:
        out += [a[0] + rest for rest in _same_width(a[1:], "9" * n)]
        first += 1
    tail: list[str] = []
    if b[1:] != "9" * n:
        tail = [b[0] + rest for rest in _same_width("0" * n, b[1:])]
        last -= 1
    if first <= last:
        out.append(f"[{first}-{last}][0-9]{{{n}}}")
    return out + tail


def digits(low: int, high: int, width: int) -> str:
    """ASCII digits (leading zeros too, at most `width` of them in all) worth low..high,
    as bounds.small_number takes them, without anchors."""
    return f"(?=[0-9]{{1,{width}}}(?![0-9]))0*(?:{number_range(low, high)})"


def _anycase(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _strict(pattern: str) -> Fragment:
    return {"type": "string", "pattern": f"^(?:{pattern}){END}"}


# --- one fragment per kind -------------------------------------------------------------
def _ident() -> Fragment:
    return {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": bounds.MAX_ID},
            _strict(digits(0, bounds.MAX_ID, 20)),
            {
                "type": "string",
                "minLength": 1,
                "maxLength": bounds.MAX_NAME,
                "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
                "not": {"pattern": "^\\d+$"},
            },
        ]
    }


def _signal() -> Fragment:
    names = sorted({n[3:] for n in signal.Signals.__members__ if n.startswith("SIG")})
    alternatives = "|".join(_anycase(n) for n in names)
    return {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": int(signal.NSIG) - 1},
            _strict(f"(?:{_anycase('sig')})?(?:{alternatives})"),
        ]
    }


def _size() -> Fragment:
    units = []
    for power, letter in enumerate(" kmgt"):
        low, high = -(-4096 // 1024**power), 2**40 // 1024**power
        unit = "" if letter == " " else _anycase(letter)
        units.append(f"(?:{number_range(low, high)})\\s*{unit}[bB]?")
    pattern = f"\\s*(?=[0-9]{{1,12}}(?![0-9]))0*(?:{'|'.join(units)})\\s*"
    return {"anyOf": [{"type": "integer", "minimum": 4096, "maximum": 2**40}, _strict(pattern)]}


OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = f"{OCTET}(?:\\.{OCTET}){{3}}"
HOST = f"(?:{IPV4}|{_anycase('localhost')}|\\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\\])"
PORT = digits(1, 65535, 20)


def _tcp() -> Fragment:
    return {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 65535},
            _strict(f"{PORT}|{HOST}:{PORT}"),
        ]
    }


def _http() -> Fragment:
    url = f'{_anycase("http")}://{HOST}(?::{PORT})?(?:[/?][!-"$-~]*)?(?:#[\\s\\S]*)?'
    return _strict(url)


def _command() -> Fragment:
    return {
        "anyOf": [
            {"const": True},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            {"type": "string", "pattern": "\\S"},
        ]
    }


def _environment() -> Fragment:
    value = {"anyOf": [{"type": ["boolean", "number"]}, {"type": "string", "pattern": NO_NUL}]}
    return {
        "type": "object",
        "propertyNames": {"pattern": schema._ENV_NAME.pattern},
        "additionalProperties": value,
    }


def _rlimits() -> Fragment:
    one = {
        "anyOf": [
            {"enum": ["unlimited", "infinity"]},
            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        ]
    }
    pair = {"type": "array", "items": one, "minItems": 2, "maxItems": 2}
    return {
        "type": "object",
        "propertyNames": {"enum": list(schema.RLIMITS)},
        "additionalProperties": {"anyOf": [one, pair]},
        "description": "a soft limit must not be above the hard one",
    }


def _log() -> Fragment:
    return {"anyOf": [{"enum": list(schema.LOG_MODES)}, mapping(schema.LOG_KEYS)]}


def _schedule() -> Fragment:
    from pyinit.core import cron

    return {
        "type": "string",
        "minLength": 1,
        "maxLength": cron.MAX_TEXT,
        "pattern": "\\S",
        "description": "a cron expression (5 fields), an @name (@daily, ...) or "
        "'every DURATION'; its fields are checked by pyinit, not by this schema",
    }


def _every() -> Fragment:
    from pyinit.core import cron

    return {
        "anyOf": [
            {"type": "number", "minimum": cron.MIN_EVERY, "maximum": cron.MAX_EVERY},
            {"type": "string", "description": "a duration such as 90s, 5m or 1h30m"},
        ]
    }


KINDS: dict[Callable[..., Any], Callable[[], Fragment]] = {
    schema._ident: _ident,
    schema._flag: lambda: {"type": "boolean"},
    schema._seconds: lambda: {"type": "number", "minimum": 0, "maximum": bounds.MAX_SECONDS},
    schema._text: lambda: {"type": "string", "minLength": 1, "pattern": NO_NUL},
    schema._service_name: lambda: {"type": "string", "pattern": schema._NAME.pattern},
    schema._signal: _signal,
    schema._umask: lambda: {
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": 0o7777}, _strict("0?[0-7]{1,4}")]
    },
    schema._size: _size,
    schema._environment: _environment,
    schema._rlimits: _rlimits,
    schema._command: _command,
    schema._log: _log,
    schema._schedule: _schedule,
    schema._every: _every,
    schema._timezone: lambda: {
        "type": "string",
        "maxLength": 64,
        "pattern": f"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*{END}",
    },
    schema._positive_seconds: lambda: {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": bounds.MAX_SECONDS,
    },
}


def fragment(kind: Callable[..., Any]) -> Fragment:
    """What one kind accepts, as JSON Schema."""
    if kind in KINDS:
        return KINDS[kind]()
    made = kind.__qualname__.split(".<locals>")[0]  # the factory of a closure
    free = inspect.getclosurevars(kind).nonlocals
    if made == "_integer":
        return {"type": "integer", "minimum": free["low"], "maximum": free["high"]}
    if made == "_choice":
        return {"enum": list(free["allowed"])}
    if made == "_list_of":
        item = fragment(free["item"])
        return {"anyOf": [item, {"type": "array", "items": item}]}
    if made == "_mapping":
        return mapping(_table(free["allowed"]))
    if made == "_probe_target":
        return _tcp() if free["kind"] == "tcp" else _http()
    return {}


def _table(allowed: str) -> dict[str, Callable[..., Any]]:
    """The table of schema.py whose keys a `_mapping` kind lists (it keeps only them)."""
    for name, value in vars(schema).items():
        if (
            name.endswith("_KEYS")
            and isinstance(value, dict)
            and ", ".join(sorted(value)) == allowed
        ):
            return value
    raise LookupError(f"no table in core/schema.py has the keys {allowed}")


def mapping(table: dict[str, Callable[..., Any]], rules: tuple[Fragment, ...] = ()) -> Fragment:
    """A mapping of table's keys (also written with '-'), nothing else."""
    properties: dict[str, Fragment] = {}
    for key, kind in table.items():
        properties[key] = fragment(kind)
    if table is schema.BACKOFF_KEYS:
        properties["factor"] = {**properties["factor"], "minimum": 1}  # validate()'s rule
    out: Fragment = {"type": "object", "properties": properties, "additionalProperties": False}
    if table is schema.READY_KEYS:
        rules = (*rules, *_one_of(schema.READINESS, at_least=False))
    if table is schema.LIVENESS_KEYS:
        rules = (*rules, *_one_of(schema.PROBES, at_least=True))
    for key in [k for k in properties if "_" in k]:  # `notification-fd` is the same key
        properties[key.replace("_", "-")] = properties[key]
    if rules:
        out["allOf"] = list(rules)
    return out


def _present(key: str) -> Fragment:
    """key (either spelling) is given, and, for sd_notify, true."""
    value = {"properties": {key: {"const": True}}} if key == "sd_notify" else {}
    spellings = [{"required": [key], **value}]
    if "_" in key:
        dashed = key.replace("_", "-")
        spellings.append(
            {"required": [dashed], "properties": {dashed: {"const": True}}}
            if value
            else {"required": [dashed]}
        )
    return {"anyOf": spellings}


def _one_of(keys: tuple[str, ...], at_least: bool) -> list[Fragment]:
    """At most one of keys (validate's "choose one of ..."); with at_least, one."""
    rules = [
        {"not": {"allOf": [{"type": "object"}, _present(a), _present(b)]}}
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
    ]
    if at_least:
        rules.append({"anyOf": [_present(k) for k in keys]})
    return rules


def _any_required(keys: Any) -> Fragment:
    spellings = sorted({k for key in keys for k in (key, key.replace("_", "-"))})
    return {"anyOf": [{"required": [k]} for k in spellings]}


def _job_rules(defaults: bool) -> tuple[Fragment, ...]:
    """validate()'s rules for scheduled jobs (schema._job): one of schedule and every;
    with one, none of NOT_FOR_JOBS; without, none of the other job keys (a default
    may set those, for the jobs among the services)."""
    scheduled = _any_required(("schedule", "every"))
    rules: list[Fragment] = [
        {
            "not": {
                "allOf": [{"type": "object"}, {"required": ["schedule"]}, {"required": ["every"]}]
            }
        },
        {
            "if": {"allOf": [{"type": "object"}, scheduled]},
            "then": {"not": _any_required(schema.NOT_FOR_JOBS)},
        },
    ]
    if not defaults:
        others = [k for k in schema.JOB_KEYS if k not in ("schedule", "every")]
        rules.append(
            {
                "if": {"allOf": [{"type": "object"}, {"not": scheduled}]},
                "then": {"not": _any_required(others)},
            }
        )
    return tuple(rules)


def service_schema(title: str = "service.yaml", defaults: bool = False) -> Fragment:
    """A service.yaml (or pyinit.yaml's defaults): SERVICE_KEYS, with validate()'s
    rules across keys."""
    no_ready_on_oneshot = {
        "not": {
            "allOf": [
                {
                    "type": "object",
                    "properties": {"oneshot": {"const": True}},
                    "required": ["oneshot", "ready"],
                },
            ]
        }
    }
    body = mapping(schema.SERVICE_KEYS, (no_ready_on_oneshot, *_job_rules(defaults)))
    return {"title": title, **body}


def documents() -> dict[str, Fragment]:
    """The two schemas, by the name of their file."""
    service = service_schema()
    defaults = service_schema("defaults for every service.yaml", defaults=True)
    for key in ("instances", "schedule", "every"):  # validate_global: not defaults
        defaults["properties"].pop(key, None)
    top = mapping({k: v for k, v in schema.GLOBAL_KEYS.items() if k != "defaults"})
    top["properties"]["defaults"] = defaults
    return {
        "service.schema.json": {
            "$schema": DRAFT,
            "$id": "service.schema.json",
            "description": "pyinit's service.yaml (docs/service-yaml.md)",
            **service,
            "type": ["object", "null"],
        },
        "pyinit.schema.json": {
            "$schema": DRAFT,
            "$id": "pyinit.schema.json",
            "title": "pyinit.yaml",
            "description": "pyinit's /etc/pyinit.yaml (docs/pyinit.md)",
            **top,
            "type": ["object", "null"],
        },
    }


def render(document: Fragment) -> str:
    return json.dumps(document, indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the schema files; with --check, only say whether they are up to date."""
    stale = []
    for name, document in documents().items():
        path = os.path.join(HERE, name)
        text = render(document)
        try:
            with open(path) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        stale.append(path)
        if "--check" not in argv:
            os.makedirs(HERE, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    verb = "out of date" if "--check" in argv else "written"
    for path in stale:
        print(f"{path}: {verb}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
