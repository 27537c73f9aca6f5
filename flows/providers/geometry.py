"""Distances and headings on the sphere, shared by the providers that pick the image nearest a view."""

from __future__ import annotations

import math

_EARTH_RADIUS = 6_371_008.8


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS * math.asin(math.sqrt(a))


def angle_between(a: float, b: float) -> float:
    """The smaller angle between two compass headings, in degrees (0–180): 350° and 10° are 20° apart."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
