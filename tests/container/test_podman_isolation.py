"""An image whose Python settings are hostile to a Python PID 1 (issue 23): pyinit
from debian.Dockerfile (its `-I` launchers) boots, supervises, answers svctl and
exits with its main command's code, and the main command and a service see every
variable exactly as the image set it."""

from __future__ import annotations

from pathlib import Path

from podmanlib import Containers, build, containerfile

HOSTILE = {
    "PYTHONPATH": "/app",
    "PYTHONHOME": "/nonexistent/python-home",
    "PYTHONWARNINGS": "error",
    "PYTHONSTARTUP": "/app/startup.py",
    "PYTHONINSPECT": "1",
    "PYTHONOPTIMIZE": "2",
    "PYTHONDEVMODE": "1",
}
USER_SITE = "/root/.local/lib/python3.11/site-packages"
# every module below records that it ran in /tmp/ran, then raises
TATTLE = "import os; open('/tmp/ran', 'a').write(__name__ + chr(10)); raise RuntimeError(__name__)"


def test_hostile_python_settings_reach_the_app_not_pyinit(
    containers: Containers, base_image: str, tmp_path: Path
) -> None:
    env = " ".join(f"{k}={v}" for k, v in HOSTILE.items())
    ctx = containerfile(
        tmp_path,
        f"""FROM {base_image}
RUN mkdir -p /app {USER_SITE} /etc/service/svc \\
 && for m in selectors socket json yaml re sitecustomize startup; do \\
      echo "{TATTLE}" > /app/$m.py; done \\
 && for m in selectors socket json yaml usercustomize; do \\
      echo "{TATTLE}" > {USER_SITE}/$m.py; done \\
 && printf '#!/bin/sh\\nenv > /tmp/svc-env\\nexec sleep infinity\\n' > /etc/service/svc/run \\
 && chmod +x /etc/service/svc/run
ENV {env}
ENTRYPOINT ["pyinit", "--"]
""",
    )
    image = build(ctx, "hostile-python")
    script = (
        "svctl -w 30 check svc && svctl status svc && setuser nobody true"
        " && pyinit-env true && echo '=== main' && env | grep ^PYTHON | sort"
        " && while [ ! -s /tmp/svc-env ]; do sleep 0.1; done"
        " && echo '=== service' && grep ^PYTHON /tmp/svc-env | sort"
        " && echo '=== ran' && cat /tmp/ran 2>/dev/null; exit 3"
    )
    r = containers.run(image, "sh", "-c", script, opts=["--rm"], timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 3, out  # the main command's code: pyinit shut down cleanly
    assert "ok: run: svc" in r.stdout and "Traceback" not in out, out
    _, main, service, ran = r.stdout.split("=== ")
    expected = sorted(f"{k}={v}" for k, v in HOSTILE.items())
    assert main.split()[1:] == expected, main
    assert service.split()[1:] == expected, service
    assert ran.split()[1:] == [], f"the image's modules ran in pyinit's tools: {ran}"
