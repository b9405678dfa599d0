"""`s6-svstat` from pyinit's status: s6's status line, or the `-o` fields (and the
`-uwNrpes` letters) space-separated. Exit 100 for a usage error, 1 when no such
service, 111 when pyinit cannot be reached."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    from pyinit.control.protocol import request
    from pyinit.core.protocol import SOCKET_NAME
    from pyinit.foreign import s6svc
    from pyinit.runtime import rundir

    try:
        fields, name = s6svc.parse_svstat(list(sys.argv[1:] if argv is None else argv))
    except s6svc.Usage as exc:
        sys.stderr.write(f"s6-svstat: fatal: {exc}\n{s6svc.SVSTAT_USAGE}\n")
        sys.exit(100)
    path = os.path.join(rundir.find(dict(os.environ)), SOCKET_NAME)
    try:
        reply = request(path, {"cmd": "status", "services": [name]})
    except (OSError, ConnectionError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        sys.stderr.write(f"s6-svstat: fatal: cannot reach pyinit at {path}: {reason}\n")
        sys.exit(111)
    records = reply.get("services") or []
    if not reply.get("ok") or not records or records[0].get("missing"):
        sys.stderr.write(f"s6-svstat: fatal: no such service: {name}\n")
        sys.exit(1)
    rec = records[0]
    print(s6svc.svstat_fields(rec, fields) if fields else s6svc.svstat_line(rec))
    sys.exit(0)
