"""The browser fixtures do what the journeys rely on: a page may ask nothing of another
host (refused and recorded), console errors are caught, axe-core runs inside a page under
the portal's policy, and Chinese is drawn with a CJK font."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests.browser.helpers import (
    Live,
    assert_accessible,
    assert_cjk_drawn,
    fonts_drawing,
    screenshot,
    watch,
)


def test_a_request_to_another_host_is_refused_and_recorded(page: Page) -> None:
    w = watch(page)
    with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
        page.goto("http://example.invalid/")
    assert w.foreign == ["http://example.invalid/"]
    assert w.problems() == ["asked another host: http://example.invalid/"]
    w.foreign.clear()  # expected here; it would fail the test at teardown


def test_a_policy_violation_is_caught(page: Page) -> None:
    page.goto("/")
    w = watch(page)
    # The portal's policy refuses it before any request is made (connect-src 'self').
    page.evaluate("fetch('http://example.invalid/x').catch(() => null)")
    page.wait_for_function("true")
    assert not w.foreign
    assert any("Content Security Policy" in m for m in w.console), w.console
    w.console.clear()  # expected here; it would fail the test at teardown


def test_the_live_world_is_served(live: Live) -> None:
    me = live.api("GET", "/v1/me", key=live.subject_key)
    assert me.status_code == 200, me.text
    assert live.subject_id in me.text
    key = live.issue_subject_key()
    assert live.api("GET", "/v1/me", key=key).status_code == 200
    live.revoke(key)
    assert live.api("GET", "/v1/me", key=key).status_code == 401
    latest = live.api("GET", "/v1/log/checkpoint")
    assert latest.status_code == 200, latest.text


def test_axe_runs_under_the_portal_policy_and_reports_violations(page: Page) -> None:
    page.goto("/")
    assert_accessible(page)
    # An image without a text alternative, added after load: axe names it.
    page.evaluate(
        "document.querySelector('main').append(Object.assign(document.createElement('img'),"
        " {src: 'data:image/gif;base64,R0lGODlhAQABAAAAACw=', width: 10, height: 10}))"
    )
    with pytest.raises(pytest.fail.Exception, match="image-alt"):
        assert_accessible(page)


def test_chinese_is_drawn_with_a_cjk_font(page_in: Callable[[str], Page]) -> None:
    page = page_in("zh-CN")
    page.goto("/")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert_cjk_drawn(page, "h1")
    path = screenshot(page, "home")
    assert path.parts[-2:] == ("zh-CN", "home.png")
    assert path.stat().st_size > 0
    # The English page's heading needs no CJK font at all.
    english = page_in("en")
    english.goto("/")
    assert not any("CJK" in f for f in fonts_drawing(english, "h1"))
