"""OGC API Features (and OGC API Tiles) for the `api` views, by tipg, mounted at /ogc.

tipg gets its own asyncpg pool, logged in with the API's URL (the read-only role), with
the statement timeout and search_path fixed at connection start and tipg's catalog
functions read from schema `tipg` (sql/041_tipg_catalog.sql) instead of being created in
pg_temp, which the role may not use. Every request's parameters pass api/ogc_guard.py
before tipg sees them, and whatever still fails is answered without internal text.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from tipg.collections import register_collection_catalog
from tipg.errors import DEFAULT_STATUS_CODES, MissingCollectionCatalog, TiPgError
from tipg.factory import Endpoints
from tipg.settings import DatabaseSettings

from streetaudit.api.errors import validation_error
from streetaudit.api.ogc_guard import guard_ogc_request
from streetaudit.api.settings import ApiSettings

MOUNT_PATH = "/ogc"
CATALOG_SCHEMA = "tipg"
POOL_SIZE = 8
# Views in `api` that serve the API itself, not analysts: which tile layers exist, the data
# version caches key on, the rating job's state. They stay readable over SQL; as OGC
# collections they would only be noise next to the data (and api.tile_layers has no rows a
# map could draw).
INTERNAL_VIEWS = ("api.tile_layers", "api.data_version", "api.rating_status")
log = logging.getLogger(__name__)


def ogc_app() -> FastAPI:
    app = FastAPI(title="streetaudit OGC API", openapi_url="/api", docs_url="/api.html")
    endpoints = Endpoints(title="streetaudit OGC API", router_prefix=MOUNT_PATH.strip("/"))
    app.include_router(endpoints.router, dependencies=[Depends(guard_ogc_request)])
    add_ogc_exception_handlers(app)
    return app


def _db_settings() -> DatabaseSettings:
    return DatabaseSettings(
        schemas=["api"],
        exclude_tables=list(INTERNAL_VIEWS),
        functions=[],
        only_spatial_tables=False,
        application_schema=CATALOG_SCHEMA,
    )


class BoundedPool:
    """asyncpg's pool with a bound on acquire(): tipg waits forever for a free connection."""

    def __init__(self, pool: asyncpg.Pool, timeout: float):
        self._pool, self._timeout = pool, timeout

    def acquire(self):
        return self._pool.acquire(timeout=self._timeout)

    async def close(self) -> None:
        await self._pool.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    """What tipg's connection_factory does, less creating its functions in pg_temp."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog")


async def open_ogc(app: FastAPI, url: str, settings: ApiSettings) -> None:
    """Mounted apps get no lifespan of their own: the parent's lifespan calls this."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=POOL_SIZE,
        init=_init_connection,
        timeout=settings.connect_timeout,
        # Client-side bound a little above the server's, for a server that stops answering.
        command_timeout=settings.statement_timeout_ms / 1000 + 2,
        server_settings={
            "search_path": "api, public",
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": "streetaudit-ogc",
        },
    )
    app.state.pool = BoundedPool(pool, settings.pool_timeout)
    await register_collection_catalog(app, db_settings=_db_settings())


async def close_ogc(app: FastAPI) -> None:
    await app.state.pool.close()


# -- errors: tipg's handlers answer 500 with str(error), which quoted our SQL ------------------

_UNAVAILABLE = ("08", "53", "57P", "58")


def _answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _postgres_error(request: Request, error: asyncpg.PostgresError) -> JSONResponse:
    state = getattr(error, "sqlstate", "") or ""
    if state == "57014":
        log.warning("OGC query cancelled (statement timeout): %s", request.url.path)
        return _answer(503, "the query took longer than the API's statement timeout")
    if state.startswith(_UNAVAILABLE):
        log.warning("OGC database unavailable: %s", error)
        return _answer(503, "database unavailable")
    if state.startswith(("22", "42")):
        log.info("OGC request rejected by the database (%s): %s", state, error)
        return _answer(400, "a parameter does not fit the collection (wrong type or value)")
    if state == "XX000" and any(w in str(error) for w in ("SRID", "geometr", "ST_", "lwgeom")):
        # PostGIS reports bad geometries this way; tipg's BBOX() filter literal has no SRID.
        log.info("OGC geometry rejected by PostGIS: %s", error)
        return _answer(400, "a geometry in the request cannot be used (use POLYGON or bbox= for boxes)")
    log.error("OGC database error %s", state, exc_info=error)
    return _answer(500, "internal error")


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("OGC database unavailable: %s: %s", type(error).__name__, error)
    return _answer(503, "database unavailable")


def _tipg_error(status: int):
    async def handle(request: Request, error: TiPgError) -> JSONResponse:
        if isinstance(error, MissingCollectionCatalog):
            return _answer(503, "the OGC catalog is not loaded")
        if status >= 500:  # a collection without a geometry or datetime column, say
            return _answer(400, "this collection does not support that request")
        return _answer(status, str(error)[:200])

    return handle


def add_ogc_exception_handlers(app: FastAPI) -> None:
    for cls, status in DEFAULT_STATUS_CODES.items():
        if isinstance(cls, type) and issubclass(cls, TiPgError):
            app.add_exception_handler(cls, _tipg_error(status))
    app.add_exception_handler(asyncpg.PostgresError, _postgres_error)
    for cls in (asyncpg.InterfaceError, OSError, asyncio.TimeoutError, TimeoutError):
        app.add_exception_handler(cls, _unavailable)
    # Starlette types handlers as taking any Exception; this one is registered for its own class.
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
