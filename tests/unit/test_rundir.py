"""rundir: which run dir pyinit takes (as given, /run/pyinit, $XDG_RUNTIME_DIR/pyinit,
/tmp/pyinit-UID) and how svctl finds it again."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from pyinit.runtime import rundir
from pyinit.runtime.rundir import (
    Candidate,
    candidates,
    choose,
    describe,
    prepare,
    private_problem,
    shared_problem,
)


def test_candidates_in_order() -> None:
    assert candidates({}, 5) == [Candidate("/run/pyinit"), Candidate("/tmp/pyinit-5", True)]
    assert candidates({"XDG_RUNTIME_DIR": "/run/user/5"}, 5) == [
        Candidate("/run/pyinit"),
        Candidate("/run/user/5/pyinit"),
        Candidate("/tmp/pyinit-5", True),
    ]
    assert candidates({"XDG_RUNTIME_DIR": "relative"}, 5)[1] == Candidate("/tmp/pyinit-5", True)


def test_choose_takes_the_first_that_works_and_says_why_the_others_did_not() -> None:
    refusals = {"/run/pyinit": "Permission denied", "/run/user/5/pyinit": "No such file"}
    tried: list[str] = []

    def prep(cand: Candidate, uid: int) -> str | None:
        tried.append(cand.path)
        return refusals.get(cand.path)

    choice = choose(None, {"XDG_RUNTIME_DIR": "/run/user/5"}, 5, prep)
    assert choice.path == "/tmp/pyinit-5"
    assert tried == ["/run/pyinit", "/run/user/5/pyinit", "/tmp/pyinit-5"]
    assert describe(choice.refused) == (
        "/run/pyinit: Permission denied; /run/user/5/pyinit: No such file"
    )


def test_choose_tries_an_explicit_dir_alone() -> None:
    choice = choose("/srv/run", {}, 0, lambda c, u: "Read-only file system")
    assert choice.path is None
    assert choice.refused == [("/srv/run", "Read-only file system")]
    assert choose("/srv/run", {}, 0, lambda c, u: None).path == "/srv/run"


def test_choose_without_any_usable_place() -> None:
    choice = choose(None, {}, 7, lambda c, u: "nope")
    assert choice.path is None and [p for p, _ in choice.refused] == [
        "/run/pyinit",
        "/tmp/pyinit-7",
    ]


@pytest.mark.parametrize(
    ("mode", "owner", "problem"),
    [
        (stat.S_IFDIR | 0o700, 5, None),
        (stat.S_IFDIR | 0o755, 5, None),  # ours: prepare() tightens it
        (stat.S_IFDIR | 0o700, 0, "is owned by uid 0, not 5"),
        (stat.S_IFLNK | 0o777, 5, "is a symlink"),
        (stat.S_IFREG | 0o600, 5, "is not a directory"),
    ],
)
def test_private_problem(mode: int, owner: int, problem: str | None) -> None:
    assert private_problem(mode, owner, 5) == problem


def test_prepare_creates_a_private_dir_0700(tmp_path: Path) -> None:
    path = tmp_path / "pyinit-me"
    assert prepare(Candidate(str(path), True), os.geteuid()) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    path.chmod(0o777)
    assert prepare(Candidate(str(path), True), os.geteuid()) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_prepare_refuses_what_someone_else_could_control(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "pyinit-link"
    link.symlink_to(target)
    assert prepare(Candidate(str(link), True), os.geteuid()) == "is a symlink"
    if os.geteuid() == 0:
        theirs = tmp_path / "pyinit-theirs"
        theirs.mkdir()
        os.chown(theirs, 4242, -1)
        assert prepare(Candidate(str(theirs), True), 0) == "is owned by uid 4242, not 0"
        assert prepare(Candidate(str(theirs), True), 4242) is None  # its owner may


def test_prepare_shared_dir(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    assert prepare(Candidate(str(deep)), os.geteuid()) is None
    assert deep.is_dir()
    afile = tmp_path / "file"
    afile.write_text("")
    assert prepare(Candidate(str(afile)), os.geteuid()) == "is not a directory"
    under = afile / "x"
    assert prepare(Candidate(str(under)), os.geteuid()) == "Not a directory"


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path / "control.sock"))
    return sock


def test_find_prefers_the_environment_then_the_first_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, private = tmp_path / "first", tmp_path / "second", tmp_path / "private"
    for d in (first, second, private):
        d.mkdir()
    monkeypatch.setattr(
        rundir,
        "candidates",
        lambda env, uid: [
            Candidate(str(first)),
            Candidate(str(private), True),
            Candidate(str(second)),
        ],
    )
    monkeypatch.setattr(rundir, "pid1_uid", lambda: None)
    assert rundir.find({"PYINIT_RUN_DIR": "/given"}) == "/given"
    assert rundir.find({}) == rundir.SHARED  # no socket anywhere
    with _listen(second):
        assert rundir.find({}) == str(second)
        with _listen(private):
            assert rundir.find({}) == str(private)
            if os.geteuid() == 0:
                os.chown(private, 4242, -1)  # someone else's: never trusted
                assert rundir.find({}) == str(second)


def _st(uid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 2, uid, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    "dir_uid, dir_mode, problem",
    [
        (5, stat.S_IFDIR | 0o755, None),  # /run/pyinit, ours
        (0, stat.S_IFDIR | 0o755, None),  # root's (whether pyinit may write: os.access)
        (7, stat.S_IFDIR | 0o755, "is owned by uid 7"),
        (5, stat.S_IFREG | 0o644, "is not a directory"),
    ],
)
def test_shared_problem(dir_uid, dir_mode, problem) -> None:
    assert shared_problem(_st(dir_uid, dir_mode), 5) == problem


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give dirs to another uid")
def test_prepare_refuses_a_shared_dir_another_user_controls(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, -1)
    assert prepare(Candidate(str(theirs)), 0) == "is owned by uid 4242"
    assert prepare(Candidate(str(theirs / "pyinit")), 0) is None  # moved away? see hold
    (theirs / "link").symlink_to(tmp_path)
    assert prepare(Candidate(str(theirs / "link" / "x")), 0) == (
        "link is a symlink in a directory another user can write: not followed"
    )
    wide = tmp_path / "wide"
    wide.mkdir()
    wide.chmod(0o777)
    assert prepare(Candidate(str(wide)), 0) is None
    assert stat.S_IMODE(wide.stat().st_mode) == 0o755  # group and others: no write


def test_hold_and_at_reach_the_dir_wherever_it_moves(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    fd = rundir.hold(str(run), os.geteuid())
    try:
        path = rundir.at(fd, str(run), "control.sock")
        assert path == f"/proc/self/fd/{fd}/control.sock"
        run.rename(tmp_path / "moved")
        run.mkdir()
        with open(path, "w") as fh:
            fh.write("x")
        assert (tmp_path / "moved" / "control.sock").exists()
        assert not (run / "control.sock").exists()
    finally:
        os.close(fd)
    assert rundir.at(None, str(run), "control.sock") == f"{run}/control.sock"
