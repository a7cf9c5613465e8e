"""The one JSON error envelope of the API, and the handlers that produce it.

Every error, whatever raised it, reaches the caller as::

    {"error": {"code": "<machine-readable>", "message": "<for a person>", "details": ...}}

Request values are never echoed back: they may carry a national identifier.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credence.errors import CredenceError

log = logging.getLogger("credence.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def envelope(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details}},
        headers=headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _credence_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CredenceError)
    return envelope(exc.status, exc.code, exc.message, exc.details)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        where = first.get("ctx", {}).get("error", "")
        return envelope(400, "malformed_json", f"the request body is not valid JSON ({where})")
    details = [
        {"field": _field(tuple(e.get("loc", ()))), "problem": e.get("msg", "")} for e in errors
    ]
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return envelope(422, "invalid_request", message or "invalid request", details)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; the API is described at /docs"
    return envelope(exc.status_code, code, message)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return envelope(500, "internal_error", "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Route every kind of error through the envelope."""
    app.add_exception_handler(CredenceError, _credence_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class RequestGuard:
    """What every request must pass before the application reads it; refused here, in
    the envelope, whichever endpoint it is for:

    * a body over ``limit`` bytes: 413, whether Content-Length announced it or not (a
      chunked body is read up to the limit, and no further);
    * a JSON body (``application/json``, ``application/*+json`` or no Content-Type:
      what the routers parse as JSON) that is not UTF-8: 422 ``invalid_encoding``;
    * a NUL character in the path or the query string, and in a JSON body (raw or
      escaped as ``\\u0000``) an unpaired UTF-16 surrogate escape or a NUL: 422
      ``invalid_character``. No field may hold them: PostgreSQL refuses NUL in text,
      and a lone surrogate cannot be encoded to store or to answer.

    So no endpoint, present or future, needs a check of its own for these. The body is
    read whole here (the routers read it whole anyway) and handed on unchanged.

    What a request is (its size, its encoding, its URL) is checked for everyone, as a
    malformed body is; what a JSON body says only for a request that presents a key:
    without one, an endpoint that needs a key answers 401 before it reads the body, and
    no endpoint that needs none takes a body. The direct decision path, in front of the
    application, validates its small bodies with :class:`credence.api.schemas.DecisionIn`
    (which refuses NUL; pydantic's JSON parser refuses the rest) and hands anything it
    does not take on to here.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await _refuse_character(scope, receive, send, f"the request path contains {_NUL}")
            return
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            await _refuse_character(scope, receive, send, f"the query string contains {_NUL}")
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client has gone: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if body and _is_json(headers.get(b"content-type")):
            if not body.isascii():
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError:
                    await envelope(422, "invalid_encoding", "the request body is not valid UTF-8")(
                        scope, receive, send
                    )
                    return
            problem = _json_character_problem(body) if b"authorization" in headers else None
            if problem is not None:
                await _refuse_character(
                    scope, receive, send, f"the request body contains {problem}"
                )
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = envelope(
            413,
            "payload_too_large",
            f"the request body is larger than {self.limit} bytes; send smaller batches",
        )
        await response(scope, receive, send)


def _is_json(content_type: bytes | None) -> bool:
    """Whether the routers parse a body of this Content-Type as JSON (as FastAPI does)."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


_NUL = "a NUL character, which no field may hold"
_LONE = "an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is no character"


async def _refuse_character(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    await envelope(422, "invalid_character", message)(scope, receive, send)


#: A backslash escape in a JSON string: ``\\uXXXX`` (group 1: the hex digits), or a
#: backslash and the character it escapes. Matched left to right, an escaped backslash
#: is consumed whole, so ``\\\\u0000`` (a backslash, then the text u0000) is no escape.
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def _json_character_problem(body: bytes) -> str | None:
    """What a JSON body holds that no field may (a NUL, raw or escaped; an unpaired
    surrogate escape), in words; None if nothing."""
    if b"\x00" in body:
        return _NUL
    if b"\\" not in body:
        return None
    low_due = -1  # where the low half of a surrogate pair must start
    for match in _ESCAPE.finditer(body):
        digits = match.group(1)
        code = -1 if digits is None else int(digits, 16)
        if low_due >= 0:
            if match.start() != low_due or not 0xDC00 <= code <= 0xDFFF:
                return _LONE
            low_due = -1
        elif code == 0:
            return _NUL
        elif 0xD800 <= code <= 0xDBFF:
            low_due = match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return _LONE
    return _LONE if low_due >= 0 else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the body read already, then listens as before (for
    the disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
