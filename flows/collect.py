"""The collect stage: fetch street-view images for the sample points, concurrently and resumably.

One asyncio loop runs a producer (sample points, a page at a time, minus the views already
stored), `concurrency` workers (provider requests through one token bucket, retried with
exponential backoff and full jitter, Retry-After honoured) and one writer (rows upserted in
small batches). Queues are bounded, so memory stays flat however many points there are.

Resuming: a view whose row is `ok` or `excluded` is never requested again; a `missing` one
only when the provider's source changed since (the folder provider's fingerprint of the
folder) or with `recheck_missing`; an `error` one only with `retry_errors`. A file is stored
completely (temp + rename) before its row is written, so a killed run leaves no row pointing
at a partial file; views that were in flight are simply fetched again by the next run (same
path, so no orphans).

What is recorded as a view's `error` is a failure of that view alone. A failure of the whole
run (key refused, quota spent, host unreachable) stops the run and records nothing for the
views it hit, so the corrected rerun fetches them without `--retry-errors`.

Failing fast: producer, workers and writer run in one task group, so the first failure
(the database gone, most often) cancels the others instead of leaving them blocked on a
full queue; the idle writer pings the database every `heartbeat` seconds, and every
connection has TCP keepalives (see `database_loss`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

import certifi
import httpx
import psycopg
from PIL import Image as PILImage
from prefect import flow
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streetaudit.flows.database_loss import CONNECT_OPTIONS, reporting_database_loss
from streetaudit.flows.errors import InputError
from streetaudit.flows.image_store import ImageStore, sidecar_key, view_key
from streetaudit.flows.leases import Leases
from streetaudit.flows.providers import open_provider
from streetaudit.flows.providers.base import (
    Http,
    Image,
    NoImagery,
    Provider,
    ProviderError,
    SamplePoint,
    TokenBucket,
    View,
    redact,
)
from streetaudit.flows.run_reports import RunProgress
from streetaudit.flows.settings_loading import load_settings
from streetaudit.sql.errors import StreetauditError

_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WebP"}
# Requests in flight are bounded, and so is the number of HTTP clients they share, so memory
# does not grow with --concurrency.
MAX_CONCURRENCY = 1000
MAX_CLIENTS = 32


class CollectSettings(BaseSettings):
    """Retry and batching knobs (`STREETAUDIT_COLLECT_*`); the defaults suit the real APIs."""

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_COLLECT_", env_file=".env", extra="ignore")

    attempts: int = Field(5, ge=1)
    backoff: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    retry_after_max: float = Field(300.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    batch: int = Field(32, ge=1)
    page: int = Field(256, ge=1)
    heartbeat: float = Field(5.0, gt=0)


def collect_settings() -> CollectSettings:
    return load_settings(CollectSettings)


@dataclass
class CollectReport:
    provider: str
    ok: int = 0
    missing: int = 0
    error: int = 0
    skipped: int = 0
    earlier_errors: int = 0
    vanished: int = 0
    no_bearing: int = 0  # points skipped by --relative-headings: their road has no bearing
    points: int = 0
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def fetched(self) -> int:
        return self.ok + self.missing + self.error

    @property
    def only_errors(self) -> bool:
        """Nothing usable came of the run: no view is ok or missing, now or before."""
        return self.ok + self.missing + self.skipped == 0 and self.error + self.earlier_errors > 0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class CollectStopped(StreetauditError):
    """Key refused, quota spent or host unreachable: every further request would fail."""

    def __init__(self, message: str, report: CollectReport):
        super().__init__(message)
        self.report = report


@dataclass
class _Row:
    point: SamplePoint
    view: View
    status: str
    attempts: int
    detail: str | None = None
    image: Image | None = None
    uri: str | None = None
    sha256: str | None = None
    size: tuple[int, int] | None = None


_POINTS_SQL = """
SELECT p.id, ST_X(p.geom), ST_Y(p.geom),
       EXISTS (SELECT 1 FROM streetaudit.point_area AS pa WHERE pa.point_id = p.id AND pa.kind = 'core'),
       coalesce((SELECT array_agg(i.heading) FROM streetaudit.image AS i
                 WHERE i.point_id = p.id AND i.provider = %(provider)s
                   AND (i.status IN ('ok', 'excluded')
                        OR (i.status = 'missing' AND NOT %(recheck)s
                            AND (%(state)s::text IS NULL OR strpos(coalesce(i.detail, ''), %(state)s) > 0))
                        OR (i.status = 'error' AND NOT %(retry)s))),
                '{}'),
       coalesce((SELECT array_agg(i.heading) FROM streetaudit.image AS i
                 WHERE i.point_id = p.id AND i.provider = %(provider)s AND i.status = 'error'),
                '{}'),
       CASE WHEN %(relative)s::float8[] IS NULL THEN NULL
            ELSE streetaudit.relative_headings(p.id, %(relative)s::float8[]) END
