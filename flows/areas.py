"""Load heritage (historic core) areas into `streetaudit.heritage_area`.

Reloading a source replaces its areas in one transaction; nothing references area ids,
so a plain replace is enough. The rows are staged first so the report can say what the
reload changed (matched by row number, as area files have no stable ids).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import shapely
from prefect import flow

from streetaudit.flows.errors import InputError
from streetaudit.flows.load_changes import compare
from streetaudit.flows.roads import LoadReport, source_name
from streetaudit.flows.vector_files import read_areas


def load_areas(
    url: str,
    path: Path,
    *,
    name_field: str = "name",
    kind: str = "core",
    kind_field: str | None = None,
    layer: str | None = None,
    source: str | None = None,
) -> LoadReport:
    result = read_areas(path, layer=layer, name_field=name_field, kind=kind, kind_field=kind_field)
    if not result.features:
        raise InputError(
            f"{path}: no usable areas (rows read: {result.rows}, skipped: {len(result.skipped)})"
        )
    src = source_name(path, layer, source)
    wkb = shapely.to_wkb([f.geometry for f in result.features], hex=True, include_srid=False)
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(
            """CREATE TEMP TABLE area_load (source_id text PRIMARY KEY, name text, kind text,
                                            geom geometry(MultiPolygon, 4326)) ON COMMIT DROP"""
        )
        with conn.cursor().copy("COPY area_load (source_id, name, kind, geom) FROM STDIN") as copy:
            for feature, hexwkb in zip(result.features, wkb, strict=True):
                copy.write_row((feature.source_id, feature.name, feature.kind, f"SRID=4326;{hexwkb}"))
        changes = compare(conn, "heritage_area", "area_load", src)
        deleted = conn.execute("DELETE FROM streetaudit.heritage_area WHERE source = %s", (src,)).rowcount
        conn.execute(
            """INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
               SELECT %s, source_id, name, kind, geom, ST_Area(geom::geography) FROM area_load""",
            (src,),
        )
        roadless = _areas_without_roads(conn, src)
    return LoadReport(
        src,
        result.rows,
        len(result.features),
        result.skipped,
        deleted,
        changes=changes,
        warnings=result.warnings + roadless,
    )


def _areas_without_roads(conn: psycopg.Connection, source: str) -> list[tuple[int, str]]:
    """Areas of `source` that no loaded road passes under: they get no sample points, so they
    would vanish from the statistics and plots without a word. Said only once roads are loaded
    (loading the areas first is allowed)."""
    rows = conn.execute(
        """SELECT a.source_id, a.name FROM streetaudit.heritage_area AS a
           WHERE a.source = %s AND EXISTS (SELECT 1 FROM streetaudit.road)
             AND NOT EXISTS (SELECT 1 FROM streetaudit.road AS r WHERE ST_Intersects(r.geom, a.geom))
           ORDER BY a.id""",
        (source,),
    ).fetchall()
    return [
        (
            int(source_id) if source_id.isdigit() else 0,
            f"no road passes under area {name!r}: it gets no sample points and no statistics",
        )
        for source_id, name in rows
    ]


# The Prefect flow `areas`: the plain function, its parameters validated by Prefect.
areas_flow = flow(name="areas", log_prints=True)(load_areas)
