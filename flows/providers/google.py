"""Google Street View Static API: the free metadata request first, then the image.

Metadata says whether a panorama exists (ZERO_RESULTS → no imagery, and no paid image
request is made), its pano id, date and true position; the image is then requested by pano
id so all headings of a point show the same panorama. With a URL-signing secret each
request carries its HMAC-SHA1 `signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from streetaudit.flows.providers.base import (
    Http,
    Image,
    NoImagery,
    PerPointCache,
    Provider,
    ProviderConfigError,
    ProviderError,
    SamplePoint,
    View,
    looks_like_image,
)
from streetaudit.flows.providers.settings import ProviderSettings

_FATAL = {"REQUEST_DENIED", "OVER_DAILY_LIMIT"}
_RETRY = {"OVER_QUERY_LIMIT", "UNKNOWN_ERROR"}
_MISSING = {"ZERO_RESULTS", "NOT_FOUND"}


def sign(url: str, params: dict[str, str], secret: str) -> str:
    """Google's URL signature: HMAC-SHA1 over path?query with the URL-safe base64 secret."""
    path = urlsplit(url).path
    payload = f"{path}?{urlencode(params)}".encode()
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha1).digest()).decode()


def parse_month(value: str | None) -> datetime | None:
    """Metadata dates are 'YYYY-MM' (sometimes 'YYYY'); the first of the month stands in."""
    if not value:
        return None
    for fmt in ("%Y-%m", "%Y"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class GoogleProvider(Provider):
    name = "google"
    max_size = (640, 640)

    def __init__(self, settings: ProviderSettings):
        key = settings.secret("google_key")
        if not key:
            raise ProviderConfigError("provider google needs a key: set STREETAUDIT_GOOGLE_KEY")
        self.key: str = key
        self.secret = settings.secret("google_secret") or None
        self.url = settings.google_url.rstrip("/")
        self.cache: PerPointCache[dict] = PerPointCache()

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.key, self.secret) if s)

    def _signed(self, url: str, params: dict[str, str]) -> dict[str, str]:
        params = {**params, "key": self.key}
        if self.secret:
            params["signature"] = sign(url, params, self.secret)
        return params

    async def metadata(self, http: Http, point: SamplePoint) -> dict:
        url = f"{self.url}/metadata"
        params = self._signed(url, {"location": f"{point.lat:.7f},{point.lon:.7f}", "source": "outdoor"})
        response = await http.get(url, what="google metadata", params=params)
        try:
            payload = response.json()
        except ValueError:
            raise ProviderError(f"google metadata: HTTP {response.status_code}, not JSON") from None
        return payload if isinstance(payload, dict) else {}

    async def fetch(self, http: Http, point: SamplePoint, view: View) -> Image | NoImagery:
        meta = await self.cache.get(point.id, lambda: self.metadata(http, point))
        status = str(meta.get("status", "missing status"))
        if status in _MISSING:
            return NoImagery(f"google metadata: {status}")
        if status in _RETRY:
            raise ProviderError(f"google metadata: {status}", retryable=True)
        if status in _FATAL:
            raise ProviderError(f"google metadata: {status} (check STREETAUDIT_GOOGLE_KEY)", fatal=True)
        if status != "OK":
            raise ProviderError(f"google metadata: {status}")
        pano = meta.get("pano_id")
        query = {
            "size": f"{view.width}x{view.height}",
            "heading": f"{view.heading:g}",
            "pitch": f"{view.pitch:g}",
            "fov": f"{view.fov:g}",
            "return_error_code": "true",
        }
        query.update({"pano": pano} if pano else {"location": f"{point.lat:.7f},{point.lon:.7f}"})
        response = await http.get(self.url, what="google image", params=self._signed(self.url, query))
        if response.status_code == 404:
            return NoImagery("google image: HTTP 404 (no imagery)")
        extension = looks_like_image(response.content)
        if extension is None:
            raise ProviderError(f"google image: answered {len(response.content)} bytes that are not an image")
        location = meta.get("location") or {}
        return Image(
            data=response.content,
            extension=extension,
            pano_id=pano,
            captured_at=parse_month(meta.get("date")),
            lon=location.get("lng"),
            lat=location.get("lat"),
            width=view.width,
            height=view.height,
        )