FROM streetaudit.sample_point AS p
WHERE p.retired_at IS NULL AND {selection}
  AND (%(area)s::text IS NULL OR EXISTS (
        SELECT 1 FROM streetaudit.point_area AS pa WHERE pa.point_id = p.id AND pa.area_name = %(area)s))
ORDER BY p.id
LIMIT %(page)s
"""

_UPSERT_SQL = """
INSERT INTO streetaudit.image AS i
    (point_id, provider, pano_id, heading, pitch, fov, width, height, captured_at, geom,
     uri, sha256, bytes, status, detail, attempts, fetched_at, relative_heading)
VALUES (%(point_id)s, %(provider)s, %(pano_id)s, %(heading)s, %(pitch)s, %(fov)s, %(width)s, %(height)s,
        %(captured_at)s,
        CASE WHEN %(lon)s::float8 IS NULL THEN NULL
             ELSE ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) END,
        %(uri)s, %(sha256)s, %(bytes)s, %(status)s, %(detail)s, %(attempts)s, now(), %(relative_heading)s)
ON CONFLICT (point_id, provider, heading) DO UPDATE SET
    pano_id = EXCLUDED.pano_id, pitch = EXCLUDED.pitch, fov = EXCLUDED.fov, width = EXCLUDED.width,
    height = EXCLUDED.height, captured_at = EXCLUDED.captured_at, geom = EXCLUDED.geom, uri = EXCLUDED.uri,
    sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes, status = EXCLUDED.status, detail = EXCLUDED.detail,
    attempts = i.attempts + EXCLUDED.attempts, fetched_at = EXCLUDED.fetched_at,
    relative_heading = EXCLUDED.relative_heading
