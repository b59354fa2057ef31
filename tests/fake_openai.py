"""A local HTTP server that speaks enough of the OpenAI chat completions API
for the real `openai` SDK to talk to it: the only fake in the test suite.

Each test scripts the answers (`queue`, or a `default` computed from the
request) and asserts on the requests the server received.

    def test_something(fake_openai):
        fake_openai.queue(error_reply(429, "slow down", headers={"Retry-After": "1"}),
                          reply_with_annotation({"category": "Apparel"}))
        ...  # point a client at fake_openai.url
        assert fake_openai.requests[0]["model"] == "gpt-test"
        assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-test"

Register the fixture with `pytest_plugins = ["tests.fake_openai"]` in
tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class Reply:
    """One scripted answer.

    `json` is sent as the body as it is; otherwise `content` is wrapped in a
    chat.completion whose `model` echoes the request's; `body` sends raw text
    (an HTML error page from a proxy, say). `delay` sleeps before answering;
    `drop` closes the connection without answering."""

    status: int = 200
    json: Any = None
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    body: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 1200
    completion_tokens: int = 90


class RecordedRequest(dict):
    """The parsed JSON body of a request, with its `path` and `headers`
    (lower-cased names)."""

    def __init__(self, body: dict[str, Any], *, path: str, headers: dict[str, str]):
        super().__init__(body)
        self.path = path
        self.headers = headers


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once in the concurrency tests

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def connections_close(self) -> None:
        """Close the open connections too: a kept-alive one would otherwise go on
        being answered by its handler thread after the server stopped listening."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeOpenAI:
    """`latency` delays every chat answer (a slow model); `in_flight_max` is
    the most chat requests the server was answering at once; GET /models
    lists `models`. With `keep_alive` it speaks HTTP/1.1 and keeps connections
    open between requests, as the real APIs do; without, HTTP/1.0 (one
    connection per request), which the tests were written against."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        models: list[str] | None = None,
        port: int = 0,
        keep_alive: bool = False,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.default: Callable[[RecordedRequest], Reply] | None = None
        self.latency = latency
        self.models = list(models or ["gpt-4o-mini", "gpt-4.1-mini"])
        self.in_flight = 0
        self.in_flight_max = 0
        self.served = 0
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.keep_requests = True  # the bench server serves millions: keep none
        handler = _handler_for(self)
        if keep_alive:
            handler.protocol_version = "HTTP/1.1"
        self._server = _Server(("127.0.0.1", port), handler)
        # Handlers still sleeping on a `delay` must not hold up close().
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.connections_close()

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then `default`."""
        with self._lock:
            self._replies.extend(replies)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _record_and_choose(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self.keep_requests:
                self.requests.append(request)
            if request.path.split("?")[0] not in CHAT_PATHS:
                return error_reply(404, f"FakeOpenAI: unknown path {request.path}")
            if self._replies:
                return self._replies.popleft()
        if self.default is not None:
            return self.default(request)
        return error_reply(500, "FakeOpenAI: no reply queued and no default set")


def reply_with_annotation(
    annotation: dict[str, Any],
    *,
    prompt_tokens: int = 1200,
    completion_tokens: int = 90,
    fenced: bool = False,
    prose: bool = False,
) -> Reply:
    """A 200 whose message content is the annotation as JSON, optionally in a
    ```json fence and/or between sentences, as models without structured
    outputs tend to answer."""
    content = json.dumps(annotation, indent=2)
    if fenced:
        content = f"```json\n{content}\n```"
    if prose:
        content = f"Here is the annotation for this product:\n{content}\nHope this helps!"
    return Reply(content=content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}


def error_reply(
    status: int, message: str, *, headers: dict[str, str] | None = None, code: str | None = None
) -> Reply:
    """An OpenAI-style error: {"error": {"message", "type", "param", "code"}}."""
    error_type = _ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return Reply(status=status, json=body, headers=dict(headers or {}))


def drop_connection(*, delay: float = 0.0) -> Reply:
    """Close the socket without sending a response."""
    return Reply(drop=True, delay=delay)


def chat_completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.content,
                    "refusal": reply.refusal,
                },
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Headers and body go out in two writes: with a kept-alive connection,
        # Nagle's algorithm would hold the body back for the client's delayed
        # ACK (~40 ms a request). Real servers set TCP_NODELAY too.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_unparsed": raw.decode("utf-8", "replace")}
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(body, path=self.path, headers=headers)
            fake._enter()
            fake.served += 1
            try:
                reply = fake._record_and_choose(request)
                if reply.delay or fake.latency:
                    time.sleep(reply.delay or fake.latency)
                if reply.drop:
                    self.close_connection = True
                    return
                self._send(reply, request)
            finally:
                fake._leave()

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/stats":
                stats = {"in_flight_max": fake.in_flight_max, "served": fake.served}
                self._send(Reply(json=stats), RecordedRequest({}, path=self.path, headers={}))
            elif self.path.split("?")[0] in ("/v1/models", "/models"):
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in fake.models
                ]
                self._send(
                    Reply(json={"object": "list", "data": data}),
                    RecordedRequest({}, path=self.path, headers={}),
                )
            else:
                self._send(
                    error_reply(404, f"FakeOpenAI: unknown path {self.path}"),
                    RecordedRequest({}, path=self.path, headers={}),
                )

        def _send(self, reply: Reply, request: RecordedRequest) -> None:
            if reply.body is not None:
                payload, content_type = reply.body.encode(), "text/html; charset=utf-8"
            else:
                document = reply.json if reply.json is not None else chat_completion(request, reply)
                payload, content_type = json.dumps(document).encode(), "application/json"
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test) before the answer came

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def main() -> None:
    """Serve from the command line (bench/pipeline_bench.py): every chat
    request gets a valid annotation after `--latency` seconds; GET /stats
    tells the most requests seen at once."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.18)
    parser.add_argument(
        "--no-keep-alive", action="store_true", help="HTTP/1.0: a new connection per request"
    )
    args = parser.parse_args()
    fake = FakeOpenAI(latency=args.latency, port=args.port, keep_alive=not args.no_keep_alive)
    fake.default = lambda request: reply_with_annotation(
        BENCH_ANSWER, prompt_tokens=_prompt_tokens(request)
    )
    fake.keep_requests = False
    fake.start()
    print(fake.url, flush=True)
    try:
        fake._thread.join()
    except KeyboardInterrupt:
        fake.close()


def _prompt_tokens(request: dict[str, Any]) -> int:
    """Characters / 4 of the request's text (the image is not counted)."""
    chars = 0
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return chars // 4


BENCH_ANSWER = {
    "category": "Clothing",
    "subcategory": "T-Shirts",
    "attributes": {
        "color": "Navy",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
    },
    "tags": ["navy t-shirt", "striped", "cotton", "casual", "summer"],
    "confidence": 0.95,
    "field_confidence": {"category": 0.97, "subcategory": 0.96, "color": 0.95},
    "image_issues": [],
}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.close()


if __name__ == "__main__":
    main()
