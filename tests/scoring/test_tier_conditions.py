"""Every subject in a tier meets its declared conditions, in every engine.

The oracle here is written over the raw records, not over the scoring code: from each
record's type, occurrence, receipt, ending and quantity it counts, per subject and
severity, the negative records that weigh against the subject at an instant (received
by then, effect not ended by then, age in ``[0, retention)``, a type with negative
points, a non-zero weight). It then checks each subject's tier against the rulebook's
:class:`~credence.rulebook.model.Tier` fields: the tier's conditions hold, its
threshold is reached (unless it is the lowest), and no higher tier has both its
threshold reached and its conditions met. The totals are the engines' own (their parity
is :mod:`tests.export.test_parity`'s concern); what is checked is where they put them.

Engines: the online scorer (Hypothesis-drawn records under the default rulebook and
two editions with other conditions), the nightly batch on the store (SQLite and
PostgreSQL), and the columnar and Spark engines on an export of that store. The store
holds a small city plus a few handcrafted subjects above the AAA threshold with a minor
or serious record against them, one retracted, one received late, one at the end of its
retention and one of quantity zero, under the default edition and then one whose lower
tiers have conditions too; each run must demote someone by a condition, so that the
check cannot pass vacuously.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Engine, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.disputes import four_eyes
from credence.export.service import export_ledger
from credence.identifiers import SubjectKind
from credence.lab.city import build_city
from credence.ledger import backfill, freshness
from credence.ledger import service as ledger
from credence.ledger.endings import effect_ends
from credence.ledger.lifting import PendingChange
from credence.ledger.registry import register_subject
from credence.ledger.schemas import SubjectIn
from credence.ledger.subject_file import RecordView
from credence.ledger.tables import Record, Source, Subject
from credence.rulebook import store
from credence.rulebook.loader import content_hash, default_text, load_text
from credence.rulebook.model import Rulebook, Tier
from credence.rulebook.store import Edition, edition_of
from credence.scoring import layout
from credence.scoring.batch import score_population
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.online import compute
from tests.world import person_id, store_context

# --- the oracle ----------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400 * 1_000_000
#: Severities, least severe first, spelled out here rather than taken from the model.
ORDER = ("minor", "general", "serious")


def micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Raw:
    """One record as stored: instants in microseconds since the epoch."""

    subject: int
    record_type: str | None
    occurred: int
    received: int
    ended: int | None
    quantity: float | None
    #: Its source's code (None: a record drawn without one, never frozen).
    source: str | None = None


#: Per source code, the interval ``(start, end)`` (microseconds) over which its outage
#: freezes its records' age as of the instant checked (outages are not behaviour).
Freezes = Mapping[str, tuple[int, int]]


def weighs_against(book: Rulebook, raw: Raw, at: int, freezes: Freezes | None = None) -> str | None:
    """The severity of ``raw`` if it weighs against its subject at ``at``, else None
    (its age less what its source's outage froze, ``freezes``)."""
    rt = book.record_type(raw.record_type) if raw.record_type is not None else None
    if rt is None or not rt.points < 0:
        return None
    if raw.received > at or (raw.ended is not None and raw.ended <= at):
        return None
    age = at - raw.occurred  # exact, in microseconds
    if freezes and raw.source is not None and raw.source in freezes:
        start, end = freezes[raw.source]
        age -= max(0, end - max(raw.occurred, start))
    if age < 0 or age >= rt.retention_days * US_PER_DAY:
        return None
    given_quantity = raw.quantity is not None and not math.isnan(raw.quantity)
    if rt.quantity is not None and given_quantity:
        assert raw.quantity is not None
        if min(max(raw.quantity, 0.0), rt.quantity.max_units) == 0.0:
            return None  # weight zero: takes nothing away
    return rt.severity.value


def against(
    book: Rulebook, raws: Iterable[Raw], at: int, freezes: Freezes | None = None
) -> dict[int, Counter[str]]:
    counts: dict[int, Counter[str]] = {}
    for raw in raws:
        severity = weighs_against(book, raw, at, freezes)
        if severity is not None:
            counts.setdefault(raw.subject, Counter())[severity] += 1
    return counts


def holds(tier: Tier, counts: Mapping[str, int]) -> bool:
    """Whether ``counts`` (negative records by severity) meet ``tier``'s conditions."""
    if tier.no_negative_at_or_above is not None:
        worst = ORDER.index(tier.no_negative_at_or_above.value)
        if any(counts.get(s, 0) for s in ORDER[worst:]):
            return False
    most = tier.max_negative_records
    return most is None or sum(counts.get(s, 0) for s in ORDER) <= most


@dataclass
class Verdict:
    problems: list[str]
    #: Subjects whose total reaches a higher tier's threshold than their tier's.
    demoted: set[int]
    counts: dict[int, Counter[str]]


def check_tiers(
    book: Rulebook,
    raws: Iterable[Raw],
    at: int,
    scored: Mapping[int, tuple[float, str]],
    freezes: Freezes | None = None,
) -> Verdict:
    """Check each scored subject's ``(total, tier)`` against the rulebook's tiers and the
    negative records that weigh against them at ``at``."""
    counts = against(book, raws, at, freezes)
    tiers = list(book.tiers)  # highest first
    codes = [t.code for t in tiers]
    problems: list[str] = []
    demoted: set[int] = set()
    for subject, (total, code) in scored.items():
        mine = counts.get(subject, Counter())
        said = f"subject {subject} (total {total!r}, {dict(mine)} against) in {code}"
        k = codes.index(code)
        tier = tiers[k]
        if not holds(tier, mine):
            problems.append(f"{said}: misses the tier's conditions")
        if k != len(tiers) - 1 and not total >= tier.min_score:
            problems.append(f"{said}: below its threshold {tier.min_score}")
        for higher in tiers[:k]:
            if total >= higher.min_score:
                demoted.add(subject)
                if holds(higher, mine):
                    problems.append(f"{said}: belongs in {higher.code}")
    return Verdict(problems, demoted, counts)


def as_tuple(counts: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(counts.get(s, 0) for s in ORDER)


# --- rulebooks -----------------------------------------------------------------------------

TierSpec = tuple[str, float, str | None, int | None]

#: Conditions on lower tiers too, so that one record can take a subject down several
#: tiers (a serious one from AAA's threshold to B).
LADDER: tuple[TierSpec, ...] = (
    ("AAA", 1050, None, 0),
    ("AA", 1030, "serious", 1),
    ("A", 960, "serious", None),
    ("B", 850, None, 3),
    ("C", 600, "serious", None),
    ("D", 300, None, None),
)
#: Conditions that do not nest: a lower tier may ask more than a higher one.
TANGLED: tuple[TierSpec, ...] = (
    ("AAA", 1050, "serious", None),
    ("AA", 1030, None, 0),
    ("A", 960, "general", None),
    ("B", 850, None, 1),
    ("C", 600, "minor", None),
    ("D", 300, None, None),
)


def with_tiers(version: str, tiers: Sequence[TierSpec]) -> str:
    """The default rulebook's text with another version and these tiers."""
    head, rest = default_text().split("[[tiers]]", 1)
    tail = rest[rest.index("[categories]") :]
    head, replaced = re.subn(r'(?m)^version = ".*"$', f'version = "{version}"', head, count=1)
    assert replaced == 1
    blocks = []
    for code, min_score, worst, most in tiers:
        block = f'[[tiers]]\ncode = "{code}"\nmin_score = {min_score:g}\n'
        if worst is not None:
            block += f'no_negative_at_or_above = "{worst}"\n'
        if most is not None:
            block += f"max_negative_records = {most}\n"
        blocks.append(block)
    return head + "\n".join(blocks) + "\n" + tail


def edition(text: str) -> Edition:
    book = load_text(text)  # checked as a new book would be
    return edition_of(book.version, content_hash(text), datetime(2020, 1, 1, tzinfo=UTC), text)


#: The default rulebook without its streak types' spacing: BOOST puts several years'
#: streaks and tax records next to the instant to reach every cap. (Intake's spacing has
#: tests of its own: tests/api/test_bought_identity.py, tests/ledger/test_intake_checks.py.)
DEFAULT_TEXT = re.sub(r"^min_spacing_days = .*\n", "", default_text(), flags=re.MULTILINE)
DEFAULT = edition(DEFAULT_TEXT)
LADDER_VERSION = "ladder"
LADDER_TEXT = with_tiers(LADDER_VERSION, LADDER)
EDITIONS = (DEFAULT, edition(LADDER_TEXT), edition(with_tiers("tangled", TANGLED)))
DEFAULT_CONDITIONS = {
    t.code: (t.no_negative_at_or_above, t.max_negative_records) for t in DEFAULT.rulebook.tiers
}


def test_the_default_rulebook_sets_the_conditions_this_suite_relies_on() -> None:
    assert DEFAULT_CONDITIONS["AAA"] == (None, 0)
    assert DEFAULT_CONDITIONS["AA"] == ("serious", None)
    for tiers, ed in ((LADDER, EDITIONS[1]), (TANGLED, EDITIONS[2])):
        got = [
            (t.code, t.min_score, t.no_negative_at_or_above, t.max_negative_records)
            for t in ed.rulebook.tiers
        ]
        assert got == [(c, float(m), w, n) for c, m, w, n in tiers]


# --- the online scorer ---------------------------------------------------------------------

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CODES = [rt.code for rt in DEFAULT.rulebook.record_types]
ONE_US = timedelta(microseconds=1)
#: Positive records near the instant that reach every category's cap (about +140), so
#: that totals reach the top tiers' thresholds and their conditions decide.
BOOST = (
    *(["loan_repaid"] * 7),
    *(["on_time_payment_streak"] * 6),
    *(["tax_paid_on_time"] * 11),
    *(["heroic_act"] * 2),
)


@st.composite
def records(draw: st.DrawFn) -> RecordView:
    code = draw(st.sampled_from([*CODES, "not_in_rulebook"]))
    rt = DEFAULT.rulebook.record_type(code)
    retention = timedelta(days=rt.retention_days if rt else 365)
    age = draw(
        st.one_of(
            st.sampled_from([retention, retention - ONE_US, timedelta(0), -ONE_US]),
            st.timedeltas(-timedelta(days=30), retention + timedelta(days=30)),
        )
    )
    occurred = NOW - age
    received = NOW - draw(
        st.one_of(
            st.sampled_from([timedelta(0), ONE_US, -ONE_US]),
            st.timedeltas(-timedelta(days=30), timedelta(days=400)),
        )
    )
    ended = draw(
        st.one_of(
            st.none(),
            st.sampled_from([NOW, NOW - ONE_US, NOW + ONE_US]),
            st.timedeltas(-timedelta(days=100), timedelta(days=100)).map(lambda d: NOW + d),
        )
    )
    quantity = draw(
        st.one_of(
            st.none(),
            st.sampled_from([0.0, -1.0, 0.5, 1e6]),
            st.floats(-10, 1000, allow_nan=False).map(lambda q: round(q, 2)),
        )
    )
    return view(code, occurred, received, ended, quantity, ref=str(draw(st.integers(0, 10**9))))


def view(
    code: str,
    occurred: datetime,
    received: datetime,
    ended: datetime | None,
    quantity: float | None,
    *,
    ref: str,
) -> RecordView:
    return RecordView(
        record_id=f"rec_{ref}",
        source_code="src",
        source_name="Source",
        source_ref=ref,
        record_type=code,
        occurred_at=occurred,
        received_at=received,
        quantity=quantity,
        decision_ref="D-1",
        ended_at=ended,
    )


def boost(at: datetime) -> list[RecordView]:
    return [
        view(code, at - timedelta(days=1), at - timedelta(days=1), None, None, ref=f"boost{i}")
        for i, code in enumerate(BOOST)
    ]


def raw_of(v: RecordView) -> Raw:
    return Raw(
        subject=0,
        record_type=v.record_type,
        occurred=micros(v.occurred_at),
        received=micros(v.received_at),
        ended=None if v.ended_at is None else micros(v.ended_at),
        quantity=v.quantity,
    )


def test_the_online_scorer_places_every_subject_in_the_highest_tier_it_qualifies_for() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=250, deadline=None)
    @given(
        drawn=st.lists(records(), max_size=12),
        boosted=st.booleans(),
        ed=st.sampled_from(EDITIONS),
    )
    def run(drawn: list[RecordView], boosted: bool, ed: Edition) -> None:
        views = [*drawn, *(boost(NOW) if boosted else [])]
        # Unique references: the scorer's canonical order breaks ties by them.
        views = [
            view(v.record_type, v.occurred_at, v.received_at, v.ended_at, v.quantity, ref=f"{i}")
            for i, v in enumerate(views)
        ]
        score = compute(views, ed, NOW)
        verdict = check_tiers(
            ed.rulebook, [raw_of(v) for v in views], micros(NOW), {0: (score.total, score.tier)}
        )
        assert verdict.problems == []
        assert score.against == as_tuple(verdict.counts.get(0, Counter()))
        seen["demoted"] += len(verdict.demoted)
        seen["against"] += bool(verdict.counts)

    run()
    # Not vacuous: conditions did demote subjects, and records did weigh against them.
    assert seen["demoted"] >= 20, seen
    assert seen["against"] >= 50, seen


# --- the store, the nightly batch, the columnar engine and Spark ----------------------------

#: The city's instant; handcrafted records arrive just after it.
T0 = datetime(2026, 6, 1, tzinfo=UTC)
#: The two instants scored: under the default edition, before a retraction and a late
#: receipt; and under the ladder edition (published between them), after both.
TA, TB = T0 + timedelta(days=3), T0 + timedelta(days=20)
RETRACTED_AT, LATE_AT, LADDER_AT = (T0 + timedelta(days=d) for d in (5, 10, 15))
RETENTION = timedelta(days=365)  # traffic_violation's

#: Handcrafted subjects: what is on their file besides :data:`BOOST`, and the tier each
#: must land in at TA (default edition) and at TB (ladder edition).
HANDCRAFTED: dict[str, tuple[str, str]] = {
    "clean": ("AAA", "AAA"),
    "minor": ("AA", "AA"),  # a traffic ticket: not AAA (which allows no record at all)
    "serious": ("A", "B"),  # drunk driving: not AA (nothing serious), nor the ladder's A
    "retracted": ("A", "AAA"),  # drunk driving, retracted between TA and TB
    "late": ("AAA", "B"),  # drunk driving received between TA and TB
    "lapsed": ("AA", "AAA"),  # a ticket whose retention ends exactly at TB
    "nearly": ("AA", "AA"),  # a ticket one microsecond short of its retention at TB
    "zero": ("AAA", "AAA"),  # tax arrears of quantity 0: weighs nothing
}
BOOST_SOURCES = {
    "loan_repaid": "city_bank",
    "on_time_payment_streak": "city_bank",
    "tax_paid_on_time": "tax_office",
    "heroic_act": "volunteer_federation",
}


def handcraft(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Register the :data:`HANDCRAFTED` persons and submit their records; returns their
    store ids."""
    ids: dict[str, int] = {}
    with sessions.begin() as session:
        book = store.in_force(session, T0).rulebook
        sources = {s.code: s for s in session.scalars(select(Source))}
        public: dict[str, str] = {}
        for n, name in enumerate(HANDCRAFTED):
            subject, created = register_subject(
                session,
                source=sources["civil_registry"],
                data=SubjectIn(
                    kind=SubjectKind.PERSON, identifier=person_id(70_000 + n), name=f"H{n}"
                ),
                at=T0,
            )
            assert created
            session.flush()
            ids[name], public[name] = subject.id, subject.public_id

        # The handcrafted files are a historical load: through an approved backfill run
        # per source (the volume limits would hold BOOST for new identities).
        runs = {
            code: backfill.approve(
                session,
                source=sources[code],
                occurred_from=T0 - timedelta(days=3650),
                occurred_until=T0 + timedelta(microseconds=1),
                expected_records=1000,
                principal_id=None,
                at=T0,
            ).public_id
            for code in sorted({*BOOST_SOURCES.values(), "traffic_police", "tax_office"})
        }

        def submit(source: str, at: datetime, *items: dict[str, Any]) -> list[str]:
            results = ledger.submit_records(
                session,
                source=sources[source],
                records=ledger.parse_records(list(items)),
                rulebook=book,
                at=at,
                backfill=backfill.scope(session, runs[source], sources[source].id),
            )
            assert [r.error for r in results] == [None] * len(items)
            return [str(r.record_id) for r in results]

        def item(name: str, code: str, occurred: datetime, **extra: Any) -> dict[str, Any]:
            ref = f"H-{name}-{code}-{micros(occurred)}"
            return {
                "source_ref": ref,
                "subject_id": public[name],
                "record_type": code,
                "occurred_at": occurred.isoformat(),
                **extra,
            }

        arrive = T0 + timedelta(hours=1)
        for name in HANDCRAFTED:
            for i, code in enumerate(BOOST):
                submit(BOOST_SOURCES[code], arrive, item(name, code, T0 - timedelta(minutes=i)))
        decided = {"decision_ref": "TP-2026-0000001"}
        submit("traffic_police", arrive, item("minor", "traffic_violation", T0, **decided))
        submit("traffic_police", arrive, item("serious", "drunk_driving_penalty", T0, **decided))
        [retracted] = submit(
            "traffic_police", arrive, item("retracted", "drunk_driving_penalty", T0, **decided)
        )
        submit(
            "traffic_police", arrive, item("lapsed", "traffic_violation", TB - RETENTION, **decided)
        )
        submit(
            "traffic_police",
            arrive,
            item("nearly", "traffic_violation", TB - RETENTION + ONE_US, **decided),
        )
        submit("tax_office", arrive, item("zero", "tax_arrears", T0, quantity=0, **decided))
        ledger.retract_record(
            session,
            source=sources["traffic_police"],
            record_id=retracted,
            reason="sent in error",
            at=RETRACTED_AT,
        )
        # A serious record: its retraction takes effect once a reviewer confirms it.
        [held] = session.scalars(
            select(PendingChange.public_id).where(PendingChange.status == "pending")
        )
        four_eyes.confirm_change(
            session,
            change_id=held,
            by=four_eyes.Decider(principal_id=None),
            reason="sent in error, as the source says",
            at=RETRACTED_AT,
        )
        submit("traffic_police", LATE_AT, item("late", "drunk_driving_penalty", T0, **decided))
        store.publish(session, text=LADDER_TEXT, at=LADDER_AT)
    return ids


def store_records(session: Session) -> list[Raw]:
    """Every record of the store, raw, with when its effect ended (if it has)."""
    raw = BigInteger()
    ends = effect_ends()
    rows = session.execute(
        select(
            Record.subject_id,
            Record.record_type,
            type_coerce(Record.occurred_at, raw),
            type_coerce(Record.received_at, raw),
            type_coerce(ends.c.ended_at, raw),
            Record.quantity,
            Source.code,
        )
        .join(Source, Source.id == Record.source_id)
        .outerjoin(ends, ends.c.record_id == Record.id)
        .where(Record.record_type.is_not(None))
    )
    return [Raw(*row) for row in rows]


def freezes_at(session: Session, book: Rulebook, at: datetime) -> dict[str, tuple[int, int]]:
    """The oracle's own statement of the freeze: a source in outage at ``at`` since
    ``o`` (the ledger's freshness rule) freezes its records' age over ``[o, min(at, o +
    max_freeze_days)]``."""
    if book.outages is None:
        return {}
    days = book.outages.max_freeze_days
    return {
        o.code: (micros(o.since), min(micros(at), micros(o.since) + days * US_PER_DAY))
        for o in freshness.outages(session, at).values()
    }


def export_records(out: Path) -> list[Raw]:
    names = [*layout.RECORD_COLUMNS, "source"]
    table = pq.read_table(out / layout.RECORDS_DIR, columns=names)
    columns = {name: table.column(name).to_pylist() for name in names}
    return [
        Raw(s, t, o, r, e, q, c)
        for s, t, o, r, q, e, c in zip(
            columns["subject_id"],
            columns["record_type"],
            columns["occurred_at"],
            columns["received_at"],
            columns["quantity"],
            columns["ended_at"],
            columns["source"],
            strict=True,
        )
    ]


def assert_placed(
    engine_name: str,
    book: Rulebook,
    raws: list[Raw],
    at: datetime,
    scored: Mapping[int, tuple[float, str]],
    handcrafted: Mapping[str, int],
    which: int,
    freezes: Freezes,
) -> Verdict:
    """The oracle's check of one engine's run, and the handcrafted subjects' tiers."""
    verdict = check_tiers(book, raws, micros(at), scored, freezes)
    assert verdict.problems == [], (engine_name, at, verdict.problems[:10])
    got = {name: scored[i][1] for name, i in handcrafted.items()}
    assert got == {name: tiers[which] for name, tiers in HANDCRAFTED.items()}, (engine_name, at)
    # Not vacuous: subjects were demoted by a condition (the handcrafted ones at least).
    assert {handcrafted["minor"], handcrafted["serious"]} <= verdict.demoted
    return verdict


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
def test_every_engine_places_every_subject_in_the_highest_tier_it_qualifies_for(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    clock.set(T0)
    build_city(
        sessions,
        rulebook_edition_text=DEFAULT_TEXT,
        persons=400,
        organisations=40,
        records=20_000,
        seed=11,
        now=T0,
    )
    handcrafted = handcraft(sessions)

    demoted: Counter[str] = Counter()
    #: The oracle's freeze of each instant's outages.
    freezes: dict[int, Freezes] = {}
    with sessions() as session:
        raws = store_records(session)
        for which, at in enumerate((TA, TB)):
            ed = store.in_force(session, at)
            assert ed.version == (LADDER_VERSION if which else DEFAULT.version)
            population = score_population(session, ed, at)
            scored = {
                int(i): (float(total), tier)
                for i, total, tier in zip(
                    population.subject_ids, population.totals, population.tiers, strict=True
                )
            }
            freezes[which] = freezes_at(session, ed.rulebook, at)
            verdict = assert_placed(
                "batch", ed.rulebook, raws, at, scored, handcrafted, which, freezes[which]
            )
            expected = np.array(
                [as_tuple(verdict.counts.get(int(i), Counter())) for i in population.subject_ids]
            )
            assert np.array_equal(population.against, expected)
            demoted[f"batch {which}"] = len(verdict.demoted)

    # Ended records are exercised: some weigh at TA and no longer at TB for their ending.
    ended = [r for r in raws if r.ended is not None and micros(TA) < r.ended <= micros(TB)]
    assert any(weighs_against(DEFAULT.rulebook, r, micros(TA)) for r in ended)

    clock.set(TB)
    out = tmp_path / "export"
    export_ledger(
        store_context(engine, sessions, clock, tmp_path / "log.key"), out, part_subjects=200
    )
    exported = export_records(out)
    subjects = pq.read_table(out / layout.SUBJECTS_DIR, columns=["subject_id", "public_id"])
    with sessions() as session:
        by_public = {
            s.public_id: name
            for name, i in handcrafted.items()
            for s in [session.get_one(Subject, i)]
        }
    in_export = {
        by_public[p]: int(s)
        for s, p in zip(
            subjects.column("subject_id").to_pylist(),
            subjects.column("public_id").to_pylist(),
            strict=True,
        )
        if p in by_public
    }
    # The export is the same files from either store: Spark (a JVM per test process)
    # scores the SQLite one only.
    engines = ["columnar", *(["spark"] if backend == "sqlite" else [])]
    for which, at in enumerate((TA, TB)):
        exported_edition = layout.edition_in_force(out, at)
        assert exported_edition is not None
        assert exported_edition.version == (LADDER_VERSION if which else DEFAULT.version)
        for name in engines:
            dest = tmp_path / f"{name}-{which}"
            if name == "spark":
                from credence.scoring.spark import score_parquet_spark

                score_parquet_spark(
                    out,
                    dest,
                    at=at,
                    rulebook=exported_edition,
                    spark=request.getfixturevalue("spark"),
                )
            else:
                score_parquet(out, dest, at=at, rulebook=exported_edition)
            scores = read_scores(dest)
            scored = {
                int(i): (float(total), str(tier))
                for i, total, tier in zip(
                    scores.column("subject_id").to_pylist(),
                    scores.column("total").to_pylist(),
                    scores.column("tier").to_pylist(),
                    strict=True,
                )
            }
            verdict = assert_placed(
                name,
                exported_edition.rulebook,
                exported,
                at,
                scored,
                in_export,
                which,
                freezes[which],
            )
            demoted[f"{name} {which}"] = len(verdict.demoted)
    assert min(demoted.values()) > 0, demoted
    assert len(demoted) == 2 * (1 + len(engines)), demoted
