"""Request parsing shared by the routes, as FastAPI dependencies (the way tipg's dependencies.py does).

A route names what it needs (`layer: Annotated[Layer, Depends(get_layer)]`) and gets it
checked, with a 400/404 that names the bad parameter, before its body runs.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from fastapi import Path, Query, Request

from streetaudit.api.catalog import Layer, load_layers
from streetaudit.api.errors import BadRequest, NotFound

MAX_ZOOM = 30
BIGINT = 2**63 - 1  # ids are bigint: a larger one is a 400, never a database error
_INTEGER = re.compile(r"^[0-9]{1,10}$")


class Tile(NamedTuple):
    z: int
    x: int
    y: int


async def get_layer(
    request: Request, layer_id: str = Path(description="a layer id from /index.json, e.g. api.roads")
) -> Layer:
    return await find_layer(request.app.state, layer_id)


async def find_layer(state, layer_id: str) -> Layer:
    """The layer named `layer_id` in the app's catalog (`state`: the app's state)."""
    layers = state.layers
    if layer_id not in layers:
        # A layer created after start-up is found on its first request.
        async with state.db.pool.connection() as conn:
            state.layers = layers = await load_layers(conn)
    if layer_id not in layers:
        known = ", ".join(sorted(layers)) or "none"
        raise NotFound(f"unknown layer {layer_id[:100]!r}; layers: {known}")
    return layers[layer_id]


def parse_tile(z: str, x: str, y: str) -> tuple[int, int, int]:
    for name, value in (("z", z), ("x", x), ("y", y)):
        if not _INTEGER.match(value):
            raise BadRequest(f"{name} must be a non-negative integer, got {value[:40]!r}")
    zi, xi, yi = int(z), int(x), int(y)
    if zi > MAX_ZOOM:
        raise BadRequest(f"z must be between 0 and {MAX_ZOOM}, got {zi}")
    if xi >= 2**zi or yi >= 2**zi:
        raise BadRequest(f"x and y must be between 0 and {2**zi - 1} at zoom {zi}, got x={xi}, y={yi}")
    return zi, xi, yi


# The dependencies are `async def` though they never await: FastAPI runs a plain `def`
# dependency in its thread pool, a hand-off that cost more than the tile query at z14.
async def get_tile(
    z: str = Path(description="zoom, 0 to 30"),
    x: str = Path(description="column, 0 to 2^z - 1"),
    y: str = Path(description="row, 0 to 2^z - 1 (XYZ scheme, north at 0)"),
) -> Tile:
    """Strings, not ints, so a bad value gets our message rather than pydantic's list."""
    return Tile(*parse_tile(z, x, y))


def parse_bbox(value: str | None) -> list[float] | None:
    """`minx,miny,maxx,maxy` in degrees (EPSG:4326)."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise BadRequest(f"bbox must be minx,miny,maxx,maxy (4 numbers), got {value[:80]!r}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"bbox must be 4 comma-separated numbers, got {value[:80]!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise BadRequest("bbox numbers must be finite")
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest(
            "bbox must satisfy -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90 (degrees, EPSG:4326)"
        )
    return numbers


async def get_bbox(
    bbox: str | None = Query(None, description="minx,miny,maxx,maxy in degrees (EPSG:4326)"),
) -> list[float] | None:
    return parse_bbox(bbox)
