"""The transparency log on every backend: checkpoints, proofs, tampering, API and CLI."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence import journal
from credence.cli.log import app as log_cli
from credence.clock import FixedClock, to_micros
from credence.errors import InvalidInput, NotFound
from credence.journal import JournalEntry
from credence.ledger import subject_file
from credence.translog import merkle, reference, verify
from credence.translog.checkpoints import (
    Checkpoint,
    LogInconsistent,
    checkpoint,
    checkpoint_text,
    verify_checkpoint,
)
from credence.translog.entries import entry
from credence.translog.keys import (
    LogKeyError,
    LogSigner,
    NoteError,
    generate_signer,
    load_signer,
    open_note,
    parse_verifier_key,
    sign_note,
)
from credence.translog.leaves import leaf_data
from credence.translog.proofs import prove_consistency, prove_inclusion
from credence.translog.tables import LogLeaf, StoredCheckpoint
from credence.translog.tree import clear_cache, tree_at
from tests.client import Api
from tests.world import World, build_world, rec, submit

ORIGIN = "credence.example/log"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Each test's database is new; a tree cached by an earlier test must not leak in.
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def signer() -> LogSigner:
    return generate_signer(ORIGIN)


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    """The small world with a few records on two people's files."""
    w = build_world(sessions, clock)
    day = timedelta(days=1)
    assert submit(
        sessions,
        w,
        "bank",
        clock.now() - 30 * day,
        rec("b1", w.people[0], "loan_repaid", clock.now() - 40 * day),
        rec("b2", w.people[1], "loan_default", clock.now() - 35 * day, decision_ref="D-1"),
    ) == ["created", "created"]
    assert submit(
        sessions,
        w,
        "volunteers",
        clock.now() - 20 * day,
        rec("v1", w.people[0], "blood_donation", clock.now() - 25 * day),
    ) == ["created"]
    return w


#: The kind of the entries these tests append only to fill the log: the log hashes
#: entries of any kind alike.
FILLER = journal.EventKind.STATEMENT_ADDED


def make_checkpoint(
    sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> Checkpoint:
    with sessions.begin() as session:
        return checkpoint(session, signer=signer, at=clock.now())


def journal_leaves(sessions: sessionmaker[Session]) -> list[tuple[int, bytes]]:
    """(seq, leaf bytes) of every journal row, in order, computed here independently."""
    with sessions() as session:
        rows = session.scalars(select(JournalEntry).order_by(JournalEntry.seq)).all()
        return [
            (
                r.seq,
                leaf_data(
                    seq=r.seq,
                    kind=r.kind,
                    subject_id=r.subject_id,
                    at_micros=to_micros(r.at),
                    data=r.data,
                    rows=r.rows,
                ),
            )
            for r in rows
        ]


def verify_all(sessions: sessionmaker[Session], signer: LogSigner) -> verify.VerifyReport:
    with sessions() as session:
        return verify.verify_log(session, key=signer.public)


def execute(sessions: sessionmaker[Session], sql: str, **params: Any) -> None:
    with sessions.begin() as session:
        session.execute(text(sql), params)


# --- checkpoints and proofs --------------------------------------------------------------


def test_checkpoint_signs_the_root_of_every_journal_row(
    world: World, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    leaves = journal_leaves(sessions)
    cp = make_checkpoint(sessions, signer, clock)
    assert cp.tree_size == len(leaves)
    assert cp.root_hash == reference.mth([data for _, data in leaves])
    assert verify_checkpoint(cp.signed_note, signer.public) == (
        ORIGIN,
        cp.tree_size,
        cp.root_hash,
    )
    lines = cp.signed_note.split("\n")
    assert lines[:4] == [ORIGIN, str(cp.tree_size), base64.b64encode(cp.root_hash).decode(), ""]
    assert lines[4].startswith(f"— {ORIGIN} ")
    # Nothing new: the same checkpoint comes back.
    assert make_checkpoint(sessions, signer, clock) == cp
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredCheckpoint)) == 1
        committed = session.execute(
            select(LogLeaf.leaf_index, LogLeaf.seq).order_by(LogLeaf.leaf_index)
        ).all()
    assert committed == [(i, seq) for i, (seq, _) in enumerate(leaves)]
    assert verify_all(sessions, signer).ok

    # A new key re-signs the same tree; verified with the old key alone, that one is
    # reported (rotating the key means verifying with each key in turn).
    rotated = generate_signer(ORIGIN)
    again = make_checkpoint(sessions, rotated, clock)
    assert again.id != cp.id
    assert (again.tree_size, again.root_hash) == (cp.tree_size, cp.root_hash)
    assert again.key_id == rotated.public.key_id.hex()
    verify_checkpoint(again.signed_note, rotated.public)
    assert [p.kind for p in verify_all(sessions, signer).problems] == ["checkpoint"]


