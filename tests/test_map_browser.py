"""/map in headless Chromium: MapLibre (from npm, served by us) loads our tiles and draws features."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from streetaudit.api.factory import create_app
from streetaudit.api.map import maplibre_ready
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.flows.streets import build_streets
from streetaudit.testing.browser import CHROMIUM, CHROMIUM_ARGS
from streetaudit.testing.http_server import serving
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def server(db_url: str, reader_db_url: str) -> Iterator[str]:
    settings = ApiSettings(ogc=False)
    if not maplibre_ready(settings.maplibre_dir):
        pytest.fail(f"maplibre-gl is not installed under {settings.maplibre_dir}; run `npm ci` (make setup)")
    synthetic_models(db_url, seeds=(61,))
    build_streets(db_url)
    refresh_stats(db_url)
    with serving(create_app(reader_db_url, settings), startup_s=30) as base:
        yield base


def test_map_page_loads_tiles_and_draws_features_without_errors(server):
    errors: list[str] = []
    tiles: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))

        def seen(request) -> None:
            if ".pbf" in request.url:
                tiles.append(request.url)
            if not request.url.startswith(server) and not request.url.startswith(("data:", "blob:")):
                foreign.append(request.url)

        page.on("request", seen)
        page.goto(f"{server}/map")
        page.wait_for_function(
            """() => window.streetauditIdle && window.streetauditMap
                 && window.streetauditMap.queryRenderedFeatures({layers: ['roads']}).length > 0""",
            timeout=60_000,
        )
        counts = page.evaluate(
            """() => {
                const m = window.streetauditMap;
                const n = (layer) => m.queryRenderedFeatures({layers: [layer]}).length;
                return {roads: n('roads'), streets: n('streets'), areas: n('areas-fill'), points: n('points'),
                        zoom: m.getZoom()};
            }"""
        )
        page.select_option("#element", "sky")
        legend = page.inner_text("#legend")
        paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('roads', 'line-color'))"
        )
        rating_paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('ratings', 'circle-color'))"
        )
        browser.close()
    assert not errors, errors
    assert not foreign, foreign  # no CDN, no basemap from elsewhere
    assert any("/api.roads/" in t for t in tiles) and any("/api.points/" in t for t in tiles)
    assert counts["roads"] > 50 and counts["areas"] > 0 and counts["points"] > 50, counts
    assert any("/api.streets/" in t for t in tiles) and counts["streets"] > 20, counts  # drawn over the roads
    assert "sky" in legend and "sky_mean" in paint
    # the rated images are offered too, coloured by ELO with a legend
    assert any("/api.ratings/" in t for t in tiles), tiles
    assert "ELO" in legend and '"elo"' in rating_paint
