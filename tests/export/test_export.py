"""``credence export``: the ledger as the batch layout, on SQLite and PostgreSQL.

What it promises, tried from the outside: the files are the ledger (every subject and
every record that still has content, with its ending) and name no one; erased content
never leaves; a re-run rewrites only what changed; the manifest names a log state that
a signed checkpoint covers, even while writers go on; a tampered edition stops it.
"""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import BigInteger, Engine, func, select, text, type_coerce
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence.cli import app, terminal
from credence.clock import FixedClock, to_micros
from credence.context import Context
from credence.errors import Conflict, InvalidInput, RulebookTampered
from credence.export.service import RECORD_SCHEMA, SUBJECT_SCHEMA, export_ledger
from credence.identifiers import SubjectKind
from credence.journal import JournalEntry
from credence.lab.city import build_city
from credence.ledger import erasure, registry
from credence.ledger.schemas import SubjectIn
from credence.ledger.service import parse_records, retract_record, submit_records
from credence.ledger.tables import Record, Source, Subject
from credence.rulebook import store
from credence.scoring import layout
from credence.settings import Settings
from credence.translog import merkle
from credence.translog.checkpoints import verify_checkpoint
from credence.translog.keys import load_signer
from credence.translog.tree import tree_at
from tests.rulebook.test_guard import record_type

RAW = BigInteger()


