"""Where a tile layer's data lies: TileJSON's and /{layer}.json's `bounds` and `center`.

MapLibre and QGIS open a source at its `center` and zoom to its `bounds`; the world's
extent there sends every client to (0, 0). The extent is computed in SQL
(api.layer_bounds, sql/post/041_layer_bounds.sql) and kept until the data version
changes, which only `stats refresh` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streetaudit.api.database import Database

WORLD = (-180.0, -85.0511287798066, 180.0, 85.0511287798066)
_EARTH_HALF = 20037508.342789244  # half the web-mercator world, metres


@dataclass(frozen=True)
class Extent:
    west: float
    south: float
    east: float
    north: float

    @property
    def bounds(self) -> list[float]:
        return [self.west, self.south, self.east, self.north]

    def center(self, minzoom: int, maxzoom: int) -> list[float]:
        """[lon, lat, zoom]: the middle, at the largest zoom where the extent fits one 512-pixel tile."""
        x0, y0 = mercator(self.west, self.south)
        x1, y1 = mercator(self.east, self.north)
        span = max(x1 - x0, y1 - y0)
        zoom = math.floor(math.log2(2 * _EARTH_HALF / span)) if span > 0 else maxzoom
        lon, lat = lonlat((x0 + x1) / 2, (y0 + y1) / 2)
        return [lon, lat, float(min(max(zoom, minzoom), maxzoom))]


def mercator(lon: float, lat: float) -> tuple[float, float]:
    return lon * _EARTH_HALF / 180, math.log(
        math.tan(math.pi / 4 + math.radians(lat) / 2)
    ) * _EARTH_HALF / math.pi


def lonlat(x: float, y: float) -> tuple[float, float]:
    return x * 180 / _EARTH_HALF, math.degrees(
        2 * math.atan(math.exp(y * math.pi / _EARTH_HALF)) - math.pi / 2
    )


def layer_extents(db: Database):
    """`await extent(layer_id)`, recomputed only when the data version changes."""
    cache: dict[tuple[int, str], Extent] = {}

    async def extent(layer_id: str) -> Extent:
        version = (await db.version()).version
        key = (version, layer_id)
        if key not in cache:
            async with db.pool.connection() as conn:
                row = await (await conn.execute("SELECT api.layer_bounds(%s)", (layer_id,))).fetchone()
            if any(k[0] != version for k in cache):
                cache.clear()
            cache[key] = Extent(*(row[0] if row and row[0] else WORLD))
        return cache[key]

    return extent
