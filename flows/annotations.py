"""`annotations import|export`: raters' boxes in and out of the annotation table.

A box file names its image by file name only, so each one is matched to an image row: first
through the manifest.csv that `ratings top` wrote (file -> image id, and the rater of a
per-rater list), else by the basename of image.uri, else by the SHA-256 of the image file when
it lies beside the annotation. Every problem (a file matched to no image, a label outside
--labels, a box with no area once clipped to the image) is collected and reported by file and
object/line/annotation number, and then nothing is written: an import is one transaction.
Re-importing a file replaces that rater's boxes from that file (replaced_at is set on the old
rows, which stay as provenance), so a corrected file can be imported again without duplicates.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import fsspec
import psycopg
from psycopg import sql

from streetaudit.flows import annotation_formats as formats
from streetaudit.flows.errors import InputError

MAX_SHOWN = 20


class ImportProblems(InputError):
    """The import found problems; `problems` lists each as 'file [row n]: reason'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:MAX_SHOWN])
        more = f"; … and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        super().__init__(f"{len(problems)} problem(s), nothing imported: {shown}{more}")


@dataclass
class ImportReport:
    files: int = 0  # annotation items (VOC/YOLO files, COCO image entries) imported
    images: int = 0  # distinct images
    boxes: int = 0
    clipped: int = 0  # boxes cut back to the image
    replaced: int = 0  # earlier boxes of the same rater and source marked replaced
    matched_by: Counter = field(default_factory=Counter)  # manifest / name / sha256
    labels: Counter = field(default_factory=Counter)


@dataclass
class ImageRow:
    id: int
    uri: str | None
    width: int | None
    height: int | None


def read_manifest(path: Path) -> dict[str, tuple[int, str | None]]:
    """manifest.csv of `ratings top` (file, image_id, rank, score, rater) as file -> (image id,
    rater or None); each file is also reachable by its basename and its stem."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"file", "image_id"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(
                    f"{path}: no column {', '.join(sorted(missing))} (a `ratings top` manifest.csv?)"
                )
            out = {}
            for number, row in enumerate(reader, start=2):
                try:
                    entry = (int(row["image_id"]), row.get("rater") or None)
                except ValueError:
                    raise InputError(
                        f"{path} line {number}: image_id {row['image_id']!r} is not a number"
                    ) from None
                out[row["file"]] = entry
                out.setdefault(PurePosixPath(row["file"]).name, entry)
                out.setdefault(PurePosixPath(row["file"]).stem, entry)  # YOLO names images by stem
            return out
    except FileNotFoundError:
        raise InputError(f"--manifest {path}: no such file") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The basename of image.uri, and that without its extension (YOLO's .txt names only the stem).
BASENAME = "regexp_replace(coalesce(uri, ''), '^.*/', '')"
STEM = f"regexp_replace({BASENAME}, '[.][^.]*$', '')"


def _image_rows(conn: psycopg.Connection, where: str, values: list) -> list[tuple]:
    return conn.execute(
        f"""SELECT id, uri, width, height, sha256, {BASENAME}, {STEM}
            FROM streetaudit.image WHERE {where} = ANY(%s)""",  # where: one of the fixed expressions above
        (values,),
    ).fetchall()


def _match(
    conn: psycopg.Connection, items: list[formats.ImageBoxes], manifest: dict | None
) -> tuple[list[tuple[ImageRow, str, str | None] | None], list[str]]:
    """Each item's (image row, how matched, manifest rater), or None and a problem naming the file."""
    names = sorted({PurePosixPath(i.image).name for i in items})
    by_name: dict[str, list[tuple]] = {}
    for row in _image_rows(conn, BASENAME, names):
        by_name.setdefault(row[5], []).append(row)
    stems = sorted({n for n in names if not PurePosixPath(n).suffix})
    for row in _image_rows(conn, STEM, stems) if stems else []:
        by_name.setdefault(row[6], []).append(row)
    hashes = {id(i): _sha256(i.image_path) for i in items if i.image_path is not None}
    by_sha: dict[str, list[tuple]] = {}
    for row in _image_rows(conn, "sha256", sorted(set(hashes.values()))):
        by_sha.setdefault(row[4], []).append(row)
    ids = sorted({v[0] for v in (manifest or {}).values()})
    by_id = {row[0]: row for row in _image_rows(conn, "id", ids)}
    matched: list[tuple[ImageRow, str, str | None] | None] = []
    problems: list[str] = []
    for item in items:
        name = PurePosixPath(item.image).name
        entry = manifest.get(item.image) or manifest.get(name) if manifest else None
        if entry is not None:
            if entry[0] not in by_id:
                problems.append(f"{item.source}: the manifest names image {entry[0]}, which does not exist")
                matched.append(None)
                continue
            matched.append((ImageRow(*by_id[entry[0]][:4]), "manifest", entry[1]))
            continue
        candidates = by_name.get(name, [])
        how = "name"
        if len(candidates) != 1 and id(item) in hashes:
            candidates, how = by_sha.get(hashes[id(item)], []), "sha256"
        if len(candidates) == 1:
            matched.append((ImageRow(*candidates[0][:4]), how, None))
            continue
        matched.append(None)
        if candidates:
            problems.append(
                f"{item.source}: image {item.image!r} matches {len(candidates)} images "
                f"({', '.join(str(c[0]) for c in candidates[:5])}); give --manifest"
            )
        else:
            problems.append(
                f"{item.source}: image {item.image!r} matches no image (by manifest, name or SHA-256)"
            )
    return matched, problems


