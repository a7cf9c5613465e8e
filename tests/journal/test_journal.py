"""The journal package: typed event kinds, refusals, and a base that imports no feature.

The flow test builds a small demo city (the lab's bulk path, keys, a first checkpoint)
and walks every kind of step through the services on top of it, on both stores; every
kind stored must be an :class:`EventKind`, and every member must be stored by it.
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import credence.journal
from credence import journal
from credence.access.keys import PREFIX_LEN, create_principal, issue_key, revoke_key
from credence.access.policy import Role
from credence.clock import FixedClock
from credence.context import Context
from credence.decisions.service import decide
from credence.disputes import four_eyes, repair
from credence.disputes import service as disputes
from credence.disputes.four_eyes import Decider
from credence.disputes.service import Answerer
from credence.identifiers import SubjectKind, make_credit_code, make_resident_id
from credence.journal import DESCRIPTIONS, EventKind, JournalEntry
from credence.lab.demo import build_demo
from credence.ledger import freshness, holds, identities, registry, suspension
from credence.ledger import service as ledger
from credence.ledger.erasure import sweep_retention
from credence.ledger.lifting import PendingChange
from credence.ledger.schemas import RecordIn, SubjectIn
from credence.ledger.tables import Record, Source
from credence.models import metadata
from credence.rulebook import store
from credence.settings import Settings
from credence.tiers.service import update_tiers
from credence.watch import alerts
from tests.world import person_id

#: What the journal package may import from Credence: the base it stands on.
ALLOWED = ("credence.db", "credence.clock", "credence.errors", "credence.ids")
#: Every feature package (and the top: api, cli, lab, models, ...) it must not import.
FEATURES = (
    "access",
    "api",
    "audit",
    "cli",
    "context",
    "decisions",
    "disputes",
    "identifiers",
    "lab",
    "ledger",
    "migrate",
    "migrations",
    "models",
    "notifications",
    "rulebook",
    "scoring",
    "settings",
    "tiers",
    "translog",
    "watch",
)


# --- kinds ---------------------------------------------------------------------------


def test_every_kind_is_described_in_one_line() -> None:
    assert set(DESCRIPTIONS) == set(EventKind)
    for kind in EventKind:
        assert kind.description.strip(), kind
        assert "\n" not in kind.description, kind
        assert len(kind.value) <= JournalEntry.__table__.c.kind.type.length, kind  # type: ignore[attr-defined]


def test_an_unknown_kind_is_refused(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    for kind in ("no_such_kind", EventKind.RETRACTION.value):
        with sessions() as session, pytest.raises(ValueError, match="not a journal event kind"):
            journal.append(session, kind=kind, at=clock.now(), data={})  # type: ignore[arg-type]
        with sessions() as session, pytest.raises(ValueError, match="not a journal event kind"):
            journal.append_many(
                session,
                [
                    {"kind": EventKind.RETRACTION, "at": clock.now(), "subject_id": None},
                    {"kind": kind, "at": clock.now(), "subject_id": None, "data": "{}"},
                ],
            )
    with sessions.begin() as session:
        journal.append(session, kind=EventKind.KEY_ISSUED, at=clock.now(), data={"n": 1})
    with sessions() as session:
        assert session.scalars(select(JournalEntry.kind)).all() == ["key_issued"]


def test_every_kind_a_demo_flow_stores_is_a_member(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    demo_flow(engine, sessions, clock, tmp_path)
    # The retention sweep, far enough ahead for the flow's oldest record to expire.
    with sessions() as session:
        book = store.in_force(session, clock.now()).rulebook
    erased = sweep_retention(engine, sessions, book, clock.now() + timedelta(days=2000))
    assert erased.total > 0
    with sessions() as session:
        stored = set(session.scalars(select(JournalEntry.kind).distinct()))
        rows = session.scalar(select(func.count()).select_from(JournalEntry))
    unknown = sorted(stored - {k.value for k in EventKind})
    assert unknown == [], f"kinds stored that are not EventKind members: {unknown}"
    # ... and the flow stores every kind: none of the enum's members is dead, but those
    # only the migration that continues an earlier log writes (see test_log_migration).
    continuing = {EventKind.LOG_CONTINUED.value, EventKind.CARRIED_OVER.value}
    assert sorted(k.value for k in EventKind if k.value not in stored | continuing) == []
    assert rows is not None
    assert rows > 300
    # Every covered table's rows, as the flow wrote them, encode.
    with sessions() as session:
        for name, entry in sorted(journal.REGISTRY.tables.items()):
            if isinstance(entry, journal.Covered):
                table = metadata.tables[name]
                for row in session.execute(select(table)).mappings():
                    assert entry.encoder(row)


def demo_flow(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """A small demo city, then every step a subject, a source, a reviewer, a relying
    party and an operator take, through the services."""
    ctx = Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)
    keys = build_demo(
        ctx,
        console=Console(file=io.StringIO()),
        persons=30,
        organisations=5,
        records=300,
        seed=3,
        reset=False,
        env_file=tmp_path / "demo.env",
        base_url="http://127.0.0.1:8000",
    )
    assert keys
    with sessions.begin() as session:
        edition = store.in_force(session, clock.now())
        book = edition.rulebook
        sources = {s.code: s for s in session.scalars(select(Source))}
        # A person and a company of our own, with files nothing else touches.
        p = registry.register_subject(
            session,
            source=sources["civil_registry"],
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=person_id(9001), name="Flow"),
            at=clock.now(),
        )[0]
        company = registry.register_subject(
            session,
            source=sources["business_registry"],
            data=SubjectIn(
                kind=SubjectKind.COMPANY,
                identifier=make_credit_code("9", "1", "371082", "000009001"),
                name="Flow Co",
                founded_on=date(2009, 9, 1),
            ),
            at=clock.now(),
        )[0]
        session.expunge_all()

    def submit(source: str, *records: dict[str, object]) -> list[str]:
        with sessions.begin() as session:
            results = ledger.submit_records(
                session,
                source=session.merge(sources[source]),
                records=ledger.parse_records(list(records)),
                rulebook=book,
                at=clock.now(),
            )
        return [r.status if r.error is None else str(r.error["code"]) for r in results]

    def loan_default(ref: str, days_ago: int, **extra: object) -> dict[str, object]:
        return {
            "source_ref": ref,
            "subject_id": p.public_id,
            "record_type": "loan_default",
            "occurred_at": (clock.now() - timedelta(days=days_ago)).isoformat(),
            "decision_ref": f"REG-{ref[:3]}",
            **extra,
        }

    def record_id(ref: str) -> str:
        with sessions() as session:
            return session.scalars(select(Record.public_id).where(Record.source_ref == ref)).one()

    def open_dispute(record: str) -> str:
        with sessions.begin() as session:
            return disputes.open_dispute(
                session,
                subject=session.merge(p),
                record_id=record,
                reason="I repaid this loan on time",
                new_information=None,
                rulebook=book,
                at=clock.now(),
            ).dispute_id

    def answer(dispute: str, outcome: str, correction: dict[str, object] | None = None) -> None:
        with sessions.begin() as session:
            disputes.answer_dispute(
                session,
                dispute_id=dispute,
                outcome=outcome,
                explanation="Checked against our ledger.",
                by=Answerer(kind="source", name="city_bank"),
                rulebook=book,
                at=clock.now(),
                correction=RecordIn.model_validate(correction) if correction else None,
            )

    assert (
        submit("city_bank", *(loan_default(f"F-{i}", 120) for i in range(1, 6))) == ["created"] * 5
    )
    # Deleted after a dispute, then reinserted with a certification.
    answer(open_dispute(record_id("F-1")), "deleted")
    assert submit("city_bank", loan_default("F-1b", 120, certified=True)) == ["created"]
    # Corrected: the source sends the corrected record with its answer.
    answer(open_dispute(record_id("F-2")), "corrected", loan_default("F-2b", 121))
    # A statement, a dispute left to lapse, a retraction.
    with sessions.begin() as session:
        disputes.add_statement(
            session,
            subject=session.merge(p),
            record_id=record_id("F-3"),
            text="Paid.",
            at=clock.now(),
        )
    open_dispute(record_id("F-3"))
    with sessions.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(sources["city_bank"]),
            record_id=record_id("F-5"),
            reason="entered twice",
            at=clock.now(),
        )
    # Four eyes on what lifts a sanction: a judgment default's retraction held, then
    # refused; another's deletion after a dispute held, then superseded by the dispute's
    # lapse (the sweep below).
    judgments: list[dict[str, object]] = [
        {
            "source_ref": ref,
            "subject_id": p.public_id,
            "record_type": "judgment_default",
            "occurred_at": (clock.now() - timedelta(days=30)).isoformat(),
            "decision_ref": f"(2026)Zhi-{ref}",
        }
        for ref in ("JD-1", "JD-2")
    ]
    assert submit("intermediate_court", *judgments) == ["created"] * 2
    with sessions.begin() as session:
        held, created = ledger.retract_record(
            session,
            source=session.merge(sources["intermediate_court"]),
            record_id=record_id("JD-1"),
            reason="entered twice",
            at=clock.now(),
        )
        assert isinstance(held, PendingChange)
        assert created
        refused = held.public_id
    with sessions.begin() as session:
        four_eyes.refuse_change(
            session,
            change_id=refused,
            by=Decider(principal_id=None),
            reason="The enforcement order stands.",
            at=clock.now(),
        )
    lapsing = open_dispute(record_id("JD-2"))
    with sessions.begin() as session:
        assert disputes.answer_dispute(
            session,
            dispute_id=lapsing,
            outcome="deleted",
            explanation="Listed in error.",
            by=Answerer(kind="source", name="intermediate_court"),
            rulebook=book,
            at=clock.now(),
        ).pending_change
    clock.advance(timedelta(days=60))
    with sessions.begin() as session:
        assert disputes.sweep(session, clock.now())
    # A burst of positives about a new identity is held; one hold released, one rejected.
    repaid: list[dict[str, object]] = [
        {
            "source_ref": f"BURST-{i}",
            "subject_id": p.public_id,
            "record_type": "loan_repaid",
            "occurred_at": (clock.now() - timedelta(days=i + 1)).isoformat(),
        }
        for i in range(13)
    ]
    assert submit("city_bank", *repaid) == ["held"] * 13
    with sessions.begin() as session:
        queue = holds.list_holds(session)
        verdicts: tuple[holds.Outcome, ...] = ("released", "rejected")
        for view, verdict in zip(queue[:2], verdicts, strict=True):
            holds.decide(
                session,
                hold_id=view.hold_id,
                outcome=verdict,
                principal_id=None,
                reason="Checked with the bank.",
                at=clock.now(),
            )
    # Credit repair, applied for and decided.
    with sessions.begin() as session:
        applied = repair.apply_for_repair(
            session,
            subject=session.merge(p),
            record_id=record_id("F-4"),
            commitment="I repaid the loan in full and set up automatic payments.",
            rulebook=book,
            at=clock.now(),
        )
    with sessions.begin() as session:
        repair.decide_repair(
            session,
            repair_id=applied.repair_id,
            approve=True,
            reasons="Repayment confirmed by the bank.",
            principal_id=None,
            at=clock.now(),
        )
    # Warned before a restriction, then cleared once no longer caught.
    fraud: dict[str, object] = {
        "source_ref": "FJ-1",
        "subject_id": company.public_id,
        "record_type": "fraud_judgment",
        "occurred_at": clock.now().isoformat(),
        "decision_ref": "(2026)Flow-1",
    }
    assert submit("intermediate_court", fraud) == ["created"]

    def ask() -> list[str]:
        with sessions.begin() as session:
            return decide(
                session,
                subject=session.merge(company),
                service_code="public_procurement_bid",
                edition=edition,
                at=clock.now(),
                party_id=None,
                principal_id=None,
            ).warnings

    assert ask()
    with sessions.begin() as session:
        held, _ = ledger.retract_record(
            session,
            source=session.merge(sources["intermediate_court"]),
            record_id=record_id("FJ-1"),
            reason="quashed on appeal",
            at=clock.now(),
        )
        assert isinstance(held, PendingChange)
        confirmed = held.public_id
    assert ask()  # held: the judgment counts until a reviewer confirms its retraction
    with sessions.begin() as session:
        four_eyes.confirm_change(
            session,
            change_id=confirmed,
            by=Decider(principal_id=None),
            reason="The appeal judgment quashes it.",
            at=clock.now(),
        )
    clock.advance(timedelta(days=1))
    assert ask() == []
    # Four registrations alike (same name, birth date and region): the later three are
    # flagged; the civil registry merges one and undoes it, voids one, finds one distinct.
    with sessions.begin() as session:
        twins = [
            registry.register_subject(
                session,
                source=sources["civil_registry"],
                data=SubjectIn(
                    kind=SubjectKind.PERSON,
                    identifier=make_resident_id("110105", date(1977, 7, 7), n),
                    name="Flow Twin",
                    region="110105",
                ),
                at=clock.now(),
            )[0]
            for n in (1, 30, 50, 70)
        ]
        first = twins[0].id
        flags = [
            next(f.flag_id for f in identities.flags_of(session, t.id) if f.other == first)
            for t in twins[1:]
        ]
        answers = zip(
            flags, (identities.MERGED, identities.VOIDED, identities.DISTINCT), strict=True
        )
        for flag, outcome in answers:
            resolved, _ = identities.resolve_flag(
                session,
                flag_id=flag,
                outcome=outcome,
                authority=sources["civil_registry"],
                principal_id=None,
                reason="Checked against the household register.",
                at=clock.now(),
            )
            if resolved.alias_id is not None:
                identities.end_alias(
                    session,
                    alias_id=resolved.alias_id,
                    authority=sources["civil_registry"],
                    principal_id=None,
                    reason="Two persons after all.",
                    at=clock.now(),
                )
    # The bank's cadence of loan repayments declared anew.
    with sessions.begin() as session:
        freshness.declare(
            session,
            source=session.merge(sources["city_bank"]),
            cadences=[freshness.Cadence("loan_repaid", 14, 7)],
            at=clock.now(),
        )
    # The bank suspended under a legal order, then reinstated.
    with sessions.begin() as session:
        bank = session.merge(sources["city_bank"])
        suspension.suspend(
            session,
            source=bank,
            reason="legal_order",
            reference="(2026) Hu 0105 Zhi 123",
            principal_id=None,
            at=clock.now(),
        )
        suspension.reinstate(session, source=bank, principal_id=None, at=clock.now())
    # The bank promises a report a day and goes quiet: a scan of sources raises its
    # outage; an operator acknowledges the alert and closes it.
    with sessions.begin() as session:
        freshness.declare(
            session,
            source=session.merge(sources["city_bank"]),
            cadences=[freshness.Cadence("loan_repaid", 1, 0)],
            at=clock.now(),
        )
    clock.advance(timedelta(days=3))
    with sessions.begin() as session:
        found = alerts.scan(session, through=clock.now(), at=clock.now())
        outage = next(a for a in found.raised if a.detector == "outage")
        alerts.acknowledge(
            session, alert_id=outage.id, note="asked the bank", principal_id=None, at=clock.now()
        )
        alerts.close(
            session, alert_id=outage.id, note="a fault, mended", principal_id=None, at=clock.now()
        )
    # The bank reports again: what it missed opens a catch-up run (exempt from the
    # burst limit only: the new identity's limit, which the burst above reached, holds it).
    late: dict[str, object] = {
        "source_ref": "LATE-1",
        "subject_id": p.public_id,
        "record_type": "loan_repaid",
        "occurred_at": (clock.now() - timedelta(days=1)).isoformat(),
    }
    assert submit("city_bank", late) == ["held"]
    # A tier first shown, then moved; a key issued and revoked.
    with sessions.begin() as session:
        update_tiers(session, book, clock.now(), [(p.id, 1000.0, (0, 0, 0))])
        assert update_tiers(session, book, clock.now(), [(p.id, 0.0, (0, 0, 0))]).down == 1
        operator = create_principal(session, role=Role.OPERATOR, name="Flow operator", clock=clock)
        key = issue_key(session, principal=operator, clock=clock)
        revoke_key(session, prefix=key[:PREFIX_LEN], clock=clock)


# --- layers --------------------------------------------------------------------------


def _package_modules() -> Iterator[Path]:
    root = Path(credence.journal.__file__).parent
    yield from sorted(root.glob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "credence.journal"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            # ``from credence import ledger`` imports the package named by the alias.
            if module == "credence":
                for alias in node.names:
                    yield node.lineno, f"credence.{alias.name}"


def _allowed(module: str) -> bool:
    if module == "credence" or not module.startswith("credence."):
        return True  # the standard library, third-party libraries, the namespace itself
    return any(module == a or module.startswith(f"{a}.") for a in (*ALLOWED, "credence.journal"))


def test_the_journal_package_imports_no_feature_in_its_source() -> None:
    modules = list(_package_modules())
    assert {m.name for m in modules} >= {"__init__.py", "kinds.py", "coverage.py", "tables.py"}
    found = [
        f"{path.name}:{line} imports {module}"
        for path in modules
        for line, module in _imports(path)
        if not _allowed(module)
    ]
    assert found == []


def test_the_checker_sees_a_feature_import(tmp_path: Path) -> None:
    """The walk above finds each form of import of a feature (it would not pass a
    module that imports the ledger)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import credence.ledger.tables\n"
        "from credence import scoring, clock\n"
        "from credence.rulebook.store import publish\n"
        "from ..disputes import tables\n"
        "from credence.db import Base\n",
        encoding="utf-8",
    )
    assert [m for _, m in _imports(bad) if not _allowed(m)] == [
        "credence.ledger.tables",
        "credence.scoring",
        "credence.rulebook.store",
        "credence.disputes",
    ]


def test_importing_the_journal_loads_no_feature() -> None:
    """In a fresh interpreter, ``import credence.journal`` loads only the base,
    whatever the base itself imports (transitive, unlike the walk of its source)."""
    code = (
        "import json, sys\n"
        "import credence.journal\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('credence'))))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "credence.journal.coverage" in loaded
    assert [m for m in loaded if not _allowed(m)] == []
    assert not any(m.startswith(f"credence.{f}") for m in loaded for f in FEATURES)
