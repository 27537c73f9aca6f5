"""/rate in headless Chromium: open the personal link, choose by click and keyboard, skip, undo.

Screenshots at a laptop and a phone size are written to $STREETAUDIT_SCREENSHOTS (or the
test's tmp folder) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def server(db_url: str, reader_db_url: str, pg_cluster, tmp_path_factory) -> Iterator[str]:
    patch = pytest.MonkeyPatch()
    patch.setenv("STREETAUDIT_API_RATER_DATABASE_URL", pg_cluster.rater_url(db_url.rsplit("/", 1)[1]))
    seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 10)
    set_campaign(db_url, repeat_share=0.0, target=20)
    with serving(create_app(reader_db_url, ApiSettings(ogc=False)), startup_s=30) as base:
        yield base
    patch.undo()


def choices(db_url: str, name: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT c.left_image, c.right_image, c.choice, c.undone_at IS NOT NULL, c.client->>'input'
               FROM streetaudit.comparison AS c JOIN streetaudit.rater AS r ON r.id = c.rater_id
               WHERE r.name = %s ORDER BY c.id""",
            (name,),
        ).fetchall()


def shown(page: Page) -> tuple[int, int]:
    return (
        int(page.get_attribute("#left-img", "data-image-id")),
        int(page.get_attribute("#right-img", "data-image-id")),
    )


def wait_for_pair(page: Page, count: int) -> None:
    page.wait_for_function(
        f"""() => window.rateState && window.rateState.shown >= {count} && !window.rateState.busy
                 && document.querySelector('#left-img').complete && document.querySelector('#left-img').naturalWidth > 0
                 && window.rateState.next !== null""",
        timeout=30_000,
    )


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_rater_chooses_by_click_and_keyboard_skips_and_undoes(server, db_url, shots, width, height):
    name = f"browser-{width}"
    rater = add_rater(db_url, name, base_url=server)
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: None if r.url.startswith((server, "data:", "blob:")) else foreign.append(r.url),
        )
        page.goto(rater.link)
        wait_for_pair(page, 1)
        page.screenshot(path=str(shots / f"rate-{width}x{height}.png"))
        left_box = page.locator("#left").bounding_box()
        right_box = page.locator("#right").bounding_box()
        first = shown(page)
        page.click("#left")
        wait_for_pair(page, 2)
        second = shown(page)
        page.keyboard.press("ArrowRight")
        wait_for_pair(page, 3)
        third = shown(page)
        page.keyboard.press(" ")
        wait_for_pair(page, 4)
        page.click("#undo")
        page.wait_for_function("() => document.querySelector('#message').textContent.includes('undone')")
        wait_for_pair(page, 5)
        assert shown(page) == third  # the skipped pair is back
        page.keyboard.press("ArrowLeft")
        wait_for_pair(page, 6)
        progress = page.inner_text("#progress-text")
        page.screenshot(path=str(shots / f"rate-{width}x{height}-after.png"))
        browser.close()
    assert not errors, errors
    assert not foreign, foreign
    rows = choices(db_url, name)
    assert rows == [
        (*first, "left", False, "pointer"),
        (*second, "right", False, "keyboard"),
        (*third, "skip", True, "keyboard"),
        (*third, "left", False, "keyboard"),
    ]
    assert progress.startswith("3 / 20")
    if width > 700:
        assert left_box["x"] + left_box["width"] <= right_box["x"]  # side by side
    else:
        assert left_box["y"] + left_box["height"] <= right_box["y"]  # stacked
        assert right_box["y"] + right_box["height"] <= height  # both on screen
    assert left_box["height"] > 150 and right_box["height"] > 150


def test_a_revoked_link_shows_a_clear_message(server, db_url):
    rater = add_rater(db_url, "browser-revoked", base_url=server)
    revoke_rater(db_url, "browser-revoked")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(rater.link)
        page.wait_for_function("() => document.body.classList.contains('blocked')", timeout=30_000)
        text = page.inner_text("#message")
        browser.close()
    assert "does not work" in text and "revoked" in text
