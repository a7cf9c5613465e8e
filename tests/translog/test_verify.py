"""``credence log verify`` catches every tamper of every covered table, on every store.

The store is the journal test's demo flow (every kind of step), with one record erased,
one key issued and then revoked, and a signed checkpoint. An attacker with database
access then edits, deletes and inserts rows with raw SQL (foreign-key checks off);
verify must fail and name the table, the row and the entry that wrote it. The tables and
columns come from the journal's registry, so a table or column covered later is
tampered with here without a line of this file changing; each tamper is undone after it
is checked, and verify passes again.

To stay quick, the store is built once per test and every tamper is undone instead of
the store rebuilt; tampers of different tables are made together, one per table at a
time (:func:`tests.tamper.run`): each problem names its table and row, so they do not
hide each other. The tests of erasure alone use a small world instead of the demo.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence import journal
from credence.access.keys import PREFIX_LEN, create_principal, issue_key, revoke_key
from credence.access.policy import Role
from credence.cli.log import app as log_cli
from credence.clock import FixedClock
from credence.journal import EventKind, JournalEntry
from credence.ledger.erasure import RETENTION_ENDED, erase
from credence.ledger.tables import Record
from credence.models import metadata
from credence.rulebook import store as rulebooks
from credence.settings import Settings
from credence.translog.checkpoints import checkpoint
from credence.translog.keys import LogSigner, generate_signer, signer_from_settings
from credence.translog.leaves import ROW_COLUMNS, leaf_hash_of
from credence.translog.tables import LogLeaf
from credence.translog.tree import clear_cache
from credence.translog.verify import VerifyReport, verify_log
from tests import tamper
from tests.journal.test_journal import demo_flow
from tests.tamper import Named, attacker, covered_tables
from tests.world import build_world, rec, submit

RECORDS = "records"
API_KEYS = "api_keys"


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # A rulebook or tree cached by an earlier test on another store must not stand in
    # for what this test's store holds.
    rulebooks.clear_cache()
    clear_cache()
    yield
    rulebooks.clear_cache()
    clear_cache()


@dataclass(repr=False)
class Store:
    """A store built by the demo flow, and what the tampering needs of it."""

    engine: Engine
    sessions: sessionmaker[Session]
    signer: LogSigner
    #: Per covered table, one row (raw, as stored) to tamper with: never an erased one.
    targets: dict[str, tamper.Raw]
    #: The erased record as it was before its erasure (raw, salt included).
    before_erasure: tamper.Raw
    #: A key issued and revoked by entries of their own: as it was when issued, and the
    #: entry that revoked it.
    issued_key: tamper.Raw
    revoked_by: int

    def __repr__(self) -> str:
        return f"<store on {self.engine.dialect.name}>"

    def verify(self) -> VerifyReport:
        with self.sessions() as session:
            return verify_log(session, key=self.signer.public)

    def messages(self) -> list[str]:
        return [p.message for p in self.verify().problems]

    def assert_ok(self, after: str) -> None:
        report = self.verify()
        assert report.ok, (after, [p.message for p in report.problems])


def build(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    *,
    demo: bool = True,
) -> Store:
    """The demo flow (or, for the tests of erasure alone, a small world with a few
    records), a record erased, a key issued then revoked, a checkpoint signed; verify
    passes, and (after the demo flow) every covered table has a row to tamper with."""
    if demo:
        demo_flow(engine, sessions, clock, tmp_path)
        # The demo signed its first checkpoint with the configured key: the same key
        # signs this one, so that verify checks every signature.
        signer = signer_from_settings(Settings())
    else:
        world = build_world(sessions, clock)
        day = timedelta(days=1)
        assert (
            submit(
                sessions,
                world,
                "bank",
                clock.now() - day,
                *(
                    rec(
                        f"T-{i}",
                        world.people[i % 3],
                        "loan_default",
                        clock.now() - 9 * day,
                        decision_ref=f"D-{i}",
                    )
                    for i in range(4)
                ),
            )
            == ["created"] * 4
        )
        signer = generate_signer("credence.example/log")
    records = metadata.tables[RECORDS]
    with sessions.begin() as session:
        record = session.scalars(
            select(Record).where(Record.record_type.is_not(None)).order_by(Record.id).limit(1)
        ).one()
        before_erasure = tamper.read(session.connection(), records, {"id": record.id})
        erase(session, record, reason=RETENTION_ENDED, at=clock.now())
    assert before_erasure is not None
    with sessions.begin() as session:
        holder = create_principal(session, role=Role.OPERATOR, name="Tamper test", clock=clock)
        key = issue_key(session, principal=holder, clock=clock)
    with engine.connect() as conn:
        key_id = conn.scalar(
            text("SELECT id FROM api_keys WHERE prefix = :p"), {"p": key[:PREFIX_LEN]}
        )
        issued_key = tamper.read(conn, metadata.tables[API_KEYS], {"id": key_id})
    assert issued_key is not None
    clock.advance(timedelta(seconds=1))
    with sessions.begin() as session:
        revoked_by = revoke_key(session, prefix=key[:PREFIX_LEN], clock=clock).seq
    assert revoked_by is not None
    assert revoked_by > issued_key["seq"]
    with sessions.begin() as session:
        checkpoint(session, signer=signer, at=clock.now())

    targets: dict[str, tamper.Raw] = {}
    with engine.connect() as conn:
        for table, _ in covered_tables():
            keys_sql = ", ".join(tamper.q(c) for c in tamper.key_columns(table))
            row = (
                conn.execute(
                    text(
                        f"SELECT * FROM {tamper.q(table.name)} WHERE salt IS NOT NULL "
                        # A record as its entry wrote it (not the erased one).
                        + ("AND record_type IS NOT NULL " if table.name == RECORDS else "")
                        + f"ORDER BY {keys_sql} LIMIT 1"
                    )
                )
                .mappings()
                .one_or_none()
            )
            # A table the flow leaves empty would be skipped silently: it fails instead.
            assert row is not None or not demo, f"the demo flow writes no row of {table.name}"
            if row is not None:
                assert row["seq"] is not None, table.name
                targets[table.name] = tamper.Raw(row)
    store = Store(engine, sessions, signer, targets, before_erasure, issued_key, revoked_by)
    report = store.verify()
    assert report.ok, [p.message for p in report.problems]
    assert report.erased == 1
    assert report.rows >= len(targets)
    return store


@pytest.fixture
def built(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Store:
    """The demo flow's store, tampered with by the test."""
    return build(engine, sessions, clock, tmp_path)


