"""Baidu's panorama static API (`/panorama/v2`), as in the Harbin study's Table 1.

Baidu answers most errors — a bad key, no panorama here, an exhausted quota — with HTTP 200
and a small JSON body instead of a JPEG. Every response is therefore classified by its
content: only bytes that are an image are ever returned as one.
"""

from __future__ import annotations

import json
import re

from streetaudit.flows.providers.base import (
    Http,
    Image,
    NoImagery,
    Provider,
    ProviderConfigError,
    ProviderError,
    SamplePoint,
    View,
    looks_like_image,
)
from streetaudit.flows.providers.coords import BAIDU_COORDTYPES, from_wgs84
from streetaudit.flows.providers.settings import ProviderSettings

# Baidu LBS status codes. Key/permission problems stop the run (every request would fail);
# internal errors and concurrency limits are worth retrying; a quota is spent for the day.
_KEY_STATUSES = {2, 3, 5, 101, 102, *range(200, 300)}
_QUOTA_STATUSES = {4, 301, 302}
_TRANSIENT_STATUSES = {1, 401}
_NO_PANORAMA_STATUSES = {402}
_NO_PANORAMA_TEXT = re.compile(r"无全景|没有全景|no ?pano|not ?found|无数据", re.IGNORECASE)
_CONCURRENCY_TEXT = re.compile(r"并发|concurren", re.IGNORECASE)


def classify_json_error(body: bytes) -> NoImagery | ProviderError:
    """Turn Baidu's HTTP-200 JSON answer into NoImagery or a classified error."""
    try:
        payload = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return ProviderError(f"baidu: answered {len(body)} bytes that are neither an image nor JSON")
    if not isinstance(payload, dict):
        return ProviderError("baidu: answered unexpected JSON")
    try:
        status = int(payload.get("status", -1))
    except (TypeError, ValueError):
        status = -1
    message = str(payload.get("message") or payload.get("msg") or "")[:200]
    said = f"baidu status {status}: {message}".rstrip(": ")
    if status in _NO_PANORAMA_STATUSES or _NO_PANORAMA_TEXT.search(message):
        return NoImagery(said)
    if status in _TRANSIENT_STATUSES or _CONCURRENCY_TEXT.search(message):
        return ProviderError(said, retryable=True)
    if status in _QUOTA_STATUSES:
        return ProviderError(f"{said} (quota exhausted; rerun later)", fatal=True)
    if status in _KEY_STATUSES:
        return ProviderError(f"{said} (check STREETAUDIT_BAIDU_AK and its service permissions)", fatal=True)
    return ProviderError(said)


class BaiduProvider(Provider):
    name = "baidu"
    max_size = (1024, 512)

    def __init__(self, settings: ProviderSettings):
        ak = settings.secret("baidu_ak")
        if not ak:
            raise ProviderConfigError("provider baidu needs a key: set STREETAUDIT_BAIDU_AK")
        self.ak: str = ak
        if settings.baidu_coordtype not in BAIDU_COORDTYPES:
            raise ProviderConfigError(
                f"STREETAUDIT_BAIDU_COORDTYPE must be one of {', '.join(BAIDU_COORDTYPES)}, "
                f"got {settings.baidu_coordtype!r}"
            )
        self.url = settings.baidu_url
        self.coordtype = settings.baidu_coordtype

    def secrets(self) -> tuple[str, ...]:
        return (self.ak,)

    def params(self, point: SamplePoint, view: View) -> dict[str, str]:
        lon, lat = from_wgs84(self.coordtype, point.lon, point.lat)
        return {
            "ak": self.ak,
            "width": str(view.width),
            "height": str(view.height),
            "location": f"{lon:.7f},{lat:.7f}",
            "coordtype": self.coordtype,
            "heading": f"{view.heading:g}",
            "pitch": f"{view.pitch:g}",
            "fov": f"{view.fov:g}",
        }

    async def fetch(self, http: Http, point: SamplePoint, view: View) -> Image | NoImagery:
        response = await http.get(self.url, what="baidu panorama", params=self.params(point, view))
        if response.status_code == 404:
            raise ProviderError("baidu panorama: HTTP 404 (check STREETAUDIT_BAIDU_URL)", fatal=True)
        body = response.content
        extension = looks_like_image(body)
        if extension is None:
            result = classify_json_error(body)
            if isinstance(result, NoImagery):
                return result
            raise result
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) != len(body):
            raise ProviderError(
                f"baidu panorama: body cut short ({len(body)} of {declared} bytes)", retryable=True
            )
        return Image(data=body, extension=extension, width=view.width, height=view.height)
