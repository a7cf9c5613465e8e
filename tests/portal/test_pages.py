"""The public pages (credence.portal): each page in both languages, the rulebook in force
and every edition as the JSON API publishes them, diffs, and the pages' security."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.api.security_headers import PORTAL_POLICY
from credence.rulebook import store
from credence.rulebook.loader import default_rulebook, default_text
from tests.client import Api
from tests.portal.page import Page

PAGES = ["/", "/rulebook", "/rulebook/editions", "/rulebook/editions/2026.5"]
LANGS = {"en": "en", "zh-CN": "zh-CN"}


def get(api: Api, path: str, **kw: Any) -> Any:
    return api.client.get(path, **kw)


def publish_second(sessions: sessionmaker[Session], api: Api) -> None:
    """Edition 2026.9: the default with a heavier penalty, in force from now."""
    text = default_text().replace('version = "2026.5"', 'version = "2026.9"', 1)
    text = text.replace("points = -120", "points = -150")
    with sessions.begin() as session:
        store.publish(session, text=text, at=api.clock.now() + timedelta(seconds=1))
    api.clock.advance(timedelta(seconds=1))


def test_each_page_in_each_language(api: Api) -> None:
    for path in PAGES:
        for lang in LANGS:
            response = get(api, path, params={"lang": lang})
            assert response.status_code == 200, (path, lang, response.text)
            assert response.headers["content-type"].startswith("text/html")
            page = Page.parse(response.text)
            assert page.lang == LANGS[lang], (path, lang)
            assert "main" in page.ids
            # The choice is remembered, for this site only and never sent from another.
            cookie = response.headers["set-cookie"]
            assert cookie.startswith(f"lang={lang};")
            assert "samesite=strict" in cookie.lower()
            assert "HttpOnly" in cookie


def test_language_from_cookie_then_accept_language_then_english(api: Api) -> None:
    assert Page.parse(get(api, "/").text).lang == "en"
    zh = {"Accept-Language": "fr;q=0.9, zh-CN;q=0.8, en;q=0.5"}
    assert Page.parse(get(api, "/", headers=zh).text).lang == "zh-CN"
    assert Page.parse(get(api, "/", headers={"Accept-Language": "zh-TW"}).text).lang == "en"
    api.client.get("/", params={"lang": "zh-CN"})
    # The test client keeps the cookie: the next page, without ?lang, is in Chinese.
    assert Page.parse(get(api, "/rulebook").text).lang == "zh-CN"
    api.client.cookies.clear()


def test_the_chinese_rulebook_page_shows_the_editions_chinese(api: Api) -> None:
    """Edition 2026.5 is written in Chinese too: its names, descriptions, reasons and
    terms are shown in Chinese on a Chinese page, and the tiers' generated texts."""
    book = default_rulebook()
    zh = get(api, "/rulebook", params={"lang": "zh-CN"}).text
    page = Page.parse(zh)
    assert f"{book.title_zh}" in page.text
    assert "规则内容暂仅提供英文" not in zh
    for rt in book.record_types:
        assert f"{rt.name_zh} {rt.code}" in page.words
        assert f"{rt.description_zh}" in page.text
        assert rt.name not in page.text
    for service in book.services:
        assert f"{service.name_zh}" in page.text
        for rule in service.rules:
            assert f"{rule.reason_zh}" in page.text
            assert rule.terms_zh is None or rule.terms_zh in page.text
    for category in book.categories_zh.values():
        assert category in page.text
    for tier in book.tiers:
        assert book.tier_description_zh(tier.code) in page.text
    # The interface is translated: the section headings are not in English.
    assert "Record types" not in page.text
    english = Page.parse(get(api, "/rulebook", params={"lang": "en"}).text).text
    assert book.record_types[0].name in english
    assert f"{book.record_types[0].name_zh}" not in english


