"""service.yaml validation: every accepted form and every error line."""

from __future__ import annotations

import pytest

from pyinit.schema import ConfigError, Identity, ServiceConfig, load, validate


def test_empty_and_full_documents() -> None:
    assert validate(None, "f") == ServiceConfig()
    assert validate({}, "f") == ServiceConfig()
    cfg = validate({"user": "app", "group": 50, "log": {"user": "logger"}}, "f")
    assert cfg.run_as == Identity("app", "50")
    assert cfg.log_as == Identity("logger", None)
    assert cfg.run_as.spec() == "app:50" and cfg.log_as.spec() == "logger"
    assert Identity().spec() is None


@pytest.mark.parametrize("data, message", [
    ({"usr": "app"}, "f: unknown key 'usr' (allowed: group, log, user)"),
    ({"user": True}, "f: key 'user' must be a name or a number, not true/false"),
    ({"user": ["a"]}, "f: key 'user' must be a name or a number, not a list"),
    ({"log": "yes"}, "f: key 'log' must be a mapping with keys group, user, not a str"),
    ({"log": {"level": 3}}, "f: log: unknown key 'level' (allowed: group, user)"),
    ({"log": {"group": 1.5}}, "f: log: key 'group' must be a name or a number, not a float"),
    (["user"], "f: must be a mapping of keys, not a list"),
    ({1: "x"}, "f: unknown key 1 (allowed: group, log, user)"),
])
def test_errors_name_the_file_the_key_and_what_is_allowed(data, message) -> None:
    with pytest.raises(ConfigError) as err:
        validate(data, "f")
    assert str(err.value) == message


def test_load_reports_yaml_errors_with_position(tmp_path) -> None:
    bad = tmp_path / "service.yaml"
    bad.write_text("user: app\n  group: [\n")
    with pytest.raises(ConfigError, match=r"service.yaml: not valid YAML \(line \d+, column \d+\)"):
        load(str(bad))
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load(str(tmp_path / "missing.yaml"))


def test_load_never_builds_python_objects(tmp_path) -> None:
    evil = tmp_path / "service.yaml"
    evil.write_text("user: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(str(evil))
    assert not (tmp_path / "pwned").exists()
