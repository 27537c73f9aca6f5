"""create_app(): the streetaudit API (tiles, stats, map, OGC API Features, health)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from streetaudit.api import esri, health, label, photos, previews, qgis_project, rating, stats, styles, tiles
from streetaudit.api import map as map_page
from streetaudit.api.bounds import layer_extents
from streetaudit.api.catalog import load_layers
from streetaudit.api.database import Database
from streetaudit.api.errors import add_exception_handlers
from streetaudit.api.photo_settings import PhotoSettings
from streetaudit.api.role_check import ensure_read_only
from streetaudit.api.settings import ApiSettings
from streetaudit.api.tile_fast_path import TileFastPath
from streetaudit.api.tilecache import TileCache

log = logging.getLogger(__name__)


def create_app(url: str, settings: ApiSettings | None = None) -> FastAPI:
    """The app for database `url`, which must log in as a read-only role (it refuses to start otherwise)."""
    settings = settings or ApiSettings()
    db = Database(url, settings)
    rater_db = rating.RaterDatabase()
    ogc = None
    if settings.ogc:
        from streetaudit.api.ogc import MOUNT_PATH, ogc_app

        ogc = ogc_app()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.open()
        await rater_db.open()
        try:
            async with db.pool.connection() as conn:
                await ensure_read_only(conn)
                app.state.layers = await load_layers(conn)
        except BaseException:
            await db.close()
            await rater_db.close()
            raise
        app.state.ogc_enabled = False
        if ogc is not None:
            from streetaudit.api.ogc import close_ogc, open_ogc

            await open_ogc(ogc, url, settings)
            app.state.ogc_enabled = True
        try:
            yield
        finally:
            if ogc is not None:
                await close_ogc(ogc)
            await rater_db.close()
            await db.close()

    app = FastAPI(
        title="streetaudit",
        description="Vector tiles (pg_tileserv-compatible), statistics and a map of a city's streetscape.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.photo_settings = PhotoSettings()
    app.state.db = db
    app.state.rater_db = rater_db
    app.state.layers = {}
    app.state.extent = layer_extents(db)
    app.state.tile_cache = TileCache(settings.tile_cache_mb * 2**20) if settings.tile_cache_mb > 0 else None
    app.state.ogc_enabled = False
    app.state.map_ready = map_page.maplibre_ready(settings.maplibre_dir)
    add_exception_handlers(app)
    # Added first, so it runs inside the gzip and CORS middleware added next.
    app.add_middleware(TileFastPath)
    # Level 1, as nginx's gzip default: tiles are compressed per request, and levels above 1
    # cost several times the CPU for a few per cent smaller vector tiles.
    app.add_middleware(GZipMiddleware, minimum_size=512, compresslevel=1)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["ETag", "Cache-Control"],
    )
    app.include_router(tiles.tile_router)
    app.include_router(health.router)
    app.include_router(stats.router)
    app.include_router(map_page.router)
    app.include_router(rating.router)
    app.include_router(label.router)
    app.include_router(photos.router)
    app.mount("/static/app", StaticFiles(directory=map_page.STATIC_DIR), name="static-app")
    app.mount(
        "/static/maplibre", StaticFiles(directory=settings.maplibre_dir, check_dir=False), name="maplibre"
    )
    if ogc is not None:
        app.mount(MOUNT_PATH, ogc, name="ogc")
    # Last: /{layer}.json and friends would otherwise shadow the fixed paths above.
    app.include_router(styles.router)
    app.include_router(esri.router)
    app.include_router(qgis_project.router)
    app.include_router(previews.router)
    app.include_router(tiles.router)
    return app
