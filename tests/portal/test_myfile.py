"""A subject's own file in the portal (/me/...): each part shows the figures the API
gives for a built world; the actions reach the services the API calls, refuse what the
API refuses and store nothing when refused; another subject's record is a 404; what a
subject types comes back as text; no page has anything inline."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from babel.numbers import format_decimal
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.portal.i18n import date_time
from credence.rulebook.model import Rulebook
from credence.wording import render
from tests.client import Api
from tests.portal.page import Page
from tests.world import World, build_world, rec, submit

T = timedelta
PAGES = ["/me/score", "/me/records", "/me/activity", "/me/print"]


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    """Person 0 with a loan default (repairable: 120 days old, general), a traffic
    ticket and a tax payment, each received in the past; person 1 with a card default."""
    w = build_world(sessions, clock)
    now = clock.now()
    p, q = w.people[0], w.people[1]
    assert submit(
        sessions,
        w,
        "tax_office",
        now - T(days=299),
        rec("x-1", p, "tax_paid_on_time", now - T(days=300)),
    ) == ["created"]
    assert submit(
        sessions,
        w,
        "bank",
        now - T(days=118),
        rec("d-1", p, "loan_default", now - T(days=120), decision_ref="L-1"),
    ) == ["created"]
    assert submit(
        sessions,
        w,
        "traffic_police",
        now - T(days=29),
        rec("t-1", p, "traffic_violation", now - T(days=30), decision_ref="TK-1"),
    ) == ["created"]
    assert submit(
        sessions,
        w,
        "bank",
        now - T(days=49),
        rec("o-1", q, "credit_card_default", now - T(days=50), decision_ref="C-9"),
    ) == ["created"]
    return w


def sign_in(api: Api, role: str) -> None:
    """Sign in to the portal with ``role``'s key, as a person does on the sign-in page."""
    api.client.cookies.clear()
    form = api.client.get("/me/sign-in").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    done = api.client.post(
        "/me/sign-in", data={"csrf": token.group(1), "key": api.keys[role]}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/me"), done.text


def page(api: Api, path: str, **kw: Any) -> tuple[Any, Page]:
    response = api.client.get(path, **kw)
    return response, Page.parse(response.text)


def own(api: Api, role: str = "subject") -> dict[str, Any]:
    """The subject's own file, as the API gives it."""
    me = api.get("/v1/me", role).json()["subject_id"]
    body: dict[str, Any] = api.get(f"/v1/subjects/{me}/file", role).json()
    return body


def record_of(api: Api, record_type: str, role: str = "subject") -> str:
    for c in own(api, role)["score"]["contributions"]:
        if c["record_type"] == record_type:
            return str(c["record_id"])
    raise AssertionError(record_type)


def store_rulebook(api: Api) -> Rulebook:
    """The edition in force, as the test's world published it."""
    return api.world.edition.rulebook


def shown(value: float) -> str:
    """A score or points as the English pages show them."""
    return format_decimal(round(value, 1), locale="en")


def when(iso: str) -> str:
    """An instant of the API as the English pages show it (their words)."""
    return " ".join(date_time(datetime.fromisoformat(iso), "en").split())


def test_the_score_and_its_history_are_the_apis(api: Api) -> None:
    sign_in(api, "subject")
    response, p = page(api, "/me/score")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    me = api.get("/v1/me", "subject").json()["subject_id"]
    today = api.get(f"/v1/subjects/{me}/score", "subject").json()
    assert f"Your score today is {shown(today['total'])}: tier {today['tier']}." in p.words
    for category, value in today["sub_scores"].items():
        assert category  # every category has a row, with its points
        assert ("+" if value > 0 else "") + shown(value) in p.words
    # The chart's table: 12 monthly points and today, each the API's score as of then.
    rows = re.findall(r"<bdi>([^<]+)</bdi></th>\s*<td class=\"num\">([^<]+)</td>", response.text)
    assert len(rows) == 13, rows
    now = api.clock.now()
    for k, (_, total) in enumerate(rows):
        index = now.year * 12 + now.month - 1 - (12 - k)
        at = now.replace(year=index // 12, month=index % 12 + 1)
        past = api.get(f"/v1/subjects/{me}/score", "subject", params={"as_of": at.isoformat()})
        assert total == shown(past.json()["total"]), (k, at)
    # The chart's points differ: the loan default arrived within the year.
    assert len({r[1] for r in rows}) > 1
    assert p.inline == []


def test_every_record_with_its_points_today_and_when_it_stops(api: Api) -> None:
    sign_in(api, "subject")
    response, p = page(api, "/me/records")
    assert response.status_code == 200, response.text
    contributions = own(api)["score"]["contributions"]
    assert len(contributions) == 3
    for c in contributions:
        row = re.search(rf'<tr id="r-{c["record_id"]}">(.*?)</tr>', response.text, re.S)
        assert row is not None, c["record_id"]
        cells = Page.parse(row.group(1)).words
        assert c["name"] in cells
        assert c["source_name"] in cells
        assert ("+" if c["points"] > 0 else "") + shown(c["points"]) in cells
        # It stops counting at the end of its type's retention, counted from when it occurred.
        retention = store_rulebook(api).record_type(c["record_type"])
        assert retention is not None
        stops = datetime.fromisoformat(c["occurred_at"]) + timedelta(days=retention.retention_days)
        assert when(stops.isoformat()) in cells
    # The other person's record is nowhere.
    assert "card default" not in p.words.lower()


def test_a_records_page_what_if_matches_the_score_once_it_is_repaired(api: Api) -> None:
    """What the page says the score would be without the loan default is the API's
    score once a reviewer approved its repair (applied for on the page)."""
    sign_in(api, "subject")
    record = record_of(api, "loan_default")
    response, p = page(api, f"/me/records/{record}")
    assert response.status_code == 200, response.text
    said = re.search(r"your score would be ([\d,.]+) instead of ([\d,.]+), tier (\w+)", p.words)
    assert said is not None, p.words
    sent = api.client.post(
        f"/me/records/{record}/repair",
        data={"commitment": "Repaid in full on 1 May", **csrf(api, record)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    repairs = api.get("/v1/repairs", "subject").json()
    assert [r["status"] for r in repairs] == ["pending"]
    decided = api.call(
        "POST",
        f"/v1/repairs/{repairs[0]['repair_id']}/decision",
        "reviewer",
        json={"approve": True, "reasons": "Repaid"},
    )
    assert decided.status_code == 200, decided.text
    me = api.get("/v1/me", "subject").json()["subject_id"]
    after = api.get(f"/v1/subjects/{me}/score", "subject").json()
    assert (said.group(1), said.group(3)) == (shown(after["total"]), after["tier"])


def csrf(api: Api, record: str) -> dict[str, str]:
    """The form token of the record's page, as a browser sends it back."""
    text = api.client.get(f"/me/records/{record}").text
    found = re.search(r'name="csrf" value="([^"]*)"', text)
    assert found is not None
    return {"csrf": found.group(1)}


def disputes_of(api: Api, role: str = "subject") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get("/v1/disputes", role, params={"status": "all"}).json()
    return found


def post(api: Api, record: str, action: str, data: dict[str, str]) -> Any:
    return api.client.post(f"/me/records/{record}/{action}", data=data, follow_redirects=False)


def test_a_dispute_sent_from_the_form_is_pending_with_its_deadline(api: Api) -> None:
    sign_in(api, "subject")
    record = record_of(api, "loan_default")
    sent = post(api, record, "dispute", {"reason": "I repaid it on time", **csrf(api, record)})
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/me/records/{record}?done=dispute#outcome"
    # The API shows it open, its answer due 30 days from now (the rulebook's deadline).
    [dispute] = disputes_of(api)
    assert (dispute["record_id"], dispute["status"]) == (record, "open")
    due = api.clock.now() + timedelta(days=30)
    assert dispute["deadline"].startswith(due.isoformat()[:19])
    p = page(api, sent.headers["location"])[1]
    assert "Your dispute was sent." in p.words
    assert "Open: awaiting the source's answer" in p.words
    assert f"Answer due by {when(dispute['deadline'])}" in p.words
    assert "Dispute this record" not in p.words  # no second form while it is open
    # The records list and the activity page say so too; the notice is on the file.
    assert "disputed" in page(api, "/me/records")[1].words
    activity = page(api, "/me/activity")[1].words
    assert when(dispute["deadline"]) in activity
    assert "Dispute opened" in activity
    # A repeat is refused as the API refuses it, and nothing more is stored.
    again = post(api, record, "dispute", {"reason": "Again", **csrf(api, record)})
    assert again.status_code == 409
    assert "A dispute of this record is already open" in Page.parse(again.text).words
    by_api = api.call("POST", "/v1/disputes", "subject", json={"record_id": record, "reason": "x"})
    assert by_api.status_code == 409
    assert len(disputes_of(api)) == 1


def test_a_form_without_the_sessions_token_is_refused_and_stores_nothing(api: Api) -> None:
    sign_in(api, "subject")
    record = record_of(api, "loan_default")
    for data in ({"reason": "no token"}, {"reason": "wrong token", "csrf": "forged"}):
        refused = post(api, record, "dispute", data)
        assert refused.status_code == 403, refused.text
        assert "nothing was done" in Page.parse(refused.text).words
    r = post(api, record, "statement", {"text": "no token"})
    assert r.status_code == 403, (r.headers, r.text)
    assert post(api, record, "repair", {"commitment": "no token"}).status_code == 403
    assert disputes_of(api) == []
    assert api.get("/v1/repairs", "subject", params={"status": "all"}).json() == []
    assert all(c["statement"] is None for c in own(api)["score"]["contributions"])


def test_another_subjects_record_is_not_found_and_never_shown(api: Api) -> None:
    theirs = record_of(api, "credit_card_default", role="other")
    sign_in(api, "subject")
    response, p = page(api, f"/me/records/{theirs}")
    assert response.status_code == 404
    assert "There is no such record on your file." in p.words
    assert "card" not in p.words.lower()
    token = csrf(api, record_of(api, "loan_default"))
    for action, field in (("dispute", "reason"), ("statement", "text"), ("repair", "commitment")):
        refused = post(api, theirs, action, {field: "mine?", **token})
        assert refused.status_code == 404, (action, refused.text)
        assert "card" not in Page.parse(refused.text).words.lower()
    assert disputes_of(api, "other") == []
    assert api.get("/v1/repairs", "other", params={"status": "all"}).json() == []
    assert all(c["statement"] is None for c in own(api, "other")["score"]["contributions"])


def test_what_a_subject_types_comes_back_as_text(api: Api) -> None:
    sign_in(api, "subject")
    record = record_of(api, "traffic_violation")
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> \"&' \u202e"
    sent = post(api, record, "statement", {"text": hostile, **csrf(api, record)})
    assert sent.status_code == 303, sent.text
    response, p = page(api, f"/me/records/{record}")
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in response.text
    )
    assert p.inline == []
    assert hostile.strip() in p.text
    # A control character cannot be stored: refused before anything is, naming why.
    refused = post(api, record, "statement", {"text": "nul \x00 here", **csrf(api, record)})
    assert refused.status_code == 400
    assert "control characters" in Page.parse(refused.text).words
    [c] = [c for c in own(api)["score"]["contributions"] if c["record_id"] == record]
    assert c["statement"] == hostile.strip()


def test_bad_input_is_a_page_naming_the_problem_and_stores_nothing(api: Api) -> None:
    sign_in(api, "subject")
    record = record_of(api, "loan_default")
    token = csrf(api, record)
    required = "What is wrong with the record: this field is required."
    cases = [
        ("dispute", {"reason": "   "}, required),
        (
            "dispute",
            {"reason": "x" * 2001},
            "What is wrong with the record: at most 2,000 characters.",
        ),
        ("statement", {"text": "y" * 501}, "Your statement: at most 500 characters."),
        ("repair", {"commitment": ""}, "How you corrected it: this field is required."),
    ]
    for action, data, words in cases:
        refused = post(api, record, action, {**data, **token})
        assert refused.status_code == 422, (action, refused.text)
        shown_words = Page.parse(refused.text).words
        assert words in shown_words, (action, shown_words)
        assert "Nothing was changed." in shown_words
    # An id no record can have (longer than any) is a record not on the file.
    for action in ("dispute", "repair"):
        long_id = post(api, "rec_" + "x" * 60, action, {"reason": "x", "commitment": "x", **token})
        assert long_id.status_code == 404, long_id.text
        assert "There is no such record on your file." in Page.parse(long_id.text).words
    assert disputes_of(api) == []
    assert api.get("/v1/repairs", "subject", params={"status": "all"}).json() == []
    assert all(c["statement"] is None for c in own(api)["score"]["contributions"])


def test_who_looked_and_why_and_the_notifications(api: Api) -> None:
    me = api.get("/v1/me", "subject").json()["subject_id"]
    read = api.get(f"/v1/subjects/{me}/file", "reviewer", params={"purpose": "audit"})
    assert read.status_code == 200, read.text
    sign_in(api, "subject")
    record = record_of(api, "traffic_violation")
    applied = post(api, record, "repair", {"commitment": "Paid the fine", **csrf(api, record)})
    assert applied.status_code == 303, applied.text
    response, p = page(api, "/me/activity")
    assert response.status_code == 200
    rows = [Page.parse(r).words for r in re.findall(r"<tr>(.*?)</tr>", response.text, re.S)]
    audit = [r for r in rows if "A reviewer of Credence" in r]
    assert len(audit) == 1, rows
    assert "reviewer" in audit[0]
    assert "an audit of how Credence keeps and uses files" in audit[0]
    assert any("You read your own file" in r for r in rows)
    notices = api.get(f"/v1/subjects/{me}/file", "subject").json()["notifications"]
    assert notices
    for n in notices:
        assert " ".join(n["text"].split()) in p.words
    assert "Repair applied for" in p.words
    assert "Awaiting a reviewer's decision" in p.words
    # A notification stored as a code with parameters reads in Chinese on a Chinese page.
    zh = page(api, "/me/activity", params={"lang": "zh-CN"})[1].words
    names = store_rulebook(api).zh
    for n in notices:
        if n.get("code"):
            assert " ".join(render(n["code"], n["params"], "zh-CN", names).split()) in zh


def test_the_download_is_the_apis_file_and_the_print_page_has_it_all(api: Api) -> None:
    sign_in(api, "subject")
    me = api.get("/v1/me", "subject").json()["subject_id"]
    downloaded = api.client.get("/me/file.json")
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["content-type"] == "application/json"
    disposition = downloaded.headers["content-disposition"]
    assert disposition == 'attachment; filename="credence-file-2026-06-01.json"'
    assert me not in disposition
    mine = downloaded.json()
    theirs = api.get(f"/v1/subjects/{me}/file", "subject").json()
    # The same file; the API's read is one more line of the access log.
    assert theirs["accessed_by"][1:] == mine["accessed_by"]
    mine.pop("accessed_by"), theirs.pop("accessed_by")
    assert mine == theirs
    response, p = page(api, "/me/print")
    assert response.status_code == 200
    for c in theirs["score"]["contributions"]:
        assert c["name"] in p.words
    assert shown(theirs["score"]["total"]) in p.words


def test_every_page_in_both_languages_and_only_when_signed_in(api: Api) -> None:
    record = record_of(api, "loan_default")
    for path in [*PAGES, f"/me/records/{record}", "/me/file.json"]:
        response = api.client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/me/sign-in"), path
    me = api.get("/v1/me", "subject").json()["subject_id"]
    sign_in(api, "subject")
    # /me leads to every part.
    assert {*PAGES, "/me/file.json"} <= set(page(api, "/me")[1].urls)
    for path in [*PAGES, f"/me/records/{record}"]:
        for lang in ("en", "zh-CN"):
            response, p = page(api, path, params={"lang": lang})
            assert response.status_code == 200, (path, lang, response.text)
            assert p.lang == lang
            assert p.inline == [], (path, p.inline)
            assert not [u for u in p.urls if me in u or re.search(r"\d{17}[\dX]", u)]
            assert response.headers["cache-control"] == "no-store"
    # A record type's Chinese name, where the edition gives one, names it in Chinese.
    types = api.get("/v1/rulebook").json()["rulebook"]["record_types"]
    [default] = [t for t in types if t["code"] == "loan_default"]
    if default.get("name_zh"):
        assert default["name_zh"] in page(api, "/me/records", params={"lang": "zh-CN"})[1].words
    zh = page(api, "/me/score", params={"lang": "zh-CN"})[1].words
    assert "Your score" not in zh
    assert "By category" not in zh


def test_repair_is_offered_from_the_date_the_rulebook_allows(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """Tax arrears (general) 10 days old: repair only 90 days after they occurred."""
    occurred = api.clock.now() - T(days=10)
    p = api.world.people[0]
    arrears = rec("a-1", p, "tax_arrears", occurred, decision_ref="TX-1", quantity=2)
    assert submit(sessions, api.world, "tax_office", api.clock.now(), arrears) == ["created"]
    sign_in(api, "subject")
    record = record_of(api, "tax_arrears")
    from_ = when((occurred + T(days=90)).isoformat())
    p_ = page(api, f"/me/records/{record}")[1]
    assert f"You may apply to repair this record from {from_}." in p_.words
    assert "Apply for repair" not in p_.words  # no form before then
    refused = post(api, record, "repair", {"commitment": "Paid", **csrf(api, record)})
    assert refused.status_code == 409
    assert f"You may apply to repair this record from {from_}." in Page.parse(refused.text).words
    assert api.get("/v1/repairs", "subject", params={"status": "all"}).json() == []
    # A positive record has no repair at all; the loan default (120 days) has the form.
    assert (
        "Apply for repair"
        not in page(api, f"/me/records/{record_of(api, 'tax_paid_on_time')}")[1].words
    )
    assert "Apply for repair" in page(api, f"/me/records/{record_of(api, 'loan_default')}")[1].words


def test_what_moves_the_score_and_the_tier_read_in_the_readers_language(api: Api) -> None:
    """The score's reasons are coded (``factor_*``) and shown in the page's language, the
    record type by the edition's Chinese name; the tier is described in Chinese too."""
    sign_in(api, "subject")
    me = api.get("/v1/me", "subject").json()["subject_id"]
    today = api.get(f"/v1/subjects/{me}/score", "subject").json()
    assert today["reasons"], today
    english = page(api, "/me/score", params={"lang": "en"})[1].words
    zh = page(api, "/me/score", params={"lang": "zh-CN"})[1].words
    book = store_rulebook(api)
    for reason in today["reasons"]:
        assert reason["text"] in english
        assert reason["text"] not in zh
        name = book.zh("record_type", reason["code"].lower())
        assert name is not None
        assert name in zh
    assert "条记录目前使信用分" in zh
    if book.chinese:
        assert book.tier_description_zh(today["tier"]) in zh
        assert book.tier_description(today["tier"]) not in zh
