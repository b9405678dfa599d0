"""Config fuzzing: random service.yaml and pyinit.yaml documents (random values under
the real keys, near-miss keys, random text) through the loaders. Each one loads or is
rejected with a one-line message naming the file; never another exception."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from stresskit import report, scale

from pyinit.core import schema
from pyinit.runtime import yamlfile

EXAMPLES = scale(150, 5000)
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "TERM",
            "sigkill",
            "0",
            "-1",
            "1.5",
            "unlimited",
            "infinity",
            "10s",
            "tcp:127.0.0.1:80",
            "http://127.0.0.1:1/x",
            "root",
            "nobody",
            "65536",
            "prefix",
            "file",
            "json",
            "always",
            "on-failure",
            "never",
            "0o22",
            "022",
            "x" * 5000,
            "\x00",
            "../..",
            "a b",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=10),
                st.sampled_from(
                    sorted(
                        {
                            *schema.LOG_KEYS,
                            *schema.PROBE_KEYS,
                            *schema.READY_KEYS,
                            *schema.BACKOFF_KEYS,
                        }
                    )
                ),
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
keys = st.one_of(
    st.sampled_from(sorted(schema.SERVICE_KEYS)),
    st.sampled_from(sorted(schema.SERVICE_KEYS)).map(lambda k: k.upper()),
    st.text(string.ascii_lowercase + "_", max_size=12),
    st.integers(),
    st.none(),
)
documents = st.one_of(st.dictionaries(keys, values, max_size=6), values)


def check_rejection(exc: schema.ConfigError, path: str) -> None:
    """One line per problem (issue 18 item 10), each naming the file and bounded, at most
    schema.MAX_PROBLEMS of them and then a count."""
    lines = str(exc).splitlines()
    assert 1 <= len(lines) <= schema.MAX_PROBLEMS + 1, lines
    for line in lines:
        assert line.startswith(path) or line.endswith("more problems"), line
        assert "Traceback" not in line, line
        assert len(line) < 2000, line[:300]


def outcome(counts: dict[str, int], load, path: str) -> None:
    """load() accepts, or rejects with a well-formed message; count which."""
    try:
        load()
        counts["accepted"] += 1
    except schema.ConfigError as exc:
        check_rejection(exc, path)
        counts["rejected"] += 1


def fuzzed(name: str, fuzz, *args) -> None:
    """Run a fuzzer over its whole corpus: both outcomes must occur in it, or the corpus
    no longer reaches the loader's accepting (or its rejecting) paths."""
    counts = {"accepted": 0, "rejected": 0}
    fuzz(counts, *args)
    report(f"config fuzz, {name}", examples=EXAMPLES, **counts)
    assert counts["accepted"] > 0 and counts["rejected"] > 0, counts


@seed(9)
@SETTINGS
@given(documents)
def fuzz_service_yaml(counts: dict[str, int], doc) -> None:
    path = "/etc/service/fuzz/service.yaml"
    outcome(counts, lambda: schema.validate(doc, path), path)


@seed(9)
@SETTINGS
@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from(["defaults", *sorted(schema.GLOBAL_KEYS)]),
            st.one_of(documents, values),
            max_size=4,
        ),
        values,
    )
)
def fuzz_pyinit_yaml(counts: dict[str, int], tmp_path_factory, doc) -> None:
    import yaml

    path = tmp_path_factory.mktemp("g") / "pyinit.yaml"
    path.write_text(yaml.safe_dump(doc))
    outcome(counts, lambda: yamlfile.load_global(str(path)), str(path))


@seed(9)
@SETTINGS
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def fuzz_text_as_service_yaml(counts: dict[str, int], tmp_path_factory, text) -> None:
    path = tmp_path_factory.mktemp("s") / "service.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, errors="surrogateescape")
    outcome(counts, lambda: yamlfile.load_service(str(path)), str(path))


def test_random_service_yaml() -> None:
    fuzzed("service.yaml", fuzz_service_yaml)


def test_random_pyinit_yaml(tmp_path_factory) -> None:
    fuzzed("pyinit.yaml", fuzz_pyinit_yaml, tmp_path_factory)


def test_random_text_as_service_yaml(tmp_path_factory) -> None:
    fuzzed("text as service.yaml", fuzz_text_as_service_yaml, tmp_path_factory)
