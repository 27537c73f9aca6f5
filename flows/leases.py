"""Many workers, one database: leases on the items of a stage (sql/post/050_work_leases.sql).

Result rows already have unique keys, so two workers on one stage never store an item twice;
what leases add is that they do not *work* on it twice (a provider request costs quota, a GPU
batch costs time) and that nothing is left undone when one dies. A worker claims a batch
before working on it, renews its leases from a background thread while it lives, and
releases them as their rows are written. When it runs out of items it waits while other
workers hold leases: if one of them dies, its leases expire and the survivors take its batch
over, so the stage ends complete however many workers were killed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import psycopg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streetaudit.flows.database_loss import CONNECT_OPTIONS
from streetaudit.flows.settings_loading import load_settings


class LeaseSettings(BaseSettings):
    """`STREETAUDIT_LEASE_TTL`: seconds after which a silent worker's batch is taken over
    (renewed every third of it, so only a dead or cut-off worker loses its leases);
    `STREETAUDIT_LEASE_POLL`: how often a worker with nothing left looks for expired batches."""

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_LEASE_", env_file=".env", extra="ignore")

    ttl: float = Field(120.0, ge=1.0)
    poll: float = Field(2.0, gt=0)
    # Images a segment or predict worker claims at a time: big enough that restarting the
    # decoders per batch costs little on a GPU, small enough that workers share a stage evenly.
    batch: int = Field(8192, ge=1)
    # Images an explain worker claims at a time: Grad-CAM takes a good part of a second an
    # image and starts no decoders, so small batches keep the workers even to the end.
    explain_batch: int = Field(256, ge=1)


# A candidate query's condition (its items aliased `i`) that no other live worker holds the item;
# `Leases.claim_rows` binds its parameters.
UNLEASED = """NOT EXISTS (SELECT 1 FROM streetaudit.work_lease AS l
                          WHERE l.stage = %(stage)s AND l.scope = %(scope)s AND l.item = i.id
                            AND l.worker <> %(me)s AND l.expires_at > clock_timestamp())"""


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return True  # not one of ours: leave it to expire
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_name() -> str:
    """Host and pid, to read in `work_lease`; a random tail keeps two runs in one process apart."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leases:
    """One worker's leases on one stage and scope (collect: a provider; segment and predict: a
    model id; explain: model id, method and target).

    `background=False` holds no connection and starts no thread between calls (segment forks
    its decoders, which must inherit neither); the stage then calls `keep_alive` as it goes.
    """

    def __init__(self, url: str, stage: str, scope: str, *, background: bool = True) -> None:
        self.url = url
        self.stage = stage
        self.scope = scope
        self.settings = load_settings(LeaseSettings)
        self.worker = worker_name()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
        self.background = background
        self.conn: psycopg.Connection | None = None
        self._renewed = time.monotonic()
        # When this worker's current look for items began, on the database's clock (see
        # others_lease_wait): None until its first claim since it last waited.
        self._looked_since: Any = None

    def __enter__(self) -> Leases:
        if self.background:
            self.conn = psycopg.connect(self.url, autocommit=True, **CONNECT_OPTIONS)
            self._thread.start()
        self.reap_dead_local_workers()
        return self

    def reap_dead_local_workers(self) -> int:
        """Free at once the leases of workers on this host whose process is gone (a kill -9,
        then a rerun, should not wait out the lease time); other hosts' expire by time."""
        host = socket.gethostname()
        rows = self._call(
            "SELECT DISTINCT worker FROM streetaudit.work_lease WHERE stage = %s AND scope = %s",
            (self.stage, self.scope),
        )
        prefix = f"{host}-"
        dead = [
            w
            for (w,) in rows
            if w.startswith(prefix) and w != self.worker and not _alive(w[len(prefix) :].split("-", 1)[0])
        ]
        for worker in dead:
            self._call("SELECT streetaudit.release_work(%s)", (worker,))
        return len(dead)

    def __exit__(self, *exc_info) -> None:
        if self.background:
            self._stop.set()
            self._thread.join()
        with contextlib.suppress(psycopg.Error):  # the database is gone: the leases expire by themselves
            self._call("SELECT streetaudit.release_work(%s)", (self.worker,))
        if self.conn is not None:
            self.conn.close()

    def _call(self, query: str, params: tuple | Mapping[str, Any]) -> list[tuple]:
        if self.conn is None:
            with psycopg.connect(self.url, autocommit=True, **CONNECT_OPTIONS) as conn:
                return conn.execute(query, params).fetchall()
        with self._lock:
            return self.conn.execute(query, params).fetchall()

    def keep_alive(self) -> None:
        """Renew this worker's leases when a third of their time has passed since the last renewal."""
        if time.monotonic() - self._renewed >= self.settings.ttl / 3:
            self._call("SELECT streetaudit.renew_work(%s, %s)", (self.worker, self.settings.ttl))
            self._renewed = time.monotonic()

    def claim(self, items: Collection[int]) -> set[int]:
        """The items of `items` this worker may now work on (others hold the rest)."""
        if not items:
            return set()
        self._mark_look()
        rows = self._call(
            "SELECT streetaudit.claim_work(%s, %s, %s, %s, %s)",
            (self.stage, self.scope, self.worker, self.settings.ttl, list(items)),
        )
        return {r[0] for r in rows}

    def claim_rows(
        self, query: str, params: Mapping[str, Any], left: int | None = None, batch: int | None = None
    ) -> list[tuple]:
        """The rows of a candidate query (item id first; `UNLEASED` among its conditions, at
        most `%(size)s` rows) whose item this worker now leases, in the query's order. The
        size is a batch (`batch`, default the settings' batch), no more than `left` items."""
        size = batch or self.settings.batch
        if left is not None:
            size = min(left, size)
        bound = {**params, "size": size, "stage": self.stage, "scope": self.scope, "me": self.worker}
        self._mark_look()
        candidates = self._call(query, bound)
        claimed = self.claim([row[0] for row in candidates])
        return [tuple(row) for row in candidates if row[0] in claimed]

    def _mark_look(self) -> None:
        if self._looked_since is None:
            self._looked_since = self._call("SELECT clock_timestamp()", ())[0][0]

    def release(self, items: Collection[int]) -> None:
        if items:
            self._call("SELECT streetaudit.release_work(%s, %s)", (self.worker, list(items)))

    def batches(
        self, claim: Callable[[int | None], list[tuple]], limit: int | None = None
    ) -> Iterator[list[tuple]]:
        """This worker's share of the stage, a leased batch at a time (rows of item id first).

        `claim(left)` leases the next batch of at most `left` items (None: any number). A
        batch is released when the caller asks for the next, that is once its rows are
        written; when none is left the worker waits while others hold leases and takes over
        those that expire. `limit` caps this worker's items.
        """
        left = limit
        while left is None or left > 0:
            batch = claim(left)
            if not batch:
                wait = self.wait_for_others()
                if wait is None:
                    return
                time.sleep(wait)
                continue
            yield batch
            self.release([row[0] for row in batch])
            left = None if left is None else left - len(batch)

    def wait_for_others(self) -> float | None:
        """Seconds to sleep before looking again for items a dead worker left; None: no other
        worker holds anything, the stage is done."""
        # Leases that expired before this look began are on items it found done: dropped.
        since, self._looked_since = self._looked_since, None
        (wait,) = self._call(
            "SELECT streetaudit.others_lease_wait(%s, %s, %s, coalesce(%s, clock_timestamp()))",
            (self.stage, self.scope, self.worker, since),
        )[0]
        if wait is None:
            return None
        return min(float(wait) + 0.05, self.settings.poll)

    def _renew(self) -> None:
        while not self._stop.wait(self.settings.ttl / 3):
            try:
                self._call("SELECT streetaudit.renew_work(%s, %s)", (self.worker, self.settings.ttl))
            except psycopg.Error:
                return  # the stage itself reports the lost database
