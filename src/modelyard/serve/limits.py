"""Request limits enforced before a route runs: body size (413), content type (415), in-flight requests (503).

:class:`RequestLimits` is plain ASGI middleware (no buffering of its own): a declared
``Content-Length`` over the limit is refused before a byte of the body is read, and a
body that streams past the limit (chunked, or lying about its length) is cut off with
413 as soon as it crosses it. :func:`read_json` then parses a body with errors that
say what is wrong (empty, not JSON, nested too deeply) as 400s.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.serve.errors import ServeError, error_bytes, is_protocol_path

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
# The binary tensor extension of the Open Inference Protocol (tritonclient's default for numpy data).
BINARY = "application/octet-stream"
ACCEPTED_TYPES = (JSON, BINARY)
_BODY_METHODS = (b"POST", b"PUT", b"PATCH")


def media_type(raw: str | bytes | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json`` (lower case, '' when absent)."""
    if not raw:
        return ""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return text.split(";", 1)[0].strip().lower()


class RequestLimits:
    """Refuse oversized bodies (413) and unsupported content types (415) with the JSON error body.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: largest body accepted.
        on_error: called with (error code, status) for each refusal (metrics).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, on_error: Any = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_error = on_error or (lambda _code, _status: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(scope, send, 400, "bad_request", "Content-Length is not a number")
                return
            if length > self.max_body_bytes:
                await self._refuse(scope, send, 413, "payload_too_large",
                                   f"body of {length} bytes; at most {self.max_body_bytes}")
                return
        has_body = (declared is not None and declared != b"0") or b"transfer-encoding" in headers
        if scope["method"].encode() in _BODY_METHODS and has_body:
            kind = media_type(headers.get(b"content-type"))
            if kind and kind not in ACCEPTED_TYPES:
                await self._refuse(scope, send, 415, "unsupported_media_type",
                                   f"content type {kind[:60]!r} is not accepted; send application/json")
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the app: its handlers turn it into the JSON 413.
                    raise ServeError(413, "payload_too_large", f"body over {self.max_body_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        self.on_error(code, status)
        body = error_bytes(code, message, protocol=is_protocol_path(scope.get("path", "")))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class InflightLimit:
    """Refuse POST/PUT requests beyond ``max_inflight`` at once in this worker: 503 + Retry-After, at once.

    The batch queue bounds work waiting for the model; this bounds everything before it too
    (bodies being read and parsed), so when the event loop itself is the bottleneck an overload
    is still refused cheaply instead of piling up in socket buffers. Health checks and metrics
    (GET) are never refused, so a load balancer still sees the worker.
    """

    def __init__(self, app: ASGIApp, *, max_inflight: int, retry_after_s: int, on_error: Any = None) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.on_error = on_error or (lambda _code, _status: None)
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.on_error("overloaded", 503)
            body = error_bytes("overloaded", f"{self.inflight} requests in progress (limit {self.max_inflight}); "
                               "retry later", protocol=is_protocol_path(scope.get("path", "")))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"retry-after", str(self.retry_after_s).encode())]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


def require_json(request: Request) -> None:
    """415 unless the body is JSON (or untyped, taken as JSON)."""
    kind = media_type(request.headers.get("content-type"))
    if kind and kind != JSON:
        raise ServeError(415, "unsupported_media_type", f"content type {kind[:60]!r} is not accepted here; "
                         "send application/json")


def parse_json(body: bytes, *, what: str = "body") -> Any:
    """Parse JSON bytes; 400 for an empty body, invalid JSON or UTF-8, or nesting past Python's limit."""
    if not body.strip():
        raise ServeError(400, "invalid_json", f"empty {what}: send a JSON object")
    try:
        return json.loads(body)
    except RecursionError:
        raise ServeError(400, "invalid_json", f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ints past the digit limit
        raise ServeError(400, "invalid_json", f"{what} is not valid JSON: {str(exc)[:120]}") from None


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON (see :func:`parse_json`)."""
    require_json(request)
    return parse_json(await request.body())


def validate_body(model: type[M], raw: Any) -> M:
    """Validate parsed JSON against ``model``; the first error is a 400 naming the field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise ServeError(400, "invalid_request", str(first["msg"]), field=field) from None
    except RecursionError:
        raise ServeError(400, "invalid_request", "request nested too deeply") from None


__all__ = ["ACCEPTED_TYPES", "BINARY", "JSON", "InflightLimit", "RequestLimits", "media_type", "parse_json",
           "read_json", "require_json", "validate_body"]
