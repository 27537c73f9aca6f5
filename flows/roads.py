"""The roads stage: load road centre lines into `streetaudit.road`.

A source (by default the file's absolute path) is loaded in one transaction: roads that
are gone from the file are deleted (refused, unless forced, when their points hold images),
changed ones updated (their sample points retired, since they no longer lie on the road),
unchanged ones kept with their ids, so images already collected along them survive a reload. The differences are counted first and a
reload that would wipe names or kinds stops unless forced (flows/load_changes.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import shapely
from prefect import flow

from streetaudit.flows.errors import InputError
from streetaudit.flows.load_changes import Changes, compare, wiped
from streetaudit.flows.vector_files import read_lines
from streetaudit.sql.rows import one, scalar

# The option that names each attribute's field, for the message of a refused reload.
FIELD_OPTIONS = {"name": "--name-field", "kind": "--kind-field"}


@dataclass
class LoadReport:
    source: str
    rows: int
    loaded: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    deleted: int = 0
    length_km: float = 0.0
    changes: Changes = field(default_factory=Changes)
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (row number, what was repaired)
    # Streets built before (`streets build`) are rebuilt with the same options when the roads
    # change, so street statistics never describe yesterday's network: (split_by, max_length_m, streets).
    streets_rebuilt: tuple[str, float | None, int] | None = None

    def summary(self, noun: str = "roads") -> str:
        return self.changes.text(noun)


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
    force: bool = False,
) -> LoadReport:
    """Load (or reload) one source; `force` lets a reload wipe names or kinds (see load_changes)."""
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
        changes = compare(conn, "road", "road_load", src)
        if not force:
            refuse_wipe(path, src, changes, result.fields)
        refuse_image_loss(conn, path, src, force=force)
        deleted = conn.execute(
            """DELETE FROM streetaudit.road AS r WHERE r.source = %s
               AND NOT EXISTS (SELECT 1 FROM road_load AS l WHERE l.source_id = r.source_id)""",
            (src,),
        ).rowcount
        # A moved road's points no longer lie on it: retired, never deleted, so their images
        # stay; densify reuses those still within 1.5 m of the new line (sql/post/003_densify.sql).
        conn.execute(
            """UPDATE streetaudit.sample_point AS p SET retired_at = now()
               FROM streetaudit.road AS r, road_load AS l
               WHERE p.road_id = r.id AND r.source = %s AND l.source_id = r.source_id
                 AND p.retired_at IS NULL AND NOT ST_OrderingEquals(r.geom, l.geom)""",
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
        km = scalar(
            conn.execute(
                "SELECT coalesce(sum(length_m), 0) / 1000 FROM streetaudit.road WHERE source = %s", (src,)
            )
        )
        streets = None
        if changes.new or changes.updated or changes.removed or deleted:
            streets = rebuild_streets(conn)
    return LoadReport(
        src,
        result.rows,
        len(result.features),
        result.skipped,
        deleted,
        km,
        changes,
        result.warnings,
        streets,
    )


def rebuild_streets(conn: psycopg.Connection) -> tuple[str, float | None, int] | None:
    """Streets again with the last build's options, in the load's transaction; None if never built."""
    last = conn.execute("SELECT split_by, max_length_m FROM streetaudit.street_build").fetchone()
    if last is None:
        return None
    streets = scalar(conn.execute("SELECT streets FROM streetaudit.build_streets(%s, %s)", last))
    return last[0], last[1], streets


def refuse_wipe(path: Path, source: str, changes: Changes, fields: list[str]) -> None:
    lost = wiped(changes)
    if not lost:
        return
    what = "; ".join(
        f"{after} of {changes.after} roads would have a {attribute} ({before} of {changes.before} have one now)"
        for attribute, before, after in lost
    )
    options = " / ".join(FIELD_OPTIONS[attribute] for attribute, _, _ in lost)
    raise InputError(
        f"{path}: reloading source {source!r} would wipe road attributes: {what}. Name the field with "
        f"{options} (fields in the file: {', '.join(fields) or 'none'}; in `run pipeline` the options are "
        "--road-name-field / --road-kind-field), or reload anyway with --force (--road-force)"
    )


# The Prefect flow `roads`: the plain function, its parameters validated by Prefect.
roads_flow = flow(name="roads", log_prints=True)(load_roads)


def refuse_image_loss(conn: psycopg.Connection, path: Path, src: str, *, force: bool) -> None:
    """Deleting a road cascades to its points' images and segmentations: only when forced,
    and never when raters compared those images (the campaign's record is kept)."""
    roads, images, segmentations, rated = one(
        conn.execute(
            """SELECT count(DISTINCT r.id), count(DISTINCT i.id), count(s.image_id),
                  count(DISTINCT i.id) FILTER (WHERE EXISTS (
                      SELECT 1 FROM streetaudit.comparison AS c WHERE i.id IN (c.left_image, c.right_image)))
           FROM streetaudit.road AS r
           JOIN streetaudit.sample_point AS p ON p.road_id = r.id
           JOIN streetaudit.image AS i ON i.point_id = p.id
           LEFT JOIN streetaudit.segmentation AS s ON s.image_id = i.id
           WHERE r.source = %s
             AND NOT EXISTS (SELECT 1 FROM road_load AS l WHERE l.source_id = r.source_id)""",
            (src,),
        )
    )
    if rated:
        raise InputError(
            f"{path}: {roads} road(s) of source {src!r} are gone from the file, and raters compared "
            f"{rated} image(s) on their sample points; the rating record is never deleted, so these "
            "roads cannot be. Nothing was changed. Keep them in the file, or load it under another --source."
        )
    if images and not force:
        raise InputError(
            f"{path}: {roads} road(s) of source {src!r} are gone from the file and their sample points "
            f"hold {images} image row(s) and {segmentations} segmentation(s); reloading would delete "
            "those rows. Nothing was changed. Load the file under another --source to keep both, or "
            "rerun with --force to delete them (their files then stay on disk: "
            "`streetaudit images orphans --delete` removes them)."
        )
