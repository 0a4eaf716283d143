"""A local stand-in for the Anthropic Messages API, for the real ``anthropic`` client.

The SDK does not validate responses, so every answer here has the real shape:
``msg_…`` ids, ``text`` and ``tool_use`` blocks with ``toolu_…`` ids, a
``stop_reason``, ``usage``, and real-shaped error bodies. Answers are scripted
in a queue; every request body is recorded so tests can check what went out
(prompts, images, tool definitions) and what never did (secrets).

Usage::

    with AnthropicStub() as stub:
        stub.push(Reply.tool_use("click", selector="#save"), Reply.error(529))
        client = anthropic.AsyncAnthropic(api_key="k", base_url=stub.url, max_retries=0)
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import string
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits

# The API's error type for each status it documents.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _new_id(prefix: str) -> str:
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


class ReplyKind(StrEnum):
    """What the stub does with one request."""

    MESSAGE = "message"
    HTTP_ERROR = "http_error"
    MALFORMED_JSON = "malformed_json"
    HANG = "hang"


@dataclass(frozen=True)
class Reply:
    """One scripted behaviour; build it with the class methods."""

    kind: ReplyKind
    content: tuple[Mapping[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str = ""
    message: str = ""

    @classmethod
    def text(cls, text: str, *, stop_reason: str = "end_turn") -> Reply:
        """Answer with one text block."""
        return cls(ReplyKind.MESSAGE, ({"type": "text", "text": text},), stop_reason)

    @classmethod
    def tool_use(
        cls,
        method: str,
        *,
        selector: str | None = None,
        value: str | None = None,
        reason: str = "this element matches the step's intent",
        name: str = "browser_command",
        tool_input: Mapping[str, Any] | None = None,
        preamble: str | None = None,
    ) -> Reply:
        """Answer with one tool call (``tool_input`` replaces the built input as is)."""
        if tool_input is None:
            built: dict[str, Any] = {"method": method, "reason": reason}
            if selector is not None:
                built["selector"] = selector
            if value is not None:
                built["value"] = value
            tool_input = built
        blocks: list[Mapping[str, Any]] = []
        if preamble:
            blocks.append({"type": "text", "text": preamble})
        blocks.append({"type": "tool_use", "name": name, "input": dict(tool_input)})
        return cls(ReplyKind.MESSAGE, tuple(blocks), "tool_use")

    @classmethod
    def unknown_tool(cls, name: str = "run_shell_command") -> Reply:
        """Answer with a call to a tool that was never offered."""
        return cls.tool_use("", name=name, tool_input={"command": "cat /etc/passwd"})

    @classmethod
    def refusal(cls, text: str = "I can't help with that.") -> Reply:
        """Answer the way the API does when the model declines (``stop_reason`` refusal)."""
        content = ({"type": "text", "text": text},) if text else ()
        return cls(ReplyKind.MESSAGE, content, "refusal")

    @classmethod
    def error(cls, status: int = 500, *, error_type: str = "", message: str = "") -> Reply:
        """Answer with an HTTP error and a real-shaped error body."""
        return cls(
            ReplyKind.HTTP_ERROR,
            status=status,
            error_type=error_type or ERROR_TYPES.get(status, "api_error"),
            message=message or f"stub error {status}",
        )

    @classmethod
    def malformed_json(cls) -> Reply:
        """Answer 200 with a JSON content type and a body that is not JSON."""
        return cls(ReplyKind.MALFORMED_JSON)

    @classmethod
    def hang(cls) -> Reply:
        """Accept the request and never answer (until the stub stops)."""
        return cls(ReplyKind.HANG)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received."""

    method: str
    path: str
    headers: Mapping[str, str]
    raw: bytes
    body: Any = field(default=None)

    @property
    def text(self) -> str:
        """Return the raw body as text, for "this never went out" assertions."""
        return self.raw.decode("utf-8", errors="replace")


class AnthropicStub:
    """Serve ``POST /v1/messages`` on 127.0.0.1 from a queue of scripted replies.

    With the queue empty it uses ``default``; with no default it answers 500,
    so an unscripted call shows up as a failure, not as a plausible answer.
    If ``api_key`` is set, requests carrying another key (``x-api-key`` or
    ``Authorization: Bearer``) get a 401 like the real API.
    """

    def __init__(self, *, default: Reply | None = None, api_key: str | None = None) -> None:
        self.default = default
        self.api_key = api_key
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL to give the client (``base_url=``)."""
        if self._server is None:
            raise RuntimeError("the stub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Return how many scripted replies are still unused."""
        with self._lock:
            return len(self._queue)

    def push(self, *replies: Reply) -> None:
        """Queue replies; each request consumes the oldest."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> AnthropicStub:
        """Start serving on a free port of 127.0.0.1."""
        handler = type("_Handler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # a short poll interval keeps stop() (and so each test's teardown) quick
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="anthropic-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests and stop serving."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AnthropicStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next(self) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.default is not None:
            return self.default
        return Reply.error(500, message="the stub has no scripted reply for this request")


class _Handler(BaseHTTPRequestHandler):
    stub: AnthropicStub
    server_version = "anthropic-stub/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.stub._record(RecordedRequest("POST", self.path, headers, raw, body))
        if self.path.split("?")[0] != "/v1/messages":
            self._error(404, "not_found_error", f"no route for {self.path}")
            return
        if self.stub.api_key is not None and self.stub.api_key not in (
            headers.get("x-api-key"),
            headers.get("authorization", "").removeprefix("Bearer "),
        ):
            self._error(401, "authentication_error", "invalid x-api-key")
            return
        reply = self.stub._next()
        if reply.kind is ReplyKind.HANG:
            self.stub._release.wait()
            self.close_connection = True
            return
        if reply.kind is ReplyKind.HTTP_ERROR:
            self._error(reply.status, reply.error_type, reply.message)
        elif reply.kind is ReplyKind.MALFORMED_JSON:
            self._send(200, b'{"id": "msg_01broken", "type": "message", "content": [')
        else:
            self._send(200, json.dumps(self._message(reply, body, len(raw))).encode())

    def _message(self, reply: Reply, body: Any, request_size: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in reply.content:
            out = dict(block)
            if out["type"] == "tool_use":
                out = {"type": "tool_use", "id": _new_id("toolu_"), **out}
            content.append(out)
        model = body.get("model") if isinstance(body, dict) else None
        return {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model or "claude-sonnet-4-6",
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, request_size // 4),
                "output_tokens": max(1, len(json.dumps(content)) // 4),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }

    def _error(self, status: int, error_type: str, message: str) -> None:
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": self._request_id,
        }
        self._send(status, json.dumps(payload).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", self._request_id)
        self.end_headers()
        self.wfile.write(payload)

    @property
    def _request_id(self) -> str:
        rid: str | None = getattr(self, "_rid", None)
        if rid is None:
            rid = self._rid = _new_id("req_")
        return rid


@contextlib.contextmanager
def blackhole_server() -> Iterator[str]:
    """Yield the URL of a port on 127.0.0.1 that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        # accept and keep every connection open, reading nothing, until the end
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=hold, name="blackhole", daemon=True)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        thread.start()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        sock.close()
        if thread.is_alive():
            thread.join(timeout=5)
        for conn in held:
            conn.close()


def closed_port_url() -> str:
    """Return the URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
