"""Build ``store.sqlite``: a store written by Credence before migration 0008.

Run with the code of commit ``ff96c12`` (the last one before the journal held rows'
digests instead of their content), from the repository root::

    git worktree add /tmp/base_mig ff96c12
    PYTHONPATH=/tmp/base_mig/src:/tmp/base_mig python tests/data/pre_0008/make.py
    git worktree remove --force /tmp/base_mig

It writes, next to itself:

* ``store.sqlite``: a small demo city (the lab's ``build_demo``: 20 persons,
  4 organisations, 200 records, keys, a first checkpoint), then a person and a company
  of its own taking the steps of due process (records, a dispute answered ``deleted``
  and the record reinserted with a certification, a dispute answered ``corrected``, a
  statement, a dispute left to lapse, a retraction, a credit repair, a warning issued
  and cleared, tiers, a key issued and revoked), a second checkpoint, and a few entries
  after it that no checkpoint covers. At Alembic revision 0007, vacuumed, journal
  mode DELETE (one file).
* ``test-only-log.key`` (only if missing): the throwaway Ed25519 key that signed the
  two checkpoints, under the origin ``ORIGIN``. Test data: it signs nothing else.
* ``store.json``: what ``tests/translog/test_continuation.py`` checks against (number of
  journal entries and checkpoints, origin, key file, and the content strings of some
  records, which the old journal held and the migrated one must not).

The old code's API is used throughout (``credence.translog.service.checkpoint`` and
the services as they were at that commit); nothing here runs against newer code.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import PREFIX_LEN, create_principal, issue_key, revoke_key
from credence.access.policy import Role
from credence.clock import FixedClock
from credence.context import Context
from credence.db import make_engine, session_factory
from credence.decisions.service import decide
from credence.disputes import repair
from credence.disputes import service as disputes
from credence.disputes.service import Answerer
from credence.identifiers import SubjectKind, make_credit_code, make_resident_id
from credence.journal import JournalEntry
from credence.lab.demo import build_demo
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn, SubjectIn
from credence.ledger.tables import Record, Source, Subject
from credence.rulebook import store
from credence.settings import Settings
from credence.tiers.service import update_tiers
from credence.translog.keys import load_signer
from credence.translog.service import checkpoint, tree_at
from credence.translog.tables import StoredCheckpoint

HERE = Path(__file__).resolve().parent
STORE = HERE / "store.sqlite"
KEY = HERE / "test-only-log.key"
FACTS = HERE / "store.json"
ORIGIN = "credence.example/log"
"""The old log's origin (the old default ``log_origin``)."""
T0 = datetime(2026, 3, 1, tzinfo=UTC)
COMMIT = "ff96c12"


