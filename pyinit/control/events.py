"""The `events` request (svctl events [-f] [SERVICE...]): the recent events pyinit
keeps (runtime/events.py's ring); with `follow`, every new one until the client
goes away. Imported on the first `events` request only.

A follower never holds PID 1 up: each event is queued on its connection without
blocking, and one with more than MAX_PENDING bytes unsent is dropped (closed, and
logged at most once a minute with the count, as the control socket's refusals).
At most MAX_FOLLOWERS follow at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pyinit.core import events
from pyinit.core.bounds import render
from pyinit.core.protocol import ProtocolError
from pyinit.runtime import events as source

if TYPE_CHECKING:
    from pyinit.control.server import Client

MAX_FOLLOWERS = 16
MAX_PENDING = 256 * 1024  # bytes of events unsent to one follower; then it is dropped
MAX_FILTER = 100  # names one request may filter on


class Events:
    def __init__(self, bus: source.Bus = source.BUS) -> None:
        self.bus = bus
        self.followers = 0

    def events(self, client: Client, req: dict[str, Any]) -> None:
        names = req["services"]
        if len(names) > MAX_FILTER:
            raise ProtocolError(f"'events' takes at most {MAX_FILTER} services")
        for name in names:
            if not isinstance(name, str) or not name or len(name) > 256:
                raise ProtocolError(f"bad service name {render(name, 60)}")
        follow = bool(req.get("follow"))
        if follow and self.followers >= MAX_FOLLOWERS:
            raise ProtocolError(f"at most {MAX_FOLLOWERS} clients may follow events at once")
        recent = [e for e in self.bus.recent() if events.matches(e, names, own=True)]
        client.streaming = follow
        client.send({"ok": True, "follow": follow, "events": recent})
        if follow and not client.closed:
            self.followers += 1
            client.on_close.append(self.follow(client, names))

    def follow(self, client: Client, names: list[str]) -> Callable[[], None]:
        """Send client every new event about names; returns what stops it."""

        def send(event: dict[str, Any]) -> None:
            if not events.matches(event, names, own=True) or client.closed:
                return
            if len(client.outbuf) > MAX_PENDING:
                pid = client.pid
                client.server.listener.note(
                    "slow event reader",
                    lambda n: f"dropped {n} event follower{'s' if n != 1 else ''} that did "
                    f"not read {MAX_PENDING} bytes of events (the last: pid {pid})",
                )
                client.close()  # calls stop() below
                return
            client.send({"event": event})

        unsubscribe = self.bus.subscribe(send)

        def stop() -> None:
            unsubscribe()
            self.followers -= 1

        return stop
