"""HTTP batch ingestion: several connections post batches of a bank's records.

:func:`bench_ingestion` posts batches of the bank's feed (:mod:`bench.feed`: plausible
records that intake takes whole) to ``POST /v1/records`` for a given time, several
times, and reports records created per second and the server's CPU time per record;
then it counts this run's records in the store on a connection of its own (every
acknowledged record must be stored). A record refused or held fails the run: the
benchmark times intake, not its refusals.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text

from bench.feed import BankFeed
from bench.server import Server
from bench.store import SEED, Built
from credence.db import make_engine


def _batch_body(feed: BankFeed, size: int, prefix: str) -> bytes:
    records = [
        {k: v for k, v in item.items() if v is not None} for item in feed.batch(size, prefix)
    ]
    return orjson.dumps({"records": records})


def bench_ingestion(
    args: argparse.Namespace,
    server: Server,
    built: Built,
    ids: Sequence[str],
    run_tag: str,
    url: str,
) -> dict[str, Any]:
    key = built.manifest["keys"]["bank"]
    port = server.port
    feed = BankFeed.of_store(url, list(ids), datetime.now(UTC), getattr(args, "seed", SEED))

    def post(conn: http.client.HTTPConnection, body: bytes) -> int:
        conn.request(
            "POST",
            "/v1/records",
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        response = conn.getresponse()
        answer = orjson.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"batch refused ({response.status}): {answer}")
        created: int = answer["created"]
        if created + answer["duplicates"] != len(answer["results"]):
            odd = [r for r in answer["results"] if r["status"] not in ("created", "duplicate")]
            causes = Counter(
                (r["status"], (r.get("error") or r.get("hold") or {}).get("code")) for r in odd
            )
            raise RuntimeError(f"records not taken whole by intake: {dict(causes)}")
        return created

    def one_run(label: str, seconds: float) -> dict[str, float]:
        stop_at = time.perf_counter() + seconds
        created = [0] * args.ingest_connections
        batches = [0] * args.ingest_connections
        errors: list[BaseException] = []

        def worker(w: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                body = _batch_body(feed, args.batch, label)
                while time.perf_counter() < stop_at:
                    created[w] += post(conn, body)
                    batches[w] += 1
                    body = _batch_body(feed, args.batch, label)
            except BaseException as exc:
                errors.append(exc)
            finally:
                conn.close()

        started, cpu = time.perf_counter(), server.cpu_seconds()
        workers = [
            threading.Thread(target=worker, args=(w,)) for w in range(args.ingest_connections)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu
        if errors:
            raise errors[0]
        return {
            "records_per_s": sum(created) / elapsed,
            "server_cpu_us": cpu / max(sum(created), 1) * 1e6,
            "records": float(sum(created)),
            "batches": float(sum(batches)),
            "seconds": elapsed,
        }

    print(
        f"ingestion: {args.ingest_connections} connections, batches of {args.batch:,} "
        f"records; warm-up…",
        flush=True,
    )
    acknowledged = one_run(f"{run_tag}-w", min(args.warmup, 3))["records"]
    runs = []
    for r in range(args.runs):
        got = one_run(f"{run_tag}-{r}", args.duration)
        acknowledged += got["records"]
        print(
            f"  run {r + 1}: {got['records_per_s']:,.0f} records/s "
            f"({got['records']:,.0f} in {got['seconds']:.1f} s), "
            f"server CPU {got['server_cpu_us']:.1f} µs/record",
            flush=True,
        )
        runs.append(got)
    stored = _stored_since(url, run_tag)
    if stored != acknowledged:
        raise RuntimeError(
            f"the server acknowledged {acknowledged:,.0f} new records but the store holds "
            f"{stored:,} (read by another connection): acknowledged is not stored"
        )
    print(f"  every acknowledged record is in the store ({stored:,})", flush=True)
    return {
        "runs": runs,
        "records_per_s": statistics.median(r["records_per_s"] for r in runs),
        "server_cpu_us": statistics.median(r["server_cpu_us"] for r in runs),
        "batch": args.batch,
        "connections": args.ingest_connections,
    }


def _stored_since(url: str, run_tag: str) -> int:
    """Records in the store whose source_ref carries ``run_tag`` (this run's batches),
    counted on a connection of the benchmark's own: what was committed."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM records WHERE source_ref LIKE :tag"),
                {"tag": f"{run_tag}-%"},
            ).scalar()
        return int(found or 0)
    finally:
        engine.dispose()
