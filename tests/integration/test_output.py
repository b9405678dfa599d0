"""Service output (issue 6) with pyinit as a real PID 1: log modes inherit, prefix (text,
JSON, timestamps) and file (rotation, `svctl hup NAME/log`, disk full), many services at
once, long and non-UTF-8 lines, a container stdout nobody reads, the flush at exit,
`svctl logs`, and bad `log:` settings.

Where pyinit's stdout must be a pipe, the Run is wrapped in `sh -c 'exec "$@" > FIFO'`
and the test reads the FIFO itself (or stops reading it).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, tagged_processes, wait_for
from test_services import LONG, READY, SVCTL_CODE, Box, service

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

PY = sys.executable
GATE = "while [ ! -e go ]; do sleep 0.02; done\n"


@pytest.fixture
def box(pyinit_run, tmp_path: Path, tag: str):
    def start(*args: str, flags: tuple = (), **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        base = ("--config", str(tmp_path / "pyinit.yaml"), "--kill-timeout", "1")
        run = pyinit_run(*args, flags=(*base, *flags), **kw)
        b = Box(run, tmp_path, tag, tmp_path / "run")
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b
    return start


def svc(tmp: Path, tag: str, name: str, body: str = LONG, yaml: str | None = None,
        **kw) -> Path:
    d = service(tmp, tag, name, body, **kw)
    if yaml is not None:
        (d / "service.yaml").write_text(textwrap.dedent(yaml))
    return d


def pyscript(code: str) -> str:
    """A service body running Python code (with the tag and name as argv[1:])."""
    return f'exec {PY} - "$1" "$2" <<\'EOF\'\n{textwrap.dedent(code)}\nEOF\n'


class Fifo:
    """pyinit's stdout as a FIFO: the test reads it in a thread, or lets it fill."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.eof = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def wrapper(self) -> tuple[str, ...]:
        return ("/bin/sh", "-c", 'exec "$@" > "$0"', str(self.path))

    def start(self) -> None:
        """Read everything from now on (call once pyinit has the FIFO open)."""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.eof = True
                return
            with self.lock:
                self.data += chunk

    def bytes(self) -> bytes:
        with self.lock:
            return bytes(self.data)

    def lines(self) -> list[str]:
        return self.bytes().decode(errors="replace").splitlines()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        os.close(self.fd)


@pytest.fixture
def fifo(tmp_path: Path):
    f = Fifo(tmp_path / "stdout.fifo")
    yield f
    f.close()


def out_lines(b: Box) -> list[str]:
    return b.run.out.splitlines()


def err_lines(b: Box) -> list[str]:
    return b.run.err.splitlines()


def svctl_json(b: Box, *names: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(b.ok("status", "--json", *names))}


def has_line(get, line: str):
    return lambda: line in get()


# =========================================================================================
# the modes
# =========================================================================================
def test_modes_inherit_prefix_json_timestamps_and_log_run_wins(box, tmp_path: Path,
                                                               tag: str) -> None:
    """--log-mode prefix as the default; service.yaml overrides per service."""
    say = "echo \"$2 says out\"\necho \"$2 says err\" >&2\n" + LONG
    svc(tmp_path, tag, "plain", say)
    svc(tmp_path, tag, "inh", say, "log: inherit\n")
    svc(tmp_path, tag, "js", say, "log: {format: json}\n")
    svc(tmp_path, tag, "ts", say, "log:\n  timestamps: true\n")
    runit = svc(tmp_path, tag, "runit", say, "log: prefix\n", log="exec cat > out.txt\n")
    b = box(flags=("--log-mode", "prefix"))
    b.wait_running("plain", "inh", "js", "ts", "runit")
    out, err = (lambda: out_lines(b)), (lambda: err_lines(b))
    for stream in ("out", "err"):
        get = out if stream == "out" else err
        wait_for(has_line(get, f"plain | plain says {stream}"), 5, f"plain's std{stream}")
        wait_for(has_line(get, f"inh says {stream}"), 5, f"inh's std{stream}, unprefixed")
    stamped = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ts \| ts says (out|err)")
    wait_for(lambda: [x for x in out() if stamped.fullmatch(x)], 5, "ts's stamped line")
    wait_for(lambda: [x for x in err() if stamped.fullmatch(x)], 5, "ts's stamped stderr")

    def json_recs(lines: list[str]) -> list[dict]:
        return [json.loads(x) for x in lines if x.startswith("{")]
    wait_for(lambda: len(json_recs(out())) == 1 and len(json_recs(err())) == 1, 5, "js lines")
    for lines, stream in ((out(), "stdout"), (err(), "stderr")):
        rec = json_recs(lines)[0]
        assert rec["service"] == "js" and rec["stream"] == stream
        assert rec["line"] == f"js says {stream[3:]}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])
    wait_for(lambda: (runit / "log" / "out.txt").exists()
             and "runit says out" in (runit / "log" / "out.txt").read_text(), 5, "runit log")
    recs = b.status()
    assert {n: recs[n]["log_mode"] for n in recs} == {
        "plain": "prefix", "inh": "inherit", "js": "prefix", "ts": "prefix", "runit": "runit"}
    assert all(recs[n]["dropped_bytes"] == 0 for n in recs)
    # svctl logs: pyinit keeps no lines of an inherit or runit service
    for name, why in (("inh", "it writes to the container's output directly (log mode "
                       "inherit; to keep its lines: `log: prefix` in service.yaml, or pyinit "
                       "--log-mode prefix)"), ("runit", "its own logger (log/run) has them")):
        r = b.svctl("logs", name)
        assert r.returncode == 100 and r.stdout == ""
        assert r.stderr == (f"svctl: fatal: pyinit refused: pyinit keeps no lines of {name}: "
                            f"{why}\n")
    b.stop()
    assert not [x for x in out() if "runit says" in x]
    assert not [x for x in out() if x.startswith("inh |")]


