"""Online benchmark: decisions over HTTP, HTTP batch ingestion and freshness.

Run ``python -m bench.online`` (defaults: 1,000,000 persons with ~5 records each, on
SQLite; ``--db postgresql://user@host:port/any`` for PostgreSQL). In one run it

1. builds the store, or reuses the one already built with the same size and seed
   (``bench/out/online-…``): schema by the migrations, rulebook, sources, a relying party
   and keys through the services, then subjects, records, retractions and their journal
   entries by bulk inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL) - the
   per-record API would take an hour for 5 M records; every run starts from a fresh copy
   of the built store;
2. starts ``credence serve`` (uvicorn, ONE worker process) on 127.0.0.1 at a free port;
3. decisions: drives ``POST /v1/decisions`` with ``wrk`` (a Lua script asks about random
   subjects for a mix of services, with a relying party's key): one warm-up, then
   ``--runs`` timed runs of ``--duration`` seconds; reports requests/s, p50, p99 (wrk
   ``--latency``), medians over the runs;
4. ingestion: several connections post batches of ``--batch`` records to
   ``POST /v1/records`` for ``--duration`` seconds, ``--runs`` times; records created/s;
5. freshness: submits a judgment-default record about a subject whose air travel is
   allowed, then asks for the air-travel decision until it is denied; the lag.

Every loop is bounded by time or count, traffic stays on the loopback interface and the
server is stopped at the end. ``wrk`` is installed with apt-get if missing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.decisions import bench_decisions, ensure_wrk
from bench.freshness import bench_freshness
from bench.http_ingestion import bench_ingestion
from bench.server import serving
from bench.store import OUT, SEED, SERVICES, ensure_store, fresh_copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.online",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=int, default=1_000_000, help="persons in the store")
    parser.add_argument("--records-per-subject", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--db", help="PostgreSQL server URL (default: SQLite under bench/out)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (medians)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--sweep",
        default="1,4,64",
        help="after the timed runs, one run at each of these connection counts ('' for none)",
    )
    parser.add_argument("--sweep-duration", type=float, default=10.0)
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated")
    parser.add_argument("--batch", type=int, default=2_000, help="records per ingestion batch")
    parser.add_argument("--ingest-connections", type=int, default=4)
    parser.add_argument("--freshness-samples", type=int, default=7)
    parser.add_argument(
        "--only",
        default="decisions,ingestion,freshness",
        help="which parts to run (comma-separated)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))

    wrk = ensure_wrk() if "decisions" in parts else ""
    built = ensure_store(args.db, args.subjects, args.records_per_subject, args.seed)
    ids = built.ids_file.read_text().split()
    url = fresh_copy(built, args.db)
    run_tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "store": {k: v for k, v in built.manifest.items() if k != "keys"},
        "backend": "sqlite" if args.db is None else "postgresql",
        "load_before": os.getloadavg()[0],
    }
    with serving(url, OUT / "online-server.log") as server:
        if "decisions" in parts:
            results["decisions"] = bench_decisions(args, wrk, server, built, ids)
        if "ingestion" in parts:
            results["ingestion"] = bench_ingestion(args, server, built, ids, run_tag, url)
        if "freshness" in parts:
            results["freshness"] = bench_freshness(
                server, built, ids, args.freshness_samples, run_tag
            )
    results["load_after"] = os.getloadavg()[0]
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any]) -> None:
    store = results["store"]
    print()
    print(
        f"online benchmark, {results['date']}, {results['machine']}, {results['backend']}: "
        f"{store['subjects']:,} subjects, {store['records']:,} records "
        f"(load average {results['load_before']:.1f} before, {results['load_after']:.1f} after)"
    )
    line: Callable[[str, str, str], None] = lambda name, got, target: print(  # noqa: E731
        f"  {name:<34} {got:<36} target {target}"
    )
    if "decisions" in results:
        d = results["decisions"]
        ok = d["rps"] >= 5000 and d["p99"] <= 10
        line(
            f"decisions ({d['connections']} connections)",
            f"{d['rps']:,.0f}/s  p50 {d['p50']:.2f} ms  p99 {d['p99']:.2f} ms",
            f">= 5,000/s, p99 <= 10 ms  {'met' if ok else 'MISSED'}",
        )
        print(
            f"  {'':<34} server CPU {d['server_cpu_us']:.0f} µs/decision "
            f"(= {1e6 / d['server_cpu_us']:,.0f}/s on a core of its own)"
        )
        for connections, got in d["sweep"].items():
            print(
                f"  {'':<34} {connections:>3} connections: {got['rps']:,.0f}/s, "
                f"p50 {got['p50']:.2f} ms, p99 {got['p99']:.2f} ms"
            )
        if d["errors"]:
            print(f"  !! {d['errors']:.0f} failed requests during the decision runs")
    if "ingestion" in results:
        g = results["ingestion"]
        ok = g["records_per_s"] >= 50_000
        line(
            f"HTTP ingestion ({g['connections']} conn, {g['batch']:,}/batch)",
            f"{g['records_per_s']:,.0f} records/s",
            f">= 50,000/s  {'met' if ok else 'MISSED'}",
        )
        print(f"  {'':<34} server CPU {g['server_cpu_us']:.1f} µs/record")
    if "freshness" in results:
        f = results["freshness"]
        ok = f["max_ms"] <= 1000
        line(
            "freshness (submit -> decision)",
            f"median {f['median_ms']:.1f} ms, max {f['max_ms']:.1f} ms",
            f"<= 1 s  {'met' if ok else 'MISSED'}",
        )


if __name__ == "__main__":
    main()
