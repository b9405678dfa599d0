"""core/schema_json.py: the committed JSON Schemas are the generated ones, are valid
draft-07 schemas, and the number-range regexes they are built from are exact.
(tests/stress/test_schema_agreement.py checks they accept what the validator does.)"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import jsonschema

from pyinit.core import schema_json


def test_the_committed_schemas_are_the_generated_ones():
    """After a change to core/schema.py's tables: `make schemas`."""
    for name, document in schema_json.documents().items():
        path = Path(schema_json.HERE) / name
        assert path.read_text() == schema_json.render(document), f"{path}: run `make schemas`"
    assert schema_json.main(["--check"]) == 0


def test_they_are_valid_draft7_schemas_and_package_data():
    for name in schema_json.FILES:
        document = json.loads((Path(schema_json.HERE) / name).read_text())
        jsonschema.Draft7Validator.check_schema(document)
        assert document["$schema"] == schema_json.DRAFT
    pyproject = (Path(schema_json.__file__).parents[2] / "pyproject.toml").read_text()
    assert '"pyinit.core" = ["schemas/*.json"]' in pyproject


def test_every_key_of_the_tables_is_a_property():
    from pyinit.core import schema

    service = schema_json.documents()["service.schema.json"]
    assert set(service["properties"]) >= set(schema.SERVICE_KEYS)
    assert "notification-fd" in service["properties"]["ready"]["properties"]
    top = schema_json.documents()["pyinit.schema.json"]
    assert set(top["properties"]) >= set(schema.GLOBAL_KEYS)


def test_number_ranges_are_exact():
    rng = random.Random(21)
    cases = [(0, 0), (0, 9), (1, 65535), (4096, 99999), (4, 1073741824), (7, 7), (10, 100)]
    cases += [tuple(sorted(rng.sample(range(0, 10**6), 2))) for _ in range(30)]
    for low, high in cases:
        pattern = re.compile(f"(?:{schema_json.number_range(low, high)})")
        probes = {low, high, low - 1, high + 1, 0, 9, 10, 99, 100, 10**6}
        probes |= {rng.randrange(0, 2 * high + 10) for _ in range(200)}
        for n in probes:
            if n >= 0:
                assert bool(pattern.fullmatch(str(n))) == (low <= n <= high), (low, high, n)
