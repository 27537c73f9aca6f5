"""Trained detectors as streetaudit.model rows, so every detection and heat map names its model.

A detector's row: task 'detection', backend 'torchvision', source the absolute path (or
URL) of its detector file, label_set its architecture, labels its class names. Commands
take `--model` as that row's name or id, or a detector file (registered on first use).
An mmdet detector (`--backend mmdet`): backend 'mmdet', source CONFIG+CHECKPOINT, both
paths in its parameters, label_set `mmdet:<config name>`.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from torch import nn

from streetaudit.flows.errors import InputError
from streetaudit.models.detectors import Detector, read_detector_file
from streetaudit.sql.rows import one, scalar


def detector_source(path: str | Path) -> str:
    text = str(path)
    return text if text.startswith(("http://", "https://")) else str(Path(text).expanduser().resolve())


def register_detector(
    conn: psycopg.Connection, name: str, path: str | Path, detector: Detector, parameters: dict | None = None
) -> int:
    """The model row of a detector file (one per file; re-registering renames it)."""
    source = detector_source(path)
    model_id, stored = one(
        conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels, parameters)
           VALUES ('detection', %s, 'torchvision', %s, %s, %s, %s)
           ON CONFLICT (task, backend, source, label_set)
           DO UPDATE SET name = EXCLUDED.name, parameters = EXCLUDED.parameters
           RETURNING id, labels""",
            (name, source, detector.architecture, list(detector.labels), Jsonb(parameters or {})),
        )
    )
    if list(stored) != list(detector.labels):
        raise InputError(
            f"detector file {source} is registered as model {model_id} with labels {list(stored)}, "
            f"not {list(detector.labels)}: save the retrained detector under another file name"
        )
    return model_id


def resolve_detector(conn: psycopg.Connection, ref: str) -> tuple[int, str]:
    """(model id, detector file) for `--model` given as a name, an id or a detector file."""
    rows = conn.execute(
        """SELECT id, source FROM streetaudit.model
            WHERE task = 'detection' AND (name = %s OR id::text = %s OR source = %s)
            ORDER BY created_at DESC""",
        (ref, ref, detector_source(ref) if not ref.isdigit() else ref),
    ).fetchall()
    if len(rows) > 1 and len({source for _, source in rows}) > 1:
        ids = ", ".join(str(model_id) for model_id, _ in rows)
        raise InputError(f"--model {ref}: several detectors have that name (ids {ids}); pass the id")
    if rows:
        return rows[0][0], rows[0][1]
    path = Path(ref).expanduser()
    if ref.startswith(("http://", "https://")) or path.is_file():
        payload = read_detector_file(ref)
        detector = Detector(
            nn.Identity(), payload["architecture"], list(payload["labels"]), payload.get("options") or {}
        )
        name = path.stem if path.is_file() else ref.rsplit("/", 1)[-1]
        return register_detector(conn, name, ref, detector), detector_source(ref)
    known = scalar(
        conn.execute(
            "SELECT string_agg(name || ' (' || id || ')', ', ' ORDER BY id) FROM streetaudit.model "
            "WHERE task = 'detection'"
        )
    )
    raise InputError(
        f"--model {ref}: no detector of that name or id, and no detector file there"
        + (f" (known detectors: {known})" if known else " (train one with `streetaudit detect train`)")
    )


def register_mmdet(conn: psycopg.Connection, name: str, detector: Detector) -> int:
    """The model row of an mmdet config and checkpoint (one per pair; re-registering renames it)."""
    return scalar(
        conn.execute(
            """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels, parameters)
               VALUES ('detection', %s, 'mmdet', %s, %s, %s, %s)
               ON CONFLICT (task, backend, source, label_set)
               DO UPDATE SET name = EXCLUDED.name, labels = EXCLUDED.labels, parameters = EXCLUDED.parameters
               RETURNING id""",
            (name, detector.source, detector.architecture, list(detector.labels), Jsonb(detector.extra)),
        )
    )
