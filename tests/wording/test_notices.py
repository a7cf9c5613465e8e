"""The coded notifications say, in English, word for word what their writers said
before they were coded; and what a notification stores of its parameters is masked as
its text is."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from credence.ledger.holds import CAUSE_TEXT
from credence.notifications.service import NoticeKind, notification_row
from credence.wording import coded, render
from tests.world import person_id

AT = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)


def test_tier_changes_read_as_before() -> None:
    for direction in ("up", "down"):
        message = coded(
            f"tier_changed_{direction}", previous="B", tier="A", score=961.6, version="2026.5"
        )
        assert render(message["code"], message["params"]) == (
            f"Your tier moved {direction} from B to A (score {961.6:.0f}, rulebook 2026.5). "
            "Your file lists every record behind it."
        )


def test_repairs_read_as_before() -> None:
    applied = coded(
        "repair_applied",
        repair="rep_1",
        record="rec_1",
        record_type={"code": "loan_default", "name": "Registered loan default"},
    )
    assert render(applied["code"], applied["params"]) == (
        "Your application rep_1 to repair record rec_1 (Registered loan default) was "
        "received and awaits a reviewer's decision."
    )
    approved = coded("repair_approved", repair="rep_1", record="rec_1", date=AT, reasons="Paid.")
    assert render(approved["code"], approved["params"]) == (
        f"Your application rep_1 was approved: record rec_1 stopped counting on {AT:%Y-%m-%d}. "
        "Reasons: Paid."
    )
    refused = coded("repair_refused", repair="rep_1", record="rec_1", reasons="Too early.")
    assert render(refused["code"], refused["params"]) == (
        "Your application rep_1 to repair record rec_1 was refused. Reasons: Too early. "
        "You may apply again."
    )


def test_a_lapsed_dispute_reads_as_before() -> None:
    lapsed = coded("dispute_lapsed", source="Bank", dispute="dsp_1", deadline=AT, record="rec_1")
    assert render(lapsed["code"], lapsed["params"]) == (
        f"Bank did not answer your dispute dsp_1 by {AT:%Y-%m-%d %H:%M} UTC. Record rec_1 "
        "stopped counting at that moment, as unverifiable. It can come back only if the "
        "source certifies that it is accurate, and you would be told."
    )
    assert render(lapsed["code"], lapsed["params"], "zh-CN").startswith(
        "Bank 未在 2026年6月1日 08:30 UTC 前答复您的异议 dsp_1。"
    )


def test_an_identifier_in_a_parameter_is_masked_as_in_the_text() -> None:
    identifier = person_id(3)
    message = coded("repair_refused", repair="rep_1", record="rec_1", reasons=identifier)
    text = render(message["code"], message["params"])
    row = notification_row(
        subject_id=1, kind=NoticeKind.ADVERSE_DECISION, text=text, at=AT, coded=message
    )
    assert identifier not in row["text"]
    assert identifier not in row["params"]
    assert row["code"] == "repair_refused"
    assert orjson.loads(row["params"])["repair"] == "rep_1"


def test_disputes_read_as_before() -> None:
    opened = coded(
        "dispute_opened",
        dispute="dsp_1",
        record="rec_1",
        record_type={"code": "loan_default", "name": "Registered loan default"},
        source="Bank",
        deadline=AT,
    )
    assert render(opened["code"], opened["params"]) == (
        f"Your dispute dsp_1 of record rec_1 (Registered loan default, reported by Bank) is "
        f"open. Bank must answer by {AT:%Y-%m-%d %H:%M} UTC; without an answer by then the "
        "record stops counting at that moment. Until the answer the record is marked as "
        "disputed on your file."
    )
    answer = {
        "record": "rec_1",
        "record_type": {"code": "loan_default", "name": "Registered loan default"},
        "dispute": "dsp_1",
        "explanation": "Checked.",
    }
    what = "record rec_1 (Registered loan default)"
    verified = coded("dispute_verified", who="Bank", **answer)
    assert render(verified["code"], verified["params"]) == (
        f"Bank verified {what} after your dispute dsp_1: Checked. The record stands. You may "
        "add a statement to it; a new dispute of it needs new information."
    )
    corrected = coded("dispute_corrected", who=None, **answer, date=AT, corrected="rec_2")
    assert render(corrected["code"], corrected["params"]) == (
        f"A Credence reviewer corrected {what} after your dispute dsp_1: Checked. It stopped "
        f"counting on {AT:%Y-%m-%d %H:%M} UTC; record rec_2 replaces it."
    )
    assert render(corrected["code"], corrected["params"], "zh-CN").startswith(
        "本系统的审核人员 在您提出异议 dsp_1 后更正了记录 rec_1"
    )
    deleted = coded("dispute_deleted", who="Bank", **answer, date=AT)
    assert render(deleted["code"], deleted["params"]) == (
        f"Bank deleted {what} after your dispute dsp_1: Checked. It stopped counting on "
        f"{AT:%Y-%m-%d %H:%M} UTC."
    )


def test_holds_read_as_before() -> None:
    for cause, words in CAUSE_TEXT.items():
        one = coded("hold_rejected", record="rec_1", held_since=AT, cause=[cause], reason="No.")
        assert render(one["code"], one["params"]) == (
            f"A Credence reviewer rejected record rec_1, held since {AT:%Y-%m-%d} ({words}): "
            "No. So it will never count."
        )
    released = coded(
        "hold_released", record="rec_1", held_since=AT, cause=["burst"], reason="Fine.", at=AT
    )
    assert render(released["code"], released["params"]) == (
        f"A Credence reviewer released record rec_1, held since {AT:%Y-%m-%d} "
        f"({CAUSE_TEXT['burst']}): Fine. So it counts from {AT:%Y-%m-%d %H:%M} UTC."
    )
    for count, code in ((1, "records_held_one"), (2, "records_held_many")):
        held = coded(code, count=count, date=AT, causes=["burst", "spacing"])
        causes = f"{CAUSE_TEXT['burst']}; {CAUSE_TEXT['spacing']}"
        assert render(held["code"], held["params"]) == (
            f"{count} record{'s' if count != 1 else ''} about you received on "
            f"{AT:%Y-%m-%d} {'are' if count != 1 else 'is'} held for review ({causes}). A "
            "held record is on your file but counts for nothing until a Credence reviewer "
            "releases it; you will be told of the decision."
        )
        assert "暂缓计分" in render(held["code"], held["params"], "zh-CN")


def test_identity_notices_read_as_before() -> None:
    from credence.ledger.identities import _TEST_TEXT

    found = {"authority": "Civil Registry", "at": AT, "reason": "Checked."}
    when = f"{AT:%Y-%m-%d %H:%M} UTC"
    for test, words in _TEST_TEXT.items():
        other = coded(
            "identity_distinct_other",
            **found,
            subject="sub_2",
            a_what="person",
            test=test,
            whats="person",
        )
        assert render(other["code"], other["params"]) == (
            f"A person registered as file sub_2 resembled you ({words}). Civil Registry, the "
            f"identity authority, confirmed on {when} that you are two different persons. "
            "Nothing changes on your file. Its reasons: Checked."
        )
    voided = coded("identity_voided", **found, subject="sub_2", what="organisation")
    assert render(voided["code"], voided["params"]) == (
        f"Civil Registry, the identity authority, found on {when} that file sub_2 is not a "
        "real organisation and voided it as fictitious: records sent about it are held and "
        "it can obtain no decision. If this is wrong, contact Civil Registry. Its reasons: "
        "Checked."
    )
    assert "并非真实存在的机构" in render(voided["code"], voided["params"], "zh-CN")
