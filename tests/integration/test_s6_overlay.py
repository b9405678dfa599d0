"""pyinit as s6-overlay v3's `/init` (here a link named `s6-init`, its other name),
PID 1 of a new pid namespace, on a real s6-rc.d tree: s6-overlay's order
(cont-init.d, the `user` bundle in dependency order, then /etc/services.d and
`user2`, CMD; at shutdown the services, the `down` of the oneshots that are up,
cont-finish.d), CMD's exit code, a logger pipeline, a readiness fd, an execline
`up`, S6_BEHAVIOUR_IF_STAGE2_FAILS, a bad definition, s6-svc and s6-svstat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import can_unshare, kill_tree, tagged_processes, wait_for, write_script

pytestmark = pytest.mark.skipif(can_unshare() is not None, reason="needs unshare")
BIN = Path(sys.executable).parent


class Image:
    """A fake image root in tmp_path: /etc/s6-overlay/s6-rc.d and the legacy dirs."""

    def __init__(self, tmp: Path, tag: str) -> None:
        self.tmp, self.tag = tmp, tag
        self.rc = tmp / "etc" / "s6-overlay" / "s6-rc.d"
        self.log = tmp / "order.log"
        self.procs: list[subprocess.Popen] = []
        for name in ("s6-init", "s6-svc", "s6-svstat"):
            (tmp / name).symlink_to(BIN / "pyinit")

    def file(self, rel: str, text: str = "", mode: int = 0o644) -> Path:
        path = self.rc / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def script(self, rel: str, body: str) -> Path:
        return self.file(rel, "#!/bin/sh\n" + body, 0o755)

    def service(self, name: str, kind: str, deps: tuple[str, ...] = (), **files: str) -> None:
        self.file(f"{name}/type", kind + "\n")
        for dep in deps:
            self.file(f"{name}/dependencies.d/{dep}")
        for key, text in files.items():
            key = key.replace("_", "-")
            if key in ("run", "finish"):
                self.script(f"{name}/{key}", text)
            else:
                self.file(f"{name}/{key}", text)

    def sleeper(self) -> str:
        return f"exec {sys.executable} -c 'import time; time.sleep(1000)' {self.tag}\n"

    def note(self, what: str) -> str:
        return f"echo {what} >> {self.log}\n"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYINIT_", "S6_"))}
        t = self.tmp
        env.update(
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            PYINIT_S6_ETC=str(t / "etc"), PYINIT_RUN_DIR=str(t / "run"),
            PYINIT_ENV_DIR=str(t / "container_environment"), PYINIT_CONFIG=str(t / "none.yaml"),
            PYINIT_INIT_DIR=str(t / "none"), PYINIT_RC_LOCAL=str(t / "none"),
            PYINIT_CONT_INIT_DIR=str(t / "etc" / "cont-init.d"),
            PYINIT_CONT_FINISH_DIR=str(t / "etc" / "cont-finish.d"),
            PYINIT_SERVICE_DIR=str(t / "service"), KILL_PROCESS_TIMEOUT="3",
        )  # fmt: skip
        env.update(extra)
        return env

    def start(self, *cmd: str, **env: str) -> subprocess.Popen:
        argv = ["unshare", "--pid", "--fork", "--mount-proc", str(self.tmp / "s6-init"), *cmd]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(**env), start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def pid1(self, proc: subprocess.Popen) -> int:
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        return int(wait_for(lambda: path.read_text().split()[:1], 10, "PID 1")[0])

    def tool(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.tmp / argv[0]), *argv[1:]], capture_output=True,
                              text=True, env=self.env(), timeout=30)  # fmt: skip

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_tree(proc.pid)
            proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def image(tmp_path: Path, tag: str):
    img = Image(tmp_path, tag)
    yield img
    img.cleanup()
    assert not tagged_processes(tag)


def linuxserver_tree(img: Image) -> None:
    """init-* oneshots chained by dependencies.d, a longrun with a readiness fd and a
    logger, `user` and `user2` bundles, a oneshot `down`, the legacy dirs."""
    n = img.note
    img.service("init-adduser", "oneshot", ("base",), up=f"{img.rc}/init-adduser/run\n")
    img.script("init-adduser/run", n("init-adduser"))
    img.service("init-config", "oneshot", ("init-adduser",),
                up=f'if {{ sh -c "{n("init-config").strip()}" }} true\n',
                down=f"{img.rc}/init-config/stop\n")  # fmt: skip
    img.script("init-config/stop", n("init-config-down"))
    img.service("init-services", "bundle", contents="init-config\n")
    img.service(
        "svc-app",
        "longrun",
        ("init-services",),
        notification_fd="3",
        producer_for="svc-app-log",
        run=n("svc-app") + "echo app-line\necho >&3\n" + img.sleeper(),
    )
    img.service(
        "svc-app-log",
        "longrun",
        consumer_for="svc-app",
        pipeline_name="app-pipe",
        run=f"exec sed -u 's/^/LOGGED: /' >> {img.tmp / 'app.log'}\n",
    )
    img.file("user/contents.d/app-pipe")
    img.service("init-late", "oneshot", up=f'sh -c "{n("init-late").strip()}"\n')
    img.file("user2/contents.d/init-late")
    write_script(img.tmp / "etc" / "cont-init.d" / "10-first", n("cont-init"))
    write_script(img.tmp / "etc" / "cont-finish.d" / "10-last", n("cont-finish"))


def test_order_exit_code_logger_and_shutdown(image: Image) -> None:
    linuxserver_tree(image)
    proc = image.start("sh", "-c", image.note("cmd") + "exit 3")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert image.lines() == [
        "cont-init", "init-adduser", "init-config", "svc-app", "init-late", "cmd",
        "init-config-down", "cont-finish",
    ]  # fmt: skip
    assert (image.tmp / "app.log").read_text() == "LOGGED: app-line\n"
    assert "Traceback" not in err


def test_no_cmd_runs_until_sigterm_then_exits_0(image: Image) -> None:
    linuxserver_tree(image)
    image.service("svc-hup", "longrun", down_signal="SIGHUP\n",
                  run=f"trap '{image.note('got-HUP').strip()}; exit 0' HUP\n"
                  f"{image.note('svc-hup')}"
                  f"{image.sleeper().replace('exec ', '')[:-1]} & wait\n")  # fmt: skip
    image.file("user/contents.d/svc-hup")
    proc = image.start()
    wait_for(lambda: "init-late" in image.lines() and "svc-hup" in image.lines(), 30, "boot")
    os.kill(image.pid1(proc), signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "got-HUP" in image.lines()
    assert image.lines()[-2:] == ["init-config-down", "cont-finish"]


@pytest.mark.parametrize("behaviour, code", [("2", 7), ("0", 0)])
def test_a_failing_oneshot_and_s6_behaviour_if_stage2_fails(
    image: Image, behaviour: str, code: int
) -> None:
    image.service("init-bad", "oneshot", up=f'sh -c "{image.note("init-bad").strip()}; exit 7"')
    image.service(
        "svc-after", "oneshot", ("init-bad",), up=f'sh -c "{image.note("after").strip()}"'
    )
    image.file("user/contents.d/svc-after")
    proc = image.start("sh", "-c", image.note("cmd"), S6_BEHAVIOUR_IF_STAGE2_FAILS=behaviour)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "after" not in image.lines()  # it requires the failed one
    assert ("cmd" in image.lines()) == (behaviour == "0")


def test_a_bad_definition_is_one_line_and_exit_78(image: Image) -> None:
    image.service("svc-a", "longrun", ("nope",), run="exec true\n")
    image.file("user/contents.d/svc-a")
    proc = image.start("true")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert err.splitlines() == [
        f"pyinit: error: {image.rc}/svc-a/dependencies.d: 'nope' is not defined"
    ]


def test_s6_svc_and_s6_svstat(image: Image) -> None:
    image.service("svc-app", "longrun", run=image.sleeper())
    image.file("user/contents.d/svc-app")
    proc = image.start()
    try:
        wait_for(lambda: image.tool("s6-svstat", "-o", "up", "/run/service/svc-app").stdout
                 == "true\n", 30, "svc-app up")  # fmt: skip
        line = image.tool("s6-svstat", "/run/service/svc-app").stdout
        assert line.startswith("up (pid ") and line.rstrip().endswith("seconds"), line
        r = image.tool("s6-svc", "-wd", "-T", "10000", "-d", "/run/service/svc-app")
        assert (r.returncode, r.stdout) == (0, ""), r.stderr  # silent, as s6-svc
        assert image.tool("s6-svstat", "-o", "up,wantedup", "svc-app").stdout == "false false\n"
        r = image.tool("s6-svc", "-u", "svc-app")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: image.tool("s6-svstat", "-u", "svc-app").stdout == "true\n", 30, "up")
        r = image.tool("s6-svstat", "nope")
        assert (r.returncode, r.stderr) == (1, "s6-svstat: fatal: no such service: nope\n")
        r = image.tool("s6-svc", "-b", "svc-app")
        assert r.returncode == 100
        assert r.stderr.splitlines()[0] == "s6-svc: fatal: -b (SIGABRT) is not supported by pyinit"
    finally:
        os.kill(image.pid1(proc), signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def legacy_longrun(img: Image, name: str) -> None:
    write_script(img.tmp / "etc" / "services.d" / name / "run", img.note(name) + img.sleeper())


def test_services_d_starts_after_the_user_bundle_user2_after_it(image: Image) -> None:
    """s6-overlay's graph: cont-init.d; `user` (a slow oneshot, then its longrun);
    legacy-services (services.d) requires all of `user`; a user2 oneshot that depends
    on legacy-services after those; CMD last."""
    n = image.note
    image.service("init-slow", "oneshot", up=f'sh -c "sleep 0.3; {n("init-slow").strip()}"')
    image.service("svc-app", "longrun", ("init-slow",), run=n("svc-app") + image.sleeper())
    image.file("user/contents.d/svc-app")
    image.service("init-late", "oneshot", ("legacy-services",),
                  up=f'sh -c "{n("init-late").strip()}"')  # fmt: skip
    image.file("user2/contents.d/init-late")
    legacy_longrun(image, "legacy-a")
    legacy_longrun(image, "legacy-b")
    write_script(image.tmp / "etc" / "cont-init.d" / "10-first", n("cont-init"))
    proc = image.start("sh", "-c", n("cmd"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = image.lines()
    assert lines[:3] == ["cont-init", "init-slow", "svc-app"], lines
    assert sorted(lines[3:5]) == ["legacy-a", "legacy-b"], lines
    assert lines[5:] == ["init-late", "cmd"], lines


@pytest.mark.parametrize("behaviour, code", [("0", 0), ("1", 0), ("2", 1)])
def test_a_failing_cont_init_script_and_s6_behaviour_if_stage2_fails(
    image: Image, behaviour: str, code: int
) -> None:
    """s6-overlay runs every cont-init.d script; then 0 goes on silently, 1 warns,
    2 stops the container with exit code 1 (s6-rc's, written by rc.init)."""
    d = image.tmp / "etc" / "cont-init.d"
    write_script(d / "10-bad", image.note("bad") + "exit 5\n")
    write_script(d / "20-next", image.note("next"))
    image.service("svc-app", "oneshot", up=f'sh -c "{image.note("svc").strip()}"')
    image.file("user/contents.d/svc-app")
    proc = image.start("sh", "-c", image.note("cmd"), S6_BEHAVIOUR_IF_STAGE2_FAILS=behaviour)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    started = ["svc", "cmd"] if behaviour != "2" else []
    assert image.lines() == ["bad", "next", *started]
    assert ("warning" in err) == (behaviour != "0"), err
    assert "Traceback" not in err


def test_a_oneshots_down_runs_only_if_its_up_succeeded(image: Image) -> None:
    """s6-rc brings down only what is up, in reverse dependency order: init-ok2's
    down, then init-ok's, while svc-db (which init-ok depends on) still runs."""
    n = image.note
    image.service("svc-db", "longrun", notification_fd="3",
                  run=f"trap '{n('db-term').strip()}; exit 0' TERM\n{n('db')}echo >&3\n"
                  f"exec 3>&-\n{image.sleeper().replace('exec ', '')[:-1]} & wait\n")  # fmt: skip
    image.service("init-ok", "oneshot", ("svc-db",), up=f'sh -c "{n("ok-up").strip()}"',
                  down=f'sh -c "{n("ok-down").strip()}"')  # fmt: skip
    image.service("init-ok2", "oneshot", ("init-ok",), up=f'sh -c "{n("ok2-up").strip()}"',
                  down=f'sh -c "{n("ok2-down").strip()}"')  # fmt: skip
    image.service("init-bad", "oneshot", up='sh -c "exit 4"',
                  down=f'sh -c "{n("bad-down").strip()}"')  # fmt: skip
    for name in ("init-ok2", "init-bad"):
        image.file(f"user/contents.d/{name}")
    proc = image.start("sh", "-c", n("cmd"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert image.lines() == ["db", "ok-up", "ok2-up", "cmd", "ok2-down", "ok-down", "db-term"], err
    assert "Traceback" not in err


def test_a_large_s6_cmd_wait_for_services_maxtime(image: Image) -> None:
    """9,000,000 s (over epoll's 24.8 days per wait): taken as it is, as PID 1."""
    image.service("svc-app", "longrun", notification_fd="3",
                  run=image.note("svc-app") + "echo >&3\n" + image.sleeper())  # fmt: skip
    image.file("user/contents.d/svc-app")
    proc = image.start("sh", "-c", image.note("cmd") + "exit 4",
                       S6_CMD_WAIT_FOR_SERVICES_MAXTIME="9000000000", S6_VERBOSITY="3")  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert image.lines() == ["svc-app", "cmd"]
    assert "Traceback" not in err