LONG_LINE = pyscript("""\
    import os, sys, time
    line = bytes(range(48, 58)) * 10240  # 102400 bytes
    out = sys.stdout.buffer
    out.write(line + b"\\n")
    out.write(b"raw \\xff\\xfe\\x80 bytes\\tand\\x1b[1mescapes\\r\\n")
    out.flush()
    for i in range(1, 8):
        print(f"n{i}", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    print("followed", flush=True)
    time.sleep(1000)
    """)


def test_prefix_long_line_non_utf8_and_svctl_logs(box, tmp_path: Path, tag: str) -> None:
    svc(tmp_path, tag, "web", LONG_LINE, "log: prefix\n")
    b = box()
    wait_for(has_line(lambda: out_lines(b), "web | n7"), 5, "the last line")
    raw = b.run.out_path.read_bytes().split(b"\n")
    assert all(x.startswith(b"web | ") for x in raw[:-1]) and raw[-1] == b"", raw[-1][:100]
    body = [x[len(b"web | "):] for x in raw[:-1]]
    pieces = body[:7]
    assert [len(p) for p in pieces] == [16384] * 6 + [4096]
    assert b"".join(pieces) == bytes(range(48, 58)) * 10240
    assert body[7] == b"raw \xff\xfe\x80 bytes\tand\x1b[1mescapes\r"
    assert body[8:] == [b"n%d" % i for i in range(1, 8)]

    r = b.svctl("logs", "-n", "5", "web")
    assert r.returncode == 0 and r.stdout.splitlines() == [f"n{i}" for i in range(3, 8)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    raw = subprocess.run([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "logs", "-n", "8",
                          "web"], capture_output=True, env=env, timeout=30).stdout
    assert raw == b"raw \xff\xfe\x80 bytes\tand\x1b[1mescapes\r\n" + b"".join(
        b"n%d\n" % i for i in range(1, 8))

    follow = subprocess.Popen([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "logs", "-f",
                               "-n", "1", "web"], stdout=subprocess.PIPE, env=env)
    try:
        got = b""

        def read_until(text: bytes) -> bool:
            nonlocal got
            if select.select([follow.stdout], [], [], 0.05)[0]:
                got += os.read(follow.stdout.fileno(), 65536)
            return text in got
        wait_for(lambda: read_until(b"n7\n"), 10, "svctl logs -f to print the last line")
        (tmp_path / "service" / "web" / "go").touch()
        wait_for(lambda: read_until(b"followed\n"), 5, "the followed line")
        assert got == b"n7\nfollowed\n"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(5) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
        follow.stdout.close()
    b.stop()


# =========================================================================================
# many lines from many services
# =========================================================================================
COUNTER = pyscript("""\
    import sys
    name = sys.argv[2]
    for i in range(20000):
        print(f"{name}-{i}")
    sys.stdout.flush()
    open("done", "w").close()
    import time
    time.sleep(1000)
    """)


def test_two_services_interleave_without_corrupted_lines(box, fifo, tmp_path: Path,
                                                         tag: str) -> None:
    for name in "ab":
        svc(tmp_path, tag, name, COUNTER, "log: prefix\n")
    b = box(wrapper=fifo.wrapper)
    fifo.start()
    for name in "ab":
        wait_for(has_line(fifo.lines, f"{name} | {name}-19999"), 20, f"{name}'s last line")
    lines = fifo.lines()
    bad = [x for x in lines if not re.fullmatch(r"(a|b) \| \1-\d+", x)]
    assert not bad, bad[:5]
    for name in "ab":
        numbers = [int(x.rsplit("-", 1)[1]) for x in lines if x.startswith(name)]
        assert numbers == list(range(20000)), f"{name}: lines lost, repeated or reordered"
    assert all(r["dropped_bytes"] == 0 for r in b.status().values())
    b.stop()


BURST = pyscript("""\
    import sys, time
    sys.stdout.buffer.write(b"\\n" * 200000)
    sys.stdout.flush()
    print("end", flush=True)
    time.sleep(1000)
    """)


def test_burst_of_short_json_lines_to_a_file_is_not_dropped(box, tmp_path: Path,
                                                            tag: str) -> None:
    svc(tmp_path, tag, "web", BURST, "log: {mode: prefix, format: json}\n")
    b = box()
    wait_for(lambda: '"line": "end"' in b.run.out, 10, "the last line")
    dropped = b.rec("web")["dropped_bytes"]
    b.stop()
    assert dropped == 0
    assert b.run.out.count("\n") == 200001


# =========================================================================================
# a container stdout nobody reads
# =========================================================================================
ORPHAN = (f"( {PY} -c 'import time; time.sleep(1)' \"$1\" orphan & )\n" + LONG)


def test_stalled_stdout_does_not_stall_pid1(box, fifo, tmp_path: Path, tag: str) -> None:
    svc(tmp_path, tag, "flood", 'exec yes "$1 flood flood flood"\n', "log: prefix\n")
    svc(tmp_path, tag, "orph", ORPHAN, down=True)
    b = box(wrapper=fifo.wrapper)  # and the test does not read the FIFO
    b.wait(name="flood", cond=lambda r: r["dropped_bytes"] > 0, timeout=10,
           what="flood's lines to be dropped")
    # pyinit still reaps an orphan
    reaped_before = request(b.sock, {"cmd": "ping"}, timeout=5)["orphans_reaped"]
    b.ok("up", "orph")
    orphans = wait_for(lambda: [p for p in tagged_processes(tag)
                                if "orphan" in (p.info["cmdline"] or [])], 5, "the orphan")
    assert len(orphans) == 1
    orphan = orphans[0]
    wait_for(lambda: orphan.ppid() == b.run.init_pid, 5, "the orphan's parent to be PID 1")

    def gone() -> bool:
        try:
            return orphan.status() == "no-such-process"
        except psutil.NoSuchProcess:
            return True
    wait_for(gone, 5, "the orphan to be reaped (not left a zombie)")
    wait_for(lambda: request(b.sock, {"cmd": "ping"}, timeout=5)["orphans_reaped"]
             > reaped_before, 5, "the reap to be counted")
    # and answers status quickly
    took = []
    for _ in range(10):
        t = time.monotonic()
        reply = request(b.sock, {"cmd": "status", "services": []}, timeout=5)
        took.append(time.monotonic() - t)
        assert reply["ok"]
    print(f"\nstatus round trip with stdout stalled: median {statistics.median(took) * 1000:.1f}"
          f" ms, max {max(took) * 1000:.1f} ms")
    assert max(took) < 2.0, took
    rec = svctl_json(b, "flood")["flood"]
    assert rec["dropped_bytes"] > 0 and rec["state"] == "run"
    warn = [x for x in err_lines(b) if "[flood] output is not being read fast enough" in x]
    assert len(warn) == 1, warn
    # stop the flood and read again: the queue drains, and pyinit says so
    b.ok("-w", "5", "down", "flood")
    fifo.start()
    wait_for(lambda: [x for x in err_lines(b) if "[flood] output flowing again;" in x], 10,
             "output flowing again")
    assert len([x for x in err_lines(b) if "not being read fast enough" in x]) == 1
    b.stop()


def test_shutdown_with_stdout_still_stalled_is_bounded(box, fifo, tmp_path: Path,
                                                       tag: str) -> None:
    svc(tmp_path, tag, "flood", 'exec yes "$1 flood"\n', "log: prefix\n")
    b = box(wrapper=fifo.wrapper)  # never read
    b.wait(name="flood", cond=lambda r: r["dropped_bytes"] > 0, timeout=10,
           what="flood's lines to be dropped")
    took = b.stop(timeout=15)
    print(f"\nshutdown with a stalled stdout took {took:.2f} s")
    assert took < 10
    assert "pyinit: warning: service output still unwritten at exit: dropped" in err_lines(b)


# =========================================================================================
# flush at exit
# =========================================================================================
LAST_WORDS = ("trap 'kill $! 2>/dev/null; printf \"in trap\\nno newline at exit\"; exit 0' "
              "TERM\n" + READY + "printf 'before term\\n'\nsleep 1000 & wait $!\n")


def test_last_lines_are_flushed_at_shutdown(box, fifo, tmp_path: Path, tag: str) -> None:
    svc(tmp_path, tag, "web", LAST_WORDS, "log: prefix\n")
    b = box(wrapper=fifo.wrapper)
    fifo.start()
    b.ready("web")
    wait_for(has_line(fifo.lines, "web | before term"), 5, "the first line")
    b.stop()
    wait_for(lambda: fifo.eof, 5, "EOF on pyinit's stdout")
    assert fifo.lines()[-3:] == ["web | before term", "web | in trap",
                                 "web | no newline at exit"]


def test_subreaper_mode_prefix_by_environment(box, tmp_path: Path, tag: str) -> None:
    svc(tmp_path, tag, "sub", "echo from subreaper\necho err >&2\n" + LONG)
    b = box(pid1=False, env={"PYINIT_LOG_MODE": "prefix", "PYINIT_LOG_TIMESTAMPS": "1"})
    b.ready("sub")
    stamped = re.compile(r"\S+Z sub \| from subreaper")
    wait_for(lambda: [x for x in out_lines(b) if stamped.fullmatch(x)], 5, "the prefixed line")
    wait_for(lambda: [x for x in err_lines(b) if re.fullmatch(r"\S+Z sub \| err", x)], 5,
             "the prefixed stderr line")
    assert b.rec("sub")["log_mode"] == "prefix"
    r = b.svctl("logs", "sub")
    assert r.returncode == 0 and sorted(r.stdout.splitlines()) == ["err", "from subreaper"]
    b.stop()


# =========================================================================================
# file mode
# =========================================================================================
PACED = pyscript("""\
    import os, sys, time
    def put(text):
        sys.stdout.write(text + "\\n")
        sys.stdout.flush()
        while True:  # until pyinit has written it: one line per read, so rotation is exact
            try:
                if (text + "\\n").encode() in open("logs/current", "rb").read():
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.005)
    for i in range(20):
        put(f"{i:04d} " + "x" * 994)
    while not os.path.exists("go"):
        time.sleep(0.02)
    put("after hup")
    time.sleep(1000)
    """)


def finished(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if re.fullmatch(r"@[0-9a-f]{24}\.s", p.name))


def test_file_mode_rotates_by_size_and_on_hup(box, tmp_path: Path, tag: str) -> None:
    d = svc(tmp_path, tag, "web", PACED,
            "log: {mode: file, dir: logs, max_size: 4k, max_files: 2}\n")
    logs = d / "logs"
    b = box()
    wait_for(lambda: (logs / "current").exists() and b"0019 " in (logs / "current").read_bytes(),
             10, "the 20 lines")
    done = finished(logs)
    assert len(done) == 2  # 20 lines of 1000 bytes, 4 per file: 4 finished, 2 kept
    assert [p.read_bytes()[:4] for p in done] == [b"0008", b"0012"]
    assert all(p.read_bytes().count(b"\n") == 4 for p in done)
    current = (logs / "current").read_bytes()
    assert current.split(b"\n")[0][:4] == b"0016" and current.count(b"\n") == 4
    assert b.run.out == ""  # nothing on the container's stdout
    assert b.rec("web")["log_mode"] == "file"
    r = b.svctl("logs", "-n", "2", "web")
    assert [x[:4] for x in r.stdout.splitlines()] == ["0018", "0019"]

    assert b.ok("hup", "web/log") == ""
    wait_for(lambda: (logs / "current").read_bytes() == b"", 5, "a new current")
    done = finished(logs)
    assert len(done) == 2 and done[-1].read_bytes() == current
    (d / "go").touch()
    wait_for(lambda: (logs / "current").read_bytes() == b"after hup\n", 5, "the next line")
    b.run.kill(signal.SIGHUP)  # SIGHUP to pyinit: every file log starts a new current
    wait_for(lambda: (logs / "current").read_bytes() == b"", 5, "a new current after SIGHUP")
    assert [p.read_bytes() for p in finished(logs)] == [current, b"after hup\n"]
    assert b.rec("web")["dropped_bytes"] == 0
    b.stop()


DISK_FILLER = pyscript("""\
    import os, sys, time
    i = 0
    while not os.path.exists("stop"):
        for _ in range(20):
            sys.stdout.write(f"d-{i:06d} " + "y" * 90 + "\\n")
            i += 1
        sys.stdout.flush()
        time.sleep(0.005)
    open("stopped", "w").write(str(i))
    while not os.path.exists("go"):
        time.sleep(0.02)
    print("after space came back", flush=True)
    time.sleep(1000)
    """)


@pytest.fixture
def tmpfs(tmp_path: Path):
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill_disk_then_free(box, tmpfs, tmp_path: Path, tag: str) -> tuple[Box, Path, str]:
    """A file-mode log on a 64k tmpfs, 16k of it taken by a ballast file: the writer floods
    it until pyinit warns, stops; the ballast goes, and the writer writes one more line."""
    d = svc(tmp_path, tag, "fill", DISK_FILLER, "log: {mode: file, dir: logs, max_size: 1M}\n")
    logs = tmpfs(d / "logs", "64k")
    (logs / "ballast").write_bytes(b"b" * 16384)
    b = box()
    warning = f"pyinit: warning: [fill] cannot write {logs}: No space left on device; " \
              "dropping lines until it works again"
    wait_for(has_line(lambda: err_lines(b), warning), 10, "the disk full warning")
    assert b.rec("fill")["dropped_bytes"] > 0
    (d / "stop").touch()
    wait_for((d / "stopped").exists, 5, "the writer to stop")
    (logs / "ballast").unlink()
    (d / "go").touch()
    wait_for(lambda: b"after space came back\n" in (logs / "current").read_bytes(), 5,
             "the line written after space came back")
    return b, logs, warning


def test_disk_full_drops_warns_once_and_resumes(box, tmpfs, tmp_path: Path, tag: str) -> None:
    b, logs, warning = fill_disk_then_free(box, tmpfs, tmp_path, tag)
    dropped = b.rec("fill")["dropped_bytes"]  # final: the last line came after every other
    assert dropped > 0
    assert [x for x in err_lines(b) if "[fill] cannot write" in x] == [warning]
    assert [x for x in err_lines(b) if "[fill] writing" in x] == [
        f"pyinit: info: [fill] writing {logs} again ({dropped} bytes dropped so far)"]
    current = (logs / "current").read_bytes()
    assert current.endswith(b"after space came back\n")
    assert len(current) > 40000  # it filled the disk before
    b.stop()


def test_disk_full_leaves_no_cut_line_glued_to_the_next(box, tmpfs, tmp_path: Path,
                                                        tag: str) -> None:
    b, logs, _ = fill_disk_then_free(box, tmpfs, tmp_path, tag)
    b.stop()
    lines = (logs / "current").read_bytes().split(b"\n")
    assert lines[-2:] == [b"after space came back", b""]
    bad = [x for x in lines[:-1] if not re.fullmatch(rb"d-\d{6} y{90}|after space came back", x)]
    assert not bad, bad[:3]


# =========================================================================================
# bad settings
# =========================================================================================
def test_bad_log_settings_show_as_fail(box, tmp_path: Path, tag: str) -> None:
    bad = {
        "mode": ("log: syslog\n", "key 'log' must be one of inherit, prefix, file, not 'syslog'"),
        "size": ("log: {mode: file, max_size: 10}\n",
                 "log: key 'max_size' must be a size from 4096 bytes to 1T, such as 10M, not 10"),
        "files": ("log: {max_files: 0}\n",
                  "log: key 'max_files' must be an integer from 1 to 1000, not 0"),
        "fmt": ("log: {format: xml}\n", "log: key 'format' must be one of text, json, not 'xml'"),
        "key": ("log: {mod: file}\n", "log: unknown key 'mod' (did you mean 'mode'?)"),
    }
    for name, (yaml, _) in bad.items():
        svc(tmp_path, tag, name, "touch started\n" + LONG, yaml)
    svc(tmp_path, tag, "good", LONG, "log: {mode: prefix, format: json, timestamps: yes}\n")
    b = box()
    b.wait_running("good")
    r = b.svctl("status")
    got = {line.split(": ", 2)[1]: line for line in r.stdout.splitlines()}
    for name, (_, why) in bad.items():
        assert got[name] == f"fail: {name}: {tmp_path / 'service' / name / 'service.yaml'}: {why}"
        assert not (tmp_path / "service" / name / "started").exists()
    assert got["good"].startswith("run: good: (pid ")
    assert r.returncode != 0
    b.stop()
