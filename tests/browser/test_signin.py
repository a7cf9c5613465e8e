"""A subject signs in with their key, sees their file, and is signed out at the next
navigation once an operator has revoked the key through the API; the sign-in page says
why, in the reader's language. In Chromium, in English and in Chinese: every page passes
axe-core's WCAG 2 A/AA rules, asks nothing of another host and breaks no policy (the
``page`` fixtures), and is kept as a screenshot."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.browser.helpers import (
    Live,
    assert_cjk_drawn,
    visit,
    watch,
)

WORDS = {
    "en": {
        "key": "Your key",
        "sign_in": "Sign in",
        "file": "Your file",
        "refused": "This key cannot sign you in.",
        "revoked": "the key you signed in with has been revoked",
        "sign_out": "Sign out",
        "signed_out": "You have signed out.",
    },
    "zh-CN": {
        "key": "您的密钥",
        "sign_in": "登录",
        "file": "我的档案",
        "refused": "此密钥无法让您登录",
        "revoked": "您登录所用的密钥已被吊销",
        "sign_out": "退出登录",
        "signed_out": "您已退出登录",
    },
}


def sign_in(page: Page, key: str, lang: str) -> None:
    w = WORDS[lang]
    page.get_by_label(w["key"]).fill(key)
    page.get_by_role("button", name=w["sign_in"], exact=True).click()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_revoked_key_signs_the_subject_out_at_the_next_navigation(
    page_in: Callable[[str], Page], live: Live, lang: str
) -> None:
    w = WORDS[lang]
    key = live.issue_subject_key(name=f"sign-in journey {lang}")
    page = page_in(lang)
    # Not signed in: the file sends the visitor to the sign-in page.
    page.goto("/me")
    page.wait_for_url("**/me/sign-in")
    assert page.locator("#key").get_attribute("type") == "password"
    visit(page, "sign-in", lang)
    if lang == "zh-CN":
        assert_cjk_drawn(page, "main h1")
    # A wrong key is refused (403), and the page says so without saying why.
    watch(page).allow(r"status of 403 .*/me/sign-in")
    sign_in(page, key[:-2], lang)
    assert w["refused"] in page.locator("#signin-problem").inner_text()
    assert page.locator("#key").get_attribute("aria-invalid") == "true"
    visit(page, "sign-in-refused", lang)
    # The right key: the file, with the score and the sign-out button.
    sign_in(page, key, lang)
    page.wait_for_url("**/me")
    assert page.locator("main h1").inner_text() == w["file"]
    assert page.get_by_role("button", name=w["sign_out"]).count() == 1
    visit(page, "me-file", lang)
    # No key in any address the browser went to.
    assert key not in page.url
    # The operator revokes the key through the API; the next navigation signs out.
    live.revoke(key)
    page.goto("/me")
    page.wait_for_url("**/me/sign-in?ended=revoked")
    assert w["revoked"] in page.locator("main [role=status]").inner_text()
    visit(page, "signed-out-revoked", lang)
    # The file stays closed: the session is over on the server.
    page.goto("/me")
    page.wait_for_url("**/me/sign-in**")


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_signing_out_with_the_button(page_in: Callable[[str], Page], live: Live, lang: str) -> None:
    w = WORDS[lang]
    key = live.issue_subject_key(name=f"sign-out journey {lang}")
    page = page_in(lang)
    page.goto("/me/sign-in")
    sign_in(page, key, lang)
    page.wait_for_url("**/me")
    page.get_by_role("button", name=w["sign_out"]).click()
    page.wait_for_url("**/me/sign-in?ended=signed_out")
    assert w["signed_out"] in page.locator("main [role=status]").inner_text()
    visit(page, "signed-out", lang)
    page.goto("/me")
    page.wait_for_url("**/me/sign-in")


def tab_to(page: Page, selector: str, most: int = 30) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    pytest.fail(f"{selector} was not reached with Tab on {page.url}")


def test_signing_in_and_out_with_the_keyboard_alone(
    page_in: Callable[[str], Page], live: Live
) -> None:
    key = live.issue_subject_key(name="keyboard journey")
    page = page_in("en")
    page.goto("/me/sign-in")
    tab_to(page, "#key")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url("**/me")
    tab_to(page, "form.signout button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/me/sign-in?ended=signed_out")
    assert WORDS["en"]["signed_out"] in page.locator("main [role=status]").inner_text()
