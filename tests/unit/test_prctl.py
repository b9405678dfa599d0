"""Both prctl backends (ctypes, python-prctl), each in a fresh interpreter, checked
against what the kernel reports (/proc, PR_GET_PDEATHSIG, a real parent death)."""

from __future__ import annotations

import errno
import importlib.util
import json
import signal
import textwrap
from pathlib import Path

import pytest
from helpers import run_python


def _backend_env(backend: str) -> dict[str, str]:
    if backend == "python-prctl":
        if importlib.util.find_spec("prctl") is None:
            pytest.skip("python-prctl is not installed (pip install 'pyinit[prctl]' needs "
                        "libcap headers and a compiler); the ctypes backend is still tested")
        return {"PYINIT_PRCTL": ""}
    return {"PYINIT_PRCTL": "ctypes"}


BACKENDS = ["ctypes", "python-prctl"]


def _status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_selection(backend: str) -> None:
    code = "from pyinit.linux import prctl; print(prctl.backend())"
    out = run_python(code, _backend_env(backend))
    assert out.stdout.strip() == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_child_subreaper_set_and_get(backend: str) -> None:
    code = textwrap.dedent(
        """
        import json
        from pyinit.linux import prctl
        states = [prctl.get_child_subreaper()]
        prctl.set_child_subreaper(True)
        states.append(prctl.get_child_subreaper())
        prctl.set_child_subreaper(False)
        states.append(prctl.get_child_subreaper())
        prctl.set_child_subreaper()
        states.append(prctl.get_child_subreaper())
        print(json.dumps(states))
        """
    )
    assert json.loads(run_python(code, _backend_env(backend)).stdout) == [
        False, True, False, True
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_subreaper_adopts_orphans(backend: str) -> None:
    """The kernel's view: a grandchild whose parent exits is reparented to us."""
    code = textwrap.dedent(
        """
        import os
        from pyinit.linux import prctl
        prctl.set_child_subreaper(True)
        r, w = os.pipe()
        mid = os.fork()
        if mid == 0:
            if os.fork() == 0:
                os.close(r)
                os.write(w, b"x")
                os._exit(0)
            os._exit(0)
        os.close(w)
        os.waitpid(mid, 0)
        os.read(r, 1)
        pid, status = os.wait()   # the orphan is ours to reap (ChildProcessError if not)
        assert pid != mid and os.WIFEXITED(status), (pid, status)
        print("adopted")
        """
    )
    assert run_python(code, _backend_env(backend)).stdout.strip() == "adopted"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_new_privs(backend: str) -> None:
    before = _status_field("NoNewPrivs")  # what this test runner has (inherited)
    code = textwrap.dedent(
        """
        import json
        from pyinit.linux import prctl
        def nnp():
            for line in open("/proc/self/status"):
                if line.startswith("NoNewPrivs:"):
                    return int(line.split()[1])
        out = [nnp(), prctl.get_no_new_privs()]
        prctl.set_no_new_privs()
        out += [nnp(), prctl.get_no_new_privs()]
        print(json.dumps(out))
        """
    )
    result = json.loads(run_python(code, _backend_env(backend)).stdout)
    assert result == [int(before), bool(int(before)), 1, True]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "comm"),
    [("pyinit", "pyinit"), ("svc: web", "svc: web"), ("x" * 15, "x" * 15),
     ("a-name-longer-than-15-bytes", "a-name-longer-t")],
)
def test_set_name(backend: str, name: str, comm: str) -> None:
    code = textwrap.dedent(
        f"""
        from pyinit.linux import prctl
        prctl.set_name({name!r})
        print(open("/proc/self/comm").read(), end="")
        """
    )
    assert run_python(code, _backend_env(backend)).stdout == comm + "\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_pdeathsig_is_set_in_the_kernel(backend: str) -> None:
    """Read it back with PR_GET_PDEATHSIG, independently of the module under test."""
    code = textwrap.dedent(
        """
        import ctypes, json, signal
        from pyinit.linux import prctl
        libc = ctypes.CDLL(None, use_errno=True)
        def get():
            v = ctypes.c_int(-1)
            assert libc.prctl(2, ctypes.byref(v), 0, 0, 0) == 0   # PR_GET_PDEATHSIG
            return v.value
        out = [get()]
        prctl.set_pdeathsig(signal.SIGUSR1)
        out.append(get())
        prctl.set_pdeathsig(signal.SIGRTMIN + 2)
        out.append(get())
        prctl.set_pdeathsig(0)
        out.append(get())
        try:
            prctl.set_pdeathsig(999)
            out.append("accepted")
        except OSError as exc:
            out.append(exc.errno)
        print(json.dumps(out))
        """
    )
    result = json.loads(run_python(code, _backend_env(backend)).stdout)
    assert result == [0, int(signal.SIGUSR1), int(signal.SIGRTMIN) + 2, 0, errno.EINVAL]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pdeathsig_kills_the_child_when_its_parent_dies(backend: str) -> None:
    """P (a subreaper) forks Q, Q forks C; C sets pdeathsig SIGTERM; Q exits; P
    reaps C and finds it was killed by SIGTERM."""
    code = textwrap.dedent(
        """
        import os, signal
        from pyinit.linux import prctl
        signal.alarm(20)
        prctl.set_child_subreaper(True)
        to_q = os.pipe()
        to_p = os.pipe()
        q = os.fork()
        if q == 0:
            qpid = os.getpid()
            c = os.fork()
            if c == 0:
                prctl.set_pdeathsig(signal.SIGTERM)
                if os.getppid() != qpid:
                    os._exit(3)
                os.write(to_q[1], str(os.getpid()).encode())
                while True:
                    signal.pause()
            os.write(to_p[1], os.read(to_q[0], 32))  # C is ready: tell P its pid
            os._exit(0)
        os.close(to_p[1])
        cpid = int(os.read(to_p[0], 32))
        statuses = {}
        while len(statuses) < 2:
            pid, status = os.wait()
            statuses[pid] = status
        assert os.WIFEXITED(statuses[q]) and os.WEXITSTATUS(statuses[q]) == 0
        assert os.WIFSIGNALED(statuses[cpid]), statuses[cpid]
        print(os.WTERMSIG(statuses[cpid]))
        """
    )
    out = run_python(code, _backend_env(backend)).stdout
    assert int(out) == signal.SIGTERM
