"""s6-overlay v3: the s6-rc.d source definitions into pyinit service dirs (pure plan,
reading a real tree, writing it), the S6_* variables as flags, s6-svc and s6-svstat."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from pyinit.core import bounds
from pyinit.foreign import s6env, s6rc, s6rc_read, s6rc_write, s6svc
from pyinit.foreign.s6rc import Command, Source, SourceError

ROOT = "/etc/s6-overlay/s6-rc.d"


def longrun(name: str, deps: tuple[str, ...] = (), **files: str) -> Source:
    return Source(name, files={"type": "longrun\n", **files}, dependencies=list(deps),
                  has_run=True)  # fmt: skip


def oneshot(name: str, up: str, deps: tuple[str, ...] = (), down: str | None = None) -> Source:
    return Source(name, files={"type": "oneshot\n"}, dependencies=list(deps), up=up, down=down)


def bundle(name: str, *contents: str) -> Source:
    return Source(name, files={"type": "bundle\n"}, contents=list(contents))


def tree(*sources: Source) -> dict[str, Source]:
    return {s.name: s for s in sources}


def plan(*sources: Source) -> s6rc.Plan:
    return s6rc.plan(tree(*sources), ROOT)


def linuxserver() -> dict[str, Source]:
    """linuxserver.io's base-image shape: an init-* oneshot chain, a longrun, user2."""
    return tree(
        oneshot("init-adduser", f"{ROOT}/init-adduser/run\n", ("init-migrations",)),
        oneshot("init-migrations", f"{ROOT}/init-migrations/run\n", ("base",)),
        oneshot("init-config", "# nothing to do\n", ("init-adduser",)),
        bundle("init-services", "init-config"),
        longrun("svc-app", ("init-services",)),
        oneshot("init-late", "echo late", ()),
        Source("user", contents=["svc-app", "init-config"]),  # no type: s6-overlay ships it
        bundle("user2", "init-late"),
    )


def test_user_bundle_closure_in_dependency_order_then_user2_after_it() -> None:
    p = s6rc.plan(linuxserver(), ROOT)
    names = [s.name for s in p.services]
    assert names == ["init-migrations", "init-adduser", "init-config", "svc-app", "init-late"]
    by = {s.name: s for s in p.services}
    assert by["init-migrations"].requires == []  # base: done before any service
    assert by["init-adduser"].requires == ["init-migrations"]
    assert by["svc-app"].requires == ["init-config"]  # through the init-services bundle
    assert by["init-late"].after == names[:4]
    assert by["init-adduser"].up == Command(argv=[f"{ROOT}/init-adduser/run"])
    assert by["init-config"].up == Command(argv=[])  # comments only
    assert by["svc-app"].kind == "longrun"


def test_not_in_user_or_user2_is_not_started() -> None:
    p = plan(longrun("a"), longrun("b"), bundle("user", "a"))
    assert [s.name for s in p.services] == ["a"]


def test_longrun_files_map_to_settings() -> None:
    src = longrun("db", **{"notification-fd": "3\n", "timeout-up": "5000\n",
                           "timeout-down": "2000", "timeout-finish": "700",
                           "down-signal": "SIGHUP\n"})  # fmt: skip
    src.has_finish = True
    (svc,) = plan(src, bundle("user", "db")).services
    assert (svc.notification_fd, svc.start_timeout, svc.stop_timeout) == (3, 5.0, 2.0)
    assert (svc.finish_timeout, svc.stop_signal, svc.has_finish) == (0.7, "SIGHUP", True)
    src.files["timeout-kill"] = "1500"  # s6's own stop limit wins over s6-rc's
    (svc,) = plan(src, bundle("user", "db")).services
    assert svc.stop_timeout == 1.5


def test_timeout_zero_means_none() -> None:
    (svc,) = plan(longrun("a", **{"timeout-up": "0"}), bundle("user", "a")).services
    assert svc.start_timeout is None


def test_pipeline_folds_the_consumer_into_the_producer_as_its_logger() -> None:
    p = plan(
        longrun("app", ("init",), **{"producer-for": "app-log"}),
        longrun("app-log", ("init-logdir",), **{"consumer-for": "app\n",
                                                "pipeline-name": "app-pipeline"}),
        oneshot("init", "true"),
        oneshot("init-logdir", "true"),
        bundle("user", "app-pipeline"),
    )  # fmt: skip
    assert [s.name for s in p.services] == ["init", "init-logdir", "app"]
    app = p.services[-1]
    assert app.logger == "app-log"
    assert app.requires == ["init", "init-logdir"]


