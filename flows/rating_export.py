"""`ratings top`: the best-rated images as files plus a manifest, for box labelling.

The method took each rater's top 500 images to labelling; with `per_rater` each rater's
list goes to its own sub-folder, and the union of the lists is reported. Files are named
`<rank>_<image id>.<ext>` so a labelling tool lists them in rank order.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import fsspec
import psycopg

from streetaudit.flows.errors import InputError
from streetaudit.flows.ratings import METHODS


@dataclass
class TopReport:
    out: Path
    lists: dict[str, int] = field(default_factory=dict)  # list name ('' pooled, else rater) -> images
    union: int = 0
    files: int = 0
    manifest: Path | None = None


def _folder_name(rater: str) -> str:
    """A rater's name as one safe path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rater).strip("._") or "rater"


def _exists(uri: str | None) -> bool:
    if not uri:
        return False
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def _select(conn: psycopg.Connection, n: int, method: str, per_rater: bool) -> list[tuple]:
    return conn.execute(
        """SELECT coalesce(r.name, '') AS rater, t.image_id, t.rank, t.score, i.uri
           FROM (SELECT image_id, rater_id, score,
                        row_number() OVER (PARTITION BY rater_id ORDER BY score DESC, image_id) AS rank
                 FROM streetaudit.rating
                 WHERE method = %(method)s AND (rater_id IS NULL) <> %(per_rater)s) AS t
           JOIN streetaudit.image AS i ON i.id = t.image_id
           LEFT JOIN streetaudit.rater AS r ON r.id = t.rater_id
           WHERE t.rank <= %(n)s
           ORDER BY r.id NULLS FIRST, t.rank""",
        {"method": method, "per_rater": per_rater, "n": n},
    ).fetchall()


def export_top(
    url: str, out: Path, *, n: int = 500, method: str = "elo", per_rater: bool = False
) -> TopReport:
    if n <= 0:
        raise InputError(f"--n must be a positive number of images, got {n}")
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: choose a new or empty folder (it exists and is not empty)")
    with psycopg.connect(url) as conn:
        rows = _select(conn, n, method, per_rater)
    if not rows:
        raise InputError(
            f"no {method} ratings {'per rater ' if per_rater else ''}yet: run `streetaudit ratings recompute` first"
        )
    missing = [(image_id, uri) for _, image_id, _, _, uri in rows if not _exists(uri)]
    if missing:
        image_id, uri = missing[0]
        raise InputError(
            f"image {image_id}: its file {uri!r} is not there ({len(missing)} of {len(rows)} missing); nothing written"
        )
    report = TopReport(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "image_id", "rank", "score", "rater"])
        for rater, image_id, rank, score, uri in rows:
            folder = out / _folder_name(rater) if per_rater else out
            folder.mkdir(exist_ok=True)
            suffix = PurePosixPath(uri or "").suffix or ".jpg"
            target = folder / f"{rank:04d}_{image_id}{suffix}"
            with fsspec.open(uri, "rb") as source:
                target.write_bytes(source.read())
            writer.writerow([target.relative_to(out).as_posix(), image_id, rank, f"{score:.6g}", rater])
            report.lists[rater] = report.lists.get(rater, 0) + 1
            report.files += 1
    report.union = len({row[1] for row in rows})
    report.manifest = manifest
    return report