@pytest.fixture
def small(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Store:
    """A small store with a record erased, for the tests of erasure alone."""
    return build(engine, sessions, clock, tmp_path, demo=False)


def _entries(conn: Connection, kind: EventKind) -> list[tuple[int, str, str]]:
    rows = conn.execute(
        select(JournalEntry.seq, JournalEntry.rows, JournalEntry.data)
        .where(JournalEntry.kind == kind.value)
        .order_by(JournalEntry.seq)
    )
    return [(seq, listed, data) for seq, listed, data in rows]


def _neighbours(store: Store, seq: int) -> list[int]:
    """Existing entries just before and just after ``seq``."""
    with store.sessions() as session:
        before = session.scalar(select(func.max(JournalEntry.seq)).where(JournalEntry.seq < seq))
        after = session.scalar(select(func.min(JournalEntry.seq)).where(JournalEntry.seq > seq))
    return [s for s in (before, after) if s is not None]


# --- 1 and 2. every column of a row of every covered table; a row deleted, inserted -----


def test_every_tamper_of_every_covered_table_is_caught(
    built: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of a row of each covered table: each encoded column set to another value of its
    type (and to NULL where it may be), its salt and its seq changed; the row deleted;
    a forged copy inserted, with no entry and with the entry of the row it copies.
    Verify fails naming the table, the row and the entry each time; undone, it passes."""
    plans = []
    with built.engine.connect() as conn:
        for table, covered in covered_tables():
            row = built.targets[table.name]
            plans.append(
                tamper.column_tampers(conn, table, covered, row, _neighbours(built, row["seq"]))
                + tamper.row_tampers(conn, table, row)
            )
    missed, made = tamper.run(built.engine, built.messages, plans)
    assert missed == []
    columns = sum(len(covered.encoder.columns) for _, covered in covered_tables())
    assert made >= columns + 7 * len(plans)

    # The same through the command line: exit 1, naming the table, the row, the entry.
    row = built.targets[RECORDS]
    with attacker(built.engine) as conn:
        tamper.delete(conn, metadata.tables[RECORDS], {"id": row["id"]})
    # No key there: the command checks no signature, and creates no key.
    monkeypatch.setenv("CREDENCE_LOG_KEY_PATH", str(tmp_path / "no.key"))
    url = built.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(log_cli, ["verify", "--db", url])
    assert result.exit_code == 1, result.output
    assert "log verification FAILED" in result.output
    assert Named(RECORDS, str(row["id"]), row["seq"]).found_in(result.output.splitlines())


# --- 3. a revocation undone ---------------------------------------------------------------


def test_a_revocation_cannot_be_undone(built: Store) -> None:
    keys = metadata.tables[API_KEYS]
    issued = built.issued_key
    key = {"id": issued["id"]}
    with built.engine.connect() as conn:
        revoked = tamper.read(conn, keys, key)
        # The demo flow's key, issued and revoked in one transaction, is revoked too.
        demo_revoked = conn.execute(
            text("SELECT id, seq FROM api_keys WHERE revoked_at IS NOT NULL AND id <> :id"),
            key,
        ).all()
        issued_entries = _entries(conn, EventKind.KEY_ISSUED)
    assert revoked is not None
    assert revoked["revoked_at"] is not None
    assert demo_revoked
    for key_id, seq in [(issued["id"], built.revoked_by), *demo_revoked]:
        # The revocation's time gone: the row differs from what revoked it.
        with attacker(built.engine) as conn:
            before = tamper.read(conn, keys, {"id": key_id})
            assert before is not None
            tamper.update(conn, keys, {"id": key_id}, {"revoked_at": None})
        assert Named(API_KEYS, str(key_id), seq).found_in(built.messages())
        # ... and the row moved back to the entry that issued the key.
        issued_seq = next(
            s
            for s, rows, _ in issued_entries
            if any(t == API_KEYS and k == key_id for t, k, _ in journal.parse_listing(rows))
        )
        assert issued_seq < seq
        with attacker(built.engine) as conn:
            tamper.update(conn, keys, {"id": key_id}, {"seq": issued_seq})
        assert Named(API_KEYS, str(key_id), seq).found_in(built.messages())
        with attacker(built.engine) as conn:
            tamper.update(conn, keys, {"id": key_id}, before)
        built.assert_ok("a revocation put back")

    # Undone exactly: the row as it was issued (its old salt too), so its digest is the
    # one the issuing entry lists; only the revocation's entry, which lists the row
    # too, shows the change was undone.
    listed = next(
        d
        for s, rows, _ in issued_entries
        if s == issued["seq"]
        for t, k, d in journal.parse_listing(rows)
        if t == API_KEYS and k == issued["id"]
    )
    encoder = journal.registration(API_KEYS)
    assert isinstance(encoder, journal.Covered)
    assert journal.digest(issued["salt"], encoder.encoder(issued)) == listed
    with attacker(built.engine) as conn:
        tamper.update(conn, keys, key, issued)
    problems = built.verify().problems
    assert Named(API_KEYS, str(issued["id"]), built.revoked_by).found_in(
        [p.message for p in problems]
    )
    assert "undone" in " ".join(p.message for p in problems)


# --- 4. the rulebook's text, and entries signed ----------------------------------------


def test_an_edited_rulebook_or_entry_is_caught(built: Store) -> None:
    with built.engine.connect() as conn:
        book_id, book_seq = conn.execute(text("SELECT id, seq FROM rulebooks")).one()
    with attacker(built.engine) as conn:
        conn.execute(
            text("UPDATE rulebooks SET text = REPLACE(text, 'points = -120', 'points = -12')")
        )
        assert "points = -12\n" in (conn.scalar(text("SELECT text FROM rulebooks")) or "")
    report = built.verify()
    assert {p.kind for p in report.problems} >= {"rulebook"}
    assert Named("rulebooks", str(book_id), book_seq).found_in([p.message for p in report.problems])
    with attacker(built.engine) as conn:
        conn.execute(
            text("UPDATE rulebooks SET text = REPLACE(text, 'points = -12\n', 'points = -120\n')")
        )
    built.assert_ok("the rulebook's text put back")

    # An entry's data edited: the erasure's reason.
    with built.engine.connect() as conn:
        ((seq, _, data),) = _entries(conn, EventKind.RECORD_ERASED)
    payload = orjson.loads(data)
    assert payload["reason"] == RETENTION_ENDED
    forged = journal.canonical({**payload, "reason": "dispute_deleted"})
    _set_entry(built, seq, data=forged)
    _assert_entry_named(built, seq)
    _set_entry(built, seq, data=data)
    built.assert_ok("the entry's data put back")

    # A row edited, and the digest its entry lists rewritten to match: the row agrees
    # with its entry, but the entry no longer with the log.
    records = metadata.tables[RECORDS]
    row = built.targets[RECORDS]
    covered = journal.registration(RECORDS)
    assert isinstance(covered, journal.Covered)
    with built.engine.connect() as conn:
        listing = conn.scalar(select(JournalEntry.rows).where(JournalEntry.seq == row["seq"]))
    assert listing is not None
    edited = {**row, "quantity": (row["quantity"] or 0.0) + 1.0}
    digest = journal.digest(row["salt"], covered.encoder(edited))
    rewritten = journal.listing(
        (t, list(k) if isinstance(k, tuple) else k, digest if (t, k) == (RECORDS, row["id"]) else d)
        for t, k, d in journal.parse_listing(listing)
    )
    assert rewritten != listing
    with attacker(built.engine) as conn:
        tamper.update(conn, records, {"id": row["id"]}, {"quantity": edited["quantity"]})
    _set_entry(built, row["seq"], rows=rewritten)
    report = _assert_entry_named(built, row["seq"])
    assert not any(RECORDS in p.message for p in report.problems)  # the row matches it
    # ... and the log's leaf rewritten too: the checkpoint's root no longer holds.
    with built.sessions() as session:
        entry = session.execute(select(*ROW_COLUMNS).where(JournalEntry.seq == row["seq"])).one()
        leaf = session.scalar(select(LogLeaf.leaf_hash).where(LogLeaf.seq == row["seq"]))
    with attacker(built.engine) as conn:
        conn.execute(
            text("UPDATE log_leaves SET leaf_hash = :h WHERE seq = :s"),
            {"h": leaf_hash_of(entry), "s": row["seq"]},
        )
    report = built.verify()
    assert "log_tampered" in {p.kind for p in report.problems}
    assert report.first_bad_seq is not None
    assert report.first_bad_seq <= row["seq"]
    with attacker(built.engine) as conn:
        conn.execute(
            text("UPDATE log_leaves SET leaf_hash = :h WHERE seq = :s"),
            {"h": leaf, "s": row["seq"]},
        )
        tamper.update(conn, records, {"id": row["id"]}, {"quantity": row["quantity"]})
    _set_entry(built, row["seq"], rows=listing)
    built.assert_ok("the row, its entry and its leaf put back")

    # A row deleted and struck from its entry's list.
    struck = journal.listing(
        (t, list(k) if isinstance(k, tuple) else k, d)
        for t, k, d in journal.parse_listing(listing)
        if (t, k) != (RECORDS, row["id"])
    )
    with attacker(built.engine) as conn:
        tamper.delete(conn, records, {"id": row["id"]})
    _set_entry(built, row["seq"], rows=struck)
    _assert_entry_named(built, row["seq"])
    with attacker(built.engine) as conn:
        tamper.insert(conn, records, row)
    _set_entry(built, row["seq"], rows=listing)
    built.assert_ok("the row and its entry put back")


def _set_entry(store: Store, seq: int, **values: str) -> None:
    with attacker(store.engine) as conn:
        tamper.update(conn, JournalEntry.__table__, {"seq": seq}, values)  # type: ignore[arg-type]


def _assert_entry_named(store: Store, seq: int) -> VerifyReport:
    report = store.verify()
    assert not report.ok
    assert report.first_bad_seq == seq
    assert any(f"entry {seq} " in p.message for p in report.problems), report.problems
    return report


# --- 5. erasure ---------------------------------------------------------------------------


def test_an_erasure_is_proven_and_cannot_be_faked_or_undone(small: Store) -> None:
    records = metadata.tables[RECORDS]
    covered = journal.registration(RECORDS)
    assert isinstance(covered, journal.Covered)
    assert covered.erasable
    erased_id = small.before_erasure["id"]
    with small.engine.connect() as conn:
        erased = tamper.read(conn, records, {"id": erased_id})
        has_erasure = conn.scalar(
            text("SELECT COUNT(*) FROM record_erasures WHERE record_id = :id"), {"id": erased_id}
        )
    # The erased record as it stands: no content, written again by its erasure entry
    # under a new salt (the one its content was hashed with is gone), an erasure row;
    # it verifies.
    assert erased is not None
    assert erased["salt"] is not None
    assert erased["salt"] != small.before_erasure["salt"]
    assert erased["seq"] > small.before_erasure["seq"]
    assert all(erased[name] is None for name in covered.erasable)
    assert has_erasure == 1
    assert small.verify().erased >= 1

    # A record "erased" by hand, with no erasure entry: its salt is gone unexplained.
    row = small.targets[RECORDS]
    named = Named(RECORDS, str(row["id"]), row["seq"])
    with attacker(small.engine) as conn:
        tamper.update(
            conn, records, {"id": row["id"]}, {"salt": None} | dict.fromkeys(covered.erasable)
        )
    assert named.found_in(small.messages())
    with attacker(small.engine) as conn:
        tamper.update(conn, records, {"id": row["id"]}, row)
    small.assert_ok("the record put back")

    # The erased record's content put back (its salt is gone for good).
    content = {name: small.before_erasure[name] for name in covered.erasable}
    assert any(v is not None for v in content.values())
    erased_named = Named(RECORDS, str(erased_id), erased["seq"])
    for name, value in content.items():
        if value is None:
            continue
        with attacker(small.engine) as conn:
            tamper.update(conn, records, {"id": erased_id}, {name: value})
        assert erased_named.found_in(small.messages()), name
        with attacker(small.engine) as conn:
            tamper.update(conn, records, {"id": erased_id}, {name: None})
    small.assert_ok("the erased record erased again")


def test_an_erased_record_restored_with_its_salt_is_caught(small: Store) -> None:
    """Seen failing (as a strict xfail) when an erasure left the record's row to the
    entry that first wrote it: the row put back as it was matched that entry."""
    records = metadata.tables[RECORDS]
    before = small.before_erasure
    with small.engine.connect() as conn:
        erased = tamper.read(conn, records, {"id": before["id"]})
    assert erased is not None
    with attacker(small.engine) as conn:
        tamper.update(conn, records, {"id": before["id"]}, before)
    # The erasure entry rewrote the row: a row older than it is an erasure undone.
    assert Named(RECORDS, str(before["id"]), erased["seq"]).found_in(small.messages())


def test_the_columns_an_erased_record_keeps_are_still_proven(small: Store) -> None:
    """Seen failing (as a strict xfail) when an erased row kept no salt: what it keeps
    was then proven by no digest."""
    records = metadata.tables[RECORDS]
    covered = journal.registration(RECORDS)
    assert isinstance(covered, journal.Covered)
    with small.engine.connect() as conn:
        erased = tamper.read(conn, records, {"id": small.before_erasure["id"]})
    assert erased is not None
    missed = []
    for name in covered.encoder.columns:
        if name in covered.erasable or name == "id":
            continue
        with attacker(small.engine) as conn:
            (value, *_) = tamper.edits(conn, records, erased, name)
            tamper.update(conn, records, {"id": erased["id"]}, {name: value})
        if not Named(RECORDS, str(erased["id"]), erased["seq"]).found_in(small.messages()):
            missed.append(name)
        with attacker(small.engine) as conn:
            tamper.update(conn, records, {"id": erased["id"]}, {name: erased[name]})
    assert missed == []