def test_dependency_on_a_consumer_is_on_its_producer() -> None:
    p = plan(
        longrun("app", **{"producer-for": "app-log"}),
        longrun("app-log", **{"consumer-for": "app"}),
        longrun("web", ("app-log",)),
        bundle("user", "web"),
    )
    assert [s.name for s in p.services] == ["app", "web"]
    assert p.services[1].requires == ["app"]


def test_oneshot_commands_single_comment_and_execline() -> None:
    assert s6rc.parse_command("/etc/x/run\n", "f") == Command(argv=["/etc/x/run"])
    assert s6rc.parse_command("# a\n  # b\n", "f") == Command(argv=[])
    assert s6rc.parse_command("mkdir -p /run/x # why\n", "f") == Command(
        argv=["mkdir", "-p", "/run/x"]
    )
    text = 'if { mkdir -p /run/x } echo "done"\n'
    assert s6rc.parse_command(text, "f") == Command(execline=text)
    assert s6rc.parse_command("echo ${HOME}", "f").execline is not None


def test_oneshot_down_and_timeout_up() -> None:
    src = oneshot("a", "true", down="rm -f /run/a")
    src.files["timeout-up"] = "3000"
    p = plan(src, bundle("user", "a"))
    (svc,) = p.services
    assert svc.down == Command(argv=["rm", "-f", "/run/a"])
    assert svc.start_timeout is None  # service.yaml's `ready` does not apply to oneshots
    assert p.warnings == [f"{ROOT}/a/timeout-up: ignored (a oneshot's up has no time limit "
                          "in pyinit)"]  # fmt: skip


def test_ignored_files_get_one_warning_each() -> None:
    src = longrun("a", **{"flag-essential": ""})
    src.others = ["env", "data"]
    p = plan(src, bundle("user", "a"))
    assert p.warnings == [
        f"{ROOT}/a/flag-essential: ignored (pyinit stops every service at shutdown)",
        f"{ROOT}/a/env: ignored (not read: use with-contenv or export the variables in run)",
    ]


def test_builtin_names_and_missing_user_bundle() -> None:
    assert plan(longrun("a", ("base", "legacy-services"))).services == []
    p = plan(longrun("a", ("base", "legacy-cont-init", "fix-attrs")), bundle("user", "a"))
    assert p.services[0].requires == []


BAD = [
    (tree(Source("a", files={"type": "daemon"})),
     f"{ROOT}/a/type: 'daemon' is not longrun, oneshot or bundle"),
    (tree(Source("a")), f"{ROOT}/a/type: missing"),
    (tree(Source("a", files={"type": "longrun"})), f"{ROOT}/a/run: missing (a longrun needs one)"),
    (tree(Source("a", files={"type": "oneshot"})), f"{ROOT}/a/up: missing (a oneshot needs one)"),
    (tree(Source("a", files={"type": "bundle"})),
     f"{ROOT}/a/contents.d: missing (a bundle needs one)"),
    (tree(longrun("a", ("nope",)), bundle("user", "a")),
     f"{ROOT}/a/dependencies.d: 'nope' is not defined"),
    (tree(longrun("a", ("b",)), longrun("b", ("a",)), bundle("user", "a")),
     f"{ROOT}/b/dependencies.d: cycle a -> b -> a"),
    (tree(bundle("x", "y"), bundle("y", "x"), bundle("user", "x")),
     f"{ROOT}/y/contents.d: bundle cycle user -> x -> y -> x"),
    (tree(longrun("a", **{"notification-fd": "2"}), bundle("user", "a")),
     f"{ROOT}/a/notification-fd: not an fd from 3 to 1023: '2'"),
    (tree(longrun("a", **{"timeout-up": "soon"}), bundle("user", "a")),
     f"{ROOT}/a/timeout-up: not a number of milliseconds: 'soon'"),
    (tree(longrun("a", **{"down-signal": "SIGFOO"}), bundle("user", "a")),
     f"{ROOT}/a/down-signal: unknown signal 'SIGFOO'"),
    (tree(longrun("a", **{"producer-for": "b"}), longrun("b"), bundle("user", "a")),
     f"{ROOT}/b/consumer-for: must name a (its producer-for names it); one producer per consumer"),
    (tree(longrun("a", **{"producer-for": "b"}), longrun("b", **{"consumer-for": "a",
          "producer-for": "c"}), longrun("c", **{"consumer-for": "b"}), bundle("user", "a")),
     f"{ROOT}/b/producer-for: pipelines of more than one producer and one consumer are not "
     "supported"),
    (tree(oneshot("a", "x" * (64 * 1024 + 1)), bundle("user", "a")),
     f"{ROOT}/a/up: larger than 65536 bytes"),
    (tree(longrun("a@1"), bundle("user", "a@1")), f"{ROOT}/a@1: bad service name 'a@1'"),
]  # fmt: skip


