"""These tests run only inside the image built from Dockerfile.test, where pyinit is
the container's PID 1 and pytest its main command (PYINIT_IN_CONTAINER=1)."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("PYINIT_IN_CONTAINER") == "1" else ["test_*.py"]
