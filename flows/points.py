"""The points stage: sample points every interval metres along the roads, computed in PostGIS.

Densify retires points instead of deleting them (see sql/045_retire_points.sql): images
cost money and time, so only `prune=True` deletes retired points, and then it says what
it deleted, rows and files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from prefect import flow

from streetaudit.flows.errors import InputError
from streetaudit.flows.orphans import RemovedFiles, remove_files
from streetaudit.sql.rows import one

# densify_parameter_problem() names the SQL parameters; users know the options.
OPTIONS = {"interval_m": "--interval", "dedupe_m": "--dedupe-within", "metric_srid": "--srid"}


@dataclass
class RetiredPoints:
    """Retired points and what they still hold (kept until a prune)."""

    points: int = 0
    imaged: int = 0
    images: int = 0
    segmentations: int = 0


@dataclass
class PruneReport:
    points: int = 0
    images: int = 0
    segmentations: int = 0
    files: RemovedFiles = field(default_factory=RemovedFiles)


@dataclass
class DensifyReport:
    points: int
    merged: int
    inserted: int
    reactivated: int
    retired: int
    seconds: float
    kept: RetiredPoints = field(default_factory=RetiredPoints)
    pruned: PruneReport | None = None
    # Roads placed by densify_new_roads (only roads added since the last run); None: a full run.
    new_roads: int | None = None


def check_densify_parameters(
    conn: psycopg.Connection, *, interval: float, dedupe_within: float = 1.0, srid: int | None = None
) -> None:
    """Raise InputError naming the option when densify would refuse these values."""
    bad = conn.execute(
        "SELECT parameter, problem FROM streetaudit.densify_parameter_problem(%s, %s, %s::numeric) LIMIT 1",
        (interval, dedupe_within, srid),
    ).fetchone()
    if bad is not None:
        raise InputError(f"{OPTIONS.get(bad[0], bad[0])} {bad[1]}")


# Retired points a prune may delete: not those whose images raters compared. The comparisons
# are the campaign's append-only record (their foreign keys refuse the delete); such points
# stay retired, out of collection and statistics, and are counted as kept.
_PRUNABLE = """p.retired_at IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM streetaudit.image AS ri JOIN streetaudit.comparison AS c
      ON ri.id IN (c.left_image, c.right_image)
    WHERE ri.point_id = p.id)"""


def retired_points(conn: psycopg.Connection, where: str = "p.retired_at IS NOT NULL") -> RetiredPoints:
    row = conn.execute(
        """SELECT count(DISTINCT p.id), count(DISTINCT i.point_id), count(DISTINCT i.id), count(s.image_id)
           FROM streetaudit.sample_point AS p
           LEFT JOIN streetaudit.image AS i ON i.point_id = p.id
           LEFT JOIN streetaudit.segmentation AS s ON s.image_id = i.id
           WHERE """
        + where
    )
    return RetiredPoints(*one(row))


def _delete_retired(conn: psycopg.Connection) -> tuple[PruneReport, list[str]]:
    """Delete retired points (images and segmentations cascade); the files to remove after commit."""
    held = retired_points(conn, _PRUNABLE)
    uris = [
        r[0]
        for r in conn.execute(
            """SELECT i.uri FROM streetaudit.image AS i
               JOIN streetaudit.sample_point AS p ON p.id = i.point_id
               WHERE i.uri IS NOT NULL AND """
            + _PRUNABLE
            + """
               UNION
               SELECT s.mask_uri FROM streetaudit.segmentation AS s
               JOIN streetaudit.image AS i ON i.id = s.image_id
               JOIN streetaudit.sample_point AS p ON p.id = i.point_id
               WHERE s.mask_uri IS NOT NULL AND """
            + _PRUNABLE
        )
    ]
    conn.execute("DELETE FROM streetaudit.sample_point AS p WHERE " + _PRUNABLE)
    # A file another row still names (an imported mask shared by two models' rows) stays.
    still = {
        r[0]
        for r in conn.execute(
            """SELECT uri FROM streetaudit.image WHERE uri = ANY(%(u)s)
               UNION SELECT mask_uri FROM streetaudit.segmentation WHERE mask_uri = ANY(%(u)s)""",
            {"u": uris},
        )
    }
    report = PruneReport(held.points, held.images, held.segmentations)
    return report, [u for u in uris if u not in still]


def densify(
    url: str,
    *,
    interval: float = 30.0,
    dedupe_within: float = 1.0,
    srid: int | None = None,
    prune: bool = False,
    full: bool = False,
) -> DensifyReport:
    """Place the points for `interval`; old points are retired, or deleted with `prune`.

    When the roads have only grown since the last run with these parameters, only the new
    roads are densified (streetaudit.densify_new_roads: the same points a full run places);
    `full` runs over every road regardless.

    With `prune`, rows go in the densify transaction and files only after it commits: a
    failure in between leaves files without rows (`images orphans` finds them), never
    rows without files.
    """
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        check_densify_parameters(conn, interval=interval, dedupe_within=dedupe_within, srid=srid)
        grown = None
        if not full:
            grown = conn.execute(
                "SELECT points, merged, inserted, new_roads FROM streetaudit.densify_new_roads(%s, %s, %s)",
                (interval, dedupe_within, srid),
            ).fetchone()
        if grown is not None:
            points, merged, inserted, new_roads = grown
            report = DensifyReport(points, merged, inserted, 0, 0, seconds=0.0, new_roads=new_roads)
        else:
            row = one(
                conn.execute(
                    """SELECT points, merged, inserted, reactivated, retired
                       FROM streetaudit.densify_roads(%s, %s, %s)""",
                    (interval, dedupe_within, srid),
                )
            )
            points, merged, inserted, reactivated, retired = row
            report = DensifyReport(points, merged, inserted, reactivated, retired, seconds=0.0)
        doomed: list[str] = []
        if prune:
            report.pruned, doomed = _delete_retired(conn)
        report.kept = retired_points(conn)
        conn.commit()
    if report.pruned is not None:
        report.pruned.files = remove_files(doomed)
    report.seconds = time.perf_counter() - start
    return report


def _grown_note(new_roads: int | None) -> str:
    if new_roads is None:
        return ""
    if new_roads == 0:
        return " (no road added or changed since the last densify; --full to redo all)"
    roads = "road" if new_roads == 1 else "roads"
    return f" (only the {new_roads} {roads} added since the last densify; --full for all)"


def summary_lines(report: DensifyReport, interval: float) -> list[str]:
    """What the CLI and the flow print: the new set, and what happened to the old one."""
    lines = [
        f"{report.points} sample points every {interval:g} m: {report.inserted} new, "
        f"{report.reactivated} reused from retired points, {report.retired} retired, "
        f"{report.merged} merged into nearby points of other roads; {report.seconds:.2f} s"
        + _grown_note(report.new_roads)
    ]
    if report.pruned is not None:
        p = report.pruned
        lines.append(
            f"pruned {p.points} retired points: deleted {p.images} image rows, {p.segmentations} "
            f"segmentations and {p.files.deleted} files"
            + (f" ({p.files.missing} already gone)" if p.files.missing else "")
            + (
                f"; {p.files.outside} files outside the image store and masks folder left in place"
                if p.files.outside
                else ""
            )
        )
        if report.kept.points:
            lines.append(
                f"{report.kept.points} retired points kept: raters compared their images "
                "(the campaign's record is never deleted)"
            )
    elif report.kept.points:
        k = report.kept
        lines.append(
            f"{k.points} retired points are kept (not collected, not in the statistics); {k.imaged} of them "
            f"hold {k.images} images and {k.segmentations} segmentations. "
            "`streetaudit points densify --prune` deletes them, their rows and files."
        )
    return lines


# The Prefect flow `points`: the plain function, its parameters validated by Prefect.
points_flow = flow(name="points", log_prints=True)(densify)