def image_size(row: ImageRow, item: formats.ImageBoxes | None = None) -> tuple[int, int]:
    """The stored image's (width, height): the row's, else the annotation's, else the file's."""
    if row.width and row.height:
        return row.width, row.height
    if item is not None and item.width and item.height:
        return item.width, item.height
    from PIL import Image

    if not row.uri:
        raise InputError(f"image {row.id}: no size and no file to read it from")
    with fsspec.open(row.uri, "rb") as handle, Image.open(handle) as image:
        return image.size


def _clip(item, box, width, height, labels, problems, report) -> tuple | None:
    where = f"{item.source} {'line' if item.normalised else 'object'} {box.row}"
    if labels is not None and box.label not in labels:
        problems.append(f"{where}: label {box.label!r} is not one of --labels {','.join(labels)}")
        return None
    if not box.label:
        problems.append(f"{where}: no label")
        return None
    x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
    if item.normalised:
        x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
    clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        problems.append(
            f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has no area inside the {width}x{height} image"
        )
        return None
    if clipped != (x1, y1, x2, y2):
        report.clipped += 1
    return (box.label, *clipped, box.row)


def _rater_ids(conn: psycopg.Connection, names: set[str]) -> dict[str, int]:
    found: dict[str, int] = dict(
        conn.execute(
            "SELECT name, id FROM streetaudit.rater WHERE name = ANY(%s)", (sorted(names),)
        ).fetchall()
    )
    missing = sorted(names - set(found))
    if missing:
        raise InputError(f"rater {', '.join(missing)} unknown: add with `streetaudit raters add NAME` first")
    return found


def import_annotations(
    url: str,
    path: Path | str,
    fmt: str = "voc",
    rater: str | None = None,
    manifest: Path | str | None = None,
    labels: list[str] | None = None,
    progress: bool = False,
) -> ImportReport:
    """Import one box file or a folder of them (see the module docstring); nothing on a problem."""
    path = Path(path)
    items = formats.read(path, fmt)
    if not items:
        raise InputError(f"{path}: no {fmt} annotation files found")
    table = read_manifest(Path(manifest)) if manifest else None
    report = ImportReport()
    with psycopg.connect(url) as conn:
        matched, problems = _match(conn, items, table)
        raters = {rater} if rater else {m[2] for m in matched if m and m[2]}
        rater_ids = _rater_ids(conn, raters)
        rows = []
        for item, match in zip(items, matched, strict=True):
            if match is None:
                continue
            image, how, listed = match
            width, height = image_size(image, item)
            boxes = [
                b
                for b in (_clip(item, box, width, height, labels, problems, report) for box in item.boxes)
                if b
            ]
            who = rater or listed
            rows.append(
                (image, rater_ids.get(who) if who else None, str(Path(item.source).resolve()), boxes, how)
            )
        if problems:
            raise ImportProblems(problems)
        _store(conn, rows, report, progress)
    return report


