"""Storing predicted boxes: one binary COPY and one statement per batch, off the model's thread.

A batch of 8 images at score threshold 0 is 800 boxes. Formatting them row by row in Python
(`.tolist()`, a tuple per box, `copy.write_row`) took longer than the tiny CPU detector took
to find them, and on a CPU the writer's thread takes its time from the model's. Here the
boxes go from tensors into PostgreSQL's binary COPY format in a few numpy operations, and
one statement then decides which images are new and stores their boxes.
"""

from __future__ import annotations

import struct
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import psycopg
import torch

from streetaudit.flows.database_loss import CONNECT_OPTIONS
from streetaudit.sql.rows import one

# The load table's columns in COPY order; a box's label is its class index (1 = the first
# label), named in SQL from the model's label list.
_LOAD_COLUMNS = (
    ("image_id", ">i8", "bigint"),
    ("label", ">i4", "integer"),
    ("score", ">f8", "double precision"),
    ("x1", ">f8", "double precision"),
    ("y1", ">f8", "double precision"),
    ("x2", ">f8", "double precision"),
    ("y2", ">f8", "double precision"),
)
# A binary COPY row: the number of fields, then per field its byte length and its value (big-endian).
_COPY_ROW = np.dtype(
    [("fields", ">i2")]
    + [item for name, kind, _ in _LOAD_COLUMNS for item in ((f"{name}_bytes", ">i4"), (name, kind))]
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no flags, no header extension
_COPY_TRAILER = struct.pack(">h", -1)

# One batch, one statement: lock the images still there (FOR KEY SHARE: a concurrent delete
# waits), insert their detection_done rows unless another run has, and store the boxes of
# exactly the images whose row this statement inserted.
_STORE = """
WITH alive AS (
    SELECT i.id FROM streetaudit.image AS i WHERE i.id = ANY(%(ids)s) FOR KEY SHARE
), done AS (
    INSERT INTO streetaudit.detection_done (image_id, model_id, score_threshold, n)
    SELECT t.id, %(model)s, %(threshold)s, t.n FROM unnest(%(ids)s::bigint[], %(counts)s::integer[]) AS t (id, n)
    WHERE t.id IN (SELECT id FROM alive)
    ON CONFLICT (model_id, image_id) DO NOTHING
    RETURNING image_id
), stored AS (
    INSERT INTO streetaudit.detection (image_id, model_id, label, score, x1, y1, x2, y2)
    SELECT l.image_id, %(model)s, coalesce((%(labels)s::text[])[l.label], 'background'),
           l.score, l.x1, l.y1, l.x2, l.y2
    FROM detection_load AS l
    WHERE l.image_id IN (SELECT image_id FROM done)
    RETURNING 1
)
SELECT (SELECT count(*) FROM alive), (SELECT count(*) FROM stored)"""


def copy_data(results: list[tuple[int, dict]]) -> bytes:
    """The boxes of `results` ((image id, {boxes, scores, labels}) per image) as binary COPY
    data for the load table, scores clipped into [0, 1] as the detection table demands."""
    scores = torch.cat([output["scores"] for _, output in results]).double().clamp_(0, 1)
    rows = np.empty(len(scores), _COPY_ROW)
    rows["fields"] = len(_LOAD_COLUMNS)
    for name, kind, _ in _LOAD_COLUMNS:
        rows[f"{name}_bytes"] = np.dtype(kind).itemsize
    rows["image_id"] = np.repeat(
        [image_id for image_id, _ in results], [len(o["scores"]) for _, o in results]
    )
    rows["label"] = torch.cat([output["labels"] for _, output in results]).numpy()
    rows["score"] = scores.numpy()
    boxes = torch.cat([output["boxes"].reshape(-1, 4) for _, output in results]).double().numpy()
    for column, name in enumerate(("x1", "y1", "x2", "y2")):
        rows[name] = boxes[:, column]
    return _COPY_SIGNATURE + rows.tobytes() + _COPY_TRAILER


class DetectionWriter:
    """Stores batches on one connection in a background thread (at most two batches queued).

    Per batch, one transaction: the boxes are copied into a temporary table, then `_STORE`
    writes the detection_done rows and the boxes of the images it newly marked done — so
    two runs never store an image twice. The connection is opened by the first write, in the
    thread, so opening it overlaps the model's next batch; the thread starts with that
    first write, after the caller has forked its decoders.
    """

    def __init__(self, url: str, model_id: int, labels: list[str], score_threshold: float) -> None:
        self.url = url
        self.model_id = model_id
        self.labels = labels
        self.score_threshold = score_threshold
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="detection-writer")
        self.pending: list[Future] = []
        self.conn: psycopg.Connection | None = None
        self.vanished = 0
        self.stored = 0

    def __enter__(self) -> DetectionWriter:
        return self

    def put(self, results: list[tuple[int, dict]]) -> None:
        """Queue a batch; a failure of an earlier one (a lost database) is raised here."""
        while len(self.pending) >= 2:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self.write, results))

    def __exit__(self, *exc) -> None:
        try:
            for future in self.pending:
                if exc[0] is None:
                    future.result()
                else:
                    future.exception()
        finally:
            self.pool.shutdown()
            if self.conn is not None:
                self.conn.close()

    def connect(self) -> psycopg.Connection:
        if self.conn is None:
            self.conn = psycopg.connect(self.url, **CONNECT_OPTIONS)
            columns = ", ".join(f"{name} {sql_type}" for name, _, sql_type in _LOAD_COLUMNS)
            self.conn.execute(f"CREATE TEMP TABLE detection_load ({columns}) ON COMMIT DELETE ROWS")
            self.conn.commit()
        return self.conn

    def write(self, results: list[tuple[int, dict]]) -> None:
        if not results:
            return
        conn = self.connect()
        ids = [image_id for image_id, _ in results]
        counts = [len(output["scores"]) for _, output in results]
        with conn.transaction():
            if sum(counts):
                with conn.cursor().copy("COPY detection_load FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(copy_data(results))
            alive, stored = one(
                conn.execute(
                    _STORE,
                    {
                        "ids": ids,
                        "counts": counts,
                        "model": self.model_id,
                        "threshold": self.score_threshold,
                        "labels": self.labels,
                    },
                )
            )
        self.vanished += len(ids) - alive
        self.stored += stored
