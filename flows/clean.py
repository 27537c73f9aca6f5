"""`streetaudit images clean`: exclude views that would mislead the segmentation statistics.

Rules, first match wins, each recorded in `detail`:
  * the file is missing, undecodable or a truncated image;
  * captured in an excluded month (winter: snow and ice change what a street looks like);
  * smaller than `min_bytes` (blank or error tiles);
  * an exact duplicate (same sha256) of another view: providers answer "no imagery here"
    with one placeholder picture, so every copy is excluded.
Cleaning only ever moves rows between `ok` and `excluded`, so it is reversible: `undo`
restores every excluded row, and each run starts from that restored state, which makes a
rerun with other settings give exactly that setting's result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import fsspec
import psycopg
from PIL import Image as PILImage
from prefect import flow

from streetaudit.flows.errors import InputError

MIN_BYTES = 5_000

_RESTORE = """UPDATE streetaudit.image SET status = 'ok', detail = NULL WHERE status = 'excluded'"""
_MONTHS = """
UPDATE streetaudit.image
SET status = 'excluded',
    detail = 'excluded: captured in month ' || extract(month FROM captured_at AT TIME ZONE 'UTC')::int
             || ' (excluded months: snow and ice)'
WHERE status = 'ok' AND extract(month FROM captured_at AT TIME ZONE 'UTC')::int = ANY(%s)
"""
_SMALL = """
UPDATE streetaudit.image
SET status = 'excluded', detail = 'excluded: ' || bytes || ' bytes, below --min-bytes ' || %s
WHERE status = 'ok' AND bytes < %s
"""
_DUPLICATES = """
WITH dup AS (
    SELECT sha256, count(*) AS n FROM streetaudit.image
    WHERE status = 'ok' AND sha256 IS NOT NULL GROUP BY sha256 HAVING count(*) > 1
)
UPDATE streetaudit.image AS i
SET status = 'excluded',
    detail = 'excluded: identical to ' || (dup.n - 1) || ' other view(s) (sha256 ' || left(i.sha256, 12)
             || '; a provider placeholder?)'
FROM dup
WHERE i.status = 'ok' AND i.sha256 = dup.sha256
"""
_BROKEN = """
UPDATE streetaudit.image AS i SET status = 'excluded', detail = 'excluded: ' || b.reason
FROM unnest(%s::bigint[], %s::text[]) AS b(id, reason)
WHERE i.id = b.id AND i.status = 'ok'
"""


@dataclass
class CleanReport:
    checked: int = 0
    restored: int = 0
    broken: int = 0
    winter: int = 0
    small: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    examples: list[tuple[int, str, float, str]] = field(default_factory=list)

    @property
    def excluded(self) -> int:
        return self.broken + self.winter + self.small + self.duplicates


def decode_problem(uri: str) -> str | None:
    """Why the file at `uri` cannot serve as an image, or None when it decodes completely."""
    try:
        with fsspec.open(uri, "rb") as handle, PILImage.open(handle) as image:
            image.load()
    except FileNotFoundError:
        return "file missing"
    except (OSError, SyntaxError, ValueError) as error:
        text = str(error)
        return "truncated image" if "truncated" in text else f"undecodable image ({text[:80]})"
    return None


def _scan_files(url: str, workers: int) -> tuple[int, list[int], list[str]]:
    """Decode every ok/excluded file in bounded chunks (a server-side cursor, a thread pool)."""
    ids, reasons, checked = [], [], 0
    with psycopg.connect(url) as conn, conn.cursor(name="clean_scan") as cursor:
        cursor.itersize = 500
        cursor.execute(
            "SELECT id, uri FROM streetaudit.image WHERE status IN ('ok', 'excluded') AND uri IS NOT NULL"
        )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while chunk := cursor.fetchmany(500):
                for (image_id, _), problem in zip(
                    chunk, pool.map(decode_problem, [u for _, u in chunk]), strict=True
                ):
                    if problem:
                        ids.append(image_id)
                        reasons.append(problem)
                checked += len(chunk)
    return checked, ids, reasons


def clean_images(
    url: str,
    *,
    exclude_months: Sequence[int] = (11, 12, 1, 2, 3),
    min_bytes: int = MIN_BYTES,
    undo: bool = False,
    workers: int = 4,
) -> CleanReport:
    months = sorted({int(m) for m in exclude_months})
    if any(not 1 <= m <= 12 for m in months):
        raise InputError(f"--exclude-months must be month numbers 1..12, got {months}")
    if min_bytes < 0:
        raise InputError(f"--min-bytes must be >= 0, got {min_bytes}")
    start = time.perf_counter()
    report = CleanReport()
    if not undo:
        report.checked, broken_ids, broken_reasons = _scan_files(url, workers)
    with psycopg.connect(url) as conn:
        report.restored = conn.execute(_RESTORE).rowcount
        if not undo:
            report.broken = conn.execute(_BROKEN, (broken_ids, broken_reasons)).rowcount
            report.winter = conn.execute(_MONTHS, (months,)).rowcount
            report.small = conn.execute(_SMALL, (min_bytes, min_bytes)).rowcount
            report.duplicates = conn.execute(_DUPLICATES).rowcount
            report.examples = conn.execute(
                """SELECT point_id, provider, heading, detail FROM streetaudit.image
                   WHERE status = 'excluded' ORDER BY point_id, heading LIMIT 20"""
            ).fetchall()
        conn.commit()
    report.seconds = time.perf_counter() - start
    return report


def summary_lines(report: CleanReport, *, undo: bool, min_bytes: int) -> list[str]:
    """What `images clean` and the pipeline's clean stage print."""
    if undo:
        return [f"restored {report.restored} excluded views to ok"]
    lines = [
        f"checked {report.checked} files; excluded {report.excluded}: {report.broken} missing/broken, "
        f"{report.winter} in excluded months, {report.small} under {min_bytes} bytes, "
        f"{report.duplicates} duplicates ({report.seconds:.1f} s)"
    ]
    lines += [
        f"  point {point_id} {provider} heading {heading:g}: {detail}"
        for point_id, provider, heading, detail in report.examples
    ]
    if report.excluded > len(report.examples):
        lines.append(f"  … and {report.excluded - len(report.examples)} more (see image.detail)")
    return lines


# The Prefect flow `clean`: the plain function, its parameters validated by Prefect.
clean_flow = flow(name="clean", log_prints=True)(clean_images)
