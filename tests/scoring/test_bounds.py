"""Bounded returns and tier conditions: volume does not buy a tier.

Known answers on the online path (explanations included), the columnar engine on the
same records, and the loader's refusals. Every engine's agreement on a whole city with
bounds that bite is checked by ``tests/export/test_parity.py``; that every subject meets
its tier's conditions, by ``tests/scoring/test_tier_conditions.py``.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credence.clock import to_micros
from credence.errors import RulebookInvalid
from credence.ledger.subject_file import RecordView
from credence.rulebook.loader import content_hash, default_rulebook, default_text, load_text
from credence.rulebook.model import Category
from credence.rulebook.store import edition_of
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.online import Score, compute
from tests.scoring.test_online import view

BOOK = default_rulebook()
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def edition(text: str) -> object:
    return edition_of(
        load_text(text).version, content_hash(text), datetime(2020, 1, 1, tzinfo=UTC), text
    )


DEFAULT = edition(default_text())


def records(
    record_type: str, n: int, *, every: float = 10.0, start: float = 1.0
) -> list[RecordView]:
    """``n`` records of ``record_type``, the newest ``start`` days ago, one every
    ``every`` days."""
    return [
        view(record_type, NOW - timedelta(days=start + i * every), ref=f"{record_type}-{i}")
        for i in range(n)
    ]


def score(views: list[RecordView], ed: object = DEFAULT) -> Score:
    return compute(views, ed, NOW)  # type: ignore[arg-type]


def bound_of(book_type: str) -> float:
    rt = BOOK.record_type(book_type)
    assert rt is not None
    assert rt.max_points is not None
    return rt.max_points


def test_volume_does_not_buy_the_top_tier() -> None:
    # The company: two loan defaults, social-insurance arrears and a
    # contract-breach judgment, all still counting, and 169 taxes paid on time.
    views = [
        *records("tax_paid_on_time", 169, every=10.5),
        *records("loan_default", 2, every=30, start=20),
        *records("social_insurance_arrears", 1, start=40),
        *records("contract_breach_judgment", 1, start=50),
    ]
    got = score(views)
    assert got.total < BOOK.scale.max
    assert got.tier not in {"AAA", "AA"}
    assert got.against == (0, 4, 0)  # four general negatives weigh against it
    assert got.sub_scores[Category.GOVERNMENT_AFFAIRS] == pytest.approx(
        bound_of("tax_paid_on_time")
        + got.sub_scores[Category.GOVERNMENT_AFFAIRS]
        - bound_of("tax_paid_on_time"),
    )
    (cut,) = [b for b in got.bounds if b.scope == "record_type"]
    assert cut.code == "tax_paid_on_time"
    assert cut.records == 169
    assert 0 < cut.within < 169
    assert cut.after == bound_of("tax_paid_on_time")
    assert cut.before > 3 * cut.after
    assert f"{cut.within} of 169 records count" in cut.text
    assert "the rest add nothing" in cut.text
    reason = next(r for r in got.reasons if r.code == "TAX_PAID_ON_TIME")
    assert reason.points == bound_of("tax_paid_on_time")
    assert f"{cut.within} of 169 records count" in reason.text


def test_a_type_bound_caps_its_records_exactly_and_counts_the_weightiest() -> None:
    bound = bound_of("tax_paid_on_time")
    got = score(records("tax_paid_on_time", 169, every=10.5))
    assert got.sub_scores[Category.GOVERNMENT_AFFAIRS] == bound
    assert got.total == BOOK.scale.base + bound
    # The weightiest (newest) records fill the bound: k of them reach it, k-1 do not.
    sizes = sorted((c.points for c in got.contributions), reverse=True)
    (cut,) = got.bounds
    assert sum(sizes[: cut.within]) >= bound > sum(sizes[: cut.within - 1])
    # Under the bound nothing is cut and nothing is said.
    few = score(records("tax_paid_on_time", 3))
    assert few.bounds == []
    assert few.sub_scores[Category.GOVERNMENT_AFFAIRS] == pytest.approx(
        sum(c.points for c in few.contributions)
    )


def test_a_category_caps_positive_points_and_never_negative_ones() -> None:
    cap = BOOK.positive_caps[Category.COMMERCIAL]
    positives = [
        *records("loan_repaid", 40, every=20),
        *records("on_time_payment_streak", 40, every=20),
        *records("supplier_contract_fulfilled", 40, every=20),
    ]
    got = score(positives)
    assert got.sub_scores[Category.COMMERCIAL] == cap
    (category,) = [b for b in got.bounds if b.scope == "category"]
    assert category.code == "commercial"
    assert category.after == cap
    assert category.before > cap
    assert "the rest add nothing" in category.text
    # A negative record still takes its full points off the capped positives.
    default = records("loan_default", 1, start=5)
    with_default = score([*positives, *default])
    penalty = next(c.points for c in with_default.contributions if c.points < 0)
    assert with_default.sub_scores[Category.COMMERCIAL] == pytest.approx(cap + penalty)


def test_a_negative_type_bound_limits_how_far_repetition_lowers_the_score() -> None:
    text = default_text().replace(
        'code = "traffic_violation"', 'code = "traffic_violation"\nmax_points = 12', 1
    )
    got = score(records("traffic_violation", 10, every=3), edition(text))
    assert got.sub_scores[Category.SOCIAL] == -12
    (cut,) = got.bounds
    assert cut.after == -12
    assert cut.records == 10


def test_tier_conditions_place_a_high_total_below_a_tier_it_reaches() -> None:
    clean = [
        *records("tax_paid_on_time", 30),
        *records("loan_repaid", 30),
        *records("on_time_payment_streak", 30),
        *records("heroic_act", 1),
        *records("blood_donation", 3),
    ]
    top = score(clean)
    assert top.total >= 1050 + 15
    assert top.tier == "AAA"
    minor = score([*clean, *records("traffic_violation", 1)])
    assert minor.total >= 1050
    assert minor.against == (1, 0, 0)
    assert minor.tier == "AA"  # AAA: no negative record at all
    serious = score([*clean, *records("drunk_driving_penalty", 1, start=300)])
    assert serious.total >= 1030
    assert serious.against == (0, 0, 1)
    assert serious.tier == "A"  # AA: none of severity serious
    # Past its retention the record weighs nothing and the tier comes back.
    expired = score([*clean, *records("traffic_violation", 1, start=400)])
    assert expired.against == (0, 0, 0)
    assert expired.tier == "AAA"


@pytest.mark.parametrize("order", ["subject order", "shuffled"])
def test_the_columnar_engine_applies_the_same_bounds(tmp_path: Path, order: str) -> None:
    subjects = {
        0: records("tax_paid_on_time", 169, every=10.5),
        1: [
            *records("loan_repaid", 40, every=20),
            *records("on_time_payment_streak", 40, every=20),
            *records("supplier_contract_fulfilled", 40, every=20),
            *records("loan_default", 1, start=5),
        ],
        2: [
            *records("tax_paid_on_time", 30),
            *records("loan_repaid", 30),
            *records("on_time_payment_streak", 30),
            *records("heroic_act", 1),
            *records("traffic_violation", 1),
        ],
        3: [],
    }
    rows = [(sid, v) for sid, views in subjects.items() for v in views]
    if order == "shuffled":  # the scorer notices and tallies the whole part instead
        random.Random(5).shuffle(rows)
    (tmp_path / "in" / "subjects").mkdir(parents=True)
    (tmp_path / "in" / "records").mkdir()
    pq.write_table(
        pa.table({"subject_id": pa.array(list(subjects), pa.int64())}),
        tmp_path / "in" / "subjects" / "part-00000.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array([sid for sid, _ in rows], pa.int64()),
                "record_type": pa.array([v.record_type for _, v in rows], pa.string()),
                "occurred_at": pa.array([to_micros(v.occurred_at) for _, v in rows], pa.int64()),
                "received_at": pa.array([to_micros(v.received_at) for _, v in rows], pa.int64()),
                "quantity": pa.array([math.nan] * len(rows), pa.float64()),
                "ended_at": pa.array([None] * len(rows), pa.int64()),
            }
        ),
        tmp_path / "in" / "records" / "part-00000.parquet",
        row_group_size=64,  # bounded types' records span several batches' row groups
    )
    seen: list[int] = []
    score_parquet(
        tmp_path / "in",
        tmp_path / "out",
        at=NOW,
        rulebook=DEFAULT,  # type: ignore[arg-type]
        batch_records=50,  # a subject's records span batches
        progress=lambda done, _total: seen.append(done),
    )
    assert seen[-1] == len(rows)
    got = read_scores(tmp_path / "out").to_pylist()
    for sid, views in subjects.items():
        online = score(views)
        assert got[sid]["total"] == pytest.approx(online.total, rel=1e-12), sid
        assert got[sid]["tier"] == online.tier, sid
        for category, value in online.sub_scores.items():
            assert got[sid][category.value] == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert [row["tier"] for row in got] == ["AA", "A", "AA", "A"]


def test_a_rulebook_without_bounds_sums_every_record() -> None:
    text = re.sub(r"(?m)^max_points = .*\n", "", default_text())
    text = re.sub(r"(?ms)^\[positive_caps\]\n.*?\n\n", "", text)
    unbounded = edition(text)
    assert not load_text(text).positive_caps
    views = records("tax_paid_on_time", 169, every=10.5)
    got = score(views, unbounded)
    assert got.bounds == []
    assert got.sub_scores[Category.GOVERNMENT_AFFAIRS] == pytest.approx(
        sum(c.points for c in got.contributions), rel=1e-12
    )
    assert got.sub_scores[Category.GOVERNMENT_AFFAIRS] > 3 * bound_of("tax_paid_on_time")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("max_points = 40\n", "max_points = 0\n"), "greater than 0"),
        (("[positive_caps]\n", "[positive_caps]\nreligious = 5\n"), "religious"),
        (("commercial = 60\n", "commercial = -1\n"), "greater than 0"),
        (
            (
                'code = "D"\nmin_score = 300\n',
                'code = "D"\nmin_score = 300\nmax_negative_records = 3\n',
            ),
            "lowest tier",
        ),
        (('code = "AAA"\n', 'code = "AAA"\ndescription = "The best people."\n'), "generated"),
        (('no_negative_at_or_above = "serious"', 'no_negative_at_or_above = "grave"'), "grave"),
    ],
    ids=["zero-bound", "unknown-category", "negative-cap", "lowest-tier", "free-text", "severity"],
)
def test_the_loader_refuses_bad_bounds_and_conditions(
    change: tuple[str, str], message: str
) -> None:
    text = default_text()
    assert change[0] in text
    with pytest.raises(RulebookInvalid) as refused:
        load_text(text.replace(change[0], change[1], 1))
    assert any(message in d for d in refused.value.details or []), refused.value.details


def test_a_published_edition_with_a_written_tier_description_still_reads() -> None:
    text = default_text().replace('code = "AAA"\n', 'code = "AAA"\ndescription = "Old words."\n', 1)
    book = load_text(text, published=True)
    assert book.tiers[0].description == "Old words."
    # What is shown is generated, never the old words.
    assert book.tier_description("AAA") == (
        "A total of at least 1,050 points; no negative record of any severity still counting."
    )
    assert book.tier_description("D") == "Every subject not placed in a higher tier."


def test_a_new_edition_s_diff_names_every_bound_and_condition_it_changes() -> None:
    from credence.rulebook.diff import diff

    text = default_text()
    changed = (
        text.replace("max_points = 40", "max_points = 30", 1)
        .replace("commercial = 60", "commercial = 50", 1)
        .replace('no_negative_at_or_above = "serious"', 'no_negative_at_or_above = "general"')
    )
    said = [str(c) for c in diff(load_text(text), load_text(changed))]
    assert "changed record_type tax_paid_on_time: max_points 40.0 -> 30.0" in said
    assert "changed tier AA: no_negative_at_or_above 'serious' -> 'general'" in said
    assert "changed positive_caps positive_caps: commercial 60.0 -> 50.0" in said
