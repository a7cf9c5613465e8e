"""Reasons and notifications are stored as codes with parameters and rendered in the
reader's language; the English the API has always given is rendered from them.

Through the API on SQLite and PostgreSQL: a decision carries ``reason_codes`` beside
its ``reasons``, the subject's file gives them back as stored, the adverse-decision
notification carries its code and parameters, a row written before messages were coded
is still shown (from its English text), and editing a warning's stored reason code is
caught by ``credence log verify``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.decisions.service import decide
from credence.decisions.tables import Inquiry, RestrictionWarning
from credence.notifications.service import for_subject
from credence.notifications.tables import Notification
from credence.rulebook.loader import default_rulebook
from credence.translog.verify import verify_log
from credence.wording import render, render_all
from tests.client import Api
from tests.world import World, rec, submit


def _deny(api: Api, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """The airline asks about the first person, listed as a judgment defaulter."""
    now = api.clock.now()
    person = api.world.people[0]
    submit(
        sessions,
        api.world,
        "court",
        now,
        rec("c1", person, "judgment_default", now - timedelta(days=50), decision_ref="(2026)Z-1"),
    )
    answer = api.call(
        "POST",
        "/v1/decisions",
        "airline",
        json={"service": "air_travel", "subject_id": person.public_id},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_decision_carries_its_reasons_as_codes_and_the_file_gives_them_back(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    body = _deny(api, sessions)
    assert body["outcome"] == "deny"
    codes = body["reason_codes"]
    assert [c["code"] for c in codes] == ["rule_record"]
    params = codes[0]["params"]
    assert params["rule"] == {
        "service": "air_travel",
        "index": 0,
        "text": default_rulebook().services[0].rules[0].reason,
    }
    assert params["record_type"]["code"] == "judgment_default"
    assert params["decision_ref"] == "(2026)Z-1"
    assert params["record"] == body["cited_records"][0]
    # The English reasons are the codes rendered in English, word for word.
    assert body["reasons"] == render_all(codes)
    assert body["reasons"][0].startswith(params["rule"]["text"] + " — Judgment defaulter listing")
    # In Chinese, with the edition's words.
    zh = render(codes[0]["code"], params, "zh-CN", default_rulebook().zh)
    assert zh.startswith("法院已将您纳入失信被执行人名单")
    assert "失信被执行人名单，由 Court" in zh

    # Stored as given: the subject's own file gives the same codes back.
    person = api.world.people[0]
    file = api.get(f"/v1/subjects/{person.public_id}/file", "subject").json()
    [inquiry] = [i for i in file["inquiries"] if i.get("decision_id") == body["decision_id"]]
    assert inquiry["reason_codes"] == codes
    assert inquiry["reasons"] == body["reasons"]

    # The adverse-decision notification: its code and parameters, and the same English.
    [notice] = [n for n in file["notifications"] if n["kind"] == "adverse_decision"]
    assert notice["code"] == "adverse_decision"
    assert notice["params"]["reasons"] == codes
    assert notice["params"]["decision"] == body["decision_id"]
    assert notice["text"] == render(notice["code"], notice["params"])
    assert notice["text"].startswith(f"Air travel: denied on {api.clock.now():%Y-%m-%d}")
    with sessions() as session:
        [view] = [v for v in for_subject(session, person.id) if v.kind == "adverse_decision"]
    chinese, translated = view.text_in("zh-CN", default_rulebook().zh)
    assert translated
    assert chinese.startswith("乘坐飞机：")
    assert "如果有关您的记录有误" in chinese  # how to dispute, in the edition's Chinese


def test_rows_written_before_messages_were_coded_still_show(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    person = api.world.people[1]
    at = api.clock.now()
    with sessions.begin() as session:
        session.execute(
            insert(Inquiry).values(
                public_id="dec_old",
                subject_id=person.id,
                service="air_travel",
                purpose="judgment_enforcement",
                outcome="deny",
                score=900.0,
                rulebook_version="2026.4",
                reasons=orjson.dumps(["An old reason, in English."]).decode(),
                at=at,
            )
        )
        session.execute(
            insert(Notification).values(
                subject_id=person.id, kind="tier_changed", text="Your tier moved.", at=at
            )
        )
    file = api.get(f"/v1/subjects/{person.public_id}/file", "other").json()
    [old] = [i for i in file["inquiries"] if i.get("decision_id") == "dec_old"]
    assert old["reasons"] == ["An old reason, in English."]
    assert old["reason_codes"] is None
    [notice] = file["notifications"]
    assert (notice["text"], notice["code"], notice["params"]) == ("Your tier moved.", None, None)
    with sessions() as session:
        [view] = for_subject(session, person.id)
    # Shown in English, and said to be English, to a Chinese reader.
    assert view.text_in("zh-CN") == ("Your tier moved.", False)
    assert view.text_in("en") == ("Your tier moved.", True)


def _warned(sessions: sessionmaker[Session], clock: FixedClock, world: World) -> None:
    """The company is caught by a restriction with a warning period: warned."""
    company = world.company
    submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("f1", company, "fraud_judgment", clock.now() - timedelta(days=2), decision_ref="F-1"),
    )
    with sessions.begin() as session:
        decision = decide(
            session,
            subject=session.merge(company),
            service_code="public_procurement_bid",
            edition=world.edition,
            at=clock.now(),
            party_id=None,
            principal_id=None,
        )
    assert decision.outcome.value == "allow"
    assert [c["code"] for c in decision.warning_codes] == ["restriction_pending", "rule_record"]
    assert decision.warnings == render_all(decision.warning_codes)


def test_a_warning_keeps_its_coded_reasons_and_verify_catches_an_edit(
    api: Api, sessions: sessionmaker[Session], clock: FixedClock, engine: Engine
) -> None:
    world = api.world
    _warned(sessions, clock, world)
    with sessions() as session:
        row = session.scalars(select(RestrictionWarning)).one()
        assert row.reason_codes is not None
        stored = orjson.loads(row.reason_codes)
        notice = session.scalars(
            select(Notification).where(Notification.kind == "restriction_warning")
        ).one()
        assert notice.code == "restriction_warning"
        assert notice.params is not None
        assert orjson.loads(notice.params)["because"] == stored[:2]
        assert notice.text == render("restriction_warning", orjson.loads(notice.params))
        assert verify_log(session).ok
    assert [c["code"] for c in stored] == ["rule_record"]
    assert stored[0]["params"]["rule"]["service"] == "public_procurement_bid"

    # An attacker with database access changes the rule the reason cites.
    stored[0]["params"]["rule"]["index"] = 3
    with engine.begin() as conn:
        conn.execute(update(RestrictionWarning).values(reason_codes=orjson.dumps(stored).decode()))
    with sessions() as session:
        report = verify_log(session)
    assert not report.ok
    assert any("restriction_warnings" in p.message for p in report.problems), report.problems
    # And a changed code, likewise.
    stored[0]["params"]["rule"]["index"] = 1
    stored[0]["code"] = "record_cited"
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE restriction_warnings SET reason_codes = :v"),
            {"v": orjson.dumps(stored).decode()},
        )
    with sessions() as session:
        assert not verify_log(session).ok
