"""Adversarial review of issues 17 and 23 (branch review-sec): pure-logic regressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyinit import schema

SEXAGESIMAL = "1" + ":59" * 15000 + ".5"  # an integer part too large for a float


@pytest.mark.parametrize("value", [SEXAGESIMAL, "9" * 5000, "2001-13-45",
                                   "2001-12-14 21:59:43 +99:00"])
def test_yaml_numbers_and_dates_out_of_range_are_config_errors(tmp_path: Path,
                                                               value: str) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(f"stop_timeout: {value}\n")
    with pytest.raises(schema.ConfigError) as exc:
        schema.load(str(path))
    assert str(exc.value) == f"{path}: not valid YAML: a number or date out of range"
