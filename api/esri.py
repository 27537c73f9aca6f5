"""Each tile layer as an ArcGIS VectorTileServer, for QGIS: one URL gives the tiles, the
layer's extent and its style.

A QGIS XYZ vector-tile connection always spans the whole world (QGIS reads no TileJSON),
so "Zoom to layer" leaves the city a speck. The ArcGIS Vector Tile Service connection
reads the service's `fullExtent` and `defaultStyles`, so the same tiles open on the city,
coloured as /map. Only what QGIS (and ArcGIS clients) read is written: the tiling scheme is
the usual web-mercator XYZ grid of 512-pixel tiles, addressed tile/{z}/{y}/{x}.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from streetaudit.api.bounds import mercator
from streetaudit.api.catalog import Layer
from streetaudit.api.dependencies import get_layer
from streetaudit.api.styles import Choice, StyleDoc, build_style

router = APIRouter(tags=["tiles"])

WEB_MERCATOR = {"wkid": 102100, "latestWkid": 3857}
_WORLD = 2 * 20037508.342789244
_TILE = 512  # pixels; a level's resolution is the world's width over 2^z of these
_DPI = 96
_METRES_PER_INCH = 0.0254


class EsriExtent(BaseModel):
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    spatialReference: dict[str, int]


class Lod(BaseModel):
    level: int
    resolution: float
    scale: float


class TileInfo(BaseModel):
    rows: int
    cols: int
    dpi: int
    format: str
    origin: dict[str, float]
    spatialReference: dict[str, int]
    lods: list[Lod]


class VectorTileServer(BaseModel):
    """The parts of an ArcGIS VectorTileServer description that QGIS reads."""

    currentVersion: float
    name: str
    capabilities: str
    type: str
    defaultStyles: str = Field(description="the style's path, relative to this URL")
    tiles: list[str] = Field(description="tile URL templates, relative to this URL")
    initialExtent: EsriExtent
    fullExtent: EsriExtent
    minScale: float
    maxScale: float
    tileInfo: TileInfo
    maxzoom: int


def _scale(z: int) -> float:
    return _WORLD / (_TILE * 2**z) * _DPI / _METRES_PER_INCH


@router.get("/{layer_id}/VectorTileServer", summary="The layer as an ArcGIS VectorTileServer (for QGIS)")
async def vector_tile_server(
    request: Request, layer: Annotated[Layer, Depends(get_layer)]
) -> VectorTileServer:
    extent = await request.app.state.extent(layer.id)
    xmin, ymin = mercator(extent.west, extent.south)
    xmax, ymax = mercator(extent.east, extent.north)
    box = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax, "spatialReference": WEB_MERCATOR}
    lods = [
        {"level": z, "resolution": _WORLD / (_TILE * 2**z), "scale": _scale(z)}
        for z in range(layer.maxzoom + 1)
    ]
    return VectorTileServer.model_validate(
        {
            "currentVersion": 10.9,
            "name": layer.id,
            "capabilities": "TilesOnly",
            "type": "indexedVector",
            "defaultStyles": "resources/styles/root.json",
            "tiles": ["tile/{z}/{y}/{x}.pbf"],
            "initialExtent": box,
            "fullExtent": box,
            "minScale": _scale(layer.minzoom),
            "maxScale": _scale(layer.maxzoom),
            "tileInfo": {
                "rows": _TILE,
                "cols": _TILE,
                "dpi": _DPI,
                "format": "pbf",
                "origin": {"x": -_WORLD / 2, "y": _WORLD / 2},
                "spatialReference": WEB_MERCATOR,
                "lods": lods,
            },
            "maxzoom": layer.maxzoom,
        }
    )


@router.get(
    "/{layer_id}/VectorTileServer/resources/styles/root.json",
    summary="The layer's style (MapLibre / Mapbox GL), coloured as /map",
)
async def vector_tile_server_style(
    request: Request, layer: Annotated[Layer, Depends(get_layer)], choice: Annotated[Choice, Depends()]
) -> StyleDoc:
    return await build_style(request, choice, only=layer.id)