WHERE i.status IN ('error', 'missing')
"""


def image_complete(data: bytes, extension: str) -> bool:
    """A JPEG ends with its EOI marker, a PNG with IEND: a cut-off body does not."""
    if extension == "jpg":
        return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if extension == "png":
        return data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
    return True


def _degrees(values: list[float]) -> str:
    """`0, 90, nan`: no brackets, which the console would take for markup and drop."""
    return ", ".join(f"{v:g}" for v in values)


def _validate(headings, pitch, fov, size, limit, concurrency, rate, provider: Provider) -> list[float]:
    headings = [float(h) for h in headings]
    if not headings:
        raise InputError("--headings needs at least one heading")
    bad = [h for h in headings if not (math.isfinite(h) and 0 <= h < 360)]
    if bad:
        raise InputError(f"--headings must be numbers in [0, 360) degrees, got {_degrees(bad)}")
    if len(set(headings)) != len(headings):
        raise InputError(f"--headings has duplicates: {_degrees(headings)}")
    if not -90 <= pitch <= 90:
        raise InputError(f"--pitch must lie in [-90, 90] degrees, got {pitch}")
    if not 0 < fov <= 360:
        raise InputError(f"--fov must lie in (0, 360] degrees, got {fov}")
    width, height = size
    if width < 1 or height < 1:
        raise InputError(f"--size must be positive, got {width}x{height}")
    max_w, max_h = provider.max_size
    if width > max_w or height > max_h:
        raise InputError(
            f"--size {width}x{height} exceeds what provider {provider.name} serves ({max_w}x{max_h})"
        )
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 point, got {limit}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InputError(f"--concurrency must be between 1 and {MAX_CONCURRENCY} requests, got {concurrency}")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise InputError(f"--rate must be a positive number of requests per second, got {rate}")
    return headings


def _check_area(url: str, area: str | None) -> None:
    if area is None:
        return
    with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
        names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM streetaudit.heritage_area ORDER BY 1")]
    if area not in names:
        known = ", ".join(names[:10]) or "none loaded"
        raise InputError(f"--where-area: no heritage area named {area!r} (known: {known})")


class _RedactFilter(logging.Filter):
    """httpx logs every request URL at INFO, and URLs carry keys."""

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = ()
        return True


class _Collector:
    def __init__(
        self,
        url,
        provider: Provider,
        views,
        *,
        limit,
        area,
        concurrency,
        rate,
        retry_errors,
        recheck_missing,
        progress,
        relative: bool = False,
    ):
        self.url = url
        self.provider = provider
        self.views = views
        # Views are road-relative: each View's `relative` offset, turned into a compass
        # heading per point by streetaudit.relative_headings (PostGIS).
        self.relative = relative
        self.limit = limit
        self.area = area
        self.concurrency = concurrency
        self.retry_errors = retry_errors
        self.recheck_missing = recheck_missing
        self.settings = collect_settings()
        self.bucket = TokenBucket(rate)
        self.store = ImageStore()
        self.secrets = provider.secrets()
        self.report = CollectReport(provider.name)
        self.progress = progress
        self.stop_reason: str | None = None
        self.https: list[Http] = []
        self.leases = Leases(url, "collect", provider.name)
        self.queued: set[int] = set()  # points this run claimed and queued
        self.pending: dict[int, int] = {}  # point id -> its views queued but not yet written

    # -- the points and views still to fetch ----------------------------------------------
    async def _chosen_ids(self, conn: psycopg.AsyncConnection) -> list[int] | None:
        """With a limit: N points spread over the city (a fixed hash order), same on every rerun."""
        if self.limit is None:
            return None
        cursor = await conn.execute(
            """SELECT p.id FROM streetaudit.sample_point AS p
               WHERE p.retired_at IS NULL AND (%(area)s::text IS NULL OR EXISTS (
                   SELECT 1 FROM streetaudit.point_area AS pa
                   WHERE pa.point_id = p.id AND pa.area_name = %(area)s))
               ORDER BY hashint8(p.id), p.id LIMIT %(limit)s""",
            {"area": self.area, "limit": self.limit},
        )
        return sorted(r[0] for r in await cursor.fetchall())

    async def count_points(self) -> int:
        async with await psycopg.AsyncConnection.connect(self.url, **CONNECT_OPTIONS) as conn:
            cursor = await conn.execute(
                """SELECT count(*) FROM streetaudit.sample_point AS p
                   WHERE p.retired_at IS NULL AND (%(area)s::text IS NULL OR EXISTS (
                       SELECT 1 FROM streetaudit.point_area AS pa
                       WHERE pa.point_id = p.id AND pa.area_name = %(area)s))""",
                {"area": self.area},
            )
            row = await cursor.fetchone()
            total = row[0] if row else 0
        return min(total, self.limit) if self.limit else total

    async def pages(
        self,
    ) -> AsyncIterator[list[tuple[SamplePoint, set[float], set[float], list[float] | None]]]:
        """Pages of (point, headings not to fetch, headings that failed before, and with
        relative views their compass headings at this point) for the points this worker holds
        a lease on (flows/leases.py), and on the first pass those with nothing left to fetch
        (counted as skipped). Once the points run out it looks again while other workers hold
        leases, taking over the points of any that died."""
        first = True
        while True:
            async for rows in self._scan():
                open_ids = [
                    p.id for p, done, _, h in rows if self._wanted(h) - done and p.id not in self.queued
                ]
                claimed = await asyncio.to_thread(self.leases.claim, open_ids)
                self.queued.update(claimed)
                page = [r for r in rows if r[0].id in claimed or (first and not self._wanted(r[3]) - r[1])]
                if page:
                    yield page
                if self.stop_reason:
                    return
            first = False
            wait = await asyncio.to_thread(self.leases.wait_for_others)
            if wait is None or self.stop_reason:
                return
            await asyncio.sleep(wait)

    def _wanted(self, headings: list[float] | None) -> set[float]:
        """The compass headings to fetch at a point (relative views: its own, none without a bearing)."""
        if self.relative:
            return set(headings or ())
        return {view.heading for view in self.views}

    async def _scan(
        self,
    ) -> AsyncIterator[list[tuple[SamplePoint, set[float], set[float], list[float] | None]]]:
        """One pass over the chosen points in id order, a page at a time."""
        page = self.settings.page
        async with await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, **CONNECT_OPTIONS
        ) as conn:
            chosen = await self._chosen_ids(conn)
            after, offset = 0, 0
            while True:
                params = {
                    "provider": self.provider.name,
                    "retry": self.retry_errors,
                    "recheck": self.recheck_missing,
                    "state": self.provider.source_state(),
                    "area": self.area,
                    "page": page,
                    "relative": [v.relative for v in self.views] if self.relative else None,
                }
                if chosen is None:
                    selection, params["after"] = "p.id > %(after)s", after
                else:
                    if offset >= len(chosen):
                        return
                    selection, params["ids"] = "p.id = ANY(%(ids)s)", chosen[offset : offset + page]
                    offset += page
                cursor = await conn.execute(_POINTS_SQL.replace("{selection}", selection), params)
                rows = await cursor.fetchall()
                if not rows and chosen is None:
                    return
                if rows:
                    after = rows[-1][0]
                    yield [(SamplePoint(r[0], r[1], r[2], r[3]), set(r[4]), set(r[5]), r[6]) for r in rows]

    async def produce(self, queue: asyncio.Queue, on_skip) -> None:
        async for page in self.pages():
            for point, done, failed, headings in page:
                self.report.points += 1
                views = self.views
                if self.relative:
                    if headings is None:  # a road without a bearing: nothing to face
                        self.report.no_bearing += 1
                        continue
                    views = [replace(v, heading=h) for v, h in zip(self.views, headings, strict=True)]
                self.pending[point.id] = sum(view.heading not in done for view in views)
                for view in views:
                    if self.stop_reason:
                        return
                    if view.heading in done:
                        on_skip(earlier_error=view.heading in failed)
                    else:
                        await queue.put((point, view))

    # -- fetching one view ------------------------------------------------------------------
    def _backoff(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.settings.retry_after_max) + random.uniform(0, 0.1)
        ceiling = min(self.settings.backoff_max, self.settings.backoff * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    async def fetch_view(self, http: Http, point: SamplePoint, view: View) -> _Row | None:
        """The view's row, or None when the run stops (that view is then not recorded)."""
        attempt = 0
        while not self.stop_reason:
            attempt += 1
            try:
                result = await self.provider.fetch(http, point, view)
                if isinstance(result, NoImagery):
                    return _Row(point, view, "missing", attempt, detail=redact(result.reason, self.secrets))
                if not image_complete(result.data, result.extension):
                    raise ProviderError(
                        f"{self.provider.name}: truncated {_FORMATS.get(result.extension, result.extension)} "
                        f"({len(result.data)} bytes, no end marker)",
                        retryable=True,
                    )
                return await asyncio.to_thread(self.store_image, point, view, result, attempt)
            except ProviderError as error:
                detail = redact(error.detail, self.secrets)
                if error.fatal:
                    self._stop(detail)
                    return None
                if not error.retryable or attempt >= self.settings.attempts:
                    if error.unreachable:
                        self._stop(f"{detail} after {attempt} attempts: the host cannot be reached")
                        return None
                    suffix = f" after {attempt} attempts" if error.retryable else ""
                    return _Row(point, view, "error", attempt, detail=detail + suffix)
                self.report.retries += 1
                await asyncio.sleep(self._backoff(attempt, error))
            except (httpx.HTTPError, OSError) as error:
                detail = redact(f"{self.provider.name}: {type(error).__name__}: {error}", self.secrets)
                return _Row(point, view, "error", attempt, detail=detail)
        return None

    def store_image(self, point: SamplePoint, view: View, image: Image, attempt: int) -> _Row:
        try:
            with PILImage.open(io.BytesIO(image.data)) as opened:
                size = opened.size
        except (OSError, SyntaxError, ValueError):
            return _Row(point, view, "error", attempt, detail=f"{self.provider.name}: undecodable image")
        key = view_key(self.provider.name, point.id, view.heading, image.extension)
        for suffix, data in image.sidecars.items():
            self.store.put(sidecar_key(key, suffix), data)
        uri = self.store.put(key, image.data)
        return _Row(
            point,
            view,
            "ok",
            attempt,
            image=image,
            uri=uri,
            sha256=hashlib.sha256(image.data).hexdigest(),
            size=size,
        )

    async def work(self, http: Http, queue: asyncio.Queue, results: asyncio.Queue) -> None:
        while True:
            item = await queue.get()
            try:
                if item is None:
                    return
                if not self.stop_reason and (row := await self.fetch_view(http, *item)) is not None:
                    await results.put(row)
            finally:
                queue.task_done()

    async def feed(self, queue: asyncio.Queue, workers: list[asyncio.Task], results: asyncio.Queue, on_skip):
        """Queue every view to fetch, then tell the workers and, once they are done, the writer."""
        await self.produce(queue, on_skip)
        for _ in workers:
            await queue.put(None)
        await asyncio.wait(workers)
        await results.put(None)

    # -- writing rows -----------------------------------------------------------------------
    def _params(self, row: _Row) -> dict:
        image = row.image
        return {
            "point_id": row.point.id,
            "provider": self.provider.name,
            "pano_id": image.pano_id if image else None,
            "heading": row.view.heading,
            "pitch": row.view.pitch,
            "fov": row.view.fov,
            "width": row.size[0] if row.size else None,
            "height": row.size[1] if row.size else None,
            "captured_at": image.captured_at if image else None,
            "lon": image.lon if image else None,
            "lat": image.lat if image else None,
            "uri": row.uri,
            "sha256": row.sha256,
            "bytes": len(image.data) if image else None,
            "status": row.status,
            "detail": row.detail,
            "attempts": row.attempts,
            "relative_heading": row.view.relative,
        }

    async def _next_batch(self, conn: psycopg.AsyncConnection, results: asyncio.Queue) -> list:
        """Up to `batch` results; while none come, the database is pinged, so its loss shows."""
        while True:
            try:
                batch = [await asyncio.wait_for(results.get(), self.settings.heartbeat)]
                break
            except TimeoutError:
                await conn.execute("SELECT 1")
                await conn.commit()
        while len(batch) < self.settings.batch:
            try:
                batch.append(results.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _upsert(self, conn: psycopg.AsyncConnection, rows: list[_Row]) -> list[_Row]:
        """Write the rows; those whose point vanished meanwhile (a concurrent densify) are dropped."""
        try:
            async with conn.cursor() as cursor:
                await cursor.executemany(_UPSERT_SQL, [self._params(r) for r in rows])
            await conn.commit()
            return rows
        except psycopg.errors.ForeignKeyViolation:
            await conn.rollback()
        written = []
        for row in rows:
            try:
                async with conn.transaction():
                    await conn.execute(_UPSERT_SQL, self._params(row))
                written.append(row)
            except psycopg.errors.ForeignKeyViolation:
                self.report.vanished += 1
        await conn.commit()
        return written

    async def write(self, results: asyncio.Queue, on_written) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, **CONNECT_OPTIONS) as conn:
            finished = False
            while not finished:
                batch = await self._next_batch(conn, results)
                if batch[-1] is None:
                    finished = True
                    batch.pop()
                rows = [r for r in batch if r is not None]
                if rows:
                    on_written(await self._upsert(conn, rows))
                    await asyncio.to_thread(self.leases.release, self._finished_points(rows))

    def _finished_points(self, rows: list[_Row]) -> list[int]:
        """Points all of whose queued views are now written (or dropped): their leases can go."""
        finished = []
        for row in rows:
            self.pending[row.point.id] -= 1
            if self.pending[row.point.id] == 0:
                del self.pending[row.point.id]
                finished.append(row.point.id)
        return finished

    def count(self, rows: list[_Row]) -> None:
        for row in rows:
            setattr(self.report, row.status, getattr(self.report, row.status) + 1)
            if row.image:
                self.report.bytes += len(row.image.data)
            if row.status == "error":
                reason = (row.detail or "").split(" after ")[0][:80]
                self.report.errors[reason] = self.report.errors.get(reason, 0) + 1

    # -- the run ----------------------------------------------------------------------------
    def clients(self) -> list[httpx.AsyncClient]:
        """Small clients shared round-robin by the workers: a single shared pool scans all its
        connections on every request, which costs more CPU than the requests themselves at a
        few hundred per second, while one client per worker would make memory grow with
        --concurrency. Local providers (folder, synthetic) need one."""
        n = min(self.concurrency, MAX_CLIENTS) if self.provider.uses_http else 1
        per_client = 2 * math.ceil(self.concurrency / n)
        tls = ssl.create_default_context(cafile=certifi.where())
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        return [httpx.AsyncClient(timeout=self.settings.timeout, limits=limits, verify=tls) for _ in range(n)]

    def requests(self) -> int:
        return sum(http.requests for http in self.https)

    async def run(self) -> CollectReport:
        start = time.perf_counter()
        await self.provider.prepare(self.url)
        self.store.sweep_stale_temps()
        total = len(self.views) * await self.count_points()
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.concurrency * 2)
        results: asyncio.Queue = asyncio.Queue(maxsize=self.settings.batch * 2)
        with _progress(self.progress) as bar:
            task = bar.add_task(f"collect {self.provider.name}", total=total, status="")

            def refresh(advance: int) -> None:
                r = self.report
                rate = self.requests() / max(1e-9, time.perf_counter() - start)
                bar.update(
                    task,
                    advance=advance,
                    status=f"ok {r.ok}  missing {r.missing}  error {r.error}  skipped {r.skipped}  {rate:.1f} req/s",
                )

            def on_skip(earlier_error: bool) -> None:
                if earlier_error:
                    self.report.earlier_errors += 1
                else:
                    self.report.skipped += 1
                refresh(1)

            def on_written(rows: list[_Row]) -> None:
                self.count(rows)
                refresh(len(rows))

            async with contextlib.AsyncExitStack() as stack:
                stack.enter_context(self.leases)
                https = [Http(await stack.enter_async_context(c), self.bucket) for c in self.clients()]
                self.https = https
                await _first_failure_raised(self._stages(https, queue, results, on_skip, on_written))
        self.store.release()
        self.report.requests = self.requests()
        self.report.seconds = time.perf_counter() - start
        self.report.stopped = self.stop_reason
        return self.report

    async def _stages(self, https, queue, results, on_skip, on_written) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.write(results, on_written), name="writer")
            workers = [
                group.create_task(self.work(https[i % len(https)], queue, results), name=f"worker-{i}")
                for i in range(self.concurrency)
            ]
            group.create_task(self.feed(queue, workers, results, on_skip), name="producer")


