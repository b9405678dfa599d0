"""One small application in three services: `db` (a key-value store on a TCP port,
persisted in /var/lib/app), `api` (HTTP in front of it) and `worker`."""

import json
import os
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DB_FILE = Path("/var/lib/app/db.json")
DB_ADDR = ("127.0.0.1", 7000)
CONF = Path("/etc/app/app.conf")
lock = threading.Lock()


def log(text: str) -> None:
    print(text, flush=True)


class DB(socketserver.StreamRequestHandler):
    """`SET key value` / `GET key`, one JSON reply line each."""

    def handle(self) -> None:
        for line in self.rfile:
            op, _, rest = line.decode().strip().partition(" ")
            with lock:
                data = json.loads(DB_FILE.read_text()) if DB_FILE.exists() else {}
                if op == "SET":
                    key, _, value = rest.partition(" ")
                    data[key] = value
                    tmp = DB_FILE.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data))
                    os.replace(tmp, DB_FILE)
                    reply = {key: value}
                else:
                    reply = {rest: data.get(rest)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")


def db() -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(DB_ADDR, DB)
    log(f"started, {len(json.loads(DB_FILE.read_text())) if DB_FILE.exists() else 0} keys")
    os.write(3, b"\n")  # s6 readiness: listening now (notification-fd is 3)
    os.close(3)
    server.serve_forever()


def ask_db(command: str) -> bytes:
    with socket.create_connection(DB_ADDR, timeout=5) as s:
        s.sendall(command.encode() + b"\n")
        return s.makefile("rb").readline()


class API(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            body = b"ok\n"
        elif url.path == "/set":
            body = ask_db(f"SET {q['key']} {q['value']}")
        elif url.path == "/get":
            body = ask_db(f"GET {q['key']}")
        elif url.path == "/config":
            conf = dict(line.split(" = ", 1) for line in CONF.read_text().splitlines()
                        if " = " in line and not line.startswith("#"))
            body = json.dumps(conf).encode() + b"\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        log(fmt % args)


def api() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", 8080), API)
    log("started on :8080")
    server.serve_forever()


def worker() -> None:
    log("started")
    while True:
        signal.pause()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (log("stopping"), sys.exit(0)))
    {"db": db, "api": api, "worker": worker}[sys.argv[1]]()
