"""The container environment directory's encoding, my_init style (pure, stdlib only).

`/etc/container_environment/NAME` holds one variable per file: its content
without one trailing newline. The dumps `<dir>.sh` (shell `export` lines) and
`<dir>.json` hold the same variables. runtime/environment.py reads and writes
the files.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping

from pyinit.core import bounds

SKIPPED = frozenset({"HOME", "USER", "GROUP", "UID", "GID", "SHELL"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


@dataclass
class Parsed:
    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_entries(entries: Mapping[str, bytes]) -> Parsed:
    """Turn {file name: content} into variables, with a problem line per bad entry."""
    out = Parsed()
    for fname in sorted(entries):
        if not valid_name(fname):
            out.problems.append(f"skipping {bounds.render(fname)}: not a valid variable name")
            continue
        raw = entries[fname]
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if b"\0" in raw:
            out.problems.append(f"skipping {fname}: value contains a NUL byte")
            continue
        try:
            out.values[fname] = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.problems.append(f"skipping {fname}: value is not valid UTF-8")
    return out


def merge(
    current: Mapping[str, str], imported: Mapping[str, str], override: bool
) -> dict[str, str]:
    """current plus imported; imported wins only when override is set."""
    merged = dict(current)
    for key, value in imported.items():
        if override or key not in merged:
            merged[key] = value
    return merged


def utf8(value: str) -> bool:
    """False for a value holding undecodable bytes (os.environ keeps them as
    surrogates): such a value cannot be written to a UTF-8 file."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def exported(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that get written back (my_init skips the per-user ones)."""
    return {k: v for k, v in sorted(env.items()) if k not in SKIPPED and valid_name(k) and utf8(v)}


def file_content(value: str) -> str:
    """What NAME's file holds so that reading it back (one trailing newline
    stripped) gives value exactly: the value as is (like my_init), plus a newline
    when the value itself ends with one."""
    return value + "\n" if value.endswith("\n") else value


def render_sh(env: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exported(env).items())


def render_json(env: Mapping[str, str]) -> str:
    return json.dumps(exported(env), indent=2, sort_keys=True) + "\n"
