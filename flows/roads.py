"""Stage 1: load road centre lines into `streetaudit.road`.

A source (by default the file's absolute path) is loaded in one transaction: roads that
are gone from the file are deleted, changed ones updated (their sample points dropped,
since they no longer lie on the road), unchanged ones kept with their ids, so images
already collected along them survive a reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import shapely
from prefect import flow

from streetaudit.flows.errors import InputError
from streetaudit.flows.vector_files import read_lines


@dataclass
class LoadReport:
    source: str
    rows: int
    loaded: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    deleted: int = 0
    length_km: float = 0.0


def source_name(path: Path, layer: str | None, source: str | None) -> str:
    if source:
        return source
    name = str(Path(path).resolve())
    return f"{name}#{layer}" if layer else name


def load_roads(
    url: str,
    path: Path,
    *,
    layer: str | None = None,
    name_field: str | None = None,
    kind_field: str | None = None,
    kinds: list[str] | None = None,
    source: str | None = None,
) -> LoadReport:
    result = read_lines(path, layer=layer, name_field=name_field, kind_field=kind_field, kinds=kinds)
    if not result.features:
        raise InputError(
            f"{path}: no usable road lines (rows read: {result.rows}, skipped: {len(result.skipped)})"
        )
    src = source_name(path, layer, source)
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(
            """CREATE TEMP TABLE road_load (source_id text PRIMARY KEY, name text, kind text,
                                            geom geometry(LineString, 4326)) ON COMMIT DROP"""
        )
        wkb = shapely.to_wkb([f.geometry for f in result.features], hex=True, include_srid=False)
        with conn.cursor().copy("COPY road_load (source_id, name, kind, geom) FROM STDIN") as copy:
            for feature, hexwkb in zip(result.features, wkb, strict=True):
                copy.write_row((feature.source_id, feature.name, feature.kind, f"SRID=4326;{hexwkb}"))
        deleted = conn.execute(
            """DELETE FROM streetaudit.road AS r WHERE r.source = %s
               AND NOT EXISTS (SELECT 1 FROM road_load AS l WHERE l.source_id = r.source_id)""",
            (src,),
        ).rowcount
        conn.execute(
            """DELETE FROM streetaudit.sample_point AS p
               USING streetaudit.road AS r, road_load AS l
               WHERE p.road_id = r.id AND r.source = %s AND l.source_id = r.source_id
                 AND NOT ST_OrderingEquals(r.geom, l.geom)""",
            (src,),
        )
        conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
               SELECT %s, source_id, name, kind, geom, ST_Length(geom::geography) FROM road_load
               ON CONFLICT (source, source_id) DO UPDATE
               SET name = EXCLUDED.name, kind = EXCLUDED.kind, geom = EXCLUDED.geom,
                   length_m = EXCLUDED.length_m, loaded_at = now()
               WHERE NOT ST_OrderingEquals(road.geom, EXCLUDED.geom)
                  OR road.name IS DISTINCT FROM EXCLUDED.name
                  OR road.kind IS DISTINCT FROM EXCLUDED.kind""",
            (src,),
        )
        km = conn.execute(
            "SELECT coalesce(sum(length_m), 0) / 1000 FROM streetaudit.road WHERE source = %s", (src,)
        ).fetchone()[0]
    return LoadReport(src, result.rows, len(result.features), result.skipped, deleted, km)


@flow(name="roads", log_prints=True)
def roads_flow(
    url: str,
    path: str,
    layer: str | None = None,
    name_field: str | None = None,
    kind_field: str | None = None,
    kinds: list[str] | None = None,
) -> dict:
    report = load_roads(
        url, Path(path), layer=layer, name_field=name_field, kind_field=kind_field, kinds=kinds
    )
    print(f"loaded {report.loaded} roads ({report.length_km:.1f} km) from {report.source}")
    return report.__dict__
