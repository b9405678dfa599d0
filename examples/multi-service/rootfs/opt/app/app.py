"""A small app behind nginx: counts visits and serves the container's instance id."""

import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

visits = 0
STATE = [Path(d, "instance-id") for d in ("/var/lib/app", "/run/app", "/tmp/app")]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global visits
        if self.path == "/health":
            body = b"ok\n"
        else:
            visits += 1
            instance = next(p for p in STATE if p.exists()).read_text().strip()
            body = json.dumps({"instance": instance, "visits": visits}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 8000), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on 127.0.0.1:8000", flush=True)
    try:
        server.serve_forever()
    finally:
        print("stopping", flush=True)


if __name__ == "__main__":
    main()
