"""Every bad input of docs/reliability.md gets a clear answer (never a traceback), and
the table there is what pyinit answers today (full run only: `make stress`)."""

from __future__ import annotations

import bad_inputs
from stresskit import FULL, report


def check(results) -> None:
    for case, said, _code in results:
        assert said, f"{case.shown}: pyinit said nothing"
        assert "Traceback" not in said, f"{case.shown}: {said}"


def test_bad_inputs_answered_clearly() -> None:
    cases = (
        bad_inputs.CASES
        if FULL
        else [
            c
            for c in bad_inputs.CASES
            if c.shown
            in (
                "`--kill-timeout abc`",
                "`restrat: always` (typo)",
                "`svctl frobnicate`",
                "`hello` (not JSON)",
            )
        ]
    )
    results = bad_inputs.run_all(cases)
    check(results)
    report("bad inputs", cases=len(results))
    if FULL:
        doc = bad_inputs.DOC.read_text()
        assert bad_inputs.replace_table(doc, bad_inputs.table(results)) == doc, (
            "docs/reliability.md is out of date: run `python tests/stress/bad_inputs.py --write`"
        )
