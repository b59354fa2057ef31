"""A real local HTTP server receiving webhooks: records every request and
answers as scripted (status codes, or a delay longer than the sender's timeout)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: deque = field(default_factory=deque)  # (status, delay) per request; then 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *replies: tuple[int, float]) -> None:
        self.script.extend(replies)


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    state = Receiver()
    # The SSRF guard admits loopback only for hosts on this allowlist (as in
    # the image tests).
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, delay = state.script.popleft() if state.script else (200, 0.0)
            if delay:
                time.sleep(delay)
            state.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up (timeout)

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