async def _first_failure_raised(stages) -> None:
    """A task group reports failures as a group; the first real one is what the user needs."""
    try:
        await stages
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def _progress(enabled: bool) -> Progress:
    return RunProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        disable=not enabled,
        stage="collect",
    )


def collect(
    url: str,
    provider: str,
    *,
    headings: Sequence[float] = (0.0, 90.0, 180.0, 270.0),
    pitch: float = 0.0,
    fov: float = 90.0,
    size: tuple[int, int] = (1024, 512),
    limit: int | None = None,
    where_area: str | None = None,
    concurrency: int = 8,
    rate: float | None = None,
    retry_errors: bool = False,
    recheck_missing: bool = False,
    relative_headings: Sequence[float] | None = None,
    progress: bool = False,
) -> CollectReport:
    """Fetch every view not yet stored; see the module docstring for the guarantees.

    Raises CollectStopped when the run stopped (key, quota, host) and DatabaseLost when the
    database went away; in both cases what was written is kept and a rerun resumes.
    """
    chosen = open_provider(provider)
    if relative_headings is not None:
        # Road-relative directions replace the compass headings; each point's compass
        # headings come from PostGIS (streetaudit.relative_headings) as its page is read.
        try:
            offsets = _validate(relative_headings, pitch, fov, size, limit, concurrency, rate, chosen)
        except InputError as error:
            raise InputError(str(error).replace("--headings", "--relative-headings")) from None
        views = [View(o, pitch, fov, size[0], size[1], relative=o) for o in offsets]
    else:
        headings = _validate(headings, pitch, fov, size, limit, concurrency, rate, chosen)
        views = [View(h, pitch, fov, size[0], size[1]) for h in headings]
    collector = _Collector(
        url,
        chosen,
        views,
        limit=limit,
        area=where_area,
        concurrency=concurrency,
        rate=rate,
        retry_errors=retry_errors,
        recheck_missing=recheck_missing,
        progress=progress,
        relative=relative_headings is not None,
    )
    redactor = _RedactFilter(chosen.secrets())
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.addFilter(redactor)
    try:
        with reporting_database_loss("collect"):
            _check_area(url, where_area)
            report = asyncio.run(collector.run())
    finally:
        httpx_logger.removeFilter(redactor)
    if report.stopped:
        raise CollectStopped(
            f"collection stopped: {report.stopped}; stored {report.ok} ok, {report.missing} missing, "
            f"{report.error} error views before stopping (the views it stopped on are not recorded: "
            "fix the cause and rerun)",
            report,
        )
    return report


