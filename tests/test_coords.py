"""WGS84 ↔ GCJ-02 ↔ BD-09 against published reference values, and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from streetaudit.flows.providers.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from streetaudit.flows.providers.geometry import haversine_m

# Published outputs of the widely used coordtransform implementation for (116.404, 39.915).
REFERENCES = [
    (wgs84_to_gcj02, (116.41024449916938, 39.91640428150164)),
    (gcj02_to_bd09, (116.41036949371029, 39.92133699351021)),
    (bd09_to_gcj02, (116.39762729119315, 39.90865673957631)),
    (wgs84_to_bd09, (116.41662724378733, 39.922699552216216)),
]


@pytest.mark.parametrize(("convert", "expected"), REFERENCES, ids=lambda v: getattr(v, "__name__", ""))
def test_conversions_match_published_reference_values(convert, expected):
    assert convert(116.404, 39.915) == pytest.approx(expected, abs=1e-12)


def test_gcj02_inverse_is_exact_where_the_one_step_formula_is_not():
    # coordtransform's one-step inverse gives (116.39775550083061, 39.91359571849836); ours iterates.
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    assert (lon, lat) == pytest.approx((116.39775550083061, 39.91359571849836), abs=2e-5)
    assert wgs84_to_gcj02(lon, lat) == pytest.approx((116.404, 39.915), abs=1e-9)


def test_round_trips_across_china():
    rng = np.random.default_rng(3)
    for lon, lat in zip(rng.uniform(74, 134, 200), rng.uniform(19, 53, 200), strict=True):
        # GCJ-02 is inverted iteratively: sub-millimetre.
        assert haversine_m(lon, lat, *gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))) < 1e-3
        # BD-09 -> GCJ-02 is the published closed form, good to decimetres (plenty for street view).
        assert haversine_m(lon, lat, *bd09_to_gcj02(*gcj02_to_bd09(lon, lat))) < 0.5
        assert haversine_m(lon, lat, *bd09_to_wgs84(*wgs84_to_bd09(lon, lat))) < 0.5


def test_offsets_are_hundreds_of_metres_in_china_and_zero_outside():
    assert 100 < haversine_m(116.404, 39.915, *wgs84_to_gcj02(116.404, 39.915)) < 1000
    assert 500 < haversine_m(116.404, 39.915, *wgs84_to_bd09(116.404, 39.915)) < 2000
    helsinki = (24.9384, 60.1699)
    assert out_of_china(*helsinki)
    assert wgs84_to_gcj02(*helsinki) == helsinki and wgs84_to_bd09(*helsinki) == helsinki
    assert from_wgs84("wgs84ll", 116.404, 39.915) == (116.404, 39.915)
    assert from_wgs84("bd09ll", 116.404, 39.915) == wgs84_to_bd09(116.404, 39.915)
