"""Mapillary Graph API v4: the nearest image within a radius, facing the requested heading.

Mapillary holds photos, not a cube of views per point: for each view we take, among the
images within the radius, the one whose compass angle is closest to the requested heading
(within half the field of view), nearest first on ties. The token travels in the
Authorization header, never in a URL; thumbnail URLs are pre-signed and need none.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

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
from streetaudit.flows.providers.geometry import angle_between, haversine_m
from streetaudit.flows.providers.settings import ProviderSettings

_FIELDS = "id,captured_at,compass_angle,computed_compass_angle,geometry,thumb_1024_url,thumb_2048_url"


def bbox(point: SamplePoint, radius_m: float) -> str:
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(0.01, math.cos(math.radians(point.lat))))
    return f"{point.lon - dlon:.7f},{point.lat - dlat:.7f},{point.lon + dlon:.7f},{point.lat + dlat:.7f}"


def choose(images: list[dict], point: SamplePoint, view: View, radius_m: float) -> dict | None:
    """The image facing the heading best, within the radius and half the field of view."""
    best = None
    for image in images:
        coords = (image.get("geometry") or {}).get("coordinates") or []
        angle = image.get("computed_compass_angle", image.get("compass_angle"))
        if len(coords) < 2 or angle is None:
            continue
        distance = haversine_m(point.lon, point.lat, coords[0], coords[1])
        off = angle_between(float(angle), view.heading)
        if distance > radius_m or off > view.fov / 2:
            continue
        key = (round(off, 3), distance)
        if best is None or key < best[0]:
            best = (key, image, coords)
    if best is None:
        return None
    return {**best[1], "_coords": best[2]}


class MapillaryProvider(Provider):
    name = "mapillary"
    max_size = (2048, 2048)

    def __init__(self, settings: ProviderSettings):
        token = settings.secret("mapillary_token")
        if not token:
            raise ProviderConfigError("provider mapillary needs a token: set STREETAUDIT_MAPILLARY_TOKEN")
        self.token: str = token
        self.url = settings.mapillary_url.rstrip("/")
        self.radius = settings.mapillary_radius
        self.cache: PerPointCache[list[dict]] = PerPointCache()

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)

    async def nearby(self, http: Http, point: SamplePoint) -> list[dict]:
        response = await http.get(
            f"{self.url}/images",
            what="mapillary search",
            params={"fields": _FIELDS, "bbox": bbox(point, self.radius), "limit": "100"},
            headers={"Authorization": f"OAuth {self.token}"},
        )
        if response.status_code == 404:
            raise ProviderError("mapillary search: HTTP 404 (check STREETAUDIT_MAPILLARY_URL)", fatal=True)
        try:
            payload = response.json()
        except ValueError:
            raise ProviderError("mapillary search: answer is not JSON", retryable=True) from None
        if "error" in payload:
            message = str((payload["error"] or {}).get("message", "error"))[:200]
            raise ProviderError(f"mapillary search: {message}", fatal=True)
        return list(payload.get("data") or [])

    async def fetch(self, http: Http, point: SamplePoint, view: View) -> Image | NoImagery:
        images = await self.cache.get(point.id, lambda: self.nearby(http, point))
        chosen = choose(images, point, view, self.radius)
        if chosen is None:
            return NoImagery(
                f"mapillary: no image within {self.radius:g} m facing {view.heading:g}±{view.fov / 2:g}°"
            )
        thumb = chosen.get("thumb_2048_url") if view.width > 1024 else chosen.get("thumb_1024_url")
        thumb = thumb or chosen.get("thumb_1024_url") or chosen.get("thumb_2048_url")
        if not thumb:
            raise ProviderError(f"mapillary image {chosen.get('id')}: no thumbnail URL")
        response = await http.get(thumb, what=f"mapillary image {chosen.get('id')}")
        if response.status_code == 404:
            raise ProviderError(f"mapillary image {chosen.get('id')}: HTTP 404")
        extension = looks_like_image(response.content)
        if extension is None:
            raise ProviderError(f"mapillary image {chosen.get('id')}: not an image", retryable=True)
        captured = chosen.get("captured_at")
        return Image(
            data=response.content,
            extension=extension,
            pano_id=str(chosen.get("id")),
            captured_at=datetime.fromtimestamp(captured / 1000, UTC) if captured else None,
            lon=chosen["_coords"][0],
            lat=chosen["_coords"][1],
        )