class CollectFailed(StreetauditError):
    """Every view the run asked for failed: nothing usable came of it."""


def summary_line(report: CollectReport) -> str:
    views_per_s = report.fetched / report.seconds if report.seconds > 0 else 0.0
    line = (
        f"{report.provider}: {report.ok} ok, {report.missing} missing, {report.error} error, "
        f"{report.skipped} already stored; {report.points} points, {views_per_s:.1f} views/s, "
        f"{report.requests} requests ({report.requests_per_second:.1f}/s, {report.retries} retries), "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
    )
    return line + "".join(f"\n{note}" for note in summary_notes(report))


def error_lines(report: CollectReport, limit: int = 10) -> list[str]:
    """The most frequent failure reasons, as `collect` prints them under its summary."""
    ranked = sorted(report.errors.items(), key=lambda kv: -kv[1])[:limit]
    return [f"  {n} x {reason}" for reason, n in ranked]


def only_errors_message(report: CollectReport) -> str:
    return (
        f"collect: no view is ok or missing, {report.error + report.earlier_errors} failed "
        "(see the reasons above); fix the cause and rerun with --retry-errors"
    )


def summary_notes(report: CollectReport) -> list[str]:
    """What the counts alone do not say: earlier failures and how to fetch them again."""
    notes = []
    if report.earlier_errors:
        notes.append(
            f"{report.earlier_errors} views failed in earlier runs and were not asked again; "
            "--retry-errors fetches them again"
        )
    if report.error:
        notes.append(
            f"{report.error} views failed in this run; fix the cause, then rerun with --retry-errors"
        )
    if report.no_bearing:
        notes.append(f"{report.no_bearing} points skipped: their road has no bearing for --relative-headings")
    if report.vanished:
        notes.append(
            f"{report.vanished} views were dropped because their sample points were deleted during the run"
        )
    return notes


# The Prefect flow `collect`: the plain function, its parameters validated by Prefect. It is
# not retried on its own (a flow cannot tell a bad key from a timeout); the pipeline's collect
# task is, twice, on transient failures only (flows/pipeline.py).
collect_flow = flow(name="collect", log_prints=True)(collect)
