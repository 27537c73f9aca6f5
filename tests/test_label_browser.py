"""/label in headless Chromium: draw with the mouse and by touch, relabel, resize, move, delete,
undo, save and auto-save on next; the rows in streetaudit.annotation are checked in image pixels.

Screenshots at a laptop and a phone size are written to $STREETAUDIT_SCREENSHOTS (or the
test's tmp folder) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from playwright.sync_api import Page, sync_playwright

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.raters import add_rater, revoke_rater
from streetaudit.flows.ratings import set_campaign
from streetaudit.flows.simulated_ratings import seed_rating_images
from streetaudit.testing.browser import CHROMIUM, CHROMIUM_ARGS
from streetaudit.testing.http_server import serving

WIDTH, HEIGHT = 320, 200  # seed_rating_images' pictures
TOLERANCE = 0.5  # image pixels: under two screen pixels at either size


@pytest.fixture(scope="module")
def server(db_url: str, reader_db_url: str, pg_cluster, tmp_path_factory) -> Iterator[str]:
    patch = pytest.MonkeyPatch()
    patch.setenv("STREETAUDIT_API_RATER_DATABASE_URL", pg_cluster.rater_url(db_url.rsplit("/", 1)[1]))
    seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 4)
    set_campaign(db_url, repeat_share=0.0, target=20)
    with serving(create_app(reader_db_url, ApiSettings(ogc=False)), startup_s=30) as base:
        yield base
    patch.undo()


@contextmanager
def opened(
    server: str, link: str, width: int, height: int, touch: bool = False, refused: bool = False
) -> Iterator[Page]:
    """The page at `link`; fails the test on a console error (but the refusal's own, when
    `refused`) or a request leaving the server."""
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": width, "height": height}, has_touch=touch, is_mobile=touch
        )
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: None if r.url.startswith((server, "data:", "blob:")) else foreign.append(r.url),
        )
        page.goto(link)
        yield page
        browser.close()
    if refused:
        errors = [e for e in errors if "status of 403" not in e]
    assert not errors, errors
    assert not foreign, foreign


def wait_shown(page: Page, count: int) -> None:
    page.wait_for_function(
        f"() => window.labelState && window.labelState.shown >= {count} && !window.labelState.busy",
        timeout=30_000,
    )


def wait_saved(page: Page, count: int) -> None:
    page.wait_for_function(
        f"() => window.labelState.saves >= {count} && !window.labelState.busy", timeout=30_000
    )


class Screen:
    """Where a point of the image (as shares of its width and height) is on the screen, and back."""

    def __init__(self, page: Page):
        self.box = page.locator("#frame").bounding_box()

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        return self.box["x"] + fx * self.box["width"], self.box["y"] + fy * self.box["height"]

    def pixels(self, *corners: tuple[float, float]) -> tuple[float, ...]:
        """Image pixels of screen points: screen px minus the image's origin, times the scale."""
        out: list[float] = []
        for sx, sy in corners:
            out += [
                (sx - self.box["x"]) * WIDTH / self.box["width"],
                (sy - self.box["y"]) * HEIGHT / self.box["height"],
            ]
        return tuple(out)


