"""API errors: a few classes and one table mapping each to its HTTP status.

Bad input is always a 4xx with a `detail` saying what was wrong; a 500 is a bug.
"""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """Base: the message is shown to the client as `detail`."""


class BadRequest(ApiError):
    """A parameter is malformed or out of range."""


class NotFound(ApiError):
    """No such layer (or other named thing)."""


class Unavailable(ApiError):
    """The database or a served asset is not there; retrying later may help."""


STATUS_CODES: dict[type[Exception], int] = {
    BadRequest: 400,
    NotFound: 404,
    Unavailable: 503,
    # Includes psycopg_pool.PoolTimeout: no connection within STREETAUDIT_API_POOL_TIMEOUT.
    psycopg.OperationalError: 503,
}


def error_detail(error: Exception) -> str:
    """What the client is told of one of the STATUS_CODES errors."""
    if isinstance(error, ApiError):
        return str(error)
    if isinstance(error, psycopg.errors.QueryCanceled):
        return "the query took longer than the API's statement timeout"
    return "database unavailable"


def error_status(error: Exception) -> int | None:
    """The HTTP status of an error the API answers itself (STATUS_CODES), else None."""
    return next((status for cls, status in STATUS_CODES.items() if isinstance(error, cls)), None)


def _handler(status: int):
    async def handle(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": error_detail(error)}, status_code=status)

    return handle


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in error.errors()
    )
    return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=400)


def add_exception_handlers(app: FastAPI) -> None:
    for cls, status in STATUS_CODES.items():
        app.add_exception_handler(cls, _handler(status))
    # Starlette types handlers as taking any Exception; this one is registered for its own class.
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
