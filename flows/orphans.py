"""Image files and the rows that name them: files no row names (orphans), rows whose file
is gone, and removing the files of rows that were deleted.

A file belongs to an image row when it is the row's `uri`, a sidecar beside it (the
synthetic provider's `.labels.png` label map and `.boxes.xml` true boxes) or a segmentation's `mask_uri`. Files are
only ever removed inside the image store or `$STREETAUDIT_DATA_DIR/masks`: a `mask_uri`
of imported label maps may name a user's own file, which is not ours to delete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import fsspec
import psycopg

from streetaudit.flows.annotation_formats import BOXES_SUFFIX
from streetaudit.flows.image_store import ImageStore
from streetaudit.models.label_sets import LABELS_SUFFIX

SIDECAR_SUFFIXES = (LABELS_SUFFIX, BOXES_SUFFIX)
# A collect stores the file, then writes its row: a file younger than this may be one
# whose row is a moment away, so `--delete` leaves it.
DEFAULT_MIN_AGE_S = 600.0


def sidecars(uri: str) -> list[str]:
    """`.../123_22.5.jpg` -> [`.../123_22.5.labels.png`, `.../123_22.5.boxes.xml`] (string-wise: URLs are not paths)."""
    head, sep, name = uri.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return [f"{head}{sep}{stem}{suffix}" for suffix in SIDECAR_SUFFIXES]


def _masks_root() -> Path:
    from streetaudit.sql.settings import DatabaseSettings

    return (DatabaseSettings().data_dir / "masks").expanduser().resolve()


def _under(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root)


@dataclass
class RemovedFiles:
    deleted: int = 0
    missing: int = 0
    outside: int = 0


def remove_files(
    uris: Iterable[str], store: ImageStore | None = None, masks_root: Path | None = None
) -> RemovedFiles:
    """Delete these files (and their sidecars) where they lie in our stores; count the rest."""
    store = store or ImageStore()
    masks_root = masks_root or _masks_root()
    out = RemovedFiles()
    for uri in uris:
        remote = "://" in uri
        if remote:
            owned = not store.local and uri.startswith(f"{store.root}/")
        else:
            owned = (store.local and _under(uri, Path(store.root))) or _under(uri, masks_root)
        if not owned:
            out.outside += 1
            continue
        for i, path in enumerate([uri, *sidecars(uri)]):
            existed = _remove(store, path, remote)
            if i == 0:
                out.deleted += existed
                out.missing += not existed
            else:
                out.deleted += existed
    return out


def _remove(store: ImageStore, uri: str, remote: bool) -> bool:
    if not remote:
        try:
            os.unlink(uri)
        except FileNotFoundError:
            return False
        return True
    if not store.fs.exists(uri):
        return False
    store.fs.rm_file(uri)
    return True


@dataclass
class StoredFile:
    uri: str
    size: int
    mtime: float


@dataclass
class OrphanReport:
    root: str
    files: int = 0
    orphans: list[StoredFile] = field(default_factory=list)
    missing: list[tuple[int, str, str]] = field(default_factory=list)  # image id, status, uri
    deleted: int = 0
    too_recent: int = 0

    @property
    def orphan_bytes(self) -> int:
        return sum(f.size for f in self.orphans)


def _mtime(info: dict) -> float:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return 0.0  # unknown: old enough


def stored_files(store: ImageStore) -> Iterator[StoredFile]:
    """Every file under the store, by the URI a row would hold; local temporaries left out
    (`ImageStore.sweep_stale_temps` removes those of dead processes)."""
    if store.local:
        root = Path(store.root)
        for folder, dirs, files in os.walk(root):
            if Path(folder) == root:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = os.path.join(folder, name)
                stat = os.stat(path)
                yield StoredFile(path, stat.st_size, stat.st_mtime)
        return
    bare_root = store.fs._strip_protocol(store.root)
    if not store.fs.exists(bare_root):
        return
    for path, info in store.fs.find(bare_root, detail=True).items():
        key = path[len(bare_root) :].lstrip("/")
        # A remote `<name>.tmp-<uuid>` is the temporary of a writer that died between its upload
        # and its rename (stores without atomic PUT): no row names it, so it is listed as an
        # orphan, and --delete's age limit keeps a live writer's temporary.
        yield StoredFile(f"{store.root}/{key}", int(info.get("size") or 0), _mtime(info))


def _exists(uri: str) -> bool:
    if "://" not in uri:
        return os.path.exists(uri)
    fs, _ = fsspec.core.url_to_fs(uri)
    return fs.exists(uri)


def find_orphans(
    url: str,
    *,
    delete: bool = False,
    min_age_s: float = DEFAULT_MIN_AGE_S,
    store: ImageStore | None = None,
) -> OrphanReport:
    """Files under the image store that no row names, and rows whose file is gone.

    Only with `delete` are orphan files removed, and then only those older than
    `min_age_s`; rows are never changed (`images clean` excludes views whose file is gone).
    """
    store = store or ImageStore()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, status, uri FROM streetaudit.image WHERE uri IS NOT NULL ORDER BY id"
        ).fetchall()
        masks = {
            r[0]
            for r in conn.execute("SELECT mask_uri FROM streetaudit.segmentation WHERE mask_uri IS NOT NULL")
        }
    claimed = set(masks)
    for _, _, uri in rows:
        claimed.add(uri)
        claimed.update(sidecars(uri))
    report = OrphanReport(store.root)
    present = set()
    for stored in stored_files(store):
        report.files += 1
        present.add(stored.uri)
        if stored.uri not in claimed:
            report.orphans.append(stored)
    for image_id, status, uri in rows:
        inside = uri.startswith(f"{store.root}/")  # how the store writes every URI it hands out
        if not (uri in present if inside else _exists(uri)):
            report.missing.append((image_id, status, uri))
    if delete:
        cutoff = time.time() - min_age_s
        for orphan in report.orphans:
            if orphan.mtime > cutoff:
                report.too_recent += 1
            else:
                report.deleted += _remove(store, orphan.uri, "://" in orphan.uri)
    return report
