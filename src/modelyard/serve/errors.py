"""Every HTTP error is ``{"error": {"code", "message", "field"}}`` with a fitting status.

Except under ``/v2``: the Open Inference Protocol defines its error as
``{"error": "<message>"}`` and its clients rely on that (tritonclient formats the string;
given an object its exception cannot even print). There the body is
``{"error": "<message>", "code": …, "field": …}`` — the protocol's form, with the same
machine-readable code and field beside it.

Route code raises :class:`ServeError` (or a :class:`~modelyard.core.errors.YardError`,
mapped by kind); :func:`install_handlers` turns those, FastAPI's validation errors,
unknown routes and anything unexpected into that one shape. An unexpected exception
becomes a 500 whose body says nothing about the internals (the traceback goes to the log).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelyard.core.errors import AuthError, ConfigError, DataError, NotFoundError, YardError
from modelyard.core.logging import get_logger

log = get_logger("serve")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
                 415: "unsupported_media_type", 429: "rate_limited", 500: "internal", 503: "unavailable",
                 504: "timeout"}


class ErrorDetail(BaseModel):
    """What went wrong, machine-readable (``code``) and for people (``message``)."""

    code: str = Field(description="Stable error code, e.g. invalid_input, queue_full, unauthorized.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="The request field at fault, e.g. instances[3].")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail = Field(description="The error.")


class ProtocolErrorBody(BaseModel):
    """The body of an error under ``/v2`` (Open Inference Protocol form, plus code and field)."""

    error: str = Field(description="What is wrong and how to fix it.")
    code: str = Field(description="Stable error code, e.g. invalid_input, queue_full, unauthorized.")
    field: str | None = Field(default=None, description="The request field at fault, e.g. inputs[0].shape.")


def is_protocol_path(path: str) -> bool:
    """True for Open Inference Protocol routes (``/v2`` and below)."""
    return path == "/v2" or path.startswith("/v2/")


class ServeError(Exception):
    """An error answered with ``status`` and the JSON error body.

    Args:
        status: HTTP status code.
        code: stable machine-readable code.
        message: what is wrong, naming the value where useful.
        field: the request field at fault.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def bad_input(message: str, field: str | None = None) -> ServeError:
    """A 400 for an input that cannot be predicted on."""
    return ServeError(400, "invalid_input", message, field=field)


def error_body(code: str, message: str, field: str | None = None, *, protocol: bool = False) -> dict[str, Any]:
    """The JSON error body as a dict (``protocol``: the ``/v2`` form)."""
    if protocol:
        return {"error": message, "code": code, "field": field}
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None, *, protocol: bool = False) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(error_body(code, message, field, protocol=protocol), status_code=status, headers=headers)


def error_bytes(code: str, message: str, field: str | None = None, *, protocol: bool = False) -> bytes:
    """The JSON error body as bytes, for raw ASGI middleware."""
    return json.dumps(error_body(code, message, field, protocol=protocol)).encode()


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never echo a whole payload."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yard_status(exc: YardError) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConfigError | DataError):
        return 400
    return 500


def _counted(request: Request, status: int, code: str, message: str, field: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    # The app keeps its metrics on app.state; error counts by our code say more than status codes alone.
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(error=code, code=str(status)).inc()
    return error_response(status, code, message, field, headers, protocol=is_protocol_path(request.url.path))


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one JSON shape (and count it)."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return _counted(request, exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(YardError)
    async def _yard_error(request: Request, exc: YardError) -> JSONResponse:
        status = _yard_status(exc)
        if status == 500:
            log.error("request failed: %s", exc)
            return _counted(request, 500, "internal", "internal error")
        return _counted(request, status, exc.code, exc.message, exc.where)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query", "header"))
        return _counted(request, 400, "invalid_request", str(first.get("msg", "invalid request")), field or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _counted(request, exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback here; the client learns nothing about the internals.
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _counted(request, 500, "internal", "internal error")


# Responses every route can give, for the OpenAPI schema (clients and schemathesis read it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in _STATUS_CODES.items() if status not in (405, 406)
}
PROTOCOL_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProtocolErrorBody, "description": code.replace("_", " ")}
    for status, code in _STATUS_CODES.items() if status not in (405, 406)
}

__all__ = ["ERROR_RESPONSES", "PROTOCOL_ERROR_RESPONSES", "ErrorBody", "ProtocolErrorBody", "ServeError", "bad_input",
           "error_body", "error_bytes", "error_response", "install_handlers", "is_protocol_path", "shorten"]
