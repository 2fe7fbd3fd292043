"""A scriptable stand-in for an OpenAI-compatible server.

It exists for the failure modes a real llama_cpp.server cannot be made to produce on
demand: HTTP 401/404/429/500 and 400 "context length" answers, a stream cut in the middle
(the socket closed after a few chunks), a slow trickle (for the total-deadline test), a
stream that ends without a finish_reason, usage with cached/reasoning tokens in the
final chunk, a first byte slower than a deadline, and a 200 whose body is not JSON. For the
attempt chain (retries, fallbacks, circuit breaker) a test queues scripts: each chat request
takes the next one from `queue`, and `script` answers once the queue is empty. Real behaviour (replies, token counts, latency) is tested against the real
llama_cpp.server; this stub is never a substitute for it.

It speaks just enough of the protocol: POST /v1/chat/completions (SSE when `stream` is
true, one JSON body otherwise), GET /v1/models, and, when `tokenize` is on, llama.cpp's
POST /tokenize (one token per whitespace-separated word). Built on the standard library's
http.server in a thread, so closing the socket mid-stream is in the test's hands.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """How the stub answers every request until the next script is set."""

    status: int = 200
    error_message: str = "stub error"
    echo_auth: bool = False  # append the request's Authorization header to the error message
    chunks: tuple[str, ...] = ("Hello", ",", " world", "!")
    finish_reason: str | None = "stop"  # None: the stream ends (with [DONE]) without one
    usage: dict[str, Any] | None = None  # final chunk when include_usage; body when unstreamed
    interval_s: float = 0.0  # pause before each content chunk (unstreamed: all pauses at once)
    cut_after: int | None = None  # drop the connection after this many content chunks
    model: str = "stub-model"
    headers: tuple[tuple[str, str], ...] = ()  # extra headers on error answers (Retry-After, rate-limit resets)
    first_byte_s: float = 0.0  # pause before the status line: nothing at all reaches the client before it
    invalid_body: bool = False  # answer 200 with a body that is not JSON (nor SSE)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None
    at: float = 0.0  # time.perf_counter() when the request's body had been read


class StubServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.script = Script()
        self.queue: list[Script] = []  # chat requests take these first, one each, in order
        self.tokenize = False
        self.tokenize_delay_s = 0.0
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.disconnects = 0  # streams the client went away from while the stub was writing
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-openai", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        self.script = Script()
        self.queue = []
        self.tokenize = False
        self.tokenize_delay_s = 0.0
        self.requests.clear()
        self.disconnects = 0

    def chat_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def next_chat_script(self) -> Script:
        """The script of the chat request arriving now: the queue's head, else `script`."""
        with self._lock:
            return self.queue.pop(0) if self.queue else self.script


def _make_handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked streams, like uvicorn: a cut is detectable

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _record(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.perf_counter())
            stub.requests.append(seen)
            return body

        def do_GET(self) -> None:
            self._record()
            script = stub.script
            if self.path.rstrip("/") != "/v1/models":
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            if script.status != 200:
                return self._error(script)
            self._json(200, {"object": "list", "data": [{"id": script.model, "object": "model", "owned_by": "stub"}]})

        def do_POST(self) -> None:
            body = self._record() or {}
            if self.path == "/tokenize" and stub.tokenize:
                time.sleep(stub.tokenize_delay_s)  # a slow tokenizer: a real server is too quick to show it
                return self._json(200, {"tokens": list(range(len(str(body.get("content", "")).split())))})
            if self.path != "/v1/chat/completions":
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            script = stub.next_chat_script()
            if script.first_byte_s:
                time.sleep(script.first_byte_s)
            if script.status != 200:
                return self._error(script)
            if script.invalid_body:
                return self._raw(200, b"<html>502 Bad Gateway (not JSON)</html>", "text/html")
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._stream(script, include_usage)
            time.sleep(script.interval_s * len(script.chunks))  # as long as the stream would take
            self._json(
                200,
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": script.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(script.chunks)},
                            "finish_reason": script.finish_reason,
                        }
                    ],
                    "usage": script.usage,
                },
            )

        def _error(self, script: Script) -> None:
            message = script.error_message
            if script.echo_auth:
                sent = str(self.headers.get("Authorization", "")).removeprefix("Bearer ")
                message += f" (you sent {sent})"  # the bare key: no Bearer/sk- shape to spot it by
            kind = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "model_not_found"}.get(script.status)
            self._json(
                script.status, {"error": {"message": message, "type": "stub_error", "code": kind}}, script.headers
            )

        def _json(self, status: int, payload: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> None:
            self._raw(status, json.dumps(payload).encode(), "application/json", headers)

        def _raw(self, status: int, data: bytes, content_type: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its deadline passed)
                stub.disconnects += 1
                self.close_connection = True

        def _stream(self, script: Script, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
                choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
                return {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": script.model,
                    "choices": choices,
                    **extra,
                }

            try:
                self._event(chunk({"role": "assistant", "content": ""}))  # real servers open like this
                for i, text in enumerate(script.chunks):
                    if script.cut_after is not None and i >= script.cut_after:
                        self.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: a cut
                        self.close_connection = True
                        return
                    if script.interval_s:
                        time.sleep(script.interval_s)
                    self._event(chunk({"content": text}))
                    self._event(chunk({"content": ""}))  # empty chunks happen; clients skip them
                if script.finish_reason is not None:
                    self._event(chunk({}, script.finish_reason))
                if include_usage and script.usage is not None:
                    self._event({**chunk({}), "choices": [], "usage": script.usage})
                self._send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                stub.disconnects += 1
                self.close_connection = True

        def _event(self, payload: dict[str, Any]) -> None:
            self._send(f"data: {json.dumps(payload)}\n\n".encode())

        def _send(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def start_stub() -> StubServer:
    return StubServer().start()


__all__ = ["Script", "Seen", "StubServer", "start_stub"]
