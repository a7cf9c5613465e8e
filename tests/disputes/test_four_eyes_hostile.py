"""Hostile bytes in the free text of a held change (the retraction's reason, the
reviewer's reasons) and in a legal order's reference, on SQLite and PostgreSQL: a clear
4xx or the text kept exactly as sent, never a 500, and the journal keeps only a digest."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.journal import JournalEntry
from tests.audit.test_purposes import _read
from tests.client import Api
from tests.disputes.test_four_eyes_api import judgment_default, my_file, retract

HOSTILE = [
    "中文理由：法院撤回",
    "evil\u202etxt.exe reversed",
    "line one\nline two\r\n",
    "quote \" and ' and ; DROP TABLE records; --",
    "\x1b[31mred\x1b[0m",
    "nul \x00 byte",
    "long " + "x" * 20_000,
]


@pytest.mark.parametrize("reason", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_reasons_are_refused_or_kept_exactly(
    api: Api, sessions: sessionmaker[Session], reason: str
) -> None:
    record = judgment_default(api)
    asked = retract(api, record, reason=reason)
    assert asked.status_code in (202, 422), asked.text
    if asked.status_code == 422:
        assert asked.json()["error"]["code"]
        return
    change = asked.json()["pending_change"]["change_id"]
    mine = [c for c in my_file(api)["pending_changes"] if c["change_id"] == change]
    assert [c["reason"] for c in mine] == [reason]
    confirmed = api.call(
        "POST", f"/v1/pending-changes/{change}/confirmation", "reviewer", json={"reasons": reason}
    )
    assert confirmed.status_code in (200, 422), confirmed.text
    with sessions() as session:
        data = " ".join(str(d) for d in session.scalars(select(JournalEntry.data)))
    assert reason.strip() not in data  # the journal keeps a digest, never the text


@pytest.mark.parametrize("reference", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_legal_order_references_get_a_clear_answer(api: Api, reference: str) -> None:
    read = _read(api, "operator", "file", f"legal_order:{reference}")
    assert read.status_code in (200, 400, 422), read.text
    if read.status_code != 200:
        # The reference's own check, or the API's on every query string (a NUL byte, an
        # over-long parameter): a clear code either way.
        assert read.json()["error"]["code"] in {
            "legal_order_reference_invalid",
            "invalid_character",
            "invalid_request",
        }
        return
    accesses = _read(api, "subject", "file", None).json()["accessed_by"]
    assert reference.strip() in [a.get("legal_order_reference") for a in accesses]
