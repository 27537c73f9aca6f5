"""The one small interface every street-view provider implements.

A provider turns (sample point, view) into image bytes plus what it knows about them, or
says there is no imagery there. It never retries, sleeps or writes: the collect engine owns
concurrency, the rate limit, retries and storage, so every provider gets them the same way.
Providers speak HTTP only through `Http`, which applies the rate limit and turns transport
failures into `ProviderError`s whose text never contains a URL (URLs carry keys).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import httpx

from streetaudit.sql.errors import StreetauditError


@dataclass(frozen=True)
class SamplePoint:
    id: int
    lon: float
    lat: float
    in_heritage: bool = False


@dataclass(frozen=True)
class View:
    heading: float
    pitch: float = 0.0
    fov: float = 90.0
    width: int = 1024
    height: int = 512
    # collect --relative-headings: the road-relative direction (0 ahead, 90 right, ...) that
    # `heading` was computed from at this point; None for a compass heading.
    relative: float | None = None


@dataclass
class Image:
    """Image bytes and what the provider knows about them."""

    data: bytes
    extension: str = "jpg"
    pano_id: str | None = None
    captured_at: datetime | None = None
    lon: float | None = None
    lat: float | None = None
    width: int | None = None
    height: int | None = None
    # Extra files stored beside the image: suffix replacing the image's ('.labels.png') -> bytes.
    sidecars: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class NoImagery:
    reason: str


class ProviderError(Exception):
    """A failed request. `retryable` errors are retried with backoff; `fatal` ones stop the run.

    `unreachable` ones (no connection could be made) are retried, and when the retries run
    out they stop the run too: the host is down or misconfigured for every view, not this one.
    Errors that stop the run are not recorded as the view's failure, so the rerun asks again.
    The message is stored as the view's `detail`, so it must never contain a key or a URL.
    """

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        fatal: bool = False,
        unreachable: bool = False,
    ):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        self.fatal = fatal
        self.unreachable = unreachable


class ProviderConfigError(StreetauditError):
    """A provider cannot start: a key or setting is missing or invalid."""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class TokenBucket:
    """At most `rate` requests per second on average, bursts of up to `burst`.

    `pause(seconds)` holds every caller (a 429 with Retry-After means the whole client is
    too fast, not just the request that got it).
    """

    def __init__(self, rate: float | None, burst: float | None = None):
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, (rate or 1.0) / 10)
        self.tokens = self.capacity
        self.last = time.monotonic()
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    continue
                if not self.rate:
                    return
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Http:
    """Rate-limited GETs that classify transport-level failures the same way for every provider."""

    def __init__(self, client: httpx.AsyncClient, bucket: TokenBucket):
        self.client = client
        self.bucket = bucket
        self.requests = 0

    async def get(self, url: str, *, what: str, **kwargs) -> httpx.Response:
        await self.bucket.acquire()
        self.requests += 1
        try:
            response = await self.client.get(url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise ProviderError(
                f"{what}: cannot connect ({type(error).__name__})", retryable=True, unreachable=True
            ) from None
        except httpx.TimeoutException as error:
            raise ProviderError(f"{what}: timed out ({type(error).__name__})", retryable=True) from None
        except httpx.TransportError as error:
            raise ProviderError(
                f"{what}: connection failed ({type(error).__name__})", retryable=True
            ) from None
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait:
                self.bucket.pause(wait)
            raise ProviderError(f"{what}: HTTP 429 too many requests", retryable=True, retry_after=wait)
        if status >= 500:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            raise ProviderError(f"{what}: HTTP {status}", retryable=True, retry_after=wait)
        if status in (401, 403):
            raise ProviderError(f"{what}: HTTP {status} (key refused)", fatal=True)
        if status == 404:
            return response
        if status >= 400:
            raise ProviderError(f"{what}: HTTP {status}")
        return response


def looks_like_image(data: bytes) -> str | None:
    """The extension for JPEG/PNG/WebP bytes, else None (JSON or HTML error bodies)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class Provider(ABC):
    """One street-view source. Subclasses set `name` and implement `fetch`."""

    name: str = ""
    # Largest image the provider serves (width, height); collect refuses bigger --size.
    max_size: tuple[int, int] = (8192, 8192)
    # Whether fetch needs the HTTP client (folder and synthetic read/draw locally).
    uses_http: bool = True

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs, errors, detail or the database."""
        return ()

    async def prepare(self, url: str) -> None:  # noqa: B027 - optional hook
        """Called once before fetching (e.g. to index a folder against the sample points)."""

    def source_state(self) -> str | None:
        """A text that every `missing` answer's detail carries while the source is unchanged.

        A stored `missing` view whose detail lacks it is asked again (a folder with new photos);
        None: `missing` is final (the web providers), short of `--recheck-missing`.
        """
        return None

    @abstractmethod
    async def fetch(self, http: Http, point: SamplePoint, view: View) -> Image | NoImagery:
        """Image bytes for this view, NoImagery, or raise ProviderError."""


Found = TypeVar("Found")


class PerPointCache(Generic[Found]):
    """Shares one lookup among a point's views (its headings are fetched concurrently).

    Bounded, oldest first out, so memory stays flat however many points a run has. A failed
    lookup is not cached, so a retry asks again.
    """

    def __init__(self, size: int = 1024):
        self.size = size
        self._tasks: dict[int, asyncio.Task[Found]] = {}

    async def get(self, point_id: int, lookup: Callable[[], Awaitable[Found]]) -> Found:
        task = self._tasks.get(point_id)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(lookup())
            self._tasks[point_id] = task
            while len(self._tasks) > self.size:
                self._tasks.pop(next(iter(self._tasks)))
        return await asyncio.shield(task)
