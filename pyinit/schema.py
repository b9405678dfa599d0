"""service.yaml: loading and validating against the documented schema.

Validation is table-driven and pure: a key table per mapping, each entry the
Python types allowed and how to say it to a user. An unknown key or a wrong
type is one line naming the file, the key and what is allowed. See
docs/service-yaml.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

FILE_NAME = "service.yaml"


class ConfigError(Exception):
    """A bad service.yaml; the message is the one line shown to the user."""


# key -> (allowed Python types, what the user is told is allowed)
_ID = ((str, int), "a name or a number")
LOG_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "user": _ID,
    "group": _ID,
}
SERVICE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "user": _ID,
    "group": _ID,
    "log": ((dict,), "a mapping with keys " + ", ".join(sorted(LOG_KEYS))),
}


@dataclass(frozen=True)
class Identity:
    """Who a process runs as: user and optional group, as written."""

    user: Optional[str] = None
    group: Optional[str] = None

    def spec(self) -> Optional[str]:
        """USER[:GROUP] for privileges.resolve, or None to stay as pyinit."""
        if self.user is None:
            return None if self.group is None else f"{_current_user()}:{self.group}"
        return self.user if self.group is None else f"{self.user}:{self.group}"


@dataclass(frozen=True)
class ServiceConfig:
    run_as: Identity = Identity()
    log_as: Identity = Identity()


def _current_user() -> str:
    import os

    return str(os.getuid())


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "true/false", type(None): "empty"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _check(where: str, data: dict, table: dict[str, tuple[tuple[type, ...], str]]) -> None:
    for key, value in data.items():
        if not isinstance(key, str) or key not in table:
            allowed = ", ".join(sorted(table))
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        types, wanted = table[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ConfigError(f"{where}: key {key!r} must be {wanted}, not {_type_name(value)}")


def _ident(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def validate(data: Any, path: str) -> ServiceConfig:
    """A parsed YAML document to a ServiceConfig, or ConfigError."""
    if data is None:
        return ServiceConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, not {_type_name(data)}")
    _check(path, data, SERVICE_KEYS)
    log = data.get("log", {})
    _check(f"{path}: log", log, LOG_KEYS)
    return ServiceConfig(
        run_as=Identity(_ident(data.get("user")), _ident(data.get("group"))),
        log_as=Identity(_ident(log.get("user")), _ident(log.get("group"))),
    )


def load(path: str) -> ServiceConfig:
    """Read and validate one service.yaml (pyyaml's safe loader, the C one when present)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as fh:
            data = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return validate(data, path)
