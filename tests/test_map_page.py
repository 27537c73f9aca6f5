"""The map page in headless Chromium: controls, selectors, colour ranges fixed before the first
paint, points from zoom 15, the point panel with photos and masks, a basemap, and the message
when WebGL is off. Screenshots at a laptop and a phone size are checked for drawn pixels."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import psycopg
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from streetaudit.api.factory import create_app
from streetaudit.api.map import maplibre_ready
from streetaudit.api.photo_settings import PhotoSettings
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.models.label_palette import ELEMENT_COLOURS
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.testing.browser import CHROMIUM, CHROMIUM_ARGS
from streetaudit.testing.http_server import serving
from streetaudit.testing.photo_rows import give_photos
from streetaudit.testing.seeded_results import synthetic_models

BACKGROUND = (0xF4, 0xF1, 0xEA)
# Every legend the page renders, in order: the legend must be right the first time.
RECORD_LEGEND = """
new MutationObserver(() => {
  const legend = document.getElementById('legend');
  if (legend && legend.textContent) (window.legendHistory = window.legendHistory || []).push(legend.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    return helsinki_db_url


@pytest.fixture(scope="module")
def site(db_url: str, reader_db_url: str, tmp_path_factory) -> Iterator[dict]:
    settings = ApiSettings(ogc=False)
    if not maplibre_ready(settings.maplibre_dir):
        pytest.fail(f"maplibre-gl is not installed under {settings.maplibre_dir}; run `npm ci` (make setup)")
    synthetic_models(db_url, seeds=(81,))
    refresh_stats(db_url)
    photos = give_photos(db_url, tmp_path_factory.mktemp("photos"))
    app = create_app(reader_db_url, settings)
    app.state.photo_settings = PhotoSettings(serve_images="all")
    with serving(app, startup_s=30) as base:
        yield {"base": base, "app": app, "photos": photos}


def canvas_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#map canvas").screenshot())).convert("RGB"))


def drawn(pixels: np.ndarray) -> tuple[float, int]:
    """Share of pixels that are not the background, and how many distinct colours there are."""
    off = np.abs(pixels.astype(int) - BACKGROUND).sum(axis=2) > 30
    return float(off.mean()), len(np.unique(pixels.reshape(-1, 3), axis=0))


def wait_idle(page) -> None:
    page.wait_for_function("() => window.streetauditIdle === true", timeout=60_000)


def settle(page, js: str) -> None:
    page.evaluate("() => { window.streetauditIdle = false; }")
    page.evaluate(js)
    wait_idle(page)


def count(page, layer: str) -> int:
    return page.evaluate(f"() => window.streetauditMap.queryRenderedFeatures({{layers: ['{layer}']}}).length")


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_map_page_controls_ranges_points_and_photo_panel(site, db_url, shots, width, height):
    base, photos = site["base"], site["photos"]
    errors: list[str] = []
    foreign: list[str] = []
    tiles: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.add_init_script(RECORD_LEGEND)
        page.on("request", lambda r: tiles.append(r.url) if ".pbf" in r.url else None)
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: None if r.url.startswith((base, "data:", "blob:")) else foreign.append(r.url),
        )
        page.goto(f"{base}/map")
        page.wait_for_function(
            "() => window.streetauditIdle && window.streetauditMap.queryRenderedFeatures({layers: ['roads']}).length > 0",
            timeout=60_000,
        )
        config = page.evaluate("() => window.streetauditConfig")
        rating_paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('ratings', 'circle-color'))"
        )
        first_paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('roads', 'line-color'))"
        )
        zoom = page.evaluate("() => window.streetauditMap.getZoom()")
        points_below_15 = count(page, "points")
        drawn_features = {"roads": count(page, "roads"), "areas": count(page, "areas-fill")}
        initial_legends = page.evaluate("() => window.legendHistory")
        page.screenshot(path=str(shots / f"map-{width}x{height}.png"))
        overview = canvas_pixels(page)
        controls = {
            "zoom_in": page.locator(".maplibregl-ctrl-zoom-in").is_visible(),
            "compass": page.locator(".maplibregl-ctrl-compass").is_visible(),
            "scale": page.inner_text(".maplibregl-ctrl-scale"),
        }

        page.select_option("#statistic", "n")
        n_paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('roads', 'line-color'))"
        )
        n_legend = page.inner_text("#legend")
        page.select_option("#element", "car")
        page.select_option("#statistic", "std")
        std_paint = page.evaluate(
            "() => JSON.stringify(window.streetauditMap.getPaintProperty('roads', 'line-color'))"
        )
        std_legend = page.inner_text("#legend")

        # the photo point, clicked where it is drawn
        settle(
            page, f"() => window.streetauditMap.jumpTo({{center: [{photos.lon}, {photos.lat}], zoom: 17}})"
        )
        points_at_17 = count(page, "points")  # past zoom 15 the points appear
        xy = page.evaluate(f"() => window.streetauditMap.project([{photos.lon}, {photos.lat}])")
        page.mouse.click(xy["x"], xy["y"])
        page.wait_for_function(
            """() => window.streetauditPoint && [...document.querySelectorAll('#details img')]
                   .every((i) => i.complete && i.naturalWidth > 0)""",
            timeout=30_000,
        )
        point = page.evaluate("() => window.streetauditPoint")
        thumbs = page.locator("#details img.thumb").count()
        masks = page.locator("#details img.mask")
        mask_visible = masks.first.is_visible()
        bar = page.evaluate(
            """() => [...document.querySelector('#details-body > .shares').children].map((s) => ({
                   element: s.dataset.element, width: s.getBoundingClientRect().width,
                   colour: getComputedStyle(s).backgroundColor}))"""
        )
        bar_width = page.evaluate("() => document.querySelector('#details-body > .shares').clientWidth")
        page.screenshot(path=str(shots / f"map-point-{width}x{height}.png"))
        legend_with_point = page.locator("#legend").is_visible()
        panel_bottom = page.evaluate("() => document.getElementById('panel').getBoundingClientRect().bottom")
        details_top = page.evaluate("() => document.getElementById('details').getBoundingClientRect().top")
        page.uncheck("#mask-toggle")
        mask_hidden = not masks.first.is_visible()
        browser.close()

    assert not errors, errors
    assert not foreign, foreign  # no CDN, no basemap unless configured
    if width < 600:  # a phone: the legend yields to the point panel, a third of the map stays in view
        assert not legend_with_point and details_top - panel_bottom > height / 3, (panel_bottom, details_top)
    else:
        assert legend_with_point
    for layer in ("api.roads", "api.streets", "api.areas", "api.points", "api.ratings"):
        assert any(f"/{layer}/" in t for t in tiles), (layer, tiles)
    assert '"elo"' in rating_paint and "ELO" in initial_legends[0]
    # colour range: the data's percentiles, in the very first paint and every legend
    mean = config["ranges"]["greenery_mean"]
    stops = json.loads(first_paint)[3][3:]
    assert (stops[0], stops[-2]) == pytest.approx((mean["low"], mean["high"]))
    assert len(set(initial_legends)) == 1, initial_legends  # never re-drawn with another range
    assert f"{mean['high']:.2f}" in initial_legends[0] and "no data" in initial_legends[0]
    assert "greenery share, mean per street or road" in initial_legends[0]
    assert '"n_points"' in n_paint and "points per street or road" in n_legend and "no data" in n_legend
    assert '"car_std"' in std_paint and "car share, std. deviation" in std_legend
    # points only from zoom 15
    assert drawn_features["roads"] > 50 and drawn_features["areas"] > 0, drawn_features
    assert zoom < 15 and points_below_15 == 0 and points_at_17 > 0, (zoom, points_below_15, points_at_17)
    assert controls["zoom_in"] and controls["compass"] and controls["scale"].strip().endswith(("m", "km"))
    share, colours = drawn(overview)
    assert share > 0.01 and colours > 20, (share, colours)
    # the panel: the point's photos, its mask over the first, and the six shares as a bar
    assert point["point_id"] == photos.point_id
    assert thumbs == len(photos.files) and mask_visible and mask_hidden
    assert [b["element"] for b in bar] == list(ELEMENTS)
    for segment in bar:
        share_of = point["shares"][segment["element"]]
        assert segment["width"] == pytest.approx(share_of * bar_width, abs=1.5), segment
        assert segment["colour"] == "rgb({}, {}, {})".format(*ELEMENT_COLOURS[segment["element"]])
    with psycopg.connect(db_url) as conn:
        mean_shares = conn.execute(
            f"SELECT {', '.join(ELEMENTS)} FROM api.point_elements WHERE point_id = %s", (photos.point_id,)
        ).fetchone()
    assert [point["shares"][e] for e in ELEMENTS] == pytest.approx(list(mean_shares))


