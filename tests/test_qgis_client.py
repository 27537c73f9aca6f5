"""QGIS (offscreen, Debian's python3-qgis) opens our layers the ways the README tells: XYZ
tiles with the style URL, our QML, and the ArcGIS VectorTileServer that carries the extent.

PyQGIS lives in the system python3, not the venv, so testing/qgis_vector_tiles.py runs
there against a real uvicorn server; the test skips, saying why, where QGIS is missing
(`.ci/system-deps test` installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import shapely

from streetaudit.api import ramps
from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.http_server import serving
from streetaudit.testing.seeded_results import synthetic_models

SCRIPT = Path(__file__).resolve().parent.parent / "testing" / "qgis_vector_tiles.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"


def qgis_missing() -> str | None:
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no system python3 to run PyQGIS: {error}"
    if probe.returncode != 0:
        return f"PyQGIS is not installed (apt-get install python3-qgis): {probe.stderr.strip()[-200:]}"
    return None


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def server(db_url: str, reader_db_url: str) -> Iterator[str]:
    reason = qgis_missing()
    if reason:
        pytest.skip(reason)
    synthetic_models(db_url, seeds=(93,))
    refresh_stats(db_url)
    with serving(create_app(reader_db_url, ApiSettings(ogc=False)), startup_s=30) as base:
        yield base


def open_in_qgis(base: str, layer: str) -> dict:
    run = subprocess.run(
        [SYSTEM_PYTHON, str(SCRIPT), base, layer],
        capture_output=True,
        text=True,
        timeout=240,
        env={"QT_QPA_PLATFORM": "offscreen", "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_qgis_opens_the_roads_with_our_style_and_the_city_extent(server, db_url):
    report = open_in_qgis(server, "api.roads")
    with psycopg.connect(db_url) as conn:
        geoms = [
            shapely.from_wkb(bytes(w))
            for (w,) in conn.execute("SELECT ST_AsBinary(geom) FROM api.road_stats")
        ]
        ((top,),) = conn.execute("SELECT max(greenery_max) FROM api.area_stats").fetchall()
    city = shapely.total_bounds(geoms)

    # XYZ + style URL: valid, styled from /style.json (the roads' layer), but world-wide.
    xyz = report["xyz"]
    assert xyz["valid"] and xyz["style_loaded"], xyz
    assert any(s["layer"] == "api.roads" for s in xyz["styles"]), xyz["styles"]
    assert xyz["extent"][2] - xyz["extent"][0] > 300

    # Our QML: one line style for api.roads whose colour is the map's ramp.
    qml = report["qml"]
    assert qml["loaded"], qml
    (style,) = qml["styles"]
    assert style["layer"] == "api.roads" and style["geometry"] == 1 and style["enabled"]
    (expression,) = style["expressions"].values()
    assert '"greenery_mean"' in expression and repr(float(top)) in expression
    assert [c for c in ramps.VIRIDIS if c in expression] == list(ramps.VIRIDIS)

    # ArcGIS VectorTileServer: valid, styled from its defaultStyles; QGIS from 3.24 on reads
    # its fullExtent (the city), 3.22 (Debian bookworm) keeps the world for every tile layer.
    service = report["arcgis"]
    assert service["valid"] and service["style_loaded"], service
    if report["qgis_version"] >= 32400:
        assert np.allclose(service["extent"], city, atol=1e-6), (service["extent"], city)
    # Drawn over the TileJSON's bounds: with the service's (MapLibre) style QGIS draws the
    # roads, but its converter knows no data-driven colours, so only the QML gives the ramp.
    assert sum(service["colours_default_style"].values()) > 200, service["colours_default_style"]
    drawn = service["colours_qml"]
    ramp_pixels = sum(n for c, n in drawn.items() if colour_near(c, ramps.VIRIDIS))
    assert ramp_pixels > 200, drawn


def test_qgis_project_opens_on_the_city_with_every_layer_styled(server, db_url):
    report = open_in_qgis(server, "api.roads")["project"]
    with psycopg.connect(db_url) as conn:
        geoms = [
            shapely.from_wkb(bytes(w))
            for (w,) in conn.execute("SELECT ST_AsBinary(geom) FROM api.road_stats")
        ]
    assert report["read"], report
    assert np.allclose(report["view"], shapely.total_bounds(geoms), atol=1e-6), report["view"]
    assert set(report["layers"]) == {"api.roads", "api.areas", "api.points", "api.ratings"}
    for name, layer in report["layers"].items():
        assert layer["valid"], name
        (style,) = layer["styles"]
        assert style["layer"] == name and style["enabled"], (name, style)
    ramp_pixels = sum(n for c, n in report["colours"].items() if colour_near(c, ramps.VIRIDIS))
    assert ramp_pixels > 200, report["colours"]


def colour_near(colour: str, palette: tuple[str, ...], tolerance: int = 40) -> bool:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return any(
        np.abs(rgb - np.array([int(p[i : i + 2], 16) for i in (1, 3, 5)])).max() <= tolerance for p in palette
    )
