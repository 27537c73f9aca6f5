"""What reloading a source changes, counted before it is applied, and the guard against wipes.

A reload with the wrong options (no `--name-field`, OSM defaults for a GeoPackage) once
replaced 720 road names with NULL without a word. The load now compares the staged rows
with the source's current rows first, reports the differences, and refuses a reload that
would take an attribute from most rows unless forced.

The rule (per attribute: name, kind): refuse when at least half of the source's rows had a
value before (WIPE_MIN_SHARE) and the reload would leave less than half that share
(WIPE_KEEP_RATIO): 720 of 720 named → 0 of 720 stops; 720 → 700 named, or 30 % → 20 %,
goes ahead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg
from psycopg import sql

from streetaudit.sql.rows import one

WIPE_MIN_SHARE = 0.5
WIPE_KEEP_RATIO = 0.5


@dataclass
class Changes:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    names_changed: int = 0
    kinds_changed: int = 0
    geometries_changed: int = 0
    before: int = 0
    named_before: int = 0
    kinded_before: int = 0
    after: int = 0
    named_after: int = 0
    kinded_after: int = 0

    def text(self, noun: str = "roads") -> str:
        return (
            f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed {noun}; "
            f"changed: {self.names_changed} names, {self.kinds_changed} kinds, "
            f"{self.geometries_changed} geometries"
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def compare(conn: psycopg.Connection, table: str, staged: str, source: str) -> Changes:
    """Counts between the source's rows in `streetaudit.<table>` and the staged rows (by source_id)."""
    query = sql.SQL(
        """SELECT
             count(*) FILTER (WHERE o.source_id IS NULL),
             count(*) FILTER (WHERE s.source_id IS NOT NULL AND o.source_id IS NOT NULL
                              AND (o.name IS DISTINCT FROM s.name OR o.kind IS DISTINCT FROM s.kind
                                   OR NOT ST_OrderingEquals(o.geom, s.geom))),
             count(*) FILTER (WHERE s.source_id IS NOT NULL AND o.source_id IS NOT NULL
                              AND o.name IS NOT DISTINCT FROM s.name AND o.kind IS NOT DISTINCT FROM s.kind
                              AND ST_OrderingEquals(o.geom, s.geom)),
             count(*) FILTER (WHERE s.source_id IS NULL),
             count(*) FILTER (WHERE s.source_id IS NOT NULL AND o.source_id IS NOT NULL
                              AND o.name IS DISTINCT FROM s.name),
             count(*) FILTER (WHERE s.source_id IS NOT NULL AND o.source_id IS NOT NULL
                              AND o.kind IS DISTINCT FROM s.kind),
             count(*) FILTER (WHERE s.source_id IS NOT NULL AND o.source_id IS NOT NULL
                              AND NOT ST_OrderingEquals(o.geom, s.geom)),
             count(o.source_id), count(o.name), count(o.kind),
             count(s.source_id), count(s.name), count(s.kind)
           FROM (SELECT source_id, name, kind, geom FROM {table} WHERE source = %s) AS o
           FULL JOIN {staged} AS s ON s.source_id = o.source_id"""
    ).format(table=sql.Identifier("streetaudit", table), staged=sql.Identifier(staged))
    return Changes(*one(conn.execute(query, (source,))))


def wiped(changes: Changes) -> list[tuple[str, int, int]]:
    """(attribute, rows with it before, rows with it after) for each attribute the reload would wipe."""
    found: list[tuple[str, int, int]] = []
    if not changes.before or not changes.after:
        return found
    for attribute, before, after in (
        ("name", changes.named_before, changes.named_after),
        ("kind", changes.kinded_before, changes.kinded_after),
    ):
        share_before = before / changes.before
        share_after = after / changes.after
        if share_before >= WIPE_MIN_SHARE and share_after < WIPE_KEEP_RATIO * share_before:
            found.append((attribute, before, after))
    return found