def context(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Context:
    settings = Settings(db_url=str(engine.url), log_key_path=str(tmp_path / "log.key"))
    return Context(settings=settings, engine=engine, sessions=sessions, clock=clock)


@pytest.fixture
def ctx(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> Context:
    """A small city (70 subjects, 1,500 records over two years) and a context on it."""
    build_city(
        sessions, persons=60, organisations=10, records=1_500, years=2, seed=3, now=clock.now()
    )
    return context(engine, sessions, clock, tmp_path)


def ledger_rows(sessions: sessionmaker[Session]) -> Counter[tuple[Any, ...]]:
    """Every record with content, as the export should carry it."""
    with sessions() as session:
        rows = session.execute(
            select(
                Subject.public_id,
                Record.record_type,
                Source.code,
                type_coerce(Record.occurred_at, RAW),
                type_coerce(Record.received_at, RAW),
                Record.quantity,
            )
            .join(Subject, Subject.id == Record.subject_id)
            .join(Source, Source.id == Record.source_id)
            .where(Record.record_type.is_not(None))
        ).all()
    return Counter((p, t, s, o, r, None if q is None else float(q)) for p, t, s, o, r, q in rows)


def exported_rows(out: Path) -> Counter[tuple[Any, ...]]:
    subjects = pq.read_table(out / layout.SUBJECTS_DIR).to_pylist()
    public = {s["subject_id"]: s["public_id"] for s in subjects}
    records = pq.read_table(out / layout.RECORDS_DIR).to_pylist()
    return Counter(
        (
            public[r["subject_id"]],
            r["record_type"],
            r["source"],
            r["occurred_at"],
            r["received_at"],
            None if np.isnan(r["quantity"]) else r["quantity"],
        )
        for r in records
    )


def files(out: Path) -> dict[str, tuple[int, int]]:
    """Every part file's (inode, modification time in ns)."""
    found = {}
    for directory in (layout.SUBJECTS_DIR, layout.RECORDS_DIR):
        for path in sorted((out / directory).glob("*.parquet")):
            stat = path.stat()
            found[f"{directory}/{path.name}"] = (stat.st_ino, stat.st_mtime_ns)
    return found


def test_the_export_is_the_ledger_and_names_no_one(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    with sessions.begin() as session:
        record = session.scalars(select(Record).order_by(Record.id).limit(1)).one()
        source = session.get_one(Source, record.source_id)
        retract_record(
            session, source=source, record_id=record.public_id, reason="x", at=clock.now()
        )
        retracted = (record.subject_id, to_micros(clock.now()))
    out = tmp_path / "export"
    summary = export_ledger(ctx, out, part_subjects=16)
    assert summary.parts == 5  # 70 subjects, 16 a part

    subjects = pq.read_table(out / layout.SUBJECTS_DIR)
    assert subjects.schema.names == SUBJECT_SCHEMA.names  # no identifier, no name
    assert pq.read_schema(out / layout.RECORDS_DIR / "part-00000.parquet").names == (
        RECORD_SCHEMA.names
    )
    with sessions() as session:
        people = session.execute(
            select(
                Subject.id,
                Subject.public_id,
                Subject.kind,
                Subject.region,
                Subject.identifier,
                Subject.name,
            ).order_by(Subject.id)
        ).all()
    assert subjects.column("subject_id").to_pylist() == list(range(len(people)))
    assert subjects.column("public_id").to_pylist() == [p.public_id for p in people]
    assert subjects.column("kind").to_pylist() == [p.kind for p in people]
    assert subjects.column("region").to_pylist() == [p.region for p in people]
    assert exported_rows(out) == ledger_rows(sessions)
    assert summary.records == sum(ledger_rows(sessions).values())

    records = pq.read_table(out / layout.RECORDS_DIR).to_pylist()
    ended = [r for r in records if r["ended_by"] is not None]
    rank = {p.id: i for i, p in enumerate(people)}
    assert [(r["subject_id"], r["ended_at"], r["ended_by"]) for r in ended] == [
        (rank[retracted[0]], retracted[1], "retraction")
    ]

    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for person in people:
        assert person.identifier.encode() not in blob
        assert person.name.encode() not in blob


def test_erased_content_never_leaves(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    before = ledger_rows(sessions)
    export_ledger(ctx, out, part_subjects=16)
    with sessions.begin() as session:
        doomed = session.scalars(select(Record).order_by(Record.id.desc()).limit(3)).all()
        gone = Counter(
            (
                session.get_one(Subject, r.subject_id).public_id,
                r.record_type,
                session.get_one(Source, r.source_id).code,
                to_micros(r.occurred_at),
                to_micros(r.received_at),
                r.quantity,
            )
            for r in doomed
        )
        for record in doomed:
            erasure.erase(session, record, reason="retention_ended", at=clock.now())
    summary = export_ledger(ctx, out, part_subjects=16)
    assert exported_rows(out) == before - gone
    assert summary.records == sum(before.values()) - 3
    assert summary.written  # the parts that held them were rewritten


def test_a_rerun_rewrites_only_the_parts_that_changed(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    first = export_ledger(ctx, out, part_subjects=16)
    assert len(first.written) == first.parts == 5
    seen = files(out)

    again = export_ledger(ctx, out, part_subjects=16)
    assert again.written == ()
    assert files(out) == seen

    # A new record for the subject ranked 40 (part 2) rewrites part 2 alone.
    with sessions.begin() as session:
        subject = session.scalars(select(Subject).order_by(Subject.id).offset(40).limit(1)).one()
        source = session.scalars(select(Source).where(Source.code == "blood_centre")).one()
        book = store.in_force(session, clock.now()).rulebook
        [result] = submit_records(
            session,
            source=source,
            records=parse_records(
                [
                    {
                        "source_ref": "late-1",
                        "subject_id": subject.public_id,
                        "record_type": "blood_donation",
                        "occurred_at": (clock.now() - timedelta(days=1)).isoformat(),
                    }
                ]
            ),
            rulebook=book,
            at=clock.now(),
        )
        assert result.error is None, result.error
    third = export_ledger(ctx, out, part_subjects=16)
    assert third.written == ("part-00002.parquet",)
    now = files(out)
    changed = {k for k in now if now[k] != seen[k]}
    assert changed == {"records/part-00002.parquet"}

    # A part file damaged on disk is written again, though the ledger did not change.
    damaged = out / layout.RECORDS_DIR / "part-00004.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    fourth = export_ledger(ctx, out, part_subjects=16)
    assert fourth.written == ("part-00004.parquet",)
    pq.read_table(damaged)  # readable again
    manifest = layout.read_manifest(out)
    assert manifest is not None
    listed = {p["name"]: p for p in manifest["parts"]}
    assert layout.sha256_file(damaged) == listed["part-00004.parquet"]["records_sha256"]

    # A new subject lands in a new part; parts no longer in the ledger's layout go.
    with sessions.begin() as session:
        civil = session.scalars(select(Source).where(Source.code == "civil_registry")).one()
        registry.register_subject(
            session,
            source=civil,
            data=SubjectIn(kind=SubjectKind.PERSON, identifier="11010519491231002X", name="N"),
            at=clock.now(),
        )
    fifth = export_ledger(ctx, out, part_subjects=16)
    assert fifth.written == ("part-00004.parquet",)  # 71 subjects: the last part grows
    coarse = export_ledger(ctx, out, part_subjects=64)
    assert coarse.parts == 2
    assert sorted(p.name for p in (out / layout.RECORDS_DIR).glob("*")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_the_manifest_names_a_log_state_a_signed_checkpoint_covers(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    summary = export_ledger(ctx, out)
    manifest = layout.read_manifest(out)
    assert manifest is not None
    log = manifest["log"]
    signer, _ = load_signer(ctx.settings.log_key_path, name=ctx.settings.log_origin, create=False)
    origin, size, root = verify_checkpoint(log["checkpoint"]["signed_note"], signer.public)
    assert (size, root.hex()) == (log["checkpoint"]["tree_size"], log["checkpoint"]["root"])
    with sessions() as session:
        entries = session.scalar(select(func.count()).select_from(JournalEntry))
        assert log["entries"] == summary.log.entries == entries
        assert log["root"] == tree_at(session, entries).root.hex()

    # More entries later: the export's state stays a proven prefix of the newer log.
    with sessions.begin() as session:
        record = session.scalars(select(Record).order_by(Record.id).limit(1)).one()
        source = session.get_one(Source, record.source_id)
        retract_record(
            session, source=source, record_id=record.public_id, reason="x", at=clock.now()
        )
    later = export_ledger(ctx, tmp_path / "later")
    assert later.log.entries == entries + 1
    with sessions() as session:
        grown = tree_at(session, later.log.checkpoint.tree_size)
        proof = grown.consistency_proof(log["entries"])
    assert merkle.verify_consistency(
        log["entries"], grown.size, bytes.fromhex(log["root"]), grown.root, proof
    )
    assert origin == ctx.settings.log_origin


def test_the_export_is_one_state_of_the_log_while_writers_write(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    with sessions() as session:
        subjects = session.scalars(select(Subject.public_id).where(Subject.kind == "person")).all()
        book = store.in_force(session, clock.now()).rulebook
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        n = 0
        while not stop.is_set():
            with sessions.begin() as session:
                source = session.scalars(select(Source).where(Source.code == "blood_centre")).one()
                batch = [
                    {
                        "source_ref": f"w-{n}-{i}",
                        "subject_id": subjects[(n + i) % len(subjects)],
                        "record_type": "blood_donation",
                        "occurred_at": (clock.now() - timedelta(days=1)).isoformat(),
                    }
                    for i in range(20)
                ]
                submit_records(
                    session,
                    source=source,
                    records=parse_records(batch),
                    rulebook=book,
                    at=clock.now(),
                )
            n += 1
            written[0] = n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 2 and thread.is_alive():
            stop.wait(0.01)
        summaries = [export_ledger(ctx, tmp_path / f"e{i}", part_subjects=4) for i in range(3)]
    finally:
        stop.set()
        thread.join()
    assert written[0] > 3
    for i, summary in enumerate(summaries):
        last = summary.log.last_seq
        with sessions() as session:
            entries = session.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.seq <= last)
            )
            rows = session.execute(
                select(func.count()).select_from(Record).where(Record.seq <= last)
            ).scalar_one()
        # Exactly the records the first ``entries`` entries wrote: no fewer, no more.
        assert summary.log.entries == entries
        assert summary.records == rows
        assert sum(exported_rows(tmp_path / f"e{i}").values()) == rows


def test_a_tampered_edition_stops_the_export(
    ctx: Context, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        session.execute(text("UPDATE rulebooks SET text = text || ' '"))
    store.clear_cache()
    with pytest.raises(RulebookTampered):
        export_ledger(ctx, tmp_path / "export")
    assert not (tmp_path / "export" / layout.MANIFEST).exists()


# --- the commands ------------------------------------------------------------------------


def test_export_then_score_names_the_edition_and_the_log_state(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(terminal, "open_context", lambda db=None: ctx)
    runner = CliRunner()
    out, scored = tmp_path / "export", tmp_path / "scored"
    result = runner.invoke(app, ["export", "--out", str(out), "--part-subjects", "32"])
    assert result.exit_code == 0, result.output
    assert "exported 70 subjects and 1,500 records in 3 parts (3 written" in result.output

    result = runner.invoke(app, ["score", "--input", str(out), "--out", str(scored)])
    assert result.exit_code == 0, result.output
    edition = layout.editions_of(out)[0]
    assert f"rulebook {edition.version} (sha256 {edition.content_hash}), in force at" in (
        result.output
    )
    run = layout.read_manifest(out)
    assert run is not None
    recorded = json.loads((scored / layout.RUN).read_text())
    assert recorded["rulebook"]["content_hash"] == edition.content_hash
    assert recorded["input"]["log"]["root"] == run["log"]["root"]
    assert recorded["subjects"] == 70

    result = runner.invoke(
        app, ["score", "--input", str(out), "--out", str(scored), "--rulebook", "1999.9"]
    )
    assert result.exit_code == 1
    assert f"no edition of that version here ({edition.version})" in result.output
    assert "Traceback" not in result.output

    mine = tmp_path / "mine.toml"
    mine.write_text(edition.text.replace(f'version = "{edition.version}"', 'version = "x.1"'))
    result = runner.invoke(
        app, ["score", "--input", str(out), "--out", str(scored), "--rulebook", str(mine)]
    )
    assert result.exit_code == 0, result.output
    assert "rulebook x.1" in result.output
    assert "from the file mine.toml" in result.output


def test_a_rulebook_file_that_crosses_a_red_line_is_refused(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    export_ledger(ctx, out)
    edition = layout.editions_of(out)[0]
    bad = tmp_path / "bad.toml"
    # Valid in every other respect: it claims a domain and a statute.
    bad.write_text(
        edition.text + record_type("protest_attended", "Attended a protest", "Took part.")
    )
    result = CliRunner().invoke(
        app, ["score", "--input", str(out), "--out", str(tmp_path / "s"), "--rulebook", str(bad)]
    )
    assert result.exit_code == 1
    assert "opinion or expression" in result.output
    assert not (tmp_path / "s" / "scores").exists()


# --- the directory -----------------------------------------------------------------------

INTERRUPTED = """
import sys, time
from pathlib import Path
import credence.models
from credence.clock import FixedClock
from credence.context import open_context
from credence.export.service import export_ledger
from credence.settings import Settings
from datetime import datetime
ctx = open_context(sys.argv[1], clock=FixedClock(datetime.fromisoformat(sys.argv[3])),
                   settings=Settings(log_key_path=sys.argv[4]))
def slow(done, total):
    print(done, flush=True)
    time.sleep(60)
export_ledger(ctx, Path(sys.argv[2]), part_subjects=8, progress=slow)
"""


def test_an_export_killed_midway_is_refused_until_one_completes(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    out, scored = tmp_path / "export", tmp_path / "scored"
    export_ledger(ctx, out, part_subjects=8)
    first = layout.read_manifest(out)
    with sessions.begin() as session:  # the first subject's part changes, and others
        first_subject = select(func.min(Subject.id)).scalar_subquery()
        some = select(Record).where(Record.subject_id == first_subject).limit(1)
        for record in [*session.scalars(some), *session.scalars(select(Record).limit(10))]:
            retract_record(
                session, source=session.get_one(Source, record.source_id),
                record_id=record.public_id, reason="x", at=clock.now(),
            )  # fmt: skip
    url = ctx.engine.url.render_as_string(hide_password=False)
    args = [url, str(out), clock.now().isoformat(), ctx.settings.log_key_path]
    child = subprocess.Popen(  # noqa: S603 - this interpreter, the test's own script
        [sys.executable, "-c", INTERRUPTED, *args], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "1"  # part 0 written, the rest not yet
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (out / layout.WRITING).exists()
    assert layout.read_manifest(out) == first  # the old manifest, over a mix of parts
    result = CliRunner().invoke(app, ["score", "--input", str(out), "--out", str(scored)])
    assert result.exit_code == 1
    assert "interrupted" in result.output
    assert not (scored / layout.SCORES_DIR).exists()

    again = export_ledger(ctx, out, part_subjects=8)
    assert again.written  # the parts the killed export did not reach
    assert not (out / layout.WRITING).exists()
    assert not [p for p in out.rglob("*.tmp")]
    result = CliRunner().invoke(app, ["score", "--input", str(out), "--out", str(scored)])
    assert result.exit_code == 0, result.output
    assert exported_rows(out) == ledger_rows(sessions)


def test_the_export_writes_only_into_an_export_and_one_at_a_time(
    ctx: Context, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    (elsewhere / "thesis.tex").write_text("mine")
    with pytest.raises(InvalidInput, match="not an export's"):
        export_ledger(ctx, elsewhere)
    assert [p.name for p in elsewhere.iterdir()] == ["thesis.tex"]

    out = tmp_path / "export"
    export_ledger(ctx, out)
    with (out / layout.LOCK).open("a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(Conflict, match="another export"):
            export_ledger(ctx, out)
    export_ledger(ctx, out)


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_an_entry_that_commits_late_below_the_snapshot_is_read_again(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """On PostgreSQL an entry can commit after one with a higher seq: the export's
    snapshot may see the later entry and not the earlier. It must not name a state the
    log never had (a prefix with a hole): it waits for the entry, and reads again."""
    with sessions() as session:
        people = session.scalars(
            select(Subject.public_id).where(Subject.kind == "person").limit(2)
        ).all()
        book = store.in_force(session, clock.now()).rulebook

    def donation(session: Session, ref: str, subject: str, source_code: str, **kind: Any) -> None:
        source = session.scalars(select(Source).where(Source.code == source_code)).one()
        [result] = submit_records(
            session,
            source=source,
            records=parse_records(
                [{"source_ref": ref, "subject_id": subject,
                  "occurred_at": (clock.now() - timedelta(days=1)).isoformat(), **kind}]
            ),
            rulebook=book,
            at=clock.now(),
        )  # fmt: skip
        assert result.error is None, result.error

    slow = sessions()
    slow.begin()
    blood: dict[str, Any] = {"record_type": "blood_donation"}
    donation(slow, "slow-1", people[0], "blood_centre", **blood)  # seq taken, not committed
    # A higher seq, committed first: from another source (one source's deliveries take
    # turns, credence.ledger.turns: the same source would wait for the slow one).
    with sessions.begin() as session:
        gift = {"record_type": "charitable_donation", "quantity": 2}
        donation(session, "fast-1", people[1], "volunteer_federation", **gift)
    committer = threading.Timer(1.0, slow.commit)
    committer.start()
    try:
        summary = export_ledger(ctx, tmp_path / "export")
    finally:
        committer.join()
        slow.close()
    assert summary.attempts == 2
    with sessions() as session:
        assert summary.log.entries == session.scalar(select(func.count()).select_from(JournalEntry))
    assert exported_rows(tmp_path / "export") == ledger_rows(sessions)


#: Bytes that break a careless CSV, SQL or terminal: separators, quotes, a newline, an
#: escape sequence, a bidirectional override, a non-Latin script.
HOSTILE = 'hand,"written"\n\x1b[2J\u202e;--\\N 規則'


def test_a_record_type_no_edition_names_is_exported_as_it_is(
    ctx: Context, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """The SQLite reader numbers the editions' types in SQL, the PostgreSQL one reads
    CSV from COPY; a type none of the editions names (written by hand, or by a tool),
    in hostile bytes, is read as it is, not dropped, split or renamed; so is a region."""
    with sessions.begin() as session:
        session.execute(
            text(
                "UPDATE records SET record_type = :hostile "
                "WHERE id IN (SELECT id FROM records ORDER BY id LIMIT 3)"
            ),
            {"hostile": HOSTILE},
        )
        civil = session.scalars(select(Source).where(Source.code == "civil_registry")).one()
        registry.register_subject(
            session,
            source=civil,
            data=SubjectIn(
                kind=SubjectKind.PERSON,
                identifier="11010519491231002X",
                name="N",
                region=HOSTILE[:16],
            ),
            at=clock.now(),
        )
    export_ledger(ctx, tmp_path / "export")
    rows = exported_rows(tmp_path / "export")
    assert rows == ledger_rows(sessions)
    assert sum(n for row, n in rows.items() if row[1] == HOSTILE) == 3
    regions = pq.read_table(tmp_path / "export" / layout.SUBJECTS_DIR).column("region")
    assert regions.to_pylist()[-1] == HOSTILE[:16]
