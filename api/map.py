"""/map: a MapLibre GL page over our own tiles; the library comes from npm (node_modules), no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from streetaudit.api.errors import Unavailable
from streetaudit.api.photo_models import MapConfig

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Below this a city's points are a smear over the roads that already carry their means.
POINTS_MINZOOM = 15

router = APIRouter(tags=["map"])


def maplibre_ready(maplibre_dir: Path) -> bool:
    return (maplibre_dir / "maplibre-gl.js").is_file() and (maplibre_dir / "maplibre-gl.css").is_file()


@router.get("/map", summary="Map of roads, heritage areas and points", response_class=FileResponse)
async def map_page(request: Request) -> FileResponse:
    maplibre_dir = request.app.state.settings.maplibre_dir
    if not maplibre_ready(maplibre_dir):
        raise Unavailable(
            f"maplibre-gl is not installed under {maplibre_dir}: run `npm ci` in the repository root "
            "(or set STREETAUDIT_API_MAPLIBRE_DIR)"
        )
    return FileResponse(STATIC_DIR / "map.html", media_type="text/html")


@router.get("/map/config", summary="What the map page needs before its first paint", response_model=MapConfig)
async def map_config(request: Request) -> JSONResponse:
    """Colour ranges (api.map_ranges: 2nd-98th percentiles), the optional basemap, and whether
    photos are served: fetched before the map is built, so the legend never changes under the user."""
    async with request.app.state.db.pool.connection() as conn:
        row = await (await conn.execute("SELECT api.map_ranges()")).fetchone()
    photos = request.app.state.photo_settings
    return JSONResponse(
        {
            "ranges": row[0] if row else {},
            "basemap": photos.basemap,
            "images_served": photos.any,
            "points_minzoom": POINTS_MINZOOM,
        },
        headers={"Cache-Control": "no-cache"},
    )