def _store(conn: psycopg.Connection, rows: list, report: ImportReport, progress: bool) -> None:
    from rich.progress import track

    # A file imported again replaces everything that rater took from it, also images the
    # corrected file no longer lists (a COCO file names many images).
    for rater_id, source in sorted({(r[1], r[2]) for r in rows}, key=str):
        key = {"rater": rater_id, "source": source}
        for table in ("annotation", "annotated_image"):
            done = conn.execute(
                sql.SQL(
                    """UPDATE streetaudit.{} SET replaced_at = now()
                       WHERE rater_id IS NOT DISTINCT FROM %(rater)s AND source = %(source)s
                         AND replaced_at IS NULL"""
                ).format(sql.Identifier(table)),
                key,
            ).rowcount
            if table == "annotation":
                report.replaced += done
    images = set()
    for image, rater_id, source, boxes, how in track(rows, description="importing", disable=not progress):
        key = {"image": image.id, "rater": rater_id, "source": source}
        conn.execute(
            """INSERT INTO streetaudit.annotated_image (image_id, rater_id, source, boxes)
               VALUES (%(image)s, %(rater)s, %(source)s, %(n)s)""",
            key | {"n": len(boxes)},
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                """INSERT INTO streetaudit.annotation (image_id, rater_id, label, x1, y1, x2, y2, source, source_row)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [
                    (image.id, rater_id, label, x1, y1, x2, y2, source, row)
                    for label, x1, y1, x2, y2, row in boxes
                ],
            )
        images.add(image.id)
        report.files += 1
        report.boxes += len(boxes)
        report.matched_by[how] += 1
        report.labels.update(b[0] for b in boxes)
    report.images = len(images)


@dataclass
class ExportReport:
    out: Path
    images: int = 0
    boxes: int = 0
    files: list[Path] = field(default_factory=list)


def _export_rows(conn: psycopg.Connection, ground_truth: str | None, rater: str | None) -> list[tuple]:
    """(image id, uri, width, height, label, x1, y1, x2, y2) with label NULL for an empty image."""
    if ground_truth is not None:
        gt = conn.execute(
            "SELECT id FROM streetaudit.ground_truth WHERE name = %s", (ground_truth,)
        ).fetchone()
        if gt is None:
            raise InputError(
                f"--ground-truth {ground_truth!r}: no such ground truth (see `annotations list`)"
            )
        return conn.execute(
            """SELECT i.id, i.uri, i.width, i.height, b.label, b.x1, b.y1, b.x2, b.y2
               FROM streetaudit.ground_truth_image AS g
               JOIN streetaudit.image AS i ON i.id = g.image_id
               LEFT JOIN streetaudit.ground_truth_box AS b
                 ON b.ground_truth_id = g.ground_truth_id AND b.image_id = g.image_id
               WHERE g.ground_truth_id = %s ORDER BY i.id, b.id""",
            (gt[0],),
        ).fetchall()
    if rater is not None:
        _rater_ids(conn, {rater})
    return conn.execute(
        """SELECT i.id, i.uri, i.width, i.height, a.label, a.x1, a.y1, a.x2, a.y2
           FROM (SELECT DISTINCT image_id FROM streetaudit.annotated_image AS ai
                 LEFT JOIN streetaudit.rater AS r ON r.id = ai.rater_id
                 WHERE ai.replaced_at IS NULL AND (%(rater)s::text IS NULL OR r.name = %(rater)s)) AS s
           JOIN streetaudit.image AS i ON i.id = s.image_id
           LEFT JOIN (SELECT a.* FROM streetaudit.annotation AS a
                      LEFT JOIN streetaudit.rater AS r ON r.id = a.rater_id
                      WHERE a.replaced_at IS NULL AND (%(rater)s::text IS NULL OR r.name = %(rater)s)) AS a
             ON a.image_id = i.id
           ORDER BY i.id, a.id""",
        {"rater": rater},
    ).fetchall()


def export_annotations(
    url: str,
    out: Path | str,
    fmt: str,
    ground_truth: str | None = None,
    rater: str | None = None,
    labels: list[str] | None = None,
) -> ExportReport:
    """Write the current boxes (all raters', one rater's, or a ground truth's) as VOC, YOLO or
    COCO, with a manifest.csv (file, image_id) so that importing the export matches exactly."""
    if fmt not in formats.FORMATS:
        raise InputError(f"--format must be one of {', '.join(formats.FORMATS)}, got {fmt!r}")
    out = Path(out)
    with psycopg.connect(url) as conn:
        rows = _export_rows(conn, ground_truth, rater)
    if not rows:
        raise InputError("nothing to export: no annotated images" + (f" of rater {rater}" if rater else ""))
    images: dict[int, list] = {}
    for image_id, uri, width, height, label, *box in rows:
        entry = images.setdefault(image_id, [uri, width, height, []])
        if label is not None:
            entry[3].append((label, *box))
    basenames = Counter(PurePosixPath(v[0] or "").name for v in images.values())
    items: list[formats.Written] = []
    names = {}
    for image_id, (uri, width, height, boxes) in images.items():
        base = PurePosixPath(uri or "").name or f"{image_id}.jpg"
        name = base if basenames[base] == 1 else f"{image_id}_{base}"
        if not (width and height):
            width, height = image_size(ImageRow(image_id, uri, width, height))
        items.append((name, width, height, boxes))
        names[image_id] = name
    present = sorted({b[0] for *_, boxes in items for b in boxes})
    order = list(labels or []) + [label for label in present if label not in (labels or [])]
    if fmt == "voc":
        files = formats.write_voc(out, items)
    elif fmt == "yolo":
        files = formats.write_yolo(out, items, order)
    else:
        files = formats.write_coco(out, items, order)
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "image_id", "rank", "score", "rater"])
        for image_id, name in names.items():
            writer.writerow([name, image_id, "", "", rater or ""])
    return ExportReport(out, len(items), sum(len(i[3]) for i in items), files)


@dataclass
class AnnotationSummary:
    rater: str | None
    images: int
    boxes: int
    labels: dict[str, int]


def list_annotations(url: str) -> tuple[list[AnnotationSummary], list[tuple]]:
    """Current boxes per rater (with label counts), and the stored ground truths."""
    with psycopg.connect(url) as conn:
        per_rater = conn.execute(
            """SELECT r.name, count(DISTINCT ai.image_id),
                      (SELECT count(*) FROM streetaudit.annotation AS a
                       WHERE a.replaced_at IS NULL AND a.rater_id IS NOT DISTINCT FROM ai.rater_id),
                      (SELECT coalesce(jsonb_object_agg(label, n), '{}') FROM
                         (SELECT label, count(*) AS n FROM streetaudit.annotation AS a
                          WHERE a.replaced_at IS NULL AND a.rater_id IS NOT DISTINCT FROM ai.rater_id
                          GROUP BY label) AS l)
               FROM streetaudit.annotated_image AS ai LEFT JOIN streetaudit.rater AS r ON r.id = ai.rater_id
               WHERE ai.replaced_at IS NULL GROUP BY r.name, ai.rater_id ORDER BY r.name NULLS FIRST"""
        ).fetchall()
        truths = conn.execute(
            """SELECT g.name, g.method, g.iou, g.min_raters, g.labels,
                      (SELECT count(*) FROM streetaudit.ground_truth_image WHERE ground_truth_id = g.id),
                      (SELECT count(*) FROM streetaudit.ground_truth_box WHERE ground_truth_id = g.id), g.created_at
               FROM streetaudit.ground_truth AS g ORDER BY g.created_at"""
        ).fetchall()
    return [AnnotationSummary(*row) for row in per_rater], truths


def rater_top_images(url: str, rater: str, n: int = 500, method: str = "elo") -> list[int]:
    """The image ids a rater rated highest (their own list, as `ratings top --per-rater`)."""
    with psycopg.connect(url) as conn:
        rater_id = _rater_ids(conn, {rater})[rater]
        return [
            r[0]
            for r in conn.execute(
                """SELECT image_id FROM streetaudit.rating WHERE method = %s AND rater_id = %s
                   ORDER BY score DESC, image_id LIMIT %s""",
                (method, rater_id, n),
            )
        ]
