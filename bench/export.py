"""Export benchmark: ``credence export`` (:func:`credence.export.service.export_ledger`)
from SQLite and PostgreSQL, against a raw read of the same records in the same run.

Run ``python -m bench.export`` (defaults: 1,000,000 subjects and 20,000,000 records,
3 rounds, SQLite and PostgreSQL at ``postgresql://postgres@127.0.0.1:5432/postgres``);
``python -m bench export --subjects 10000 --records 200000`` is a quick look. It

1. fills a migrated store per backend with a synthetic ledger, straight into the tables
   (not through the ledger's services, and with no journal entries for the rows: this
   measures reading, not ingestion): subjects, one source, the default rulebook
   published, records received in time order about random subjects (so a subject's
   records are spread over the whole table, as in a ledger filled over years), 1 % of
   them retracted. SQLite by ``executemany`` in large transactions; PostgreSQL by
   ``COPY``, its secondary indexes and constraints dropped for the load and built again
   after it, then ``VACUUM ANALYZE``. The store is kept under ``bench/out/`` (a
   PostgreSQL database ``credence_bench_export_s<subjects>_r<records>``) and loaded
   again only when its counts differ;
2. per round, per store, times the baselines: SQLite, a raw ``sqlite3`` cursor reading
   ``SELECT subject_id, record_type, source_id, occurred_at, received_at, quantity FROM
   records`` to the end (``fetchmany``); PostgreSQL, ``COPY (that SELECT) TO STDOUT``
   read to the end and the same SELECT fetched through a psycopg cursor; then
   ``export_ledger`` into an empty directory, and again into the same directory with
   nothing changed (every part read and built again, nothing rewritten). With
   ``--diagnose``, also the records read part by part through the subject index (how
   the export read them before it scanned the table once), through SQLAlchemy, and on
   PostgreSQL through ``COPY``;
3. builds the demo city (:func:`credence.lab.city.build_city`, the sizes ``credence
   demo`` uses; kept under ``bench/out/``) into SQLite and times export plus columnar
   scoring (:func:`credence.scoring.columnar.score_parquet`) against the online
   rescoring of the same store (:func:`credence.scoring.batch.score_population`, and
   the nightly job :func:`credence.tiers.rescore.rescore`, rolled back), and checks that
   both give the same totals.

Medians over ``--runs`` rounds; ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import BigInteger, Engine, make_url, select, text, type_coerce

import credence.models  # noqa: F401 - every table registered (the export reads endings)
from credence.clock import FixedClock, to_micros
from credence.context import Context, open_context
from credence.db import (
    SQLITE_CACHE_KIB,
    SQLITE_MMAP_BYTES,
    make_engine,
    normalise_url,
    session_factory,
)
from credence.export.service import PART_SUBJECTS, export_ledger
from credence.lab.city import build_city
from credence.ledger.tables import Record, Source
from credence.migrate import reset, upgrade
from credence.rulebook import store as rulebook_store
from credence.rulebook.loader import default_rulebook, default_text
from credence.scoring.batch import score_population
from credence.scoring.columnar import score_parquet
from credence.settings import Settings
from credence.tiers.rescore import rescore
from credence.translog.tree import clear_cache, tree_at

OUT = Path(__file__).resolve().parent / "out"
FORMAT = "credence-export-bench/1"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 11
US = 1_000_000
DAY_US = 86_400 * US
#: The synthetic ledger's instant: records were received over the five years before it.
NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=5 * 365)
#: Records generated and inserted per chunk (one transaction each on SQLite).
CHUNK = 1_000_000
RETRACTED = 0.01
REGIONS = ("371082", "371002", "371003", "371083", "370211", "370202", "370102", "110105")
#: The baselines' columns: what the export reads of a record, less its id and endings.
COLUMNS = "subject_id, record_type, source_id, occurred_at, received_at, quantity"
FETCH = 100_000
#: The demo city's sizes, as ``credence demo`` builds it by default.
DEMO = {"persons": 10_000, "organisations": 500, "records": 200_000, "seed": 7}
DEMO_NOW = NOW

LOADED_TABLES = ("subjects", "records", "retractions")


# --- the synthetic store -------------------------------------------------------------------


def _key(subjects: int, records: int) -> str:
    return f"export-s{subjects}-r{records}"


def _pg_name(subjects: int, records: int) -> str:
    return f"credence_bench_export_s{subjects}_r{records}"


def _pg_url(server: str, database: str) -> str:
    url = make_url(normalise_url(server)).set(database=database)
    return url.render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg's connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        got = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in LOADED_TABLES]
    return int(got[0]), int(got[1]), int(got[2])


def _subject_rows(rng: np.random.Generator, n: int, source_id: int) -> pa.Table:
    public = rng.bytes(10 * n).hex()
    ids = np.arange(1, n + 1, dtype=np.int64)
    organisation = rng.random(n) < 0.05
    region = rng.integers(len(REGIONS), size=n)
    return pa.table(
        {
            "id": ids,
            "public_id": [f"sub_{public[20 * i : 20 * i + 20]}" for i in range(n)],
            "kind": np.where(organisation, "organisation", "person").tolist(),
            "identifier": [f"B{i:015d}" for i in range(1, n + 1)],
            "name": [f"Bench subject {i}" for i in range(1, n + 1)],
            "region": [REGIONS[r] for r in region.tolist()],
            "registered_by": np.full(n, source_id, dtype=np.int64),
            "registered_at": np.full(n, to_micros(START), dtype=np.int64),
        }
    )


def _record_chunks(
    rng: np.random.Generator, subjects: int, records: int, source_id: int
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Records in chunks of :data:`CHUNK`, in the order they were received (ids follow
    it), about uniformly random subjects; with each chunk, the retractions of 1 % of its
    records (each some days after its record, never after :data:`NOW`)."""
    book = default_rulebook()
    codes = [t.code for t in book.record_types]
    has_quantity = np.array([t.quantity is not None for t in book.record_types])
    start_us, now_us = to_micros(START), to_micros(NOW)
    span = now_us - start_us - DAY_US
    retraction_id = 0
    for lo in range(0, records, CHUNK):
        hi = min(records, lo + CHUNK)
        n = hi - lo
        ids = np.arange(lo + 1, hi + 1, dtype=np.int64)
        received = start_us + (ids - 1) * (span // records)
        occurred = received - rng.integers(0, 30 * DAY_US, size=n)
        kind = rng.integers(len(codes), size=n)
        amount = np.round(rng.uniform(1.0, 500.0, size=n), 2)
        quantity = pa.array(amount, mask=~has_quantity[kind])
        records_table = pa.table(
            {
                "id": ids,
                "public_id": [f"rec_{i:020x}" for i in ids.tolist()],
                "source_id": np.full(n, source_id, dtype=np.int64),
                "source_ref": [f"R{i:012d}" for i in ids.tolist()],
                "subject_id": rng.integers(1, subjects + 1, size=n, dtype=np.int64),
                "record_type": pa.DictionaryArray.from_arrays(
                    pa.array(kind.astype(np.int32)), pa.array(codes)
                ).cast(pa.string()),
                "occurred_at": occurred,
                "received_at": received,
                "quantity": quantity,
            }
        )
        picked = np.flatnonzero(rng.random(n) < RETRACTED)
        k = picked.size
        retracted_at = np.minimum(
            received[picked] + rng.integers(DAY_US, 120 * DAY_US, size=k), now_us
        )
        retractions = pa.table(
            {
                "id": np.arange(retraction_id + 1, retraction_id + k + 1, dtype=np.int64),
                "record_id": ids[picked],
                "source_id": np.full(k, source_id, dtype=np.int64),
                "reason": ["withdrawn by the source (benchmark)"] * k,
                "received_at": retracted_at,
            }
        )
        retraction_id += k
        yield records_table, retractions


def _prepare(url: str) -> int:
    """Migrate an empty store, publish the default rulebook and add the one source; the
    source's id."""
    engine = make_engine(url)
    reset(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        rulebook_store.publish(session, text=default_text(), at=START)
        source = Source(code="bench_source", name="Benchmark source", kind="bank", created_at=START)
        session.add(source)
        session.flush()
        source_id = int(source.id)
    engine.dispose()
    return source_id


def load_sqlite(path: Path, subjects: int, records: int) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    source_id = _prepare(f"sqlite:///{path}")
    rng = np.random.default_rng(SEED)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-4000000",
                   "temp_store=MEMORY"):  # fmt: skip
        conn.execute(f"PRAGMA {pragma}")

    def insert(table: str, rows: pa.Table) -> None:
        names = ", ".join(rows.column_names)
        marks = ", ".join("?" for _ in rows.column_names)
        columns = [rows.column(c).to_pylist() for c in rows.column_names]
        conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", zip(*columns, strict=True)
        )

    conn.execute("BEGIN")
    insert("subjects", _subject_rows(rng, subjects, source_id))
    conn.execute("COMMIT")
    for records_table, retractions in _record_chunks(rng, subjects, records, source_id):
        conn.execute("BEGIN")
        insert("records", records_table)
        insert("retractions", retractions)
        conn.execute("COMMIT")
        print(f"  sqlite: {records_table['id'][-1].as_py():,} / {records:,} records", flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def load_pg(url: str, subjects: int, records: int) -> None:
    source_id = _prepare(url)
    rng = np.random.default_rng(SEED)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        rebuild = _drop_secondary(conn)

        def copy(table: str, rows: pa.Table) -> None:
            buffer = io.BytesIO()
            pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {table} ({', '.join(rows.column_names)}) FROM STDIN (FORMAT csv)"
                ) as stream,
            ):
                stream.write(buffer.getvalue())

        copy("subjects", _subject_rows(rng, subjects, source_id))
        for records_table, retractions in _record_chunks(rng, subjects, records, source_id):
            copy("records", records_table)
            copy("retractions", retractions)
            print(f"  pg: {records_table['id'][-1].as_py():,} / {records:,} records", flush=True)
        print("  pg: building indexes and constraints again", flush=True)
        for statement in rebuild:
            conn.execute(statement)
        for table, column in (("subjects", "id"), ("records", "id"), ("retractions", "id")):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT coalesce(max({column}), 1) FROM {table}))"
            )
        for table in LOADED_TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")


