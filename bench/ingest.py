"""File import benchmark: ``credence import`` into SQLite and PostgreSQL.

Run ``python -m bench.ingest`` (defaults: the online benchmark's store of 1,000,000
persons with ~5 records each, 200,000 records per file, 3 runs per format, SQLite and
PostgreSQL at ``postgresql://postgres@127.0.0.1:5432/postgres``). For each store it

1. takes the store built by ``bench.online`` (built here if missing) and one fresh copy
   of it, into which every run of this invocation goes;
2. writes a bank's file of ``--records`` records of its feed (:mod:`bench.feed`: 95 %
   repayments and streaks, 5 % defaults with a decision reference, spread over the
   registered persons so that intake refuses and holds none), in each format (Parquet,
   CSV, JSON lines), new source references for every run;
3. imports each file with :func:`credence.ledger.importer.import_file`, the code behind
   ``credence import`` (every line checked, all or nothing, one transaction), and counts
   records per second;
4. as the baseline, in the same run, stores as many records of the same kind, planned
   beforehand (untimed), with the importer's own storing step
   (:func:`credence.ledger.service.store_planned`: the record rows and journal entries,
   ``executemany`` or ``COPY``): what the store itself takes with this schema. The ratio
   import / baseline shows how much reading, checking and planning cost.

Runs of the formats and the baseline alternate, so the store's growth (each run adds its
records) weighs on all of them alike. Medians over the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from bench.feed import SOURCE, BankFeed
from bench.store import OUT, SEED, ensure_store, fresh_copy
from credence.clock import SystemClock
from credence.db import bulk_load_cache, make_engine, session_factory
from credence.ledger import registry
from credence.ledger import service as ledger
from credence.ledger.importer import import_file
from credence.rulebook import store as rulebook_store

FORMATS = ("parquet", "csv", "jsonl")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def write_file(lines: list[dict[str, Any]], fmt: str, path: Path) -> Path:
    """``lines`` as a file of ``fmt`` (absent fields left out, or empty in CSV)."""
    path = path.with_suffix(f".{fmt}")
    names = list(lines[0])
    if fmt == "jsonl":
        import orjson

        with path.open("wb") as handle:
            for line in lines:
                handle.write(orjson.dumps({k: v for k, v in line.items() if v is not None}))
                handle.write(b"\n")
    elif fmt == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for line in lines:
                writer.writerow(["" if line[k] is None else line[k] for k in names])
    else:
        table = pa.table({k: [line[k] for line in lines] for k in names})
        pq.write_table(table, path)
    return path


def raw_insert(sessions: sessionmaker[Session], lines: list[dict[str, Any]]) -> float:
    """Seconds to store ``lines`` in chunks of 10,000 as the importer stores them
    (:func:`credence.ledger.service.store_planned`, the same 1 GiB page cache) and commit:
    the baseline. The lines are parsed and planned first, untimed."""
    with sessions() as session:
        source = registry.source_by_code(session, SOURCE)
        at = datetime.now(UTC)
        rulebook = rulebook_store.in_force(session, at).rulebook
        chunks = []
        for start in range(0, len(lines), 10_000):
            records = ledger.parse_records(lines[start : start + 10_000])
            chunks.append(
                ledger.plan_records(
                    session, source=source, records=records, rulebook=rulebook, at=at
                )
            )
        if any(p.row is None for planned in chunks for p in planned):
            raise RuntimeError("the baseline's lines must all be new, valid records")
        started = time.perf_counter()
        with bulk_load_cache(session):
            for planned in chunks:
                ledger.store_planned(session, planned)
        session.commit()
        return time.perf_counter() - started


def bench_store(args: argparse.Namespace, db: str | None) -> dict[str, Any]:
    backend = "sqlite" if db is None else "postgresql"
    built = ensure_store(db, args.subjects, args.records_per_subject, args.seed)
    ids = built.ids_file.read_text().split()
    url = fresh_copy(built, db)
    engine = make_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    # One feed for the copy every run goes into: it sends each person one streak at most.
    feed = BankFeed.of_store(url, ids, now, args.seed)
    stamp = now.strftime("%Y%m%d%H%M%S")
    rates: dict[str, list[float]] = {name: [] for name in ("baseline", *args.formats)}
    print(f"{backend}: {len(ids):,} subjects; {args.records:,} records per run", flush=True)
    try:
        for run in range(args.runs):
            lines = feed.batch(args.records, f"b{stamp}-{run}")
            seconds = raw_insert(sessions, lines)
            rates["baseline"].append(args.records / seconds)
            print(f"  run {run + 1} baseline (storing only): {args.records / seconds:,.0f}/s")
            for fmt in args.formats:
                lines = feed.batch(args.records, f"{fmt}{stamp}-{run}")
                path = write_file(lines, fmt, OUT / f"ingest-{backend}")
                report = import_file(sessions, path, source_code=SOURCE, clock=SystemClock())
                if not report.stored or report.created != args.records:
                    raise RuntimeError(f"import failed: {report.errors[:3]}")
                rates[fmt].append(report.created / report.seconds)
                print(f"  run {run + 1} {fmt}: {rates[fmt][-1]:,.0f} records/s", flush=True)
                path.unlink()
    finally:
        engine.dispose()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {"backend": backend, "subjects": len(ids), "runs": rates, "median": medians}


def report(results: dict[str, Any]) -> None:
    print()
    print(f"file import benchmark, {results['date']}, {results['machine']}")
    for store in results["stores"]:
        target = 250_000 if store["backend"] == "sqlite" else 500_000
        base = store["median"]["baseline"]
        print(f"  {store['backend']}, {store['subjects']:,} subjects (medians):")
        print(f"    {'baseline: storing only, no checks':<36} {base:>10,.0f}/s")
        for fmt, rate in store["median"].items():
            if fmt == "baseline":
                continue
            verdict = "met" if rate >= target else "MISSED"
            print(
                f"    {'credence import, ' + fmt:<36} {rate:>10,.0f}/s  "
                f"{rate / base:.2f} × baseline  target >= {target:,}/s {verdict}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=int, default=1_000_000, help="persons in the store")
    parser.add_argument("--records-per-subject", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--records", type=int, default=200_000, help="records per file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL ('' for none)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.formats = [f for f in args.formats.split(",") if f]
    unknown = set(args.formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats {sorted(unknown)}; choose from {FORMATS}")
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "stores": [],
    }
    if not args.no_sqlite:
        results["stores"].append(bench_store(args, None))
    if args.pg:
        results["stores"].append(bench_store(args, args.pg))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