def mouse_drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def touch_drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]}
    )
    for i in range(1, 9):
        x = start[0] + (end[0] - start[0]) * i / 8
        y = start[1] + (end[1] - start[1]) * i / 8
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    # The finger rests before it lifts, as a person's does at the corner they aimed for: lifted
    # while moving, Chromium starts a fling, and a tap during a fling only stops it (no click).
    page.wait_for_timeout(200)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": end[0], "y": end[1]}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def rows(db_url: str, name: str, *, replaced: bool = False) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT a.image_id, a.label, a.x1, a.y1, a.x2, a.y2, a.source
               FROM streetaudit.annotation AS a JOIN streetaudit.rater AS r ON r.id = a.rater_id
               WHERE r.name = %s AND (a.replaced_at IS NOT NULL) = %s ORDER BY a.id""",
            (name, replaced),
        ).fetchall()


def assert_boxes(got: list[tuple], expected: list[tuple]) -> None:
    assert [row[:2] + row[6:] for row in got] == [(*e[:2], "label page") for e in expected]
    for row, want in zip(got, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(row[2:6], want[2:], strict=True)) < TOLERANCE, (row, want)


def test_mouse_draw_relabel_resize_delete_undo_move_and_save(server, db_url, shots):
    name = "label-desktop"
    rater = add_rater(db_url, name, base_url=server)
    with opened(server, f"{server}/label#token={rater.token}", 1400, 900) as page:
        wait_shown(page, 1)
        first = int(page.get_attribute("#photo", "data-image-id"))
        screen = Screen(page)
        assert screen.box["width"] > 900  # scaled up to fill the laptop screen
        roof = (screen.at(0.2, 0.3), screen.at(0.5, 0.7))
        mouse_drag(page, *roof)
        page.keyboard.press("2")  # the second label: roof
        page.click("#save")
        wait_saved(page, 1)
        assert_boxes(rows(db_url, name), [(first, "roof", *screen.pixels(*roof))])

        # Resize by the bottom-right handle, draw a second box, label it, delete it, undo.
        resized = (roof[0], screen.at(0.6, 0.8))
        mouse_drag(page, roof[1], resized[1])
        window = (screen.at(0.7, 0.1), screen.at(0.9, 0.3))
        mouse_drag(page, *window)
        page.keyboard.press("1")
        page.keyboard.press("Delete")
        assert page.locator(".box").count() == 1
        page.keyboard.press("Control+z")
        assert page.locator(".box").count() == 2
        page.screenshot(path=str(shots / "label-1400x900.png"))
        page.keyboard.press("n")  # saves, then the next image
        wait_shown(page, 2)
        second = int(page.get_attribute("#photo", "data-image-id"))
        progress = page.inner_text("#progress-text")
        assert_boxes(
            rows(db_url, name),
            [(first, "roof", *screen.pixels(*resized)), (first, "window", *screen.pixels(*window))],
        )
        assert len(rows(db_url, name, replaced=True)) == 1

        # Back to the first image: its boxes come from the server; move one and save.
        page.keyboard.press("p")
        wait_shown(page, 3)
        assert page.locator(".box").count() == 2
        grab = screen.at(0.4, 0.55)
        mouse_drag(page, grab, screen.at(0.45, 0.6))
        page.click("#save")
        wait_saved(page, 3)
        moved = (screen.at(0.25, 0.35), screen.at(0.65, 0.85))
        final = page.inner_text("#progress-text")
    assert second != first
    assert progress.startswith("Image 2 of 4") and "2 boxes saved on 1 image" in progress, progress
    assert final.startswith("Image 1 of 4"), final
    assert_boxes(
        rows(db_url, name),
        [(first, "roof", *screen.pixels(*moved)), (first, "window", *screen.pixels(*window))],
    )
    assert len(rows(db_url, name, replaced=True)) == 3


def test_phone_draws_by_touch_fits_the_screen_and_saves(server, db_url, shots):
    name = "label-phone"
    rater = add_rater(db_url, name, base_url=server)
    with opened(server, f"{server}/label#token={rater.token}", 390, 844, touch=True) as page:
        wait_shown(page, 1)
        first = int(page.get_attribute("#photo", "data-image-id"))
        screen = Screen(page)
        drawn = (screen.at(0.15, 0.2), screen.at(0.55, 0.9))
        touch_drag(page, *drawn)
        page.tap("#labels button[data-label='ornament']")
        page.wait_for_function("() => window.labelState.boxes[0].label === 'ornament'", timeout=5_000)
        page.tap("#save")
        wait_saved(page, 1)
        page.screenshot(path=str(shots / "label-390x844.png"))
        footer = page.locator("#next").bounding_box()
        labels = page.locator("#labels").bounding_box()
    assert_boxes(rows(db_url, name), [(first, "ornament", *screen.pixels(*drawn))])
    assert screen.box["x"] >= 0 and screen.box["x"] + screen.box["width"] <= 390
    assert screen.box["width"] > 300  # the image as wide as the phone allows
    assert labels["y"] + labels["height"] <= screen.box["y"] and footer["y"] + footer["height"] <= 844


def test_a_revoked_link_shows_a_clear_message(server, db_url):
    rater = add_rater(db_url, "label-revoked", base_url=server)
    revoke_rater(db_url, "label-revoked")
    with opened(server, f"{server}/label#token={rater.token}", 1000, 700, refused=True) as page:
        page.wait_for_function("() => document.body.classList.contains('blocked')", timeout=30_000)
        text = page.inner_text("#message")
    assert "does not work" in text and "revoked" in text
