"""Every error the server answers, in OpenAI's envelope::

    {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": null}}

One table, ``ERROR_TABLE``, maps each exception class to its HTTP status, error ``type`` and
``code``; the first matching row wins, so subclasses come before their bases. Framework errors
(unknown route 404, 405, request validation 422 -> 400 with ``param``) and unexpected
exceptions (500, logged with their traceback) get the same envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.errors import ConfigError, DataError, ModelNotFoundError, TunesmithError
from tunesmith.jobs.errors import (
    InvalidRequestError,
    InvalidStateError,
    NotFoundError,
    NotOwnedError,
)

log = logging.getLogger("tunesmith.server")

INVALID = "invalid_request_error"


class AuthError(TunesmithError):
    """No API key, or one that matches no project."""


class WrongEndpointError(TunesmithError):
    """A model asked for work its task does not do: a fine-tuned chat model on
    ``/v1/completions``, a classifier on ``/v1/chat/completions``. OpenAI answers these 404
    with ``param: "model"``."""

    param = "model"


class UploadTooLargeError(TunesmithError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The file is larger than this server's limit of {limit:,} bytes.")


# (exception, HTTP status, error type, code); the first isinstance match wins.
ERROR_TABLE: list[tuple[type[Exception], int, str, str | None]] = [
    (AuthError, 401, INVALID, "invalid_api_key"),
    (NotFoundError, 404, INVALID, None),
    (ModelNotFoundError, 404, INVALID, "model_not_found"),
    (WrongEndpointError, 404, INVALID, None),
    (NotOwnedError, 403, INVALID, None),
    (UploadTooLargeError, 413, INVALID, "file_too_large"),
    (InvalidRequestError, 400, INVALID, None),
    (InvalidStateError, 400, INVALID, "invalid_state"),
    (ConfigError, 400, INVALID, None),
    (DataError, 400, INVALID, "invalid_file"),
    (TunesmithError, 400, INVALID, None),
]


SERVER_ERROR_MESSAGE = (
    "The server had an error while processing your request; see the server's log."
)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def envelope(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status)


def describe(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error body for ``exc``: its ``ERROR_TABLE`` row, else a 500.
    Also used for errors in the middle of a stream, sent as its last event."""
    for kind, status, type_, code in ERROR_TABLE:
        if isinstance(exc, kind):
            param = getattr(exc, "param", None)
            return status, error_body(str(exc), type_, param, getattr(exc, "code", None) or code)
    return 500, error_body(SERVER_ERROR_MESSAGE, "server_error")


async def _tunesmith_error(_request: Request, exc: Exception) -> JSONResponse:
    status, body = describe(exc)
    return JSONResponse(body, status_code=status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = (
            f"Unknown request URL: {request.method} {request.url.path}. "
            "Please check the URL for typos."
        )
        return envelope(404, message, INVALID, code="unknown_url")
    if exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
        return envelope(405, message, INVALID, code="method_not_allowed")
    return envelope(exc.status_code, str(exc.detail), INVALID)


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _param(tuple(first.get("loc", ())))
    where = f"'{param}': " if param else ""
    return envelope(400, f"Invalid value for {where}{first['msg']}", INVALID, param)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(500, SERVER_ERROR_MESSAGE, "server_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TunesmithError, _tunesmith_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
