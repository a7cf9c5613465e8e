"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) work with no network: every file they
load comes from the app, they show every operation of ``/openapi.json``, and they ask no
other host for anything (each page's context refuses and records any such request)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.browser.helpers import Live, assert_accessible, screenshot, watch

#: ReDoc's footer asks for its vendor's logo; /redoc's policy refuses it before any
#: request is made (docs/web.md), and Chromium says so on the console.
REDOC_LOGO = r"Loading the image 'https://cdn\.redoc\.ly/redoc/logo-mini\.svg' violates"
#: What axe-core finds in Swagger UI's own markup (vendored unchanged), which a stylesheet
#: cannot change: the rest of the page is held to every WCAG 2 A/AA rule (its colours
#: too, corrected by the app's docs.css).
SWAGGER_UI_OWN = {"nested-interactive": "each operation's summary: a button inside a button"}


def operations(live: Live) -> int:
    spec = httpx.get(live.url + "/openapi.json", timeout=30).json()
    return sum(len(path) for path in spec["paths"].values())


def test_swagger_ui_shows_every_operation_offline(page: Page, live: Live) -> None:
    page.goto("/docs")
    page.locator(".opblock").first.wait_for(timeout=60_000)
    assert page.locator(".opblock").count() == operations(live) > 0
    assert page.locator(".opblock-summary-path").first.inner_text().startswith("/")
    assert not watch(page).foreign  # and the fixture fails the test on any console error
    assert_accessible(page, known=SWAGGER_UI_OWN)
    screenshot(page, "docs")


def test_redoc_shows_every_operation_offline(page: Page, live: Live) -> None:
    watch(page).allow(REDOC_LOGO)
    page.goto("/redoc")
    page.locator("[id^='operation/']").first.wait_for(state="attached", timeout=60_000)
    shown = page.evaluate(
        "new Set([...document.querySelectorAll('[id^=\"operation/\"]')].map(e => e.id)).size"
    )
    assert shown == operations(live) > 0
    assert not watch(page).foreign
    assert_accessible(page)
    # Tens of thousands of pixels long: the first screen is enough.
    screenshot(page, "redoc", full_page=False)
