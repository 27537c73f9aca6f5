"""/map: a MapLibre GL page over our own tiles; the library comes from npm (node_modules), no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from streetaudit.api.errors import Unavailable

STATIC_DIR = Path(__file__).resolve().parent / "static"

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