def test_an_edition_without_chinese_is_shown_in_english_marked_as_such(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """An edition published before Chinese texts (no languages, no *_zh) still reads:
    on a Chinese page its words are English, each marked lang="en", with a note."""
    text = re.sub(r"^\w+_zh = .*\n", "", default_text(), flags=re.MULTILINE)
    text = re.sub(r"\[categories_zh\]\n(?:\w+ = .*\n)+", "", text)
    text = re.sub(r"^languages = .*\n", "", text, flags=re.MULTILINE)
    text = text.replace('version = "2026.5"', 'version = "2026.9"', 1)
    with sessions.begin() as session:
        store.publish(session, text=text, at=api.clock.now() + timedelta(seconds=1))
    api.clock.advance(timedelta(seconds=1))
    zh = get(api, "/rulebook", params={"lang": "zh-CN"}).text
    assert "规则内容暂仅提供英文" in zh
    assert "规则内容暂仅提供英文" not in get(api, "/rulebook", params={"lang": "en"}).text
    assert '<span lang="en">Judgment defaulter listing</span>' in zh
    assert '<span lang="en">Air travel</span>' in zh
    assert "失信被执行人名单" not in zh
    # The Chinese edition, still readable, is still shown in Chinese.
    old = get(api, "/rulebook/editions/2026.5", params={"lang": "zh-CN"}).text
    assert "失信被执行人名单" in old


def test_the_rulebook_page_shows_every_record_type_and_service_in_force(api: Api) -> None:
    published = api.get("/v1/rulebook").json()
    page = Page.parse(get(api, "/rulebook").text)
    book = published["rulebook"]
    assert published["version"] in page.text
    assert published["content_hash"] in page.text
    for rt in book["record_types"]:
        assert f"rt-{rt['code']}" in page.ids
        assert rt["name"] in page.text
        assert rt["description"] in page.text
    for service in book["services"]:
        assert f"svc-{service['code']}" in page.ids
        assert service["name"] in page.text
        for rule in service["rules"]:
            assert rule["reason"] in page.text
    for tier in book["tiers"]:
        assert tier["description"] in page.text


def test_weights_in_plain_words(api: Api) -> None:
    book = api.get("/v1/rulebook").json()["rulebook"]
    example = next(
        rt
        for rt in book["record_types"]
        if rt["half_life_days"] == 730 and rt["retention_days"] == 1825
    )
    response = get(api, "/rulebook")
    text = Page.parse(response.text).words
    assert "Loses half its weight every 2 years; stops counting after 5 years." in text
    points = f"{'+' if example['points'] > 0 else ''}{example['points']:g} points"
    assert points.replace("-", "−") in text or points in text
    zh = Page.parse(get(api, "/rulebook", params={"lang": "zh-CN"}).text).words
    assert "每 2 年权重减半" in zh


def test_a_new_edition_is_listed_and_its_diff_shows_the_change(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    publish_second(sessions, api)
    listed = Page.parse(get(api, "/rulebook/editions").text)
    versions = [u.rsplit("/", 1)[1] for u in listed.urls if u.startswith("/rulebook/editions/")]
    assert versions[:2] == ["2026.9", "2026.5"]  # newest first
    assert "/rulebook/diff?from=2026.5&to=2026.9" in listed.urls
    assert "2026.9" in Page.parse(get(api, "/rulebook").text).text
    diff = Page.parse(get(api, "/rulebook/diff", params={"from": "2026.5", "to": "2026.9"}).text)
    text = diff.words
    assert "points -120 -150" in text
    assert "version 2026.5 2026.9" in text
    old = Page.parse(get(api, "/rulebook/editions/2026.5").text).text
    assert "not in force" in old


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/rulebook/editions/1999.1", {}, 404, "No edition 1999.1 of the rulebook"),
        ("/rulebook/diff", {"from": "2026.5", "to": "1999.1"}, 404, "No edition 1999.1"),
        ("/rulebook/diff", {"from": "1999.2", "to": "2026.5"}, 404, "No edition 1999.2"),
        ("/rulebook/diff", {"from": "2026.5"}, 400, "Name two editions to compare"),
    ],
)
def test_unknown_versions_get_a_page_naming_the_problem(
    api: Api, path: str, params: dict[str, str], status: int, says: str
) -> None:
    response = get(api, path, params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert says in Page.parse(response.text).text
    assert response.headers["content-security-policy"] == PORTAL_POLICY


ALL = [
    ("/", {}),
    ("/rulebook", {}),
    ("/rulebook/editions", {}),
    ("/rulebook/editions/2026.5", {}),
    ("/rulebook/editions/2026.9", {}),
    ("/rulebook/diff", {"from": "2026.5", "to": "2026.9"}),
    ("/rulebook/diff", {"from": "2026.9", "to": "2026.5"}),
    ("/rulebook/editions/nope", {}),
    ("/rulebook/diff", {}),
]


def every_page(api: Api, sessions: sessionmaker[Session]) -> list[tuple[str, Any]]:
    publish_second(sessions, api)
    return [
        (f"{path} {params} {lang}", get(api, path, params={**params, "lang": lang}))
        for path, params in ALL
        for lang in LANGS
    ]


def test_every_page_is_strict_inline_free_and_stays_on_the_site(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """On every page, in both languages: the strict policy and the common headers; no
    inline script, style or handler; no URL to another host, none with a person's
    identifier or name; and every page or file linked exists."""
    people = [v for p in api.world.people for v in (p.public_id, p.identifier, p.name)]
    checked: set[str] = set()
    for name, response in every_page(api, sessions):
        policy = response.headers["content-security-policy"]
        assert policy == PORTAL_POLICY, name
        assert "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
        page = Page.parse(response.text)
        assert page.inline == [], name
        for url in page.urls:
            assert url.startswith(("/", "#", "?")), (name, url)
            assert not url.startswith("//"), (name, url)
            assert "://" not in url, (name, url)
            assert not any(str(who) in url for who in people), (name, url)
            # Every page and file linked exists (but the page itself in another
            # language, and the diff form's action, which without its fields is the page
            # asking for them).
            target = url.split("#")[0]
            itself = "lang=" in url or target in ("", "/docs", "/rulebook/diff")
            if url.startswith("/") and not itself and target not in checked:
                assert get(api, target).status_code == 200, (name, url)
                checked.add(target)
    assert "/assets/portal.css" in checked
    css = get(api, "/assets/portal.css")
    assert css.headers["content-type"].startswith("text/css")


def test_every_code_the_model_fixes_has_a_label() -> None:
    from credence.identifiers import SubjectKind
    from credence.portal.pages import LABELS, OUTAGE
    from credence.rulebook.model import (
        Category,
        EvidenceKind,
        OutageMode,
        Outcome,
        ServiceKind,
        Severity,
    )

    for enum in (Category, Severity, EvidenceKind, SubjectKind, ServiceKind, Outcome):
        assert {e.value for e in enum} <= set(LABELS), enum
    assert {e.value for e in OutageMode} == set(OUTAGE)


def test_what_a_visitor_types_is_shown_as_text(api: Api) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    for path, params in (
        (f"/rulebook/editions/{hostile}", {}),
        ("/rulebook/diff", {"from": hostile, "to": "2026.5"}),
        ("/rulebook/diff", {"from": "2026.5", "to": "2026.5", "x": hostile}),
        ("/", {"lang": hostile}),
    ):
        response = get(api, path, params=params)
        assert response.status_code in (200, 404), path
        page = Page.parse(response.text)
        assert page.inline == [], (path, params)
        assert all(not u.startswith("x") for u in page.urls)
