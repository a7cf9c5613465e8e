"""Every coded message renders in English and in Simplified Chinese.

Fails on a message without a Chinese translation (or a fuzzy one), on a Chinese
template that still holds English words, on a template whose fields differ from the
English one's, and on parameters the renderer cannot show.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from credence.rulebook.loader import default_rulebook
from credence.wording import UnknownCode, coded, render, translation
from credence.wording.catalogue import CATALOGUE, NOTICES, REASONS, WARNINGS, Kind, Message

SAMPLES: dict[Kind, Any] = {
    Kind.TEXT: "Bank of Testing",
    Kind.ID: "rec_0123456789",
    Kind.DATE: "2026-06-01",
    Kind.INSTANT: "2026-07-01 12:30",
    Kind.INT: 90,
    Kind.SCORE: 987.4,
    Kind.POINTS: -12.25,
    Kind.DECIMAL: 7.5,
    Kind.SERVICE: {"code": "air_travel", "name": "Air travel"},
    Kind.RECORD_TYPE: {"code": "judgment_default", "name": "Judgment defaulter listing"},
    Kind.RULE: {"service": "air_travel", "index": 0, "text": "A court has listed you."},
    Kind.HOW_TO: {"text": "If a record about you is wrong, open a dispute."},
    Kind.CATEGORIES: ["judicial", "commercial"],
    Kind.REASONS: [
        {"code": "rule_restriction", "params": {"rule": {"service": "x", "index": 0, "text": "R."}}}
    ],
    Kind.MISSING: [
        {
            "category": "commercial",
            "text": "Commercial integrity",
            "sources": [
                {"name": "Bank of Testing", "types": ["loan_repaid"], "since": "2026-05-01"}
            ],
        }
    ],
    Kind.FLAG: True,
    Kind.OPTIONAL: "(2026) Jing 01 Zhi 123",
    Kind.TEXT_OR: None,
    Kind.FRAGMENT: "person",
    Kind.HOLD_CAUSES: ["burst", "spacing"],
}

MESSAGES: list[Message] = [*REASONS, *WARNINGS, *NOTICES]
FIELD = re.compile(r"\{(\w+)\}")


def sample(message: Message) -> dict[str, Any]:
    values = {name: SAMPLES[p.kind] for name, p in message.params.items()}
    for name, p in message.params.items():
        if p.kind is Kind.FRAGMENT:  # a code its fragments have
            values[name] = next(
                c.split(".", 1)[1] for c in CATALOGUE if c.startswith(f"{p.fragment}.")
            )
    return values


def test_the_catalogue_has_reasons_warnings_and_every_notice_kind_it_writes() -> None:
    codes = {m.code for m in MESSAGES}
    assert {"rule_restriction", "rule_record", "record_cited", "score_below_threshold"} <= codes
    assert {"reward_threshold", "no_negative_records", "outage_incomplete_open"} <= codes
    assert {"adverse_decision", "restriction_warning", "restriction_pending"} <= codes


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_message_has_a_chinese_template_with_the_same_fields(code: str) -> None:
    message = CATALOGUE[code]
    zh = translation(code, "zh-CN")
    assert zh is not None, f"{code}: no zh_CN translation in wording.po"
    assert sorted(FIELD.findall(zh)) == sorted(FIELD.findall(message.template)), code
    words = re.findall(r"[A-Za-z]{2,}", FIELD.sub("", zh))
    assert not words, f"{code}: English left in the Chinese template: {words}"


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.code)
def test_every_message_renders_in_english_and_chinese(message: Message) -> None:
    params = sample(message)
    english = render(message.code, params, "en")
    # Without an edition's names, the rulebook's words stay as stored (English).
    assert render(message.code, params, "zh-CN")
    # With the edition's Chinese names, they are Chinese too.
    chinese = render(message.code, params, "zh-CN", default_rulebook().zh)
    assert english
    assert chinese
    assert english != chinese
    for name in message.params:
        assert f"{{{name}}}" not in english + chinese
    assert re.search(r"[\u4e00-\u9fff]", chinese), chinese
    for english_name in ("Air travel", "Judgment defaulter listing", "A court has listed"):
        assert english_name not in chinese, chinese


def test_a_stored_message_renders_from_what_is_stored_alone() -> None:
    stored = coded(
        "record_cited",
        record_type={"code": "loan_default", "name": "Registered loan default"},
        source="Bank of Testing",
        date="2026-05-02",
        decision_ref="DR-7",
        record="rec_1",
        points=-40.0,
        disputed=False,
    )
    assert render(stored["code"], stored["params"]) == (
        "Registered loan default reported by Bank of Testing on 2026-05-02, decision DR-7 "
        "(record rec_1; -40.0 points now)"
    )
    assert render(stored["code"], stored["params"], "zh-CN", default_rulebook().zh) == (
        "已登记的贷款违约，由 Bank of Testing 于 2026年5月2日 报送，文书编号 DR-7"
        "（记录 rec_1；目前计 -40.0 分）"
    )


def test_unknown_codes_and_parameters_are_refused() -> None:
    with pytest.raises(UnknownCode):
        render("no_such_code", {}, "en")
    with pytest.raises(UnknownCode):
        coded("rule_restriction")
    with pytest.raises(UnknownCode):
        coded("and")  # a fragment is not a message of its own
    with pytest.raises(UnknownCode):
        render("rule_restriction", {}, "zh-CN")