def _drop_secondary(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the loaded tables' unique and foreign-key constraints and other indexes
    (not the primary keys); the statements that create them again, in order."""
    tables = list(LOADED_TABLES)
    constraints = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype "
        "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(%s) "
        "AND c.contype IN ('u', 'f')",
        (tables,),
    ).fetchall()
    names = {name for _, name, _, _ in constraints}
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
        "AND indexdef NOT LIKE '%%UNIQUE%%'",
        (tables,),
    ).fetchall()
    indexes = [(n, d) for n, d in indexes if n not in names]
    # Foreign keys first (they may lean on a unique index), then the rest.
    for table, name, _, _ in sorted(constraints, key=lambda c: c[3] != "f"):
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    unique = [c for c in constraints if c[3] == "u"]
    foreign = [c for c in constraints if c[3] == "f"]
    return [
        *(f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in unique),
        *(definition for _, definition in indexes),
        *(f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in foreign),
    ]


def ensure_store(backend: str, pg: str, subjects: int, records: int) -> str:
    """The URL of a store of this size, loaded unless one with these counts is there."""
    OUT.mkdir(parents=True, exist_ok=True)
    key = _key(subjects, records)
    manifest = OUT / f"{key}-{backend}.json"
    if backend == "sqlite":
        path = OUT / f"{key}.db"
        url = f"sqlite:///{path}"
        present = path.exists()
    else:
        name = _pg_name(subjects, records)
        url = _pg_url(pg, name)
        admin = make_engine(_pg_url(pg, "postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            present = (
                conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                is not None
            )
            if not present:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    if present and manifest.exists():
        built = json.loads(manifest.read_text())
        engine = make_engine(url)
        try:
            counts = _counts(engine)
        except Exception:  # a half-built store, or another schema: load it again
            counts = (-1, -1, -1)
        finally:
            engine.dispose()
        if built.get("format") == FORMAT and list(counts) == built["counts"]:
            print(f"{backend}: reusing {key} (loaded {built['loaded_at']})", flush=True)
            return url
    manifest.unlink(missing_ok=True)
    print(f"{backend}: loading {subjects:,} subjects and {records:,} records…", flush=True)
    started = time.perf_counter()
    if backend == "sqlite":
        load_sqlite(OUT / f"{key}.db", subjects, records)
    else:
        load_pg(url, subjects, records)
    seconds = time.perf_counter() - started
    engine = make_engine(url)
    counts = _counts(engine)
    engine.dispose()
    if counts[:2] != (subjects, records):
        raise RuntimeError(f"the load left {counts} rows, not {subjects} and {records}")
    manifest.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "counts": list(counts),
                "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1),
            }
        )
    )
    print(f"{backend}: loaded in {seconds:.0f} s; {counts[2]:,} retractions", flush=True)
    return url


# --- timed steps ---------------------------------------------------------------------------


def _peak_rss_gib() -> float:
    """The process's peak RSS so far (the steps run one after the other: a step that
    raises it is the one that needed it)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def _timed(step: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    n = step()
    return time.perf_counter() - started, n


def sqlite_select(path: Path) -> int:
    """The baseline on SQLite: every record's columns through a raw ``sqlite3`` cursor,
    with the page cache and memory map Credence's connections use."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur = conn.execute(f"SELECT {COLUMNS} FROM records")
    n = 0
    while rows := cur.fetchmany(FETCH):
        n += len(rows)
    conn.close()
    return n


def pg_copy(url: str) -> int:
    """A baseline on PostgreSQL: ``COPY (SELECT …) TO STDOUT`` read to the end (text
    format; the rows are counted by their line ends)."""
    n = 0
    query = f"COPY (SELECT {COLUMNS} FROM records) TO STDOUT"
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cur, cur.copy(query) as stream:
        for block in stream:
            n += bytes(block).count(b"\n")
    return n


def pg_select(url: str) -> int:
    """A baseline on PostgreSQL: the same SELECT through a psycopg cursor, as Python
    rows (``fetchmany``)."""
    n = 0
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM records")
        while rows := cur.fetchmany(FETCH):
            n += len(rows)
    return n


def _part_bounds(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        ids = np.array(conn.execute(text("SELECT id FROM subjects ORDER BY id")).scalars().all())
    return [
        (int(ids[lo]), int(ids[min(lo + PART_SUBJECTS, ids.size) - 1]))
        for lo in range(0, ids.size, PART_SUBJECTS)
    ]


def part_queries(engine: Engine, bounds: list[tuple[int, int]]) -> int:
    """The export's record query of every part, through SQLAlchemy (``.all()``), with
    nothing done to the rows: what reading alone costs the export."""
    raw = BigInteger()
    n = 0
    with engine.connect() as conn:
        for lo, hi in bounds:
            rows = conn.execute(
                select(
                    Record.id,
                    Record.subject_id,
                    Record.source_id,
                    Record.record_type,
                    type_coerce(Record.occurred_at, raw),
                    type_coerce(Record.received_at, raw),
                    Record.quantity,
                ).where(Record.subject_id.between(lo, hi), Record.record_type.is_not(None))
            ).all()
            n += len(rows)
        conn.rollback()
    return n


def pg_part_copies(url: str, bounds: list[tuple[int, int]]) -> int:
    """The same per-part queries as ``COPY … TO STDOUT``, in one transaction."""
    n = 0
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cur:
        for lo, hi in bounds:
            query = (
                f"COPY (SELECT id, {COLUMNS} FROM records WHERE subject_id BETWEEN {lo} AND "
                f"{hi} AND record_type IS NOT NULL) TO STDOUT"
            )
            with cur.copy(query) as stream:
                for block in stream:
                    n += bytes(block).count(b"\n")
    return n


def _context(url: str) -> Context:
    settings = Settings(log_key_path=str(OUT / "export-bench-log.key"))
    return open_context(url, clock=FixedClock(NOW), settings=settings)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_store(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    url = ensure_store(backend, args.pg, args.subjects, args.records)
    ctx = _context(url)
    bounds = _part_bounds(ctx.engine)
    out = OUT / f"export-{backend}-run"
    steps: dict[str, Callable[[], int]] = {}
    if backend == "sqlite":
        path = Path(make_url(url).database or "")
        steps["baseline: sqlite3 SELECT, fetchmany"] = lambda: sqlite_select(path)
    else:
        steps["baseline: COPY (SELECT) TO STDOUT"] = lambda: pg_copy(url)
        steps["baseline: psycopg SELECT, fetchmany"] = lambda: pg_select(url)

    def export_fresh() -> int:
        clear_cache()  # as a new ``credence export`` process finds it
        summary = export_ledger(ctx, _fresh(out))
        if len(summary.written) != summary.parts:
            raise RuntimeError("a fresh export must write every part")
        return summary.records

    def export_again() -> int:
        clear_cache()
        summary = export_ledger(ctx, out)
        if summary.written:
            raise RuntimeError(f"nothing changed, yet the export rewrote {summary.written}")
        return summary.records

    steps["export_ledger, empty directory"] = export_fresh
    steps["export_ledger again, nothing changed"] = export_again
    if args.diagnose:
        steps["diagnosis: per-part index queries (SQLAlchemy)"] = lambda: part_queries(
            ctx.engine, bounds
        )
        if backend != "sqlite":
            steps["diagnosis: per-part index queries as COPY"] = lambda: pg_part_copies(url, bounds)

    seconds: dict[str, list[float]] = {name: [] for name in steps}
    rows: dict[str, int] = {}
    peak: dict[str, float] = {}
    for run in range(args.runs):
        for name, step in steps.items():
            took, n = _timed(step)
            seconds[name].append(took)
            rows[name] = n
            if run == 0:  # the process's peak only grows: the first round's tells
                peak[name] = _peak_rss_gib()
            print(
                f"  {backend} run {run + 1}: {name}: {took:.2f} s, {n:,} rows, "
                f"peak RSS so far {_peak_rss_gib():.2f} GiB",
                flush=True,
            )
    ctx.engine.dispose()
    for name, n in rows.items():
        if n != args.records:  # nothing is erased in the synthetic store
            raise RuntimeError(f"{name} read {n:,} records, not {args.records:,}")
    return {
        "backend": backend,
        "subjects": args.subjects,
        "records": args.records,
        "parts": len(bounds),
        "runs": args.runs,
        "seconds": seconds,
        "median": {name: statistics.median(values) for name, values in seconds.items()},
        "peak_rss_gib": peak,
    }


# --- the demo city ---------------------------------------------------------------------------


def ensure_demo_city() -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    key = "export-demo-city-p{persons}-o{organisations}-r{records}-seed{seed}".format(**DEMO)
    path, manifest = OUT / f"{key}.db", OUT / f"{key}.json"
    url = f"sqlite:///{path}"
    if path.exists() and manifest.exists():
        built = json.loads(manifest.read_text())
        if built.get("format") == FORMAT:
            print(f"demo city: reusing {key} (built {built['built_at']})", flush=True)
            return url
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    print("demo city: building (through the ledger's services)…", flush=True)
    engine = make_engine(url)
    upgrade(engine)
    stats = build_city(
        session_factory(engine),
        persons=DEMO["persons"],
        organisations=DEMO["organisations"],
        records=DEMO["records"],
        seed=DEMO["seed"],
        now=DEMO_NOW,
    )
    engine.dispose()
    manifest.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "records": stats.records,
                "seconds": round(stats.seconds, 1),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )
    print(f"demo city: built in {stats.seconds:.0f} s", flush=True)
    return url


def bench_demo(args: argparse.Namespace) -> dict[str, Any]:
    url = ensure_demo_city()
    settings = Settings(log_key_path=str(OUT / "export-bench-log.key"))
    ctx = open_context(url, clock=FixedClock(DEMO_NOW), settings=settings)
    with ctx.sessions() as session:
        edition = rulebook_store.in_force(session, DEMO_NOW)
    out, scores = OUT / "export-demo-run", OUT / "export-demo-scores"
    seconds: dict[str, list[float]] = {
        k: []
        for k in (
            "export",
            "score_parquet",
            "export + score",
            "export again, nothing changed",
            "diagnosis: the log's tree alone (tree_at, cold)",
            "score_population",
            "rescore (rolled back)",
        )
    }
    columnar_totals: npt.NDArray[np.float64] = np.empty(0)
    online_totals: npt.NDArray[np.float64] = np.empty(0)
    counts: dict[str, int] = {}
    for run in range(args.runs):
        clear_cache()  # every export as a new ``credence export`` process would run it
        started = time.perf_counter()
        summary = export_ledger(ctx, _fresh(out))
        exported = time.perf_counter()
        scored = score_parquet(out, _fresh(scores), at=DEMO_NOW, rulebook=edition)
        done = time.perf_counter()
        seconds["export"].append(exported - started)
        seconds["score_parquet"].append(done - exported)
        seconds["export + score"].append(done - started)
        counts.update(
            subjects=summary.subjects, records=summary.records, journal=summary.log.entries
        )
        table = pq.read_table(scores / "scores", columns=["subject_id", "total"])
        order = np.argsort(table["subject_id"].to_numpy())
        columnar_totals = table["total"].to_numpy()[order]
        if scored.subjects != summary.subjects:
            raise RuntimeError("the scorer did not score every exported subject")
        clear_cache()
        started = time.perf_counter()
        again = export_ledger(ctx, out)
        seconds["export again, nothing changed"].append(time.perf_counter() - started)
        if again.written:
            raise RuntimeError(f"nothing changed, yet the export rewrote {again.written}")
        clear_cache()
        with ctx.sessions() as session:
            started = time.perf_counter()
            tree_at(session)
            seconds["diagnosis: the log's tree alone (tree_at, cold)"].append(
                time.perf_counter() - started
            )

        with ctx.sessions() as session:
            started = time.perf_counter()
            population = score_population(session, edition, DEMO_NOW)
            seconds["score_population"].append(time.perf_counter() - started)
            online_totals = population.totals
            started = time.perf_counter()
            rescore(session, edition, DEMO_NOW)
            seconds["rescore (rolled back)"].append(time.perf_counter() - started)
            session.rollback()  # every round starts from the same store
        print(
            f"  demo run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in seconds.items()),
            flush=True,
        )
    ctx.engine.dispose()
    if columnar_totals.shape != online_totals.shape:
        raise RuntimeError("the two paths scored different numbers of subjects")
    scale = np.maximum(np.abs(online_totals), 1.0)
    diff = float(np.max(np.abs(columnar_totals - online_totals) / scale, initial=0.0))
    if diff > 1e-9:
        raise RuntimeError(f"columnar and online totals differ (max rel diff {diff:.2e})")
    return {
        **counts,
        "seconds": seconds,
        "median": {k: statistics.median(v) for k, v in seconds.items()},
        "max_rel_diff": diff,
    }


# --- report ----------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    print()
    print(f"export benchmark, {results['date']}, at {results['code']}, {results['machine']}")
    for store in results["stores"]:
        print(
            f"  {store['backend']}: {store['subjects']:,} subjects, {store['records']:,} "
            f"records, {store['parts']} parts (medians of {store['runs']})"
        )
        baseline = next(v for k, v in store["median"].items() if k.startswith("baseline"))
        for name, secs in store["median"].items():
            rate = store["records"] / secs
            print(
                f"    {name:<52} {secs:>8.2f} s {rate:>12,.0f}/s  {secs / baseline:>5.1f} × "
                f"first baseline, peak RSS (round 1) {store['peak_rss_gib'][name]:.2f} GiB"
            )
    demo = results.get("demo")
    if demo:
        print(
            f"  demo city: {demo['subjects']:,} subjects, {demo['records']:,} records, "
            f"{demo['journal']:,} journal entries; max rel diff of the two paths' totals "
            f"{demo['max_rel_diff']:.1e}"
        )
        for name, secs in demo["median"].items():
            print(f"    {name:<52} {secs:>8.2f} s")


def _code_version() -> str:
    """The commit measured, and whether the export's code differs from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "--", "src/credence/export")
    return git("rev-parse", "--short", "HEAD") + (" (export code modified)" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=20_000_000)
    parser.add_argument("--runs", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL ('' for none)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo city")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also time the records read part by part through the subject index",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.records < 1 or args.runs < 1:
        parser.error("--subjects, --records and --runs must be at least 1")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _code_version(),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "args": {k: str(v) for k, v in vars(args).items()},
        "stores": [],
    }
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.pg else [])
    for backend in backends:
        results["stores"].append(bench_store(backend, args))
    if not args.no_demo:
        results["demo"] = bench_demo(args)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