def test_map_without_webgl_says_so_instead_of_a_blank_page(site, shots):
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--disable-webgl", "--disable-3d-apis"]
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{site['base']}/map")
        page.wait_for_selector("#message:not([hidden])", timeout=20_000)
        text = page.inner_text("#message")
        page.screenshot(path=str(shots / "map-no-webgl-390x844.png"))
        browser.close()
    assert not errors, errors
    assert "WebGL" in text and "stats/roads" in text


class _Basemap(BaseHTTPRequestHandler):
    """A basemap on 127.0.0.1: /style.json a one-colour MapLibre style, any other path a one-colour
    raster tile; every request recorded."""

    requested: ClassVar[list[str]] = []
    png = b""
    style = b""

    def do_GET(self):
        type(self).requested.append(self.path)
        body, media = (
            (self.style, "application/json") if self.path == "/style.json" else (self.png, "image/png")
        )
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "path", "seen"),
    [
        # a raster template: its tiles at 0.8 opacity over our background, under the roads
        ("raster", "/{z}/{x}/{y}.png", 0.8 * np.array((200, 30, 30)) + 0.2 * np.array(BACKGROUND)),
        # a whole style: its own background, with our layers added on top
        ("style", "/style.json", np.array((30, 30, 200))),
    ],
    ids=["raster", "style"],
)
def test_basemap_is_drawn_under_our_layers(site, shots, kind, path, seen):
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(out, format="PNG")
    _Basemap.png, _Basemap.requested = out.getvalue(), []
    _Basemap.style = json.dumps(
        {"version": 8, "sources": {}, "layers": [
            {"id": "bg", "type": "background", "paint": {"background-color": "rgb(30, 30, 200)"}}]}
    ).encode()  # fmt: skip
    tiles = ThreadingHTTPServer(("127.0.0.1", 0), _Basemap)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    app = site["app"]
    app.state.photo_settings = PhotoSettings(
        serve_images="all", basemap_style=f"http://127.0.0.1:{tiles.server_port}{path}"
    )
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(
                viewport={"width": 800, "height": 600}
            )  # small: SwiftShader draws on the CPU
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{site['base']}/map")
            page.wait_for_function(
                "() => window.streetauditIdle && window.streetauditMap.getLayer('roads')", timeout=60_000
            )
            wait_idle(page)
            roads = count(page, "roads")
            pixels = canvas_pixels(page)
            page.screenshot(path=str(shots / f"map-basemap-{kind}-800x600.png"))
            browser.close()
    finally:
        app.state.photo_settings = PhotoSettings(serve_images="all")
        tiles.shutdown()
    assert not errors, errors
    assert _Basemap.requested and (kind != "style" or _Basemap.requested[0] == "/style.json")
    assert roads > 50
    basemap = (np.abs(pixels.astype(int) - seen).sum(axis=2) < 30).mean()
    assert basemap > 0.3, basemap  # it fills what the roads leave free
