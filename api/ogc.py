"""OGC API Features (and OGC API Tiles) for the `api` views, by tipg, mounted at /ogc.

tipg keeps its own asyncpg pool; it connects with the same URL and acts as the same
reader role (set at connection start), and only publishes schema `api`.
"""

from __future__ import annotations

from fastapi import FastAPI
from tipg.collections import register_collection_catalog
from tipg.database import close_db_connection, connect_to_db
from tipg.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from tipg.factory import Endpoints
from tipg.settings import DatabaseSettings, PostgresSettings

MOUNT_PATH = "/ogc"


def ogc_app() -> FastAPI:
    app = FastAPI(title="streetaudit OGC API", openapi_url="/api", docs_url="/api.html")
    endpoints = Endpoints(title="streetaudit OGC API", router_prefix=MOUNT_PATH.strip("/"))
    app.include_router(endpoints.router)
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    return app


def _db_settings() -> DatabaseSettings:
    return DatabaseSettings(schemas=["api"], functions=[], only_spatial_tables=False)


async def open_ogc(app: FastAPI, url: str, role: str | None) -> None:
    """Mounted apps get no lifespan of their own: the parent's lifespan calls this."""
    server_settings = {"role": role} if role else None
    await connect_to_db(
        app,
        schemas=["api"],
        settings=PostgresSettings(database_url=url, db_min_conn_size=1, db_max_conn_size=8),
        server_settings=server_settings,
    )
    await register_collection_catalog(app, db_settings=_db_settings())


async def close_ogc(app: FastAPI) -> None:
    await close_db_connection(app)