@pytest.mark.parametrize("sources, message", BAD)
def test_bad_definitions_are_one_line_errors(sources: dict[str, Source], message: str) -> None:
    with pytest.raises(SourceError) as err:
        s6rc.plan(sources, ROOT)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_check_name() -> None:
    for bad in ("", ".x", "a b", "a@b", "x" * 201, "a\x1bb"):
        with pytest.raises(SourceError):
            s6rc.check_name(bad, "w")
    assert s6rc.check_name("svc-app_1.2", "w") == "svc-app_1.2"


# --- reading and writing a real tree --------------------------------------------------


def make_tree(top: Path) -> Path:
    root = top / "s6-rc.d"
    for rel, text in {
        "init-a/type": "oneshot\n",
        "init-a/up": f"{root}/init-a/run\n",
        "init-a/run": "#!/bin/sh\necho a\n",
        "init-a/dependencies.d/base": "",
        "init-b/type": "oneshot",
        "init-b/up": "if { true } echo b",
        "init-b/down": "echo b-down",
        "init-b/dependencies": "init-a\n# comment\n",
        "app/type": "longrun",
        "app/run": "#!/bin/sh\nexec sleep 100\n",
        "app/finish": "#!/bin/sh\n",
        "app/notification-fd": "3",
        "app/dependencies.d/init-b": "",
        "app/data/x": "kept",
        "user/contents.d/app": "",
        "grp/type": "bundle",
        "grp/contents": "init-b\n# the older form: a name a line\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.endswith(("/run", "/finish")):
            path.chmod(0o755)
    return root


def test_read_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    extra = tmp_path / "user-bundles.d" / "user2" / "contents.d"
    extra.mkdir(parents=True)
    (extra / "init-b").write_text("")
    sources = s6rc_read.read_tree(str(root), str(tmp_path / "user-bundles.d"))
    assert sources is not None
    assert sorted(sources) == ["app", "grp", "init-a", "init-b", "user", "user2"]
    assert sources["grp"].contents == ["init-b"]
    assert sources["init-b"].dependencies == ["init-a"]
    assert sources["app"].dependencies == ["init-b"]
    assert sources["app"].has_run and sources["app"].has_finish
    assert sources["app"].files["notification-fd"] == "3"
    assert sources["app"].others == []  # data/ is s6-rc's, copied: pyinit runs in place
    assert sources["user"].contents == ["app"]
    assert sources["user2"].contents == ["init-b"]
    assert s6rc_read.read_tree(str(tmp_path / "none")) is None


def test_read_tree_bounds(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    (root / "app" / "type").write_text("longrun" + " " * 300)
    with pytest.raises(SourceError, match=r"app/type: larger than 256 bytes"):
        s6rc_read.read_tree(str(root))


def test_read_tree_refuses_a_planted_symlink(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "real-type").write_text("longrun")
    (shared / "type").symlink_to(tmp_path / "real-type")
    os.lchown(shared / "type", 65534, 65534)  # planted by another user
    (root / "app" / "type").unlink()
    (root / "app" / "type").symlink_to(shared / "type")
    with pytest.raises(SourceError, match="symlink in a directory another user can write"):
        s6rc_read.read_tree(str(root))


def test_read_tree_refuses_a_service_dir_another_user_may_write(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    (root / "app").chmod(0o777)
    with pytest.raises(SourceError) as err:
        s6rc_read.read_tree(str(root))
    assert str(err.value) == (
        f"{root}/app: another user may write it: refused (root would run what they write)"
    )


def run_up_down(tmp_path: Path, up_code: int) -> tuple[int, str, bytes]:
    """init-b's run (a oneshot with a down), up exiting up_code: what fd 3 got
    (readiness), then SIGTERM; its exit code, the log, fd 3's bytes."""
    root = make_tree(tmp_path)
    log = tmp_path / "log"
    (root / "init-b" / "up").write_text(f"{root}/init-b/up.sh\n")
    (root / "init-b" / "down").write_text(f"{root}/init-b/down.sh\n")
    for name, body in (
        ("up", f"echo up >> {log}; exit {up_code}"),
        ("down", f"echo down >> {log}"),
    ):
        (root / "init-b" / f"{name}.sh").write_text(f"#!/bin/sh\n{body}\n")
        (root / "init-b" / f"{name}.sh").chmod(0o755)
    sources = s6rc_read.read_tree(str(root))
    assert sources is not None
    out = tmp_path / "s6-rc"
    w = s6rc_write.write(s6rc.plan(sources, str(root)), str(root), str(out), [], False, None)
    run = Path(w.services) / "init-b" / "run"
    r, wfd = os.pipe()
    proc = subprocess.Popen([str(run)], close_fds=False, preexec_fn=lambda: os.dup2(wfd, 3))
    os.close(wfd)
    try:
        ready = select.select([r], [], [], 30)[0]
        got = os.read(r, 10) if ready else b"(timeout)"
        if up_code == 0 and got == b"\n":
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, log.read_text() if log.exists() else "", got


@pytest.mark.parametrize("python", [None, "", "/a path/with blanks/python"])
@pytest.mark.parametrize("up_code", [0, 3])
def test_a_oneshot_with_a_down_stays_up_and_runs_down_only_if_up_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python: Optional[str], up_code: int
) -> None:
    """s6-rc brings down only what is up; pyinit stops this service (so its down
    runs) once what depends on it stopped. Python, or /bin/sh without a usable one."""
    if python is not None:
        monkeypatch.setattr("sys.executable", python)
    code, log, got = run_up_down(tmp_path, up_code)
    if up_code == 0:
        assert (code, log, got) == (0, "up\ndown\n", b"\n")
    else:  # not up: exits with up's code, not ready, no down
        assert (code, log, got) == (3, "up\n", b"")


def test_write(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    sources = s6rc_read.read_tree(str(root))
    assert sources is not None
    p = s6rc.plan(sources, str(root))
    finish_d = tmp_path / "cont-finish.d"
    finish_d.mkdir()
    (finish_d / "10-bye").write_text("#!/bin/sh\n")
    (finish_d / "10-bye").chmod(0o755)
    out = tmp_path / "run" / "s6-rc"
    (tmp_path / "run").mkdir()
    out.mkdir()
    (out / "stale").write_text("from the last boot")
    w = s6rc_write.write(p, str(root), str(out), [str(finish_d)], True, "/usr/bin/execlineb")
    assert not (out / "stale").exists()
    services = Path(w.services)
    assert sorted(os.listdir(services)) == ["app", "init-a", "init-b"]
    assert os.readlink(services / "app" / "run") == f"{root}/app/run"
    assert os.readlink(services / "app" / "finish") == f"{root}/app/finish"
    assert os.readlink(services / "init-a" / "run") == f"{root}/init-a/run"
    app = json.loads((services / "app" / "service.yaml").read_text())
    assert app == {"requires": ["init-b"], "ready": {"notification_fd": 3},
                   "working_directory": f"{root}/app"}  # fmt: skip
    a = json.loads((services / "init-a" / "service.yaml").read_text())
    assert a["oneshot"] is True and a["restart"] == "never" and a["essential"] is True
    # init-b has a down: it stays up (ready on fd 3) until stopped, then runs down
    b = json.loads((services / "init-b" / "service.yaml").read_text())
    assert "oneshot" not in b and b["restart"] == "never" and b["essential"] is True
    assert b["ready"] == {"notification_fd": 3}
    assert (out / "scripts" / "init-b").read_text() == (
        "#!/usr/bin/execlineb -P\nif { true } echo b\n"
    )
    assert (out / "scripts" / "init-b.down").read_text() == "#!/bin/sh\nexec echo b-down\n"
    assert (
        f"up, down = {str(out / 'scripts' / 'init-b')!r}, "
        in (services / "init-b" / "run").read_text()
    )
    assert sorted(os.listdir(w.finish)) == ["b0-10-bye"]
    assert os.readlink(Path(w.finish) / "b0-10-bye") == str(finish_d / "10-bye")


def test_legacy_services_start_after_the_user_bundle(tmp_path: Path) -> None:
    """s6-overlay: legacy-services depends on `user`; a service that depends on
    legacy-services (a user2 one) waits for the services.d longruns."""
    root = make_tree(tmp_path)
    (root / "late" / "dependencies.d").mkdir(parents=True)
    (root / "late" / "type").write_text("oneshot\n")
    (root / "late" / "up").write_text("/bin/true\n")
    (root / "late" / "dependencies.d" / "legacy-services").write_text("")
    (root / "user2" / "contents.d").mkdir(parents=True)
    (root / "user2" / "contents.d" / "late").write_text("")
    sources = s6rc_read.read_tree(str(root))
    assert sources is not None
    p = s6rc.plan(sources, str(root), ("nginx", "php"), "/etc/services.d")
    assert [(s.name, s.requires) for s in p.legacy] == [
        ("nginx", ["init-a", "init-b", "app"]), ("php", ["init-a", "init-b", "app"])]  # fmt: skip
    late = p.services[-1]
    assert (late.name, late.requires) == ("late", ["nginx", "php"])
    assert late.after == ["init-a", "init-b", "app"]
    # without services.d, a dependency on legacy-services is met at once
    assert s6rc.plan(sources, str(root)).services[-1].requires == []


def test_legacy_services_errors(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    (root / "app" / "dependencies.d" / "legacy-services").write_text("")
    sources = s6rc_read.read_tree(str(root))
    assert sources is not None
    with pytest.raises(SourceError) as err:
        s6rc.plan(sources, str(root), ("nginx",), "/etc/services.d")
    assert str(err.value) == (
        f"{root}/app/dependencies.d: cycle: app is in the user bundle, which "
        "legacy-services (/etc/services.d) starts after"
    )
    with pytest.raises(SourceError) as err:
        s6rc.plan(sources, str(root), ("app",), "/etc/services.d")
    assert str(err.value) == f"/etc/services.d/app: {root}/app has the same name"


def test_read_legacy(tmp_path: Path) -> None:
    legacy = tmp_path / "services.d"
    assert s6rc_read.read_legacy(str(legacy)) == ([], {})
    for name in ("b", "a", "native", "theirs"):
        (legacy / name).mkdir(parents=True)
    (legacy / "README").write_text("not a service")
    (legacy / "native" / "service.yaml").write_text("{}")
    (legacy / "theirs").chmod(0o777)
    assert s6rc_read.read_legacy(str(legacy)) == (
        ["a", "b", "native", "theirs"],
        {"native": "it has a service.yaml", "theirs": "another user may write it"},
    )
    (legacy / "bad name").mkdir()
    with pytest.raises(SourceError) as err:
        s6rc_read.read_legacy(str(legacy))
    assert str(err.value) == f"{legacy}/bad name: bad service name 'bad name'"


def test_execline_without_execlineb_names_the_file() -> None:
    with pytest.raises(SourceError) as err:
        s6rc_write.script(Command(execline="if { true } true"), f"{ROOT}/a/up", None)
    assert str(err.value) == (
        f"{ROOT}/a/up: needs execlineb, which is not installed (only a single command or "
        "comments run without it)"
    )


def test_script_forms() -> None:
    assert s6rc_write.script(Command(argv=["/x/run"]), "f", None) == ("link", "/x/run")
    assert s6rc_write.script(Command(argv=["echo", "a b"]), "f", None) == (
        "text",
        "#!/bin/sh\nexec echo 'a b'\n",
    )
    assert s6rc_write.script(Command(argv=[]), "f", None) == ("link", "/bin/true")


# --- S6_* variables -----------------------------------------------------------------


def test_s6_variables_to_flags() -> None:
    s = s6env.settings({})
    assert s.flags == ["--services-ready-timeout", str(bounds.MAX_SECONDS)]
    assert not s.stop_on_failure and s.etc == "/etc" and not s.warnings
    s = s6env.settings({
        "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "2500", "S6_SERVICES_GRACETIME": "12000",
        "S6_KILL_GRACETIME": "500", "S6_VERBOSITY": "1", "S6_BEHAVIOUR_IF_STAGE2_FAILS": "0",
        "S6_CMD_ARG0": "/usr/bin/env FOO=1", "S6_STAGE2_HOOK": "/hook a",
        "S6_RUNTIME_PROFILE": "dev", "S6_KEEP_ENV": "1", "S6_READ_ONLY_ROOT": "1",
    })  # fmt: skip
    assert s.flags == [
        "--services-ready-timeout",
        "2.5",
        "--kill-timeout",
        "12",
        "--kill-all-timeout",
        "0.5",
        "--shutdown-timeout",
        "14",
        "--quiet",
    ]
    assert not s.stop_on_failure
    assert s.arg0 == ["/usr/bin/env", "FOO=1"] and s.hook == ["/hook", "a"]
    assert s.etc == "/etc/cont-profile.d/dev" and not s.warnings
    assert s6env.settings({"S6_VERBOSITY": "3"}).flags[-1] == "-v"


def test_s6_variables_pyinit_ones_win() -> None:
    s = s6env.settings({"S6_SERVICES_GRACETIME": "1000", "KILL_PROCESS_TIMEOUT": "4",
                        "PYINIT_SERVICES_READY_TIMEOUT": "9"})  # fmt: skip
    assert s.flags == []


def test_s6_variables_bad_and_unsupported_are_warnings() -> None:
    s = s6env.settings({
        "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "soon", "S6_BEHAVIOUR_IF_STAGE2_FAILS": "x" * 5000,
        "S6_LOGGING": "1", "S6_RUNTIME_PROFILE": "../x", "S6_VERBOSITY": "lots",
    })  # fmt: skip
    assert s.warnings == [
        "S6_CMD_WAIT_FOR_SERVICES_MAXTIME='soon': not a number of milliseconds; ignored",
        "S6_VERBOSITY='lots': not a number; ignored",
        f"S6_BEHAVIOUR_IF_STAGE2_FAILS={bounds.render('x' * 5000)}: not a number; using 0",
        "S6_RUNTIME_PROFILE='../x': not a profile name; ignored",
        "S6_LOGGING='1': ignored (the catch-all logger is not provided: output stays on "
        "stdout/stderr)",
    ]
    assert not s.stop_on_failure and s.behaviour == 0
    assert s6env.settings({"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"}).stop_on_failure


def test_s6_behaviour_as_s6_overlay_tests_it() -> None:
    """`0$S6_BEHAVIOUR_IF_STAGE2_FAILS`, -ne 0 warns, -ge 2 stops: 5 stops too."""
    for text, level in (("", 0), ("0", 0), ("1", 1), ("2", 2), ("5", 2), ("02", 2)):
        s = s6env.settings({"S6_BEHAVIOUR_IF_STAGE2_FAILS": text})
        assert (s.behaviour, s.stop_on_failure, s.warnings) == (level, level == 2, [])


def test_s6_waits_up_to_pyinits_longest_timeout() -> None:
    """No limit (0 or unset) is pyinit's bound, no longer 2,000,000 s; a large value
    is taken as it is (the loop waits in steps: runtime/loop.py MAX_WAIT)."""
    for value in ("0", ""):
        s = s6env.settings({"S6_CMD_WAIT_FOR_SERVICES_MAXTIME": value})
        assert s.flags == ["--services-ready-timeout", "10000000"]
    s = s6env.settings({"S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "9000000000"})
    assert s.flags == ["--services-ready-timeout", "9000000"]
    s = s6env.settings({"S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "10000000001"})
    assert s.flags == ["--services-ready-timeout", "10000000"] and s.warnings


# --- s6-svc and s6-svstat ------------------------------------------------------------


def test_s6_svc_command_lines() -> None:
    r = s6svc.parse_svc(["-wU", "-T", "5000", "-u", "/run/service/svc-app"])
    assert (r.service, r.letters, r.wait, r.timeout) == ("svc-app", "u", "U", 5.0)
    r = s6svc.parse_svc(["-dx", "/run/service/app/"])
    assert (r.service, r.letters, r.wait) == ("app", "dx", None)
    assert s6svc.parse_svc(["-r", "app"]).letters == "t"
    assert s6svc.parse_svc(["-s", "HUP", "app"]).letters == "h"
    for bad, text in ((["-b", "app"], "-b (SIGABRT) is not supported by pyinit"),
                      (["-Z", "app"], "unknown option -'Z'"),
                      (["-u"], "one service dir expected"),
                      (["-T", "x", "-u", "a"], "-T 'x': not a number of milliseconds"),
                      (["-wz", "a"], "-w'z': want -wu, -wU, -wd or -wD")):  # fmt: skip
        with pytest.raises(s6svc.Usage) as err:
            s6svc.parse_svc(bad)
        assert str(err.value) == text


def test_s6_svstat_line_and_fields() -> None:
    up = {"state": "run", "pid": 42, "uptime": 7.9, "want": "u", "normally_up": True,
          "ready": True, "paused": False}  # fmt: skip
    assert s6svc.svstat_line(up) == "up (pid 42) 7 seconds, ready 7 seconds"
    down = {"state": "down", "pid": None, "uptime": 3, "want": "u", "normally_up": True,
            "last_exit_code": 1, "ready": False}  # fmt: skip
    assert s6svc.svstat_line(down) == "down (exitcode 1) 3 seconds, normally up, want up"
    killed = dict(down, last_signal=9, want="d")
    assert s6svc.svstat_line(killed) == "down (signal SIGKILL) 3 seconds, normally up"
    assert s6svc.svstat_fields(up, ["up", "pid", "ready", "exitcode"]) == "true 42 true -1"
    assert s6svc.svstat_fields(killed, ["up", "pid", "signal", "signum"]) == ("false -1 SIGKILL 9")
    assert s6svc.parse_svstat(["-o", "up,pid", "/run/service/a"]) == (["up", "pid"], "a")
    assert s6svc.parse_svstat(["-up", "a"]) == (["up", "pid"], "a")
    with pytest.raises(s6svc.Usage, match="unknown or unsupported field 'pgid'"):
        s6svc.parse_svstat(["-o", "pgid", "a"])


# --- installing the names, with-contenv's env dir -----------------------------------


def test_s6_links_installs_every_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pyinit.cli import s6_links

    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "with-contenv").write_text("s6-overlay's")
    s6_links.main(["--root", str(tmp_path), "/usr/local/bin/pyinit"])
    names = ["init"] + [f"{d}/{n}" for d in ("command", "usr/bin") for n in s6_links.COMMANDS]
    for name in names:
        assert os.readlink(tmp_path / name) == "/usr/local/bin/pyinit", name
    assert len(capsys.readouterr().out.splitlines()) == 9


def test_with_contenv_reads_the_s6_env_dir(tmp_path: Path) -> None:
    import subprocess
    import sys

    env_dir = tmp_path / "container_environment"
    env_dir.mkdir()
    (env_dir / "FROM_INIT").write_text("yes")
    code = (
        "import sys; sys.argv[0] = '/usr/bin/with-contenv'\n"
        "from pyinit.cli import pyinit_env\n"
        f"pyinit_env.S6_ENV_DIR = {str(env_dir)!r}\n"
        "pyinit_env.main(['sh', '-c', 'echo $FROM_INIT'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYINIT_ENV_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=30)  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "yes\n"), r.stderr


def test_deeply_nested_and_diamond_bundles_are_bounded() -> None:
    """A chain of 998 bundles was a RecursionError traceback; 25 levels of two
    bundles each holding both of the next level took 2**25 steps (hours)."""
    chain = [bundle(f"b{i}", f"b{i + 1}") for i in range(998)]
    with pytest.raises(SourceError, match="bundles nested more than 100 deep"):
        s6rc.plan(tree(*chain, longrun("b998"), bundle("user", "b0")), ROOT)
    ladder = [bundle(f"l{i}_{x}", f"l{i + 1}_0", f"l{i + 1}_1") for i in range(40) for x in "01"]
    p = plan(*ladder, longrun("l40_0"), longrun("l40_1"), bundle("user", "l0_0"))
    assert [s.name for s in p.services] == ["l40_0", "l40_1"]
