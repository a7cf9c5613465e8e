"""The synthetic population on Parquet and the columnar batch scorer.

The scorer must agree with the online path (:func:`credence.scoring.online.compute`)
for any subject: batch/online parity on random samples of a generated population, at
an instant where some records are not yet received and some have ended.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from credence.cli.lab import run_generate_cli
from credence.cli.score import run_batch_cli
from credence.clock import from_micros, to_micros
from credence.identifiers import SubjectKind
from credence.lab import population
from credence.lab.population import generate
from credence.ledger.subject_file import RecordView
from credence.rulebook.loader import content_hash, default_rulebook, default_text
from credence.rulebook.model import CATEGORIES
from credence.rulebook.store import edition_of
from credence.scoring import columnar
from credence.scoring.columnar import Kernel, read_scores, score_parquet
from credence.scoring.formula import TypeTable
from credence.scoring.online import compute
from tests.world import tier_for

BOOK = default_rulebook()
EDITION = edition_of(
    BOOK.version, content_hash(default_text()), datetime(2020, 1, 1, tzinfo=UTC), default_text()
)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
#: An instant before the population's ``now``: later receipts and endings exist.
EARLIER = NOW - timedelta(days=40)
SUBJECTS, RECORDS = 2_000, 40_000


@pytest.fixture(scope="module")
def pop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    # Small parts and chunks, so that part, chunk and row-group boundaries are crossed.
    generate(
        out,
        subjects=SUBJECTS,
        records=RECORDS,
        seed=11,
        now=NOW,
        rulebook=BOOK,
        part_subjects=700,
        chunk_subjects=300,
    )
    return out


def _records(pop: Path) -> pa.Table:
    table = pq.read_table(pop / "records")
    return table.set_column(
        1, "record_type", table.column("record_type").cast(pa.string())
    ).combine_chunks()


def _views(rows: list[dict[str, object]]) -> list[RecordView]:
    views = []
    for i, row in enumerate(rows):
        quantity = row["quantity"]
        assert isinstance(quantity, float)
        ended = row["ended_at"]
        views.append(
            RecordView(
                record_id=f"rec_{i}",
                source_code="src",
                source_name="Source",
                source_ref=f"ref-{i}",
                record_type=str(row["record_type"]),
                occurred_at=from_micros(int(row["occurred_at"])),  # type: ignore[call-overload]
                received_at=from_micros(int(row["received_at"])),  # type: ignore[call-overload]
                quantity=None if math.isnan(quantity) else quantity,
                decision_ref="D-1",
                ended_at=None if ended is None else from_micros(int(ended)),  # type: ignore[call-overload]
                ended_by=None if ended is None else "retraction",
            )
        )
    return views


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# --- the population -------------------------------------------------------------------


def test_generate_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> population.PopulationSummary:
        return generate(
            tmp_path / name,
            subjects=500,
            records=9_000,
            seed=seed,
            now=NOW,
            rulebook=BOOK,
            part_subjects=200,
            chunk_subjects=90,
        )

    a, b, c = run("a", 5), run("b", 5), run("c", 6)
    files = sorted(p.relative_to(a.out) for p in a.out.rglob("*") if p.is_file())
    assert len(files) == 1 + 2 * 3  # manifest, three parts of subjects and records
    for f in files:  # the same bytes, so the same data
        assert (a.out / f).read_bytes() == (b.out / f).read_bytes(), f
    other = pq.read_table(c.out / "records", columns=["occurred_at"])
    assert not pq.read_table(a.out / "records", columns=["occurred_at"]).equals(other)
    assert a.records == 9_000
    assert sum(p.records for p in a.parts) == 9_000


def test_population_layout_and_plausibility(pop: Path) -> None:
    manifest = json.loads((pop / population.MANIFEST).read_text())
    assert manifest["subjects"] == SUBJECTS
    assert manifest["records"] == RECORDS
    subjects = pq.read_table(pop / "subjects").combine_chunks()
    ids = subjects.column("subject_id").to_numpy()
    assert np.array_equal(ids, np.arange(SUBJECTS))
    records = _records(pop)
    assert records.num_rows == RECORDS

    # Each part holds one contiguous range of subjects, and only their records.
    for part in manifest["parts"]:
        got = pq.read_table(pop / "records" / part["name"], columns=["subject_id"])
        sid = got.column(0).to_numpy()
        first, n = part["first_subject"], part["subjects"]
        assert sid.min() >= first
        assert sid.max() < first + n
        assert np.all(np.diff(sid) >= 0)  # ordered by subject within the part

    kinds = subjects.column("kind").cast(pa.string()).to_pylist()
    rs = records.to_pydict()
    allowed = {rt.code: {k.value for k in rt.subject_kinds} for rt in BOOK.record_types}
    negatives: Counter[int] = Counter()
    for sid, code, occurred, received, quantity, ended in zip(
        rs["subject_id"],
        rs["record_type"],
        rs["occurred_at"],
        rs["received_at"],
        rs["quantity"],
        rs["ended_at"],
        strict=True,
    ):
        rt = BOOK.record_type(code)
        assert rt is not None
        assert kinds[sid] in allowed[code], (code, kinds[sid])
        assert occurred <= received <= to_micros(NOW)
        assert ended is None or received < ended <= to_micros(NOW)
        assert math.isnan(quantity) == (rt.quantity is None)
        if rt.negative:
            negatives[sid] += 1

    by_kind = Counter(kinds)
    assert by_kind[SubjectKind.PERSON.value] > 0.85 * SUBJECTS
    assert by_kind[SubjectKind.COMPANY.value] > 0
    assert by_kind[SubjectKind.GOVERNMENT.value] > 0
    persons = [i for i, k in enumerate(kinds) if k == "person"]
    few = sum(1 for i in persons if negatives[i] <= 1)
    assert few > 0.6 * len(persons)  # most people have at most one negative record
    organisation_only = {
        rt.code for rt in BOOK.record_types if SubjectKind.PERSON not in rt.subject_kinds
    }
    assert any(code in organisation_only for code in rs["record_type"])
    assert sum(e is not None for e in rs["ended_at"]) > 0


# --- the scorer ----------------------------------------------------------------------


@pytest.mark.parametrize("at", [NOW, EARLIER], ids=["now", "earlier"])
def test_columnar_scores_equal_online_scores_on_a_sample(
    pop: Path, tmp_path: Path, at: datetime
) -> None:
    summary = score_parquet(pop, tmp_path, at=at, rulebook=EDITION)
    assert summary.subjects == SUBJECTS
    assert summary.records == RECORDS
    assert summary.parts == 3
    if at == EARLIER:  # later receipts and endings left out; some endings already count
        assert summary.counted < summary.records
    assert sum(summary.tiers.values()) == SUBJECTS
    scores = read_scores(tmp_path)
    assert scores.schema.equals(columnar.SCORE_SCHEMA)
    assert scores.column("subject_id").to_pylist() == list(range(SUBJECTS))

    records = _records(pop)
    subject_col = records.column("subject_id").to_numpy()
    rows = scores.to_pylist()
    for sid in random.Random(3).sample(range(SUBJECTS), 200):
        mine = records.filter(pa.array(subject_col == sid)).to_pylist()
        online = compute(_views(mine), EDITION, at)
        row = rows[sid]
        assert _close(row["total"], online.total), sid
        for category in CATEGORIES:
            assert _close(row[category.value], online.sub_scores[category]), (sid, category)
        assert row["tier"] == online.tier


def test_records_not_yet_received_or_ended_do_not_count(tmp_path: Path) -> None:
    at_us = to_micros(NOW)
    day = 86_400_000_000
    # Subject 0: one traffic ticket 10 days ago that counts, plus one of each kind that
    # does not: received after ``at``, retracted before ``at``, of an unknown type.
    # Subject 1: a record retracted only after ``at`` still counts. Subject 2: nothing.
    rows = [
        (0, "traffic_violation", at_us - 10 * day, at_us - 9 * day, None),
        (0, "traffic_violation", at_us - 10 * day, at_us + 1, None),
        (0, "drunk_driving_penalty", at_us - 10 * day, at_us - 9 * day, at_us - 1 * day),
        (0, "drunk_driving_penalty", at_us - 10 * day, at_us - 9 * day, at_us),
        (0, "no_such_type", at_us - 10 * day, at_us - 9 * day, None),
        (1, "loan_default", at_us - 20 * day, at_us - 19 * day, at_us + 1),
    ]
    _write_population(tmp_path / "in", 3, rows, dictionary=False)
    summary = score_parquet(tmp_path / "in", tmp_path / "out", at=NOW, rulebook=BOOK)
    assert summary.records == 6
    assert summary.counted == 2
    got = read_scores(tmp_path / "out").to_pylist()
    ticket, default = BOOK.record_type("traffic_violation"), BOOK.record_type("loan_default")
    assert ticket is not None
    assert default is not None
    assert _close(got[0]["social"], ticket.points * 2 ** (-10 / ticket.half_life_days))
    assert got[0]["judicial"] == 0.0
    assert got[0]["commercial"] == 0.0
    assert _close(got[1]["commercial"], default.points * 2 ** (-20 / default.half_life_days))
    assert got[2]["total"] == BOOK.scale.base
    assert got[2]["tier"] == tier_for(BOOK, BOOK.scale.base)


def test_dictionary_in_another_order_maps_types_by_code(tmp_path: Path) -> None:
    at_us = to_micros(NOW)
    rows = [
        (0, "heroic_act", at_us - 1, at_us - 1, None),
        (1, "traffic_violation", at_us - 1, at_us - 1, None),
    ]
    _write_population(tmp_path / "in", 2, rows, dictionary=True)
    score_parquet(tmp_path / "in", tmp_path / "out", at=NOW, rulebook=BOOK)
    got = read_scores(tmp_path / "out").to_pylist()
    assert got[0]["social"] > 0 > got[1]["social"]


def test_a_record_outside_its_part_is_refused(tmp_path: Path) -> None:
    at_us = to_micros(NOW)
    _write_population(tmp_path / "in", 2, [(5, "heroic_act", at_us, at_us, None)])
    with pytest.raises(ValueError, match="outside the part"):
        score_parquet(tmp_path / "in", tmp_path / "out", at=NOW, rulebook=BOOK)


def test_the_kernel_gives_the_same_sums_for_unsorted_batches(pop: Path) -> None:
    kernel = Kernel(TypeTable(BOOK), to_micros(EARLIER))
    batch = _records(pop).slice(0, 5_000)
    shuffled = batch.take(pa.array(np.random.default_rng(1).permutation(batch.num_rows)))
    dense = kernel.sums(batch)
    compact = kernel.sums(shuffled, compact=True)
    ids = compact.subject_ids()
    assert np.allclose(dense.sums[ids - dense.lo], compact.sums, rtol=1e-12, atol=1e-12)
    assert dense.counted == compact.counted < dense.records


def test_the_cli_functions_generate_score_and_report(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120)
    assert run_generate_cli(tmp_path / "pop", 300, 3_000, 1, console, now=NOW) == 0
    # ``at`` defaults to the population's own instant, from population.json.
    code = run_batch_cli(
        tmp_path / "pop", tmp_path / "out", engine="local", at=None, console=console
    )
    assert code == 0
    text = out.getvalue()
    assert "3,000 records" in text
    assert "Tiers as of 2026-06-01" in text
    assert "AAA" in text
    assert read_scores(tmp_path / "out").num_rows == 300
    missing = run_batch_cli(
        tmp_path / "nowhere", tmp_path / "o", engine="local", at=NOW, console=console
    )
    assert missing == 1
    assert "error" in out.getvalue()


def _write_population(
    out: Path,
    subjects: int,
    rows: Sequence[tuple[int, str, int, int, int | None]],
    *,
    dictionary: bool = True,
) -> None:
    (out / "subjects").mkdir(parents=True)
    (out / "records").mkdir()
    pq.write_table(
        pa.table({"subject_id": pa.array(range(subjects), pa.int64())}),
        out / "subjects" / "part-00000.parquet",
    )
    codes = pa.array([r[1] for r in rows], pa.string())
    if dictionary:
        # A dictionary in an order of its own: reversed rulebook order plus an unknown.
        order = pa.array([*[rt.code for rt in BOOK.record_types][::-1], "zz_unknown"])
        codes = pa.DictionaryArray.from_arrays(pa.compute.index_in(codes, value_set=order), order)
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array([r[0] for r in rows], pa.int64()),
                "record_type": codes,
                "occurred_at": pa.array([r[2] for r in rows], pa.int64()),
                "received_at": pa.array([r[3] for r in rows], pa.int64()),
                "quantity": pa.array([float("nan")] * len(rows), pa.float64()),
                "ended_at": pa.array([r[4] for r in rows], pa.int64()),
            }
        ),
        out / "records" / "part-00000.parquet",
    )
