"""Signing in to the portal (credence.portal.signin, credence.portal.session): a subject
key signs in, the session lives server-side (only its token's hash stored), ends at once
when its key is revoked or expires, and on sign-out; cookies, CSRF, the sign-in limits,
and nothing personal in a URL or a log line. On SQLite and PostgreSQL (the ``api``
fixture)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.access.sessions import PortalSession
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from tests.client import Api
from tests.logscan import PersonalDataGuard
from tests.logscan import personal_data_guard as personal_data_guard
from tests.portal.page import Page
from tests.world import World, build_world, rec, submit

NAMES = ["Zhang Weiqiang", "Li Xiaohong", "Wang Jianguo"]
REFUSED = "This key cannot sign you in."
REVOKED = "the key you signed in with has been revoked"
REVOKED_ZH = "您登录所用的密钥已被吊销"
EXPIRED = "the key you signed in with has expired"


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    """The small world with names worth looking for in logs, and a record on the
    subject's file (so that the score is not just the base)."""
    world = build_world(sessions, clock, names=NAMES)
    happened = clock.now() - timedelta(days=30)
    statuses = submit(
        sessions,
        world,
        "court",
        clock.now() - timedelta(days=1),
        rec(
            "c-1",
            world.people[0],
            "judgment_default",
            happened,
            decision_ref="(2026) Jing 01 Zhi 1",
        ),
    )
    assert statuses == ["created"], statuses
    return world


# --- helpers -----------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    found = re.search(r'<input type="hidden" name="csrf" value="([^"]*)">', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, key: str, **kw: Any) -> Any:
    """GET the sign-in page, then post ``key`` with the page's CSRF token."""
    page = client.get("/me/sign-in", **kw)
    assert page.status_code == 200, page.text
    return client.post(
        "/me/sign-in",
        data={"csrf": csrf_of(page.text), "key": key},
        follow_redirects=False,
    )


def signed_in(api: Api, role: str = "subject") -> str:
    """Sign in as ``role``; returns the session cookie's token."""
    response = sign_in(api.client, api.keys[role])
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/me"
    token = response.cookies.get("credence_session")
    assert token
    return str(token)


def rows(sessions: sessionmaker[Session]) -> list[PortalSession]:
    with sessions() as session:
        found = list(session.scalars(select(PortalSession).order_by(PortalSession.id)))
        session.expunge_all()
        return found


def cookie_header(response: Any, name: str) -> str:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(f"{name}="):
            return str(value)
    raise AssertionError(f"no Set-Cookie for {name}")


def set_cookie(client: TestClient, name: str, value: str) -> None:
    """Replace ``name`` in the client's jar (as a browser would hold it)."""
    client.cookies.delete(name)
    client.cookies.set(name, value, domain="testserver.local")


def client_with(api: Api, **settings: Any) -> TestClient:
    """Another application on the same store and clock, with ``settings`` changed."""
    ctx: Context = api.client.app.state.ctx  # type: ignore[attr-defined]
    changed = Context(
        settings=ctx.settings.model_copy(update=settings),
        engine=ctx.engine,
        sessions=ctx.sessions,
        clock=ctx.clock,
    )
    return TestClient(create_app(changed), raise_server_exceptions=False)


# --- signing in ----------------------------------------------------------------------------