def old_code_commit() -> str:
    """The commit of the checkout the ``credence`` package was imported from."""
    return subprocess.run(
        ["git", "rev-parse", "--short=7", "HEAD"],  # noqa: S607
        cwd=Path(sys.modules["credence"].__file__ or ".").parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def main() -> None:
    code = old_code_commit()
    if code != COMMIT:
        sys.exit(f"credence comes from commit {code or '?'}, not {COMMIT}: see make.py's docstring")
    if STORE.exists():
        STORE.unlink()
    clock = FixedClock(T0)
    settings = Settings(log_key_path=str(KEY), log_origin=ORIGIN)
    signer, _ = load_signer(KEY, name=ORIGIN)
    KEY.chmod(0o600)
    engine = make_engine(f"sqlite:///{STORE}")
    sessions = session_factory(engine)
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
    with tempfile.TemporaryDirectory() as tmp:
        build_demo(
            ctx,
            console=Console(file=io.StringIO()),
            persons=20,
            organisations=4,
            records=200,
            seed=8,
            reset=False,
            env_file=Path(tmp) / "demo.env",
            base_url="http://127.0.0.1:8000",
        )
    refs = flow(sessions, clock)

    clock.advance(timedelta(hours=1))
    with sessions.begin() as session:
        checkpoint(session, signer=signer, at=clock.now())
    # The unsigned tail: entries after the last checkpoint.
    clock.advance(timedelta(hours=1))
    tail = submit_tail(sessions, clock)
    with sessions.begin() as session:
        operator = create_principal(session, role=Role.OPERATOR, name="Tail operator", clock=clock)
        issue_key(session, principal=operator, clock=clock)

    with sessions() as session:
        entries = session.scalar(select(func.count()).select_from(JournalEntry))
        last_cp = session.scalars(
            select(StoredCheckpoint).order_by(StoredCheckpoint.id.desc())
        ).first()
        journal = session.scalars(select(JournalEntry.data)).all()
        # The old log's tree head over every entry, unsigned tail included, as the old
        # code computes it (the new log's first entry must record the same).
        head = tree_at(session)
        n_checkpoints = session.scalar(select(func.count()).select_from(StoredCheckpoint))
        records = [
            {
                "public_id": r.public_id,
                "source_ref": r.source_ref,
                "decision_ref": r.decision_ref,
            }
            for r in session.scalars(
                select(Record).where(Record.source_ref.in_([*refs, *tail])).order_by(Record.id)
            )
        ]
        city = session.scalars(
            select(Record).where(Record.source_ref.not_in([*refs, *tail])).order_by(Record.id)
        ).all()
        records += [
            {"public_id": r.public_id, "source_ref": r.source_ref, "decision_ref": r.decision_ref}
            for r in (city[0], city[len(city) // 2], city[-1])
        ]
    engine.dispose()
    assert last_cp is not None
    with sqlite3.connect(STORE) as db:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    db = sqlite3.connect(STORE, isolation_level=None)
    db.execute("VACUUM")
    db.close()
    content = sorted(
        {
            *(str(r["source_ref"]) for r in records),
            *(str(r["decision_ref"]) for r in records if r["decision_ref"]),
            RETRACTION_REASON,
        }
    )
    # Each of them is in the old journal: the migrated one must have lost them.
    missing = [text for text in content if not any(text in d for d in journal)]
    assert not missing, missing
    facts = {
        "made_with_commit": code,
        "alembic_revision": revision,
        "origin": ORIGIN,
        "key_file": KEY.name,
        "journal_entries": entries,
        "checkpoints": n_checkpoints,
        "last_checkpoint_size": last_cp.tree_size,
        "tree_size": head.size,
        "tree_root": head.root.hex(),
        "last_checkpoint_note": last_cp.signed_note,
        "records": records,
        "content": content,
    }
    FACTS.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    size = STORE.stat().st_size
    print(f"{STORE.name}: {size:,} bytes, revision {revision}, {entries} journal entries")
    print(f"{n_checkpoints} checkpoints, the last at size {last_cp.tree_size}; made with {code}")


#: Free text the old journal held a copy of (a retraction's reason).
RETRACTION_REASON = "Migration retraction: entered twice"


def flow(factory: sessionmaker[Session], clock: FixedClock) -> list[str]:
    """Every step of due process on a person and a company of our own; the source
    references of the records it submits."""
    with factory.begin() as session:
        edition = store.in_force(session, clock.now())
        book = edition.rulebook
        sources = {s.code: s for s in session.scalars(select(Source))}
        person = ledger.register_subject(
            session,
            source=sources["civil_registry"],
            data=SubjectIn(
                kind=SubjectKind.PERSON,
                identifier=make_resident_id("110105", datetime(1980, 5, 17).date(), 808),
                name="Migration Person",
            ),
            at=clock.now(),
        )[0]
        company = ledger.register_subject(
            session,
            source=sources["business_registry"],
            data=SubjectIn(
                kind=SubjectKind.COMPANY,
                identifier=make_credit_code("9", "1", "371082", "000008008"),
                name="Migration Co",
            ),
            at=clock.now(),
        )[0]
        session.expunge_all()
    refs: list[str] = []

    def submit(source: str, *records: dict[str, object]) -> list[str]:
        with factory.begin() as session:
            results = ledger.submit_records(
                session,
                source=session.merge(sources[source]),
                records=ledger.parse_records(list(records)),
                rulebook=book,
                at=clock.now(),
            )
        refs.extend(str(r["source_ref"]) for r in records)
        return [r.status if r.error is None else str(r.error["code"]) for r in results]

    def loan_default(ref: str, days_ago: int, **extra: object) -> dict[str, object]:
        return {
            "source_ref": ref,
            "subject_id": person.public_id,
            "record_type": "loan_default",
            "occurred_at": (clock.now() - timedelta(days=days_ago)).isoformat(),
            "decision_ref": f"MIGDEC-{ref.removesuffix('b')}",
            **extra,
        }

    def record_id(ref: str) -> str:
        with factory() as session:
            return session.scalars(select(Record.public_id).where(Record.source_ref == ref)).one()

    def open_dispute(record: str) -> str:
        with factory.begin() as session:
            return disputes.open_dispute(
                session,
                subject=session.merge(person),
                record_id=record,
                reason="Migration dispute: repaid on time",
                new_information=None,
                rulebook=book,
                at=clock.now(),
            ).dispute_id

    def answer(dispute: str, outcome: str, correction: dict[str, object] | None = None) -> None:
        with factory.begin() as session:
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

    created = submit("city_bank", *(loan_default(f"MIGREF-{i}", 120) for i in range(1, 6)))
    assert created == ["created"] * 5, created
    answer(open_dispute(record_id("MIGREF-1")), "deleted")
    assert submit("city_bank", loan_default("MIGREF-1b", 120, certified=True)) == ["created"]
    correction = loan_default("MIGREF-2b", 121)
    refs.append("MIGREF-2b")
    answer(open_dispute(record_id("MIGREF-2")), "corrected", correction)
    with factory.begin() as session:
        disputes.add_statement(
            session,
            subject=session.merge(person),
            record_id=record_id("MIGREF-3"),
            text="Migration statement: paid in full",
            at=clock.now(),
        )
    open_dispute(record_id("MIGREF-3"))
    with factory.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(sources["city_bank"]),
            record_id=record_id("MIGREF-5"),
            reason=RETRACTION_REASON,
            at=clock.now(),
        )
    clock.advance(timedelta(days=60))
    with factory.begin() as session:
        assert disputes.sweep(session, clock.now())
    with factory.begin() as session:
        applied = repair.apply_for_repair(
            session,
            subject=session.merge(person),
            record_id=record_id("MIGREF-4"),
            commitment="Migration repair: automatic payments set up",
            rulebook=book,
            at=clock.now(),
        )
    with factory.begin() as session:
        repair.decide_repair(
            session,
            repair_id=applied.repair_id,
            approve=True,
            reasons="Repayment confirmed by the bank.",
            principal_id=None,
            at=clock.now(),
        )
    fraud: dict[str, object] = {
        "source_ref": "MIGFJ-1",
        "subject_id": company.public_id,
        "record_type": "fraud_judgment",
        "occurred_at": clock.now().isoformat(),
        "decision_ref": "(2026)MIGFJ-1",
    }
    assert submit("intermediate_court", fraud) == ["created"]

    def ask() -> list[str]:
        with factory.begin() as session:
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
    with factory.begin() as session:
        ledger.retract_record(
            session,
            source=session.merge(sources["intermediate_court"]),
            record_id=record_id("MIGFJ-1"),
            reason="quashed on appeal",
            at=clock.now(),
        )
    clock.advance(timedelta(days=1))
    assert ask() == []
    with factory.begin() as session:
        update_tiers(session, book, clock.now(), [(person.id, 1000.0, (0, 0, 0))])
        # Moves the tier down.
        update_tiers(session, book, clock.now(), [(person.id, 0.0, (0, 0, 0))])
        operator = create_principal(
            session, role=Role.OPERATOR, name="Migration operator", clock=clock
        )
        key = issue_key(session, principal=operator, clock=clock)
        revoke_key(session, prefix=key[:PREFIX_LEN], clock=clock)
    return refs


def submit_tail(factory: sessionmaker[Session], clock: FixedClock) -> list[str]:
    """Records of the flow's person, after the last checkpoint."""
    refs = [f"MIGTAIL-{i}" for i in range(1, 4)]
    with factory.begin() as session:
        book = store.in_force(session, clock.now()).rulebook
        bank = session.scalars(select(Source).where(Source.code == "city_bank")).one()
        subject = session.scalars(
            select(Record.subject_id).where(Record.source_ref == "MIGREF-3")
        ).one()
        public_id = session.scalars(select(Subject.public_id).where(Subject.id == subject)).one()
        results = ledger.submit_records(
            session,
            source=bank,
            records=ledger.parse_records(
                [
                    {
                        "source_ref": ref,
                        "subject_id": public_id,
                        "record_type": "loan_default",
                        "occurred_at": (clock.now() - timedelta(days=10 + i)).isoformat(),
                        "decision_ref": f"MIGDEC-{ref}",
                    }
                    for i, ref in enumerate(refs)
                ]
            ),
            rulebook=book,
            at=clock.now(),
        )
        assert [r.status for r in results] == ["created"] * len(refs), results
    return refs


if __name__ == "__main__":
    main()
