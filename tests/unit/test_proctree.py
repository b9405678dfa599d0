"""descendants() on synthetic trees; parent_map() on synthetic and real /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, wait_for

from pyinit.linux.proctree import descendants, parent_map


def test_descendants_of_a_small_tree_parents_first() -> None:
    parents = {1: 0, 10: 1, 11: 1, 20: 10, 21: 10, 30: 20, 12: 1, 99: 50, 50: 0}
    out = descendants(parents, 1)
    assert sorted(out) == [10, 11, 12, 20, 21, 30]
    for pid in out:  # every process comes after its parent
        if parents[pid] != 1:
            assert out.index(parents[pid]) < out.index(pid)
    assert 1 not in out  # root excluded
    assert 99 not in out and 50 not in out  # another tree


def test_descendants_of_a_subtree_and_of_a_leaf() -> None:
    parents = {1: 0, 10: 1, 20: 10, 30: 20, 11: 1}
    assert descendants(parents, 10) == [20, 30]
    assert descendants(parents, 30) == []
    assert descendants(parents, 12345) == []
    assert descendants({}, 1) == []


def test_descendants_of_a_root_not_in_the_map() -> None:
    """The subreaper itself may have vanished from a snapshot: its children still count."""
    assert sorted(descendants({5: 4, 6: 5}, 4)) == [5, 6]


def test_deep_chain_is_not_recursive() -> None:
    depth = 50_000
    parents = {pid: pid - 1 for pid in range(2, depth + 2)}
    out = descendants(parents, 1)
    assert out == list(range(2, depth + 2))


def test_wide_tree() -> None:
    parents = {pid: 1 for pid in range(2, 20_002)}
    parents.update({pid: 2 for pid in range(30_000, 30_100)})
    out = descendants(parents, 1)
    assert len(out) == 20_000 + 100
    assert len(set(out)) == len(out)


# --- parent_map ----------------------------------------------------------------------


def _fake_proc(tmp_path: Path, stats: dict[str, bytes]) -> Path:
    for entry, stat in stats.items():
        d = tmp_path / entry
        d.mkdir()
        if stat:
            (d / "stat").write_bytes(stat)
    return tmp_path


def test_parent_map_on_a_synthetic_proc(tmp_path: Path) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            "1": b"1 (init) S 0 1 1 0 -1\n",
            "42": b"42 (a) (b) S 7 42 42 0 -1\n",
            "43": b"43 (x) (y z) 5 9) R 1 43 43 0 -1\n",
            "44": b"44 () Z 42 44 44\n",
            "45": b"45 (with\nnewline) S 43 45 45\n",
            "46": b"46 (\xff\xfe) S 1 46 46\n",
            "47": b"",  # vanished: no stat file
            "self": b"1 (init) S 0 1 1\n",  # not a pid
            "sys": b"",
        },
    )
    assert parent_map(str(proc)) == {1: 0, 42: 7, 43: 1, 44: 42, 45: 43, 46: 1}


def test_parent_map_sees_this_process() -> None:
    pm = parent_map()
    assert pm[os.getpid()] == os.getppid()


def _spawn_with_comm(tmp_path: Path, comm: str) -> subprocess.Popen[bytes]:
    """A child whose comm is `comm`: exec a symlink to sleep named like that."""
    link = tmp_path / comm
    sleep = subprocess.run(["sh", "-c", "command -v sleep"], capture_output=True, text=True,
                           check=True).stdout.strip()
    link.symlink_to(sleep)
    return subprocess.Popen([str(link), "60"])


def test_parent_map_with_parens_and_spaces_in_comm(tmp_path: Path) -> None:
    child = _spawn_with_comm(tmp_path, ") (x 1 2) (")
    try:
        wait_for(lambda: Path(f"/proc/{child.pid}/comm").read_text() == ") (x 1 2) (\n",
                 5, "the child's exec")
        pm = parent_map()
        assert pm[child.pid] == os.getpid()
        assert child.pid in descendants(pm, os.getpid())
    finally:
        child.kill()
        child.wait()


def test_parent_map_with_comm_set_by_prctl() -> None:
    code = (
        "import os, sys\n"
        "from pyinit.linux import prctl\n"
        "prctl.set_name(') (evil 3 4')\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert Path(f"/proc/{child.pid}/comm").read_text() == ") (evil 3 4\n"
        assert parent_map()[child.pid] == os.getpid()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()
