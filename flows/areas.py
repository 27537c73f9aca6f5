"""Load heritage (historic core) areas into `streetaudit.heritage_area`.

Reloading a source replaces its areas in one transaction; nothing references area ids,
so a plain replace is enough.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import shapely
from prefect import flow

from streetaudit.flows.errors import InputError
from streetaudit.flows.roads import LoadReport, source_name
from streetaudit.flows.vector_files import read_areas


def load_areas(
    url: str,
    path: Path,
    *,
    name_field: str,
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
        deleted = conn.execute("DELETE FROM streetaudit.heritage_area WHERE source = %s", (src,)).rowcount
        with conn.cursor().copy(
            "COPY streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2) FROM STDIN"
        ) as copy:
            for feature, hexwkb in zip(result.features, wkb, strict=True):
                copy.write_row((src, feature.source_id, feature.name, feature.kind, f"SRID=4326;{hexwkb}", 0))
        conn.execute(
            "UPDATE streetaudit.heritage_area SET area_m2 = ST_Area(geom::geography) WHERE source = %s",
            (src,),
        )
    return LoadReport(src, result.rows, len(result.features), result.skipped, deleted)


@flow(name="areas", log_prints=True)
def areas_flow(url: str, path: str, name_field: str, kind: str = "core") -> dict:
    report = load_areas(url, Path(path), name_field=name_field, kind=kind)
    print(f"loaded {report.loaded} heritage areas from {report.source}")
    return report.__dict__