def test_a_subject_key_signs_in_and_the_file_shows_the_apis_score(api: Api) -> None:
    # Not signed in: /me sends the visitor to the sign-in page.
    first = api.client.get("/me", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/me/sign-in"
    signed_in(api)
    page = api.client.get("/me")
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    score = api.get(f"/v1/subjects/{api.world.people[0].public_id}/score", "subject").json()
    words = Page.parse(page.text).words
    assert f"Score {score['total']:,.0f}" in words
    assert f"Tier {score['tier']}" in words
    assert "Judicial" in words
    # The sign-out button is a POST form with its CSRF token.
    assert 'action="/me/sign-out"' in page.text
    assert csrf_of(page.text)
    # The sign-in page, signed in, leads to the file.
    again = api.client.get("/me/sign-in", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/me"


@pytest.mark.parametrize("who", ["wrong", "operator", "airline", "revoked", "empty"])
def test_a_refused_sign_in_says_the_same_whatever_was_wrong(
    api: Api, sessions: sessionmaker[Session], who: str
) -> None:
    key = {"wrong": "cr_sub_" + "x" * 43, "empty": "   "}.get(who) or api.keys.get(who, "")
    if who == "revoked":
        key = api.keys["other"]
        done = api.call("POST", f"/v1/keys/{key[:12]}/revocation", "operator")
        assert done.status_code == 200, done.text
    response = sign_in(api.client, key)
    assert response.status_code == (400 if who == "empty" else 403)
    words = Page.parse(response.text).words
    if who == "empty":
        assert "Type your key to sign in." in words
    else:
        assert REFUSED in words
        assert "revoked at" not in words
        assert "unknown" not in words.lower()
    assert "credence_session" not in response.headers.get("set-cookie", "")
    assert rows(sessions) == []
    assert api.client.get("/me", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_secure_only_by_the_setting(
    api: Api,
) -> None:
    response = sign_in(api.client, api.keys["subject"])
    cookie = cookie_header(response, "credence_session")
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie
    assert "secure" not in cookie.lower()
    # The sign-in form's own cookie has the same attributes.
    form_cookie = cookie_header(TestClient(api.client.app).get("/me/sign-in"), "credence_form")
    assert "HttpOnly" in form_cookie
    assert "samesite=strict" in form_cookie.lower()

    secure = client_with(api, cookie_secure=True)
    page = secure.get("/me/sign-in")
    assert "; secure" in cookie_header(page, "credence_form").lower()
    # The test client sends a Secure cookie over plain HTTP only when told: set it.
    set_cookie(secure, "credence_form", page.cookies["credence_form"])
    response = secure.post(
        "/me/sign-in",
        data={"csrf": csrf_of(page.text), "key": api.keys["subject"]},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert "; secure" in cookie_header(response, "credence_session").lower()


def test_only_the_tokens_hash_is_stored(api: Api, sessions: sessionmaker[Session]) -> None:
    token = signed_in(api)
    (row,) = rows(sessions)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(vars(row))
    assert row.ended_at is None
    assert row.expires_at == api.clock.now() + timedelta(hours=12)


def test_signing_in_starts_a_new_session_whatever_cookie_came_with_it(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    # A token planted before the sign-in is not the session's.
    set_cookie(api.client, "credence_session", "planted-by-someone-else")
    token = signed_in(api)
    assert token != "planted-by-someone-else"
    # Signing in again replaces the session: the first one ends.
    again = signed_in(api)
    assert again != token
    first, second = rows(sessions)
    assert first.ended_why == "signed_out"
    assert second.ended_at is None
    set_cookie(api.client, "credence_session", token)
    assert api.client.get("/me", follow_redirects=False).status_code == 303


# --- the end of a session -------------------------------------------------------------------


def test_revoking_the_key_ends_the_session_on_the_next_request(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    signed_in(api)
    assert api.client.get("/me").status_code == 200
    prefix = api.keys["subject"][:12]
    done = api.call("POST", f"/v1/keys/{prefix}/revocation", "operator")
    assert done.status_code == 200, done.text
    # No time passes: the very next request is refused.
    response = api.client.get("/me", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/me/sign-in?ended=revoked"
    assert 'credence_session=""' in cookie_header(response, "credence_session")
    (row,) = rows(sessions)
    assert row.ended_why == "revoked"
    assert row.ended_at == api.clock.now()
    page = api.client.get(response.headers["location"])
    assert REVOKED in Page.parse(page.text).words
    # In the reader's language.
    zh = api.client.get("/me/sign-in?ended=revoked", headers={"Accept-Language": "zh-CN"})
    assert REVOKED_ZH in Page.parse(zh.text).words


def test_a_revoked_sessions_old_cookie_says_why_when_it_comes_back(api: Api) -> None:
    token = signed_in(api)
    api.call("POST", f"/v1/keys/{api.keys['subject'][:12]}/revocation", "operator")
    api.client.get("/me", follow_redirects=False)
    # Another tab still holds the cookie: it is told the same.
    set_cookie(api.client, "credence_session", token)
    response = api.client.get("/me", follow_redirects=False)
    assert response.headers["location"] == "/me/sign-in?ended=revoked"


def test_an_expiring_key_ends_the_session(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        principal = create_principal(
            session,
            role=Role.SUBJECT,
            name="short-lived",
            subject_id=api.world.people[1].id,
            clock=clock,
        )
        key = issue_key(
            session,
            principal=principal,
            clock=clock,
            expires_at=clock.now() + timedelta(minutes=10),
        )
    assert sign_in(api.client, key).status_code == 303
    assert api.client.get("/me").status_code == 200
    clock.advance(timedelta(minutes=10))
    response = api.client.get("/me", follow_redirects=False)
    assert response.headers["location"] == "/me/sign-in?ended=key_expired"
    page = api.client.get(response.headers["location"])
    assert EXPIRED in Page.parse(page.text).words
    assert rows(sessions)[0].ended_why == "key_expired"


def test_an_idle_session_ends_and_an_active_one_ends_at_its_limit(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    signed_in(api)
    clock.advance(timedelta(minutes=29))
    assert api.client.get("/me").status_code == 200
    clock.advance(timedelta(minutes=30))
    response = api.client.get("/me", follow_redirects=False)
    assert response.headers["location"] == "/me/sign-in?ended=idle"

    signed_in(api)
    for _ in range(12 * 3 - 1):
        clock.advance(timedelta(minutes=20))
        assert api.client.get("/me", follow_redirects=False).status_code == 200
    clock.advance(timedelta(minutes=20))
    response = api.client.get("/me", follow_redirects=False)
    assert response.headers["location"] == "/me/sign-in?ended=expired"
    assert [r.ended_why for r in rows(sessions)] == ["idle", "expired"]


def test_signing_out_ends_the_session_on_the_server(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    token = signed_in(api)
    page = api.client.get("/me")
    response = api.client.post(
        "/me/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/me/sign-in?ended=signed_out"
    shown = api.client.get(response.headers["location"])
    assert "You have signed out." in Page.parse(shown.text).words
    (row,) = rows(sessions)
    assert row.ended_why == "signed_out"
    # The token is worth nothing any more, even sent again.
    set_cookie(api.client, "credence_session", token)
    assert api.client.get("/me", follow_redirects=False).status_code == 303


# --- CSRF ------------------------------------------------------------------------------------


def test_sign_out_without_the_right_csrf_token_is_refused_and_changes_nothing(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    signed_in(api)
    for data in ({"other": "1"}, {"csrf": ""}, {"csrf": "0" * 64}):
        response = api.client.post("/me/sign-out", data=data, follow_redirects=False)
        assert response.status_code == 403, data
        assert "The form was refused" in Page.parse(response.text).words
        assert rows(sessions)[0].ended_at is None
        assert api.client.get("/me").status_code == 200
    # A body that is no form at all is refused too (400), and changes nothing either.
    response = api.client.post(
        "/me/sign-out", content=b"csrf=", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert rows(sessions)[0].ended_at is None


def test_another_sessions_csrf_token_is_refused(api: Api, sessions: sessionmaker[Session]) -> None:
    other = TestClient(api.client.app)
    assert sign_in(other, api.keys["other"]).status_code == 303
    others_token = csrf_of(other.get("/me").text)
    signed_in(api)
    response = api.client.post("/me/sign-out", data={"csrf": others_token})
    assert response.status_code == 403
    assert [r.ended_at for r in rows(sessions)] == [None, None]


def test_sign_in_without_the_forms_csrf_token_is_refused(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    api.client.get("/me/sign-in")
    for data in ({"key": api.keys["subject"]}, {"key": api.keys["subject"], "csrf": "x"}):
        response = api.client.post("/me/sign-in", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "credence_session" not in response.headers.get("set-cookie", "")
    # Without the form's cookie, even the page's token is refused.
    token = csrf_of(api.client.get("/me/sign-in").text)
    api.client.cookies.clear()
    response = api.client.post(
        "/me/sign-in", data={"key": api.keys["subject"], "csrf": token}, follow_redirects=False
    )
    assert response.status_code == 403
    assert rows(sessions) == []


# --- the limits --------------------------------------------------------------------------------


def test_too_many_refused_sign_ins_get_429_saying_when(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    for _ in range(10):
        assert sign_in(api.client, "cr_sub_guess").status_code == 403
    response = sign_in(api.client, api.keys["subject"])
    assert response.status_code == 429
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 60
    words = Page.parse(response.text).words
    assert f"Too many sign-in attempts. Try again in {seconds} seconds, after" in words
    assert rows(sessions) == []
    # A sign-in with nothing typed is not a guess: it is not counted.
    fresh = client_with(api, sign_in_limit=1)
    for _ in range(3):
        assert sign_in(fresh, "").status_code == 400
    assert sign_in(fresh, api.keys["subject"]).status_code == 303


def test_the_overall_limit_counts_every_address(api: Api) -> None:
    limited = client_with(api, sign_in_limit=0, sign_in_limit_overall=3)
    for n in range(3):
        client = TestClient(limited.app, client=(f"10.0.0.{n}", 1234))
        assert sign_in(client, "cr_sub_guess").status_code == 403
    another = TestClient(limited.app, client=("10.0.0.9", 1234))
    assert sign_in(another, api.keys["subject"]).status_code == 429


# --- nothing personal where it does not belong -------------------------------------------------


@pytest.fixture
def watched(personal_data_guard: PersonalDataGuard, api: Api) -> PersonalDataGuard:
    return personal_data_guard


def test_no_key_identifier_or_name_in_a_url_or_a_log_line(
    api: Api, watched: PersonalDataGuard
) -> None:
    person = api.world.people[0]
    key = api.keys["subject"]
    mistyped = key[:-1] + ("A" if key[-1] != "A" else "B")
    watched.protect(key, mistyped, person.identifier, person.name)
    seen: list[str] = []

    def follow(response: Any) -> Any:
        for step in [*response.history, response]:
            seen.append(str(step.url))
            seen.extend(
                Page.parse(step.text).urls if "html" in step.headers.get("content-type", "") else []
            )
            if "location" in step.headers:
                seen.append(step.headers["location"])
        return response

    follow(api.client.get("/me"))
    follow(sign_in(api.client, mistyped))
    follow(api.client.post("/me/sign-in", data={"key": key}))
    response = sign_in(api.client, key)
    seen.append(response.headers["location"])
    # The session's token is as secret as the key: it is in no log either.
    token = str(response.cookies["credence_session"])
    watched.protect(token)
    follow(api.client.get("/me"))
    follow(api.client.get("/me", params={"lang": "zh-CN"}))
    api.call("POST", f"/v1/keys/{key[:12]}/revocation", "operator")
    follow(api.client.get("/me"))
    assert seen
    for url in seen:
        for secret in (key, token, person.identifier, person.name, person.public_id):
            assert secret not in url, url


def test_the_file_page_is_logged_as_the_subjects_own_read(api: Api) -> None:
    signed_in(api)
    api.client.get("/me")
    file = api.get(f"/v1/subjects/{api.world.people[0].public_id}/file", "subject").json()
    assert any("portal" in entry.get("what", "") for entry in file["accessed_by"]), file[
        "accessed_by"
    ]


def test_the_sign_in_and_file_pages_in_chinese(api: Api) -> None:
    page = api.client.get("/me/sign-in", params={"lang": "zh-CN"})
    parsed = Page.parse(page.text)
    assert parsed.lang == "zh-CN"
    assert "登录" in parsed.words
    signed_in(api)
    mine = Page.parse(api.client.get("/me").text)
    assert "我的档案" in mine.words
    assert "Your file" not in mine.words
    assert not mine.inline


def test_no_session_row_is_written_by_reading_pages(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    for path in ("/", "/rulebook", "/me/sign-in", "/me"):
        api.client.get(path)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PortalSession)) == 0