def test_proofs_from_every_checkpoint_stay_valid(
    world: World, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    with sessions() as session, pytest.raises(NotFound, match="no checkpoint"):
        prove_inclusion(session, 1)
    first = make_checkpoint(sessions, signer, clock)
    clock.advance(timedelta(hours=1))
    judgment = rec(
        "c1", world.people[2], "fraud_judgment", clock.now() - timedelta(days=2), decision_ref="J9"
    )
    assert submit(sessions, world, "court", clock.now(), judgment) == ["created"]
    second = make_checkpoint(sessions, signer, clock)
    assert second.tree_size == first.tree_size + 1
    leaves = journal_leaves(sessions)
    with sessions() as session:
        cons = prove_consistency(session, first.tree_size, second.tree_size)
        assert (cons.first_root, cons.second_root) == (first.root_hash, second.root_hash)
        assert merkle.verify_consistency(
            first.tree_size, second.tree_size, first.root_hash, second.root_hash, cons.path
        )
        assert list(cons.path) == reference.proof(first.tree_size, [d for _, d in leaves])
        for cp in (first, second):
            for index, (seq, data) in enumerate(leaves[: cp.tree_size]):
                proof = prove_inclusion(session, seq, cp.tree_size)
                assert (proof.leaf_index, proof.leaf_hash) == (index, merkle.leaf_hash(data))
                assert merkle.verify_inclusion(
                    merkle.leaf_hash(data), index, cp.tree_size, proof.path, cp.root_hash
                )
        # The default tree is the latest checkpoint's.
        assert prove_inclusion(session, leaves[0][0]).tree_size == second.tree_size
        # Requests outside the log.
        with pytest.raises(NotFound, match="not in the log's tree of size 3"):
            prove_inclusion(session, leaves[-1][0], 3)
        with pytest.raises(InvalidInput, match="no tree of size"):
            prove_inclusion(session, 1, second.tree_size + 5)
        with pytest.raises(InvalidInput, match="first ≤ second"):
            prove_consistency(session, 4, 3)
        with pytest.raises(NotFound, match="no entry"):
            entry(session, 10_000)


def test_entries_records_and_trees_of_any_size(
    world: World, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    with sessions() as session:
        records = subject_file.record_entry_seqs(session, world.people[0].id)
        assert len(records) == 2
        for record_id, seq in records.items():
            assert subject_file.record_entry_seq(session, record_id) == seq
            found = entry(session, seq)
            assert found.kind == "record"
            assert f'"record":"{record_id}"' in found.data
            assert found.subject_id == world.people[0].id
            assert found.leaf_index is None  # no checkpoint covers it yet
        with pytest.raises(NotFound):
            subject_file.record_entry_seq(session, "rec_nope")
    make_checkpoint(sessions, signer, clock)
    with sessions.begin() as session:
        seq = next(iter(records.values()))
        found = entry(session, seq)
        assert found.leaf_index is not None
        assert found.leaf_hash == prove_inclusion(session, seq).leaf_hash
        # An entry after the checkpoint is in the current tree too.
        journal.append(session, kind=FILLER, at=clock.now(), data={"n": 1})
    data = [d for _, d in journal_leaves(sessions)]
    with sessions() as session:
        tree = tree_at(session)
        assert tree.size == len(data)
        for size in range(len(data) + 1):
            assert tree.root_at(size) == reference.mth(data[:size])
            assert tree_at(session, size).root == reference.mth(data[:size])


def test_the_cache_forgets_a_rolled_back_checkpoint(
    world: World, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    with sessions() as session:
        journal.append(session, kind=FILLER, at=clock.now(), data={"doomed": True})
        session.flush()
        doomed = checkpoint(session, signer=signer, at=clock.now())
        session.rollback()
    with sessions.begin() as session:
        journal.append(session, kind=FILLER, at=clock.now(), data={"kept": True})
    cp = make_checkpoint(sessions, signer, clock)
    assert cp.tree_size == doomed.tree_size  # same size, other content
    assert cp.root_hash == reference.mth([d for _, d in journal_leaves(sessions)])
    assert verify_all(sessions, signer).ok


# --- tampering ---------------------------------------------------------------------------


@dataclass
class Logged:
    """A world whose journal a checkpoint covers; ``gap`` is a seq the store skipped."""

    seqs: list[int]
    gap: int
    checkpoint: Checkpoint


@pytest.fixture
def logged(
    world: World, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> Logged:
    # A PostgreSQL sequence skips the number of a rolled-back insert; make such a gap on
    # both stores (append three rows, remove the middle one) before the checkpoint.
    with sessions.begin() as session:
        for n in range(3):
            journal.append(session, kind=FILLER, at=clock.now(), data={"n": n})
    with sessions() as session:
        last = session.scalar(select(func.max(JournalEntry.seq)))
    assert last is not None
    execute(sessions, "DELETE FROM journal WHERE seq = :s", s=last - 1)
    cp = make_checkpoint(sessions, signer, clock)
    return Logged([seq for seq, _ in journal_leaves(sessions)], last - 1, cp)


def test_an_untouched_log_verifies_and_counts_pending_entries(
    logged: Logged, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    assert logged.gap not in logged.seqs
    with sessions.begin() as session:
        journal.append(session, kind=FILLER, at=clock.now(), data={"late": 1})
    report = verify_all(sessions, signer)
    assert report.ok, report.problems
    assert (report.entries, report.committed, report.pending) == (
        len(logged.seqs) + 1,
        len(logged.seqs),
        1,
    )
    assert report.checkpoints == 1
    assert report.signatures_checked


@dataclass
class Tamper:
    """Raw SQL that tampers with the stored log, the SQL that undoes it, and the
    problems :func:`verify_log` must report, as ``(kind, seq)``, first bad entry first."""

    name: str
    sql: list[tuple[str, dict[str, Any]]]
    undo: list[tuple[str, dict[str, Any]]]
    expected: list[tuple[str, int | None]]
    refuses_checkpoint: bool = False
    message: str = ""
    """Text the first problem's message contains."""


UPDATE_DATA = "UPDATE journal SET data = :d WHERE seq = :s"
INSERT_ROW = (
    "INSERT INTO journal (seq, kind, subject_id, at, data, rows) VALUES (:s, :k, :sub, :at, :d, :r)"
)
DELETE_ROW = "DELETE FROM journal WHERE seq = :s"


def tamper_cases(logged: Logged, sessions: sessionmaker[Session]) -> list[Tamper]:
    seqs, gap = logged.seqs, logged.gap
    with sessions() as session:
        raw = session.execute(text("SELECT seq, kind, subject_id, at, data, rows FROM journal"))
        rows = {r.seq: r for r in raw}
        hashes = {seq: h for seq, h in session.execute(select(LogLeaf.seq, LogLeaf.leaf_hash))}
        note = session.scalar(select(StoredCheckpoint.signed_note))
    record = max(seq for seq, r in rows.items() if r.kind == "record")
    rec_row = rows[record]

    def restore(seq: int) -> tuple[str, dict[str, Any]]:
        r = rows[seq]
        return (
            INSERT_ROW,
            {"s": seq, "k": r.kind, "sub": r.subject_id, "at": r.at, "d": r.data, "r": r.rows},
        )

    def data_of(seq: int) -> tuple[str, dict[str, Any]]:
        return (UPDATE_DATA, {"d": rows[seq].data, "s": seq})

    forged_data = '{"rewritten":true}'
    forged_leaf = merkle.leaf_hash(
        leaf_data(
            seq=record,
            kind=rec_row.kind,
            subject_id=rec_row.subject_id,
            at_micros=rec_row.at,
            data=forged_data,
            rows=rec_row.rows,
        )
    )
    set_leaf = "UPDATE log_leaves SET leaf_hash = :h WHERE seq = :s"
    assert logged.checkpoint.tree_size == len(seqs)
    other_note = sign_note(
        checkpoint_text(ORIGIN, len(seqs), logged.checkpoint.root_hash),
        generate_signer(ORIGIN),
    )
    moved = seqs[-1]
    return [
        Tamper(
            "changed data",
            [(UPDATE_DATA, {"d": rec_row.data[:-1] + ',"z":1}', "s": record})],
            [data_of(record)],
            [("changed", record)],
            refuses_checkpoint=True,
        ),
        Tamper(
            "changed instant",
            [("UPDATE journal SET at = at + 1 WHERE seq = :s", {"s": record})],
            [("UPDATE journal SET at = at - 1 WHERE seq = :s", {"s": record})],
            [("changed", record)],
        ),
        Tamper(
            "changed subject",
            [
                (
                    "UPDATE journal SET subject_id = (SELECT max(id) FROM subjects) WHERE seq = :s",
                    {"s": record},
                )
            ],
            [
                (
                    "UPDATE journal SET subject_id = :v WHERE seq = :s",
                    {"v": rec_row.subject_id, "s": record},
                )
            ],
            [("changed", record)],
        ),
        Tamper(
            "changed kind",
            [("UPDATE journal SET kind = 'retraction' WHERE seq = :s", {"s": record})],
            [("UPDATE journal SET kind = :v WHERE seq = :s", {"v": rec_row.kind, "s": record})],
            [("changed", record)],
        ),
        Tamper(
            "removed",
            [(DELETE_ROW, {"s": seqs[3]})],
            [restore(seqs[3])],
            [("removed", seqs[3])],
            refuses_checkpoint=True,
        ),
        Tamper(
            "removed at the end",
            [(DELETE_ROW, {"s": seqs[-2]}), (DELETE_ROW, {"s": seqs[-1]})],
            [restore(seqs[-2]), restore(seqs[-1])],
            [("removed", seqs[-2]), ("removed", seqs[-1])],
            refuses_checkpoint=True,
        ),
        Tamper(
            "forged before the first",
            [
                (
                    INSERT_ROW,
                    {"s": 0, "k": "record", "sub": None, "at": 0, "d": '{"forged":1}', "r": "[]"},
                )
            ],
            [(DELETE_ROW, {"s": 0})],
            [("inserted", 0)],
        ),
        Tamper(
            "forged into a gap",
            [
                (
                    INSERT_ROW,
                    {"s": gap, "k": "test", "sub": None, "at": 0, "d": '{"n":99}', "r": "[]"},
                )
            ],
            [(DELETE_ROW, {"s": gap})],
            [("inserted", gap)],
        ),
        Tamper(
            "swapped",
            [
                (UPDATE_DATA, {"d": rows[seqs[5]].data, "s": seqs[2]}),
                (UPDATE_DATA, {"d": rows[seqs[2]].data, "s": seqs[5]}),
            ],
            [data_of(seqs[2]), data_of(seqs[5])],
            [("changed", seqs[2]), ("changed", seqs[5])],
        ),
        Tamper(
            "moved into the gap",
            [("UPDATE journal SET seq = :to WHERE seq = :s", {"to": gap, "s": moved})],
            [("UPDATE journal SET seq = :to WHERE seq = :s", {"to": moved, "s": gap})],
            [("inserted", gap), ("removed", moved)],
            refuses_checkpoint=True,
        ),
        Tamper(
            "rewritten in the journal and the log alike",
            [
                (UPDATE_DATA, {"d": forged_data, "s": record}),
                (set_leaf, {"h": forged_leaf, "s": record}),
            ],
            [data_of(record), (set_leaf, {"h": hashes[record], "s": record})],
            [("log_tampered", seqs[0])],
            refuses_checkpoint=True,
            message=f"between {seqs[0]} and {seqs[-1]}",
        ),
        Tamper(
            "a committed leaf hash deleted",
            [("DELETE FROM log_leaves WHERE seq = :s", {"s": seqs[3]})],
            [
                (
                    "INSERT INTO log_leaves (leaf_index, seq, leaf_hash) VALUES (3, :s, :h)",
                    {"s": seqs[3], "h": hashes[seqs[3]]},
                )
            ],
            [("inserted", seqs[3]), ("log_tampered", seqs[4]), ("log_tampered", seqs[-1] + 1)],
        ),
        Tamper(
            "checkpoint root rewritten",
            [("UPDATE checkpoints SET root_hash = :r", {"r": "00" * 32})],
            [("UPDATE checkpoints SET root_hash = :r", {"r": logged.checkpoint.root_hash.hex()})],
            [("log_tampered", seqs[0]), ("checkpoint", None)],
        ),
        Tamper(
            "checkpoint signed by another key",
            [("UPDATE checkpoints SET signed_note = :n", {"n": other_note})],
            [("UPDATE checkpoints SET signed_note = :n", {"n": note})],
            [("checkpoint", None)],
            message="no signature by",
        ),
    ]


def test_tampering_is_found_and_the_first_bad_entry_named(
    logged: Logged, sessions: sessionmaker[Session], signer: LogSigner, clock: FixedClock
) -> None:
    for case in tamper_cases(logged, sessions):
        with sessions.begin() as session:
            for sql, params in case.sql:
                session.execute(text(sql), params)
        report = verify_all(sessions, signer)
        # The log's own problems, in order; the rows an edited or removed entry wrote are
        # named too (see tests/translog/test_verify.py), each at that entry.
        of_log = [p for p in report.problems if not p.message.startswith("table ")]
        assert [(p.kind, p.seq) for p in of_log] == case.expected, case.name
        named = [seq for _, seq in case.expected if seq is not None]
        of_rows = {p.seq for p in report.problems if p.message.startswith("table ")}
        assert of_rows <= set(named), case.name
        assert report.first_bad_seq == (min(named) if named else None), case.name
        assert case.message in report.problems[0].message, case.name
        if case.refuses_checkpoint:
            # A process that never hashed the original rows refuses to sign over them.
            clear_cache()
            with sessions() as session, pytest.raises(LogInconsistent):
                checkpoint(session, signer=signer, at=clock.now())
        with sessions.begin() as session:
            for sql, params in case.undo:
                session.execute(text(sql), params)
        clear_cache()
        assert verify_all(sessions, signer).ok, f"{case.name}: not undone"


# --- a growing log, in the database ------------------------------------------------------


class GrowingStoredLog(RuleBasedStateMachine):
    """Append journal entries, checkpoint, and prove entries and checkpoints against each
    other through the service: proofs against any earlier checkpoint stay valid."""

    sessions: sessionmaker[Session]
    clock: FixedClock
    signer: LogSigner
    checkpoints = Bundle("checkpoints")

    @initialize(target=checkpoints)
    def first_checkpoint(self) -> Checkpoint:
        with self.sessions.begin() as session:
            return checkpoint(session, signer=self.signer, at=self.clock.now())

    @rule(n=st.integers(1, 4))
    def append(self, n: int) -> None:
        with self.sessions.begin() as session:
            for i in range(n):
                journal.append(session, kind=FILLER, at=self.clock.now(), data={"i": i})

    @rule(target=checkpoints)
    def checkpoint(self) -> Checkpoint:
        with self.sessions.begin() as session:
            return checkpoint(session, signer=self.signer, at=self.clock.now())

    @rule(cp=checkpoints, picks=st.data())
    def prove_an_entry(self, cp: Checkpoint, picks: st.DataObject) -> None:
        if cp.tree_size == 0:
            return
        index = picks.draw(st.integers(0, cp.tree_size - 1), label="index")
        with self.sessions() as session:
            seq = tree_at(session, cp.tree_size).seq_of(index)
            proof = prove_inclusion(session, seq, cp.tree_size)
            found = entry(session, seq)
        assert merkle.verify_inclusion(
            merkle.leaf_hash(found.leaf_data), index, cp.tree_size, proof.path, cp.root_hash
        )

    @rule(a=checkpoints, b=checkpoints)
    def prove_consistency(self, a: Checkpoint, b: Checkpoint) -> None:
        first, second = sorted([a, b], key=lambda c: c.tree_size)
        if first.tree_size == 0:
            # No consistency proof starts at the empty tree (RFC 9162 §2.1.4).
            assert first.root_hash == merkle.EMPTY_ROOT
            with self.sessions() as session, pytest.raises(InvalidInput, match="0 < first"):
                prove_consistency(session, 0, second.tree_size)
            return
        with self.sessions() as session:
            proof = prove_consistency(session, first.tree_size, second.tree_size)
        assert merkle.verify_consistency(
            first.tree_size, second.tree_size, first.root_hash, second.root_hash, proof.path
        )


def test_a_growing_stored_log_keeps_every_proof_valid(
    sessions: sessionmaker[Session], clock: FixedClock, signer: LogSigner
) -> None:
    GrowingStoredLog.sessions = sessions
    GrowingStoredLog.clock = clock
    GrowingStoredLog.signer = signer
    run_state_machine_as_test(
        GrowingStoredLog,
        settings=settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    assert verify_all(sessions, signer).ok


# --- keys and notes ------------------------------------------------------------------------


def test_a_missing_key_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "log.key"
    signer, created = load_signer(path, name=ORIGIN)
    assert created
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_signer(path, name=ORIGIN)
    assert not created_again
    assert again.public == signer.public
    with pytest.raises(LogKeyError, match="no log signing key"):
        load_signer(tmp_path / "absent.key", name=ORIGIN, create=False)


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.key"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(LogKeyError, match="not an Ed25519 key"):
        load_signer(path, name=ORIGIN)
    with pytest.raises(LogKeyError, match="without spaces"):
        generate_signer("has space")


def test_signed_notes_open_only_with_their_key(signer: LogSigner) -> None:
    note = sign_note("origin\n1\nAAAA\n", signer)
    assert open_note(note, signer.public) == "origin\n1\nAAAA\n"
    assert parse_verifier_key(signer.public.verifier_key) == signer.public
    with pytest.raises(NoteError, match="no signature by"):
        open_note(note, generate_signer(ORIGIN).public)
    with pytest.raises(NoteError, match="invalid"):
        open_note(note.replace("origin\n1", "origin\n2"), signer.public)
    with pytest.raises(NoteError, match="not a signed note"):
        open_note("origin\n1\nAAAA\n", signer.public)
    name, _, encoded = signer.public.verifier_key.split("+", 2)
    with pytest.raises(NoteError, match="id does not match"):
        parse_verifier_key(f"{name}+00000000+{encoded}")


# --- the HTTP API --------------------------------------------------------------------------


def test_api_publishes_the_key_and_a_verifiable_checkpoint(
    api: Api, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    key = api.get("/v1/log/public-key").json()
    assert (tmp_path / "log.key").is_file()
    public = parse_verifier_key(key["verifier_key"])
    assert base64.b64decode(key["public_key"]) == public.public_key
    assert key["key_id"] == public.key_id.hex()
    assert (key["origin"], key["algorithm"]) == (ORIGIN, "ed25519")

    response = api.get("/v1/log/checkpoint")
    assert response.status_code == 200, response.text
    cp = response.json()
    origin, size, root = verify_checkpoint(cp["signed_note"], public)
    assert (origin, size, root.hex()) == (ORIGIN, cp["tree_size"], cp["root_hash"])
    assert api.get("/v1/log/checkpoint").json() == cp  # nothing new: the same one

    late = rec("b9", api.world.people[2], "loan_repaid", api.clock.now() - timedelta(days=1))
    assert submit(sessions, api.world, "bank", api.clock.now(), late) == ["created"]
    newer = api.get("/v1/log/checkpoint").json()
    assert newer["tree_size"] == cp["tree_size"] + 1
    proof = api.get("/v1/log/proof/consistency", params={"first": cp["tree_size"]}).json()
    assert proof["second"] == newer["tree_size"]
    assert merkle.verify_consistency(
        cp["tree_size"],
        newer["tree_size"],
        bytes.fromhex(cp["root_hash"]),
        bytes.fromhex(newer["root_hash"]),
        [bytes.fromhex(h) for h in proof["proof"]],
    )


def test_api_inclusion_proofs_verify_against_the_checkpoint(api: Api) -> None:
    cp = api.get("/v1/log/checkpoint").json()
    root = bytes.fromhex(cp["root_hash"])
    for seq in (1, cp["tree_size"]):
        body = api.get("/v1/log/proof/inclusion", params={"seq": seq}).json()
        assert body["tree_size"] == cp["tree_size"]
        assert merkle.verify_inclusion(
            bytes.fromhex(body["leaf_hash"]),
            body["leaf_index"],
            body["tree_size"],
            [bytes.fromhex(h) for h in body["proof"]],
            root,
        )
    early = api.get("/v1/log/proof/inclusion", params={"seq": 1, "tree_size": 2}).json()
    assert early["tree_size"] == 2
    too_big = api.get("/v1/log/proof/inclusion", params={"seq": 1, "tree_size": 10_000})
    assert too_big.status_code == 422
    assert too_big.json()["error"]["code"] == "tree_size_too_large"
    outside = api.get("/v1/log/proof/inclusion", params={"seq": cp["tree_size"], "tree_size": 2})
    assert outside.status_code == 404
    assert outside.json()["error"]["code"] == "entry_not_in_tree"
    backwards = api.get("/v1/log/proof/consistency", params={"first": 5, "second": 3})
    assert backwards.status_code == 422
    # RFC 9162 has no consistency proof from the empty tree: a 422 naming the field.
    from_empty = api.get("/v1/log/proof/consistency", params={"first": 0, "second": 3})
    assert from_empty.status_code == 422
    assert "first" in from_empty.json()["error"]["message"]
    assert api.get("/v1/log/proof/inclusion").status_code == 422  # seq is required


def test_api_entry_data_is_for_its_subject_and_operators(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        seq = next(iter(subject_file.record_entry_seqs(session, api.world.people[0].id).values()))
        public_seq = session.scalar(
            select(func.min(JournalEntry.seq)).where(JournalEntry.subject_id.is_(None))
        )
    api.get("/v1/log/checkpoint")
    for role in (None, "other", "bank"):
        body = api.get(f"/v1/log/entries/{seq}", role).json()
        assert body["entry"] is None, role
        assert body["leaf_index"] is not None
        assert len(body["leaf_hash"]) == 64
    for role in ("subject", "operator"):
        body = api.get(f"/v1/log/entries/{seq}", role).json()
        entry = body["entry"]
        assert entry["kind"] == "record"
        assert entry["data"]["record"].startswith("rec_")
        assert entry["rows"][0][0] == "records"
        # The subject can check the row itself: its salt and bytes give the listed digest.
        (opened,) = entry["opened"]
        digest = hashlib.sha256(bytes.fromhex(opened["salt"]) + opened["canonical"].encode())
        assert [opened["table"], opened["key"], digest.hexdigest()] == entry["rows"][0]
        assert opened["canonical"].endswith('"table":"records"}')
        assert opened["canonical"] not in entry["leaf_data"]  # the leaf holds its digest only
        assert merkle.leaf_hash(entry["leaf_data"].encode()).hex() == body["leaf_hash"]
    public = api.get(f"/v1/log/entries/{public_seq}").json()
    assert public["entry"] is not None
    assert api.get("/v1/log/entries/99999").status_code == 404
    assert api.get(f"/v1/log/entries/{2**64}").status_code == 422  # beyond BIGINT: the caller's
    bad_key = api.client.get(f"/v1/log/entries/{seq}", headers={"Authorization": "Bearer cr_x"})
    assert bad_key.status_code == 401


# --- the command line ----------------------------------------------------------------------


def test_cli_checkpoint_verify_and_prove(
    logged: Logged,
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CREDENCE_LOG_KEY_PATH", str(tmp_path / "cli.key"))
    db = ["--db", engine.url.render_as_string(hide_password=False)]
    # No key file yet: verify says so and still checks the tree.
    result = runner.invoke(log_cli, ["verify", *db])
    assert result.exit_code == 0, result.output
    assert "signatures NOT checked" in result.output

    result = runner.invoke(log_cli, ["checkpoint", *db])
    assert result.exit_code == 0, result.output
    assert "generated a new log signing key" in result.output
    assert f"{len(logged.seqs)} entries" in result.output

    result = runner.invoke(log_cli, ["prove", *db, "--seq", str(logged.seqs[2])])
    assert result.exit_code == 0, result.output
    assert f"leaf 2 of {len(logged.seqs)}" in result.output
    assert "proof verifies" in result.output
    result = runner.invoke(log_cli, ["prove", *db, "--first", "3", "--second", "6"])
    assert result.exit_code == 0, result.output
    assert "proof verifies" in result.output
    assert runner.invoke(log_cli, ["prove", *db, "--seq", "1", "--first", "2"]).exit_code == 2

    target = logged.seqs[-1]
    execute(sessions, "UPDATE journal SET data = '{}' WHERE seq = :s", s=target)
    result = runner.invoke(log_cli, ["verify", *db])
    assert result.exit_code == 1
    assert f"first bad entry: {target}" in result.output
    assert "signatures checked" not in result.output
