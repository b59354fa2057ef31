"""A local HTTP server that drip-feeds its answer: a hostile or broken image host that
never trips a per-read timeout but never finishes either."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _DripHandler(BaseHTTPRequestHandler):
    interval = 0.2  # one byte this often: far under any read timeout
    total = 10_000_000  # declared length: the body never completes

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(self.total))
        self.end_headers()
        try:
            self.wfile.write(b"\x89PNG\r\n\x1a\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():  # type: ignore[attr-defined]
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(self.interval)
        except OSError:
            pass  # the client gave up: what the deadline is for

    def log_message(self, *args) -> None:
        pass


@contextmanager
def drip_server() -> Iterator[str]:
    """Run the server on a free port of 127.0.0.1; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
    server.daemon_threads = True
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
