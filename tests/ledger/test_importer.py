"""Bulk import of records from CSV, JSON lines and Parquet: all lines or none, a report
naming every bad line by its number, idempotent re-import, no identifiers in reports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.cli.imports import run_import
from credence.clock import FixedClock
from credence.context import Context
from credence.errors import InvalidInput
from credence.identifiers import SubjectKind, make_resident_id
from credence.journal import JournalEntry
from credence.ledger import registry
from credence.ledger.importer import (
    ImportReport,
    detect_format,
    import_file,
    read_csv,
    read_jsonl,
    read_parquet,
)
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Record
from credence.rulebook import store
from credence.rulebook.loader import default_text
from credence.settings import Settings

FIELDS = [
    "source_ref",
    "subject_id",
    "identifier",
    "record_type",
    "occurred_at",
    "quantity",
    "decision_ref",
]


@dataclass
class People:
    """Registered persons: national identifiers and opaque subject ids."""

    identifiers: list[str]
    public_ids: list[str]


def person(n: int) -> str:
    return make_resident_id("110105", date(1980, 1, 1) + timedelta(days=97 * n), n)


@pytest.fixture
def people(sessions: sessionmaker[Session], clock: FixedClock) -> People:
    """The default rulebook, a civil registry, a bank and three registered persons."""
    at = clock.now() - timedelta(days=1)
    with sessions.begin() as session:
        rulebook = store.publish(session, text=default_text(), at=at).rulebook
        civil = registry.register_source(
            session,
            code="civil_registry",
            name="Civil Registry",
            kind="registry",
            record_types=[],
            rulebook=rulebook,
            at=at,
            identity_authority_for="person",
        )
        registry.register_source(
            session,
            code="bank",
            name="Bank",
            kind="bank",
            record_types=["loan_repaid", "loan_default"],
            rulebook=rulebook,
            at=at,
        )
        subjects = [
            registry.register_subject(
                session,
                source=civil,
                data=SubjectIn(kind=SubjectKind.PERSON, identifier=person(i), name=f"P{i}"),
                at=at,
            )[0]
            for i in range(3)
        ]
    return People([person(i) for i in range(3)], [s.public_id for s in subjects])


def good_rows(people: People, n: int = 6, prefix: str = "r") -> list[dict[str, Any]]:
    """Valid bank records: repayments and registered defaults, by identifier or id."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {
            "source_ref": f"{prefix}{i}",
            "record_type": "loan_repaid",
            "occurred_at": f"2026-0{1 + i % 5}-1{i % 10}T08:00:00Z",
        }
        if i % 3 == 2:
            row["subject_id"] = people.public_ids[i % 3]
        else:
            row["identifier"] = people.identifiers[i % 3]
        if i % 2:
            row["record_type"] = "loan_default"
            row["decision_ref"] = f"DEF-{i}"
        rows.append(row)
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` in the format ``path``'s suffix names."""
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        table = pa.Table.from_pylist(
            [
                {f: r.get(f) for f in FIELDS}
                | {"occurred_at": datetime.fromisoformat(r["occurred_at"])}
                for r in rows
            ],
            schema=pa.schema(
                [(f, pa.string()) for f in FIELDS if f not in ("occurred_at", "quantity")]
                + [("occurred_at", pa.timestamp("us", tz="UTC")), ("quantity", pa.float64())]
            ),
        )
        pq.write_table(table, path)
    return path


def count(sessions: sessionmaker[Session], column: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(column))) or 0)


def run(
    sessions: sessionmaker[Session], clock: FixedClock, path: Path, **kwargs: Any
) -> ImportReport:
    return import_file(sessions, path, source_code="bank", clock=clock, **kwargs)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_valid_file_stores_every_record_and_reimport_is_harmless(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    people: People,
    tmp_path: Path,
    suffix: str,
) -> None:
    path = write(tmp_path / f"records{suffix}", good_rows(people, 7))
    journal_before = count(sessions, JournalEntry.seq)
    ticks: list[int] = []
    report = run(sessions, clock, path, chunk=3, progress=ticks.append)
    assert report.stored
    assert (report.lines, report.created, report.duplicates, report.errors) == (7, 7, 0, [])
    assert ticks == [3, 6, 7]
    assert count(sessions, Record.id) == 7
    assert count(sessions, JournalEntry.seq) == journal_before + 7

    again = run(sessions, clock, path)
    assert again.stored
    assert (again.created, again.duplicates, again.errors) == (0, 7, [])
    assert count(sessions, Record.id) == 7


def bad_rows(people: People) -> tuple[list[dict[str, Any]], list[tuple[int, str | None, str]]]:
    """Good rows with one bad row of each kind; and (row index, source_ref, code) of each."""
    unregistered = person(40)
    flipped = people.identifiers[0][:-1] + ("1" if people.identifiers[0][-1] != "1" else "2")
    good = good_rows(people, 9)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"record_type": "social_media_post"}, "unknown_record_type"),
        ({"occurred_at": "2026-06-02T00:00:00Z"}, "occurred_in_future"),
        ({"record_type": "loan_default", "decision_ref": None}, "decision_reference_required"),
        ({"identifier": flipped}, "invalid_identifier"),
        ({"identifier": unregistered}, "unregistered_subject"),
        ({"record_type": "traffic_violation"}, "record_type_not_registered"),
        ({"source_ref": None}, "invalid_record"),
    ]
    rows: list[dict[str, Any]] = []
    expected: list[tuple[int, str | None, str]] = []
    for i, (change, code) in enumerate(bad):
        rows.append(good[i])
        ref = f"bad{i}"
        row = {
            "source_ref": ref,
            "identifier": people.identifiers[1],
            "record_type": "loan_repaid",
            "occurred_at": "2026-05-01T00:00:00Z",
        } | change
        expected.append((len(rows), row["source_ref"], code))
        rows.append({k: v for k, v in row.items() if v is not None})
    rows.extend(good[len(bad) :])
    return rows, expected


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_file_with_bad_lines_stores_nothing_and_names_each_line(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    people: People,
    tmp_path: Path,
    suffix: str,
) -> None:
    rows, expected = bad_rows(people)
    path = write(tmp_path / f"records{suffix}", rows)
    journal_before = count(sessions, JournalEntry.seq)
    report = run(sessions, clock, path, chunk=4)
    assert not report.stored
    assert report.lines == len(rows)
    first_line = 2 if suffix == ".csv" else 1  # the CSV header is line 1
    got = [(e.line, e.source_ref, e.code) for e in report.errors]
    assert got == [(i + first_line, ref, code) for i, ref, code in expected]
    assert all(e.message for e in report.errors)
    assert count(sessions, Record.id) == 0
    assert count(sessions, JournalEntry.seq) == journal_before
    text = repr(report)
    for identifier in [*people.identifiers, person(40)]:
        assert identifier not in text


def test_a_malformed_json_line_is_reported_by_number(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in good_rows(people, 4)]
    lines[1:1] = ['{"source_ref": "x", "record_type": ', "", "[1, 2]"]
    path = tmp_path / "records.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run(sessions, clock, path)
    assert not report.stored
    assert [(e.line, e.code) for e in report.errors] == [(2, "invalid_json"), (4, "invalid_json")]
    assert (report.lines, report.created) == (6, 4)  # the blank line is not a line
    assert count(sessions, Record.id) == 0


def test_identifiers_in_field_names_or_source_refs_are_masked(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    secret = person(41)
    row = good_rows(people, 1)[0]
    lines = [
        {**row, "source_ref": "x1", secret: "1"},  # an identifier smuggled in as a field
        {**row, "source_ref": secret, "identifier": secret},  # unregistered, and as the ref
    ]
    report = run(sessions, clock, write(tmp_path / "leak.jsonl", lines))
    assert [(e.line, e.code) for e in report.errors] == [
        (1, "invalid_record"),
        (2, "unregistered_subject"),
    ]
    assert secret not in repr(report)
    assert report.errors[1].source_ref == secret[:2] + "*" * 14 + secret[-2:]


def test_a_source_ref_reused_with_other_content_is_an_error(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    rows = good_rows(people, 5)
    # Same content again, in a later chunk: a harmless duplicate.
    path = write(tmp_path / "same.jsonl", [*rows, rows[0]])
    report = run(sessions, clock, path, chunk=2)
    assert report.stored
    assert (report.created, report.duplicates) == (5, 1)
    assert count(sessions, Record.id) == 5

    changed = [*good_rows(people, 4, prefix="s"), {**good_rows(people, 1, prefix="s")[0]}]
    changed[-1]["occurred_at"] = "2025-12-31T00:00:00Z"
    for chunk in (2, 100):  # in another chunk, and in the same one
        report = run(sessions, clock, write(tmp_path / "changed.csv", changed), chunk=chunk)
        assert not report.stored
        assert [(e.line, e.source_ref, e.code) for e in report.errors] == [
            (6, "s0", "source_ref_conflict")
        ]
    assert count(sessions, Record.id) == 5


def test_files_that_cannot_hold_records_are_refused(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match=r"\.csv, .*\.parquet") as refused:
        run(sessions, clock, write(tmp_path / "records.xlsx", []))
    assert refused.value.code == "unsupported_format"
    header = tmp_path / "bad_header.csv"
    header.write_text("source_ref,identifier,record_type,occurred_at,religion\n", "utf-8")
    with pytest.raises(InvalidInput, match="religion") as refused:
        run(sessions, clock, header)
    assert refused.value.code == "invalid_header"
    assert count(sessions, Record.id) == 0


def test_the_cli_prints_a_table_of_bad_lines_without_identifiers(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    people: People,
    tmp_path: Path,
) -> None:
    ctx = Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)
    rows, expected = bad_rows(people)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False)
    assert run_import(ctx, write(tmp_path / "bad.csv", rows), "bank", console=console) == 1
    output = buffer.getvalue()
    assert "nothing stored" in output
    for _, ref, code in expected:
        assert code in output
        assert ref is None or ref in output
    for identifier in [*people.identifiers, person(40)]:
        assert identifier not in output

    buffer.truncate(0)
    assert (
        run_import(ctx, write(tmp_path / "good.csv", good_rows(people)), "bank", console=console)
        == 0
    )
    assert "stored" in buffer.getvalue()
    assert run_import(ctx, tmp_path / "good.csv", "nobody", console=console) == 1
    assert "unknown_source" in buffer.getvalue()


# --- readers (no database) -----------------------------------------------------------


def test_csv_lines_are_numbered_as_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "source_ref,identifier,record_type,occurred_at,decision_ref\n"
        'a,X,loan_repaid,2026-01-01,""\n'
        "\n"
        'b,X,"loan\nrepaid",2026-01-01,\n'
        "c,X,loan_repaid,2026-01-01,D,extra\n"
        " d ,X,loan_repaid,2026-01-01,  \n",
        encoding="utf-8",
    )
    lines = list(read_csv(path))
    assert [n for n, _ in lines] == [2, 4, 6, 7]
    assert lines[0][1] == {
        "source_ref": "a",
        "identifier": "X",
        "record_type": "loan_repaid",
        "occurred_at": "2026-01-01",
    }
    assert isinstance(lines[2][1], InvalidInput)
    assert lines[3][1] == {
        "source_ref": " d ",
        "identifier": "X",
        "record_type": "loan_repaid",
        "occurred_at": "2026-01-01",
    }


def test_jsonl_keeps_going_after_a_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{oops\n\n  \n{"b": 2}')
    lines = list(read_jsonl(path))
    assert [n for n, _ in lines] == [1, 2, 5]
    assert lines[0][1] == {"a": 1}
    assert isinstance(lines[1][1], InvalidInput)
    assert lines[2][1] == {"b": 2}


def test_parquet_timestamps_become_aware_utc(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pq.write_table(
        pa.table(
            {
                "source_ref": pa.array([1, 2], pa.int64()),
                "identifier": ["X", None],
                "record_type": ["loan_repaid", "loan_repaid"],
                "occurred_at": pa.array(
                    [datetime(2026, 1, 1, 8, 0, 0, 123456), datetime(2026, 1, 2)],
                    pa.timestamp("ns"),
                ),
            }
        ),
        path,
    )
    rows = [item for _, item in read_parquet(path, batch_size=1)]
    assert rows == [
        {
            "source_ref": "1",
            "identifier": "X",
            "record_type": "loan_repaid",
            "occurred_at": datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=UTC),
        },
        {
            "source_ref": "2",
            "record_type": "loan_repaid",
            "occurred_at": datetime(2026, 1, 2, tzinfo=UTC),
        },
    ]
    assert all(isinstance(r, dict) and r["occurred_at"].utcoffset() == timedelta(0) for r in rows)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.CSV", "csv"), ("a.ndjson", "jsonl"), ("a.json", "jsonl"), ("a.pq", "parquet")],
)
def test_format_follows_the_suffix(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


def test_report_is_plain_data() -> None:
    report = ImportReport(path=Path("x.csv"), format="csv", lines=2, created=2, duplicates=0)
    assert asdict(report)["errors"] == []
    assert report.rate == 0.0


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_small_chunks_read_ahead_give_the_same_ledger_as_one_chunk(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    people: People,
    tmp_path: Path,
    suffix: str,
) -> None:
    # Chunks of 2 lines: the next chunk is read and parsed in a thread while this one
    # is stored; a source_ref repeated in a later chunk is still seen as a duplicate.
    rows = good_rows(people, 7)
    rows.append(dict(rows[1]))  # the same record again, three chunks later
    report = run(sessions, clock, write(tmp_path / f"records{suffix}", rows), chunk=2)
    assert (report.stored, report.lines, report.created, report.duplicates) == (True, 8, 7, 1)
    with sessions() as session:
        refs = session.scalars(select(Record.source_ref).order_by(Record.id)).all()
        kinds = session.scalars(select(JournalEntry.kind).order_by(JournalEntry.seq)).all()
    assert refs == [f"r{i}" for i in range(7)]  # stored in file order
    assert kinds.count("record") == 7


def test_a_bad_line_in_a_later_chunk_rolls_back_the_earlier_ones(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    rows = good_rows(people, 6)
    rows[5] = rows[5] | {"record_type": "no_such_type"}
    report = run(sessions, clock, write(tmp_path / "records.jsonl", rows), chunk=2)
    assert not report.stored
    assert [(e.line, e.code) for e in report.errors] == [(6, "unknown_record_type")]
    assert count(sessions, Record.id) == 0


def test_the_cycle_collector_is_back_on_after_an_import_even_a_refused_one(
    sessions: sessionmaker[Session], clock: FixedClock, people: People, tmp_path: Path
) -> None:
    import gc

    assert gc.isenabled()
    run(sessions, clock, write(tmp_path / "ok.jsonl", good_rows(people)))
    assert gc.isenabled()
    header = tmp_path / "bad_header.csv"
    header.write_text("source_ref,identifier,record_type,occurred_at,religion\n", "utf-8")
    with pytest.raises(InvalidInput):
        run(sessions, clock, header)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that had it off finds it off
        run(sessions, clock, write(tmp_path / "again.jsonl", good_rows(people, prefix="s")))
        assert not gc.isenabled()
    finally:
        gc.enable()
