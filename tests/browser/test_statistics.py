"""A visitor reads the public statistics in Chromium, in English and in Chinese: every
figure is a drawing named for assistive technology with its table beside it, small
counts read "fewer than 10", axe-core finds no WCAG 2 A/AA violation, nothing is asked
of another host and no policy is violated (the ``page`` fixtures); a screenshot is kept."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.helpers import Live, assert_accessible, assert_cjk_drawn, page_lang, screenshot

FEWER = {"en": "fewer than 10", "zh-CN": "少于10"}


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_visitor_reads_the_statistics(page_in: object, live: Live, lang: str) -> None:
    assert callable(page_in)
    page: Page = page_in(lang)
    page.goto("/statistics")
    assert page_lang(page) == lang
    assert page.locator("h1").count() == 1
    figures = page.locator("main figure.chart")
    # Three kinds of subject, restriction and reward services over two periods, disputes.
    assert figures.count() == 3 + 2 * 2 + 1
    for i in range(figures.count()):
        figure = figures.nth(i)
        svg = figure.locator("svg[role=img]")
        assert svg.count() == 1
        title = svg.locator("title").text_content()
        assert title
        # Its accessible name is its title.
        assert page.get_by_role("img", name=title, exact=True).count() == 1
        assert figure.locator("table caption").inner_text() == title
        assert figure.locator("thead th[scope=col]").count() >= 2
        assert figure.locator("tbody th[scope=row]").count() >= 1
    # The live world has three people: every count of theirs is withheld.
    assert page.locator("main td.withheld").filter(has_text=FEWER[lang]).count() > 0
    assert_accessible(page)
    if lang == "zh-CN":
        assert_cjk_drawn(page, "main h1")
    screenshot(page, "statistics")
