"""A visitor reads the rulebook in Chromium: home, the rulebook in force, every edition,
one edition, what changed between two, by clicking links, in English and in Chinese
(chosen with the language switch); then the same with the keyboard alone. Every page:
axe-core finds no WCAG 2 A/AA violation, nothing is asked of another host, no console
error or policy violation (the ``page`` fixtures), Chinese is drawn with a CJK font, and
a screenshot is kept."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.helpers import (
    Live,
    assert_accessible,
    assert_cjk_drawn,
    page_lang,
    screenshot,
    watch,
)

LANGS = ("en", "zh-CN")


def checked(page: Page, lang: str, name: str, *, full_page: bool = True) -> None:
    """What every page of the journey must be: in ``lang``, accessible, drawn, kept."""
    assert page_lang(page) == lang, (page.url, page_lang(page))
    assert page.locator("h1").count() == 1, page.url
    assert_accessible(page)
    if lang == "zh-CN":
        # The site's navigation is always interface text, so always Chinese here.
        assert_cjk_drawn(page, "header.site nav")
    screenshot(page, name, full_page=full_page)


@pytest.mark.parametrize("lang", LANGS)
def test_a_visitor_reads_the_rulebook_by_clicking(page: Page, live: Live, lang: str) -> None:
    first, in_force = live.editions[0], live.editions[-1]
    page.goto("/")
    assert page_lang(page) == "en"  # the browser asks for English
    if lang != "en":
        # The language switch; the choice is remembered for the next pages.
        page.locator(f"nav.languages a[hreflang='{lang}']").click()
        page.wait_for_url("**/?lang=*")
    checked(page, lang, "home")

    page.locator("main a[href='/rulebook']").click()
    page.wait_for_url("**/rulebook")
    assert in_force in page.locator("main p.edition").inner_text()
    checked(page, lang, "rulebook")

    page.locator("header.site a[href='/rulebook/editions']").click()
    page.wait_for_url("**/rulebook/editions")
    versions = page.locator("main tbody th[scope=row] a").all_inner_texts()
    assert versions == list(reversed(live.editions))  # newest first
    checked(page, lang, "editions")

    page.locator(f"main tbody a[href='/rulebook/editions/{first}']").click()
    page.wait_for_url(f"**/rulebook/editions/{first}")
    assert first in page.locator("main p.edition").inner_text()
    # Laid out as the rulebook, whose whole page is kept: the first screen is enough.
    checked(page, lang, "edition", full_page=False)

    page.go_back()
    page.wait_for_url("**/rulebook/editions")
    page.locator(f"main tbody a[href^='/rulebook/diff?from={first}&to={in_force}']").click()
    page.wait_for_url("**/rulebook/diff?*")
    changes = page.locator("main ul.changes > li")
    assert changes.count() >= 2  # the version and the heavier penalty
    assert page.locator("main ul.changes td").filter(has_text=in_force).count() == 1
    checked(page, lang, "diff")


# --- the keyboard alone ------------------------------------------------------------------

FOCUSED = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    const all = [...document.querySelectorAll('*')];
    return {
        tag: el.tagName.toLowerCase(),
        id: el.id,
        href: el.getAttribute('href'),
        text: (el.innerText || el.value || '').trim().slice(0, 40),
        index: all.indexOf(el),
        outline: style.outlineStyle === 'none' ? 0 : parseFloat(style.outlineWidth),
        visible: box.width > 0 && box.height > 0 && box.bottom > 0 && box.right > 0
            && box.top < innerHeight && box.left < innerWidth,
    };
}"""


def focused(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(FOCUSED)
    return result


def tab_to(page: Page, selector: str, *, limit: int = 60) -> list[dict[str, Any]]:
    """Press Tab until the element matching ``selector`` has the focus; every element
    on the way must show the focus (an outline of 2 px or more, on screen), and the
    focus must move forward through the page (document order) without skipping back."""
    seen: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        assert now["tag"] != "body", f"the focus left the page after {seen}"
        assert now["visible"], f"focused but not on screen: {now}"
        assert now["outline"] >= 2, f"the focus is not visible on {now}"
        if seen:
            assert now["index"] > seen[-1]["index"], f"the focus went back: {seen[-1]} -> {now}"
        seen.append(now)
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return seen
    raise AssertionError(f"{selector} not reached with {limit} Tabs: {seen}")


def enter(page: Page, path: str) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url(f"**{path}")


@pytest.mark.parametrize("lang", LANGS)
def test_the_same_journey_with_the_keyboard_alone(page: Page, live: Live, lang: str) -> None:
    first, in_force = live.editions[0], live.editions[-1]
    page.goto(f"/?lang={lang}")

    # The first Tab reaches the skip link, shown on screen; Enter moves the focus to
    # the content, and the next Tab to the content's first link.
    path = tab_to(page, "a.skip", limit=1)
    assert path[0]["href"] == "#main"
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"
    assert focused(page)["outline"] >= 2
    on_the_way = tab_to(page, "main a[href='/rulebook']")
    assert len(on_the_way) == 1, on_the_way
    enter(page, "/rulebook")
    assert page_lang(page) == lang

    # From the top of the rulebook: the skip link, the brand, the navigation.
    hrefs = [f["href"] for f in tab_to(page, "header.site a[href='/rulebook/editions']")]
    assert hrefs[:3] == ["#main", "/", "/"]
    assert "/rulebook" in hrefs
    enter(page, "/rulebook/editions")

    # To the comparison form, whose choices default to the last two editions.
    on_the_way = tab_to(page, "form.compare button")
    assert [f["tag"] for f in on_the_way[-3:]] == ["select", "select", "button"]
    enter(page, f"/rulebook/diff?from={first}&to={in_force}")
    assert page.locator("main ul.changes > li").count() >= 2

    # The diff's own links lead on to an edition.
    tab_to(page, "a.skip", limit=1)
    page.keyboard.press("Enter")
    tab_to(page, f"main a[href='/rulebook/editions/{first}']")
    enter(page, f"/rulebook/editions/{first}")
    assert first in page.locator("main p.edition").inner_text()


@pytest.mark.parametrize("lang", LANGS)
def test_the_error_pages_are_accessible_too(page: Page, lang: str) -> None:
    # The browser reports the status of the page itself on the console: expected here.
    watch(page).allow(r"status of 40[04]")
    missing = page.goto(f"/rulebook/editions/1999.1?lang={lang}")
    assert missing is not None
    assert missing.status == 404
    assert "1999.1" in page.locator("main").inner_text()
    checked(page, lang, "edition-not-found")
    incomplete = page.goto("/rulebook/diff?from=1999.1")
    assert incomplete is not None
    assert incomplete.status == 400
    checked(page, lang, "diff-incomplete")
