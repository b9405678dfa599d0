"""`s6-svc` (s6's service control) over pyinit's control socket: its letters sent as
svctl sends runit's, `-wu`/`-wd` as svctl's waits, `-wU` as `svctl check`. Exit 100
for a usage error, 111 when pyinit cannot be reached (s6's codes)."""

from __future__ import annotations

import os
import sys

USAGE_ERROR = 100
SYSTEM_ERROR = 111
FOREVER = 86400.0  # svctl's longest wait; s6-svc without -T waits without limit


def main(argv: list[str] | None = None) -> None:
    from pyinit.cli import svctl
    from pyinit.foreign import s6svc

    try:
        req = s6svc.parse_svc(list(sys.argv[1:] if argv is None else argv))
    except s6svc.Usage as exc:
        sys.stderr.write(f"s6-svc: fatal: {exc}\n{s6svc.SVC_USAGE}\n")
        sys.exit(USAGE_ERROR)
    wait = f"{req.timeout if req.timeout is not None else FOREVER:g}"
    letters = list(req.letters)
    for letter in letters[:-1]:  # in order, as s6-svc sends them
        _run(svctl, [letter, req.service])
    if req.wait in ("U", "D"):  # up and ready / down (pyinit does not restart it)
        if letters:
            _run(svctl, [letters[-1], req.service])
        _run(svctl, ["-w", wait, "check" if req.wait == "U" else "d", req.service], last=True)
    elif letters:
        timed = ["-w", wait] if req.wait in ("u", "d") else []
        _run(svctl, [*timed, letters[-1], req.service], last=True)
    elif req.wait in ("u", "d"):
        _run(svctl, ["-w", wait, req.wait, req.service], last=True)
    sys.exit(0)


def _run(svctl: object, words: list[str], last: bool = False) -> None:
    """svctl with these words, its report kept (s6-svc is silent; the report goes to
    stderr when it failed); its exit code (usage or unreachable: 111) ends us when it
    fails or when this is the last step."""
    import contextlib
    import io

    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            svctl.main(words)  # type: ignore[attr-defined]
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if code == 2:  # svctl's usage error / unreachable pyinit
        code = SYSTEM_ERROR
    if code:
        sys.stderr.write(said.getvalue())
    if code or last:
        sys.stderr.flush()
        os._exit(code)
