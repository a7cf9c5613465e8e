"""A subject signs in, reads their file, disputes a record and sees it pending with its
deadline, in Chromium, in English and in Chinese: every page of the file passes
axe-core's WCAG 2 A/AA rules, asks nothing of another host and breaks no policy (the
``page`` fixtures), and is kept as a screenshot in both languages."""

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
        "sign_in": "Sign in",
        "records": "Records",
        "dispute": "Send the dispute",
        "sent": "Your dispute was sent.",
        "open": "Open: awaiting the source's answer",
        "due": "Answer due by",
        "activity": "Who looked, notifications, your requests",
        "print": "Printable file",
        "score": "Score",
    },
    "zh-CN": {
        "sign_in": "登录",
        "records": "记录",
        "dispute": "提交异议",
        "sent": "您的异议已提交",
        "open": "处理中：等待数据来源答复",
        "due": "答复期限",
        "activity": "查阅记录、通知和您的申请",
        "print": "可打印档案",
        "score": "信用分",
    },
}


def journey(page: Page, key: str, lang: str, record: str | None) -> None:
    """Sign in with ``key``, read the file, dispute ``record`` (else the first listed)."""
    w = WORDS[lang]
    page.goto("/me/score")  # not signed in: the sign-in page
    assert page.url.endswith("/me/sign-in")
    page.get_by_label({"en": "Your key", "zh-CN": "您的密钥"}[lang]).fill(key)
    page.locator("form.signin button[type=submit]").click()
    page.wait_for_url("**/me")
    # The score over time: a drawing named for assistive technology, with its table.
    page.locator('main a[href="/me/score"]').click()
    page.wait_for_url("**/me/score")
    assert page.locator("figure.chart svg[role=img]").count() == 1
    assert page.locator("figure.chart tbody tr").count() >= 2
    visit(page, "me-score", lang)
    if lang == "zh-CN":
        assert_cjk_drawn(page, "main h1")
    # Every record; open the one to dispute.
    page.locator("nav.me-nav").get_by_role("link", name=w["records"], exact=True).click()
    page.wait_for_url("**/me/records")
    visit(page, "me-records", lang)
    links = page.locator("table.records tbody a")
    (links.first if record is None else page.locator(f'a[href="/me/records/{record}"]')).click()
    page.wait_for_url("**/me/records/rec_*")
    assert "rec_" in page.url
    visit(page, "me-record", lang)
    # Dispute it; it is shown pending, with the date its source must answer by.
    page.locator("#reason").fill("I repaid this loan in full before it was registered.")
    page.get_by_role("button", name=w["dispute"]).click()
    page.wait_for_url("**/me/records/rec_*?done=dispute*")
    assert w["sent"] in page.locator("#outcome").inner_text()
    dispute = page.locator("article.dispute").first
    assert dispute.locator(".dispute-status").inner_text() == w["open"]
    assert dispute.locator(".deadline").inner_text().strip()
    assert w["due"] in dispute.inner_text()
    assert page.locator("#reason").count() == 0  # no second dispute while one is open
    visit(page, "me-record-disputed", lang)
    # Who looked, the notifications (the dispute's), the requests; the printable file.
    page.locator("nav.me-nav").get_by_role("link", name=w["activity"], exact=True).click()
    page.wait_for_url("**/me/activity")
    assert page.locator("table.disputes tbody tr").count() >= 1
    visit(page, "me-activity", lang)
    page.locator("nav.me-nav").get_by_role("link", name=w["print"], exact=True).click()
    page.wait_for_url("**/me/print")
    visit(page, "me-print", lang)
    # A record that is not on the file: a page saying so, in the reader's language.
    watch(page).allow(r"status of 404 .*rec_not_on_this_file")
    page.goto("/me/records/rec_not_on_this_file")
    assert page.locator("p.problem").count() == 1
    visit(page, "me-not-found", lang)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_subject_reads_the_file_and_disputes_a_record(
    page_in: Callable[[str], Page], live: Live, lang: str
) -> None:
    if lang == "en":
        key = live.subject_key
        record = live.records["own"]
    else:
        # Another person of the live world (with a loan default), under a key of their own.
        person = live.other_subjects[1]
        key = live.issue_subject_key(person, name="journey-zh")
        record = None
    page = page_in(lang)
    journey(page, key, lang, record)
    if record is not None:
        # The English journey disputed the live subject's recent default: the API says so.
        disputes = live.api("GET", "/v1/disputes", key=key, params={"status": "all"}).json()
        assert [d["status"] for d in disputes if d["record_id"] == record] == ["open"]
