"""Everything a reader or a tile reads of the published statistics, as one comparable value.

The incremental-refresh tests compare what one refresh published with what another did:
every table in a fixed order, geometries as EWKB hex (psycopg's text form), so equal means
the same bytes.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.grid_city import build

PUBLISHED = {
    "api.point_elements": "point_id",
    "api.road_stats": "road_id",
    "api.street_stats": "street_id",
    "api.area_stats": "area_id NULLS FIRST",
    "api.area_comparison": "area_id NULLS FIRST, element",
    "streetaudit.road_features": "road_id",
    "streetaudit.road_overview": "z, road_id",
    "streetaudit.road_overview_line": "z, cell, kind, has_data",
    "streetaudit.point_features": "point_id",
    "streetaudit.area_features": "area_id",
    "streetaudit.street_features": "street_id",
    "streetaudit.prebuilt_tile": "layer, z, x, y",
}


def published(url: str) -> dict[str, list[dict]]:
    """Each published table's rows (the comparison without its computed_at)."""
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        snapshot = {
            name: cur.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()
            for name, order in PUBLISHED.items()
        }
    for row in snapshot["api.area_comparison"]:
        row.pop("computed_at")
    return snapshot


def published_grid_city(url: str, grid: int = 10) -> str:
    """A grid city (testing/grid_city.py) with its streets built and its statistics published
    once (99 permutations, enough for the tests' p-values to exist): the starting point of a
    test that changes it and refreshes again."""
    build(url, grid)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT * FROM streetaudit.build_streets()")
    refresh_stats(url, permutations=99)
    return url
