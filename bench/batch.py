"""Batch rescoring benchmark: the columnar scorer against pandas, DuckDB and Spark.

Run ``python -m bench.batch`` (defaults: 10 M subjects, 200 M records; scale down with
``--subjects/--records``). In one run it

1. generates the population (or reuses one already generated with the same arguments),
2. times the columnar scorer (:func:`credence.scoring.columnar.score_parquet`), a
   straightforward pandas group-by (same decay math, on a subset of parts if the
   population is large), and a DuckDB SQL group-by over the same Parquet files, each
   ``--runs`` times in a fresh subprocess (so peak RSS is its own), and reports medians;
3. times the Spark runner on a smaller population (``--spark-subjects/--spark-records``);
4. prints one table with rates, per-core rates and ratios.

Every engine's result (the four sub-scores of each subject) is checked against the
columnar scorer's on the same parts: a benchmark of a wrong answer is worthless. The
pandas and DuckDB engines apply the rulebook's bounded returns as an analyst would: sum
each (subject, record type), clamp the sum to ±``max_points`` where the type declares
it, sum those per (subject, category, sign), cap the positive sum at the category's
``positive_caps`` entry (negative sums are not capped).

``python -m bench.batch_ab --base REV`` runs the columnar scorer of two versions of the
code on one population, alternating (:mod:`bench.batch_ab`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

import credence
from credence.clock import MICROS_PER_DAY, to_micros
from credence.lab.population import MANIFEST, generate
from credence.rulebook.loader import default_rulebook, load_text
from credence.rulebook.model import CATEGORIES, Rulebook
from credence.scoring import columnar, formula
from credence.scoring.formula import TypeTable

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SEED = 7
CORES = os.cpu_count() or 1


# --- populations ---------------------------------------------------------------------


def ensure_population(path: Path, subjects: int, records: int) -> dict[str, Any]:
    """Generate a population at ``path`` unless one with these arguments is there."""
    manifest = path / MANIFEST
    if manifest.exists():
        got = json.loads(manifest.read_text())
        if (got["subjects"], got["records"], got["seed"]) == (subjects, records, SEED):
            return {"generated": False}
    started = time.perf_counter()
    summary = generate(
        path, subjects=subjects, records=records, seed=SEED, now=NOW, rulebook=default_rulebook()
    )
    return {
        "generated": True,
        "seconds": time.perf_counter() - started,
        "bytes": summary.bytes_on_disk,
        "peak_rss": _peak_rss(),
    }


def _system() -> float:
    """System CPU seconds of this process (all threads): page faults on fresh
    memory show up here, not in user time."""
    return os.times().system


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _subset(path: Path, limit: int) -> list[columnar.PartInput]:
    """The first parts holding at least ``limit`` records (all parts if fewer)."""
    chosen, total = [], 0
    for part in columnar.discover(path):
        chosen.append(part)
        total += part.record_count
        if total >= limit:
            break
    return chosen


# --- engines (each runs in its own subprocess) ------------------------------------------


def rulebook_of(file: str | None) -> Rulebook:
    """The rulebook a worker scores by: the shipped default, or the text of ``file`` read
    back as a published edition (so that an older version's default still loads; the
    A/B scores the new code by the base's default this way)."""
    if file is None:
        return default_rulebook()
    return load_text(Path(file).read_text(encoding="utf-8"), file, published=True)


def run_columnar(path: Path, out: Path, workers: int, book: Rulebook) -> dict[str, Any]:
    # ``book`` is loaded (and checked) once per process, before the timing starts.
    cpu, system, started = time.process_time(), _system(), time.perf_counter()
    summary = columnar.score_parquet(path, out, at=NOW, rulebook=book, workers=workers)
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "sys": _system() - system,
        "records": summary.records,
        "subjects": summary.subjects,
        "counted": summary.counted,
        "tiers": summary.tiers,
        "peak_rss": _peak_rss(),
    }


def run_kernel(path: Path, limit: int, book: Rulebook) -> dict[str, Any]:
    """The kernel alone, on one thread, over record batches already in memory (the first
    parts, up to ``limit`` records): what the scorer costs apart from Parquet decoding
    and writing."""
    kernel = columnar.Kernel(TypeTable(book), to_micros(NOW))
    batches = [
        batch
        for part in _subset(path, limit)
        for batch in columnar.part_batches(part.records, kernel.at_us)
    ]
    records = sum(b.num_rows for b in batches)
    columnar.keep_heap()
    kernel.sums(batches[0])  # warm up (lookup tables, allocator)
    cpu, system, started = time.process_time(), _system(), time.perf_counter()
    for batch in batches:
        kernel.sums(batch)
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "sys": _system() - system,
        "records": records,
        "peak_rss": _peak_rss(),
    }


def _type_frame(book: Rulebook) -> Any:
    import pandas as pd

    types = TypeTable(book)
    return pd.DataFrame(
        {
            "points": types.points,
            "has_quantity": types.has_quantity,
            "max_units": types.max_units,
            "half_life": types.half_life,
            "retention": types.retention,
            "category": types.category,
            "negative": [rt.negative for rt in book.record_types],
            # No bound of its own: clamping to ±inf leaves the sum as it is.
            "max_points": [
                np.inf if rt.max_points is None else rt.max_points for rt in book.record_types
            ],
        },
        index=pd.Index(types.codes, name="record_type"),
    )


def _positive_caps(book: Rulebook) -> list[float]:
    """Each category's cap on positive points, in category order (inf: none)."""
    return [float(book.positive_caps.get(c, np.inf)) for c in CATEGORIES]


def run_pandas(path: Path, out: Path, limit: int, book: Rulebook) -> dict[str, Any]:
    """The formula written the way an analyst would in pandas: join the type table,
    compute a contribution column, group by (subject, type) and clamp to the type's
    bound, group by (subject, category, sign) and cap the positive sum."""
    import pandas as pd

    parts = _subset(path, limit)
    at = to_micros(NOW)
    types = _type_frame(book)
    caps = np.array(_positive_caps(book))
    cpu, started = time.process_time(), time.perf_counter()
    results = []
    records = 0
    for part in parts:
        df = pd.read_parquet(part.records)
        records += len(df)
        df["record_type"] = df["record_type"].astype(str)
        df = df.join(types, on="record_type")
        counts = (df["received_at"] <= at) & (df["ended_at"].isna() | (df["ended_at"] > at))
        age = (at - df["occurred_at"]) / MICROS_PER_DAY
        units = df["quantity"].clip(lower=0).clip(upper=df["max_units"]).fillna(1.0)
        weight = df["points"].where(~df["has_quantity"], df["points"] * units)
        decayed = weight * np.exp2(-age.clip(lower=0) / df["half_life"])
        active = counts & (age >= 0) & (age < df["retention"])
        df["contribution"] = decayed.where(active, 0.0)
        effects = (
            df.groupby(["subject_id", "record_type"])["contribution"]
            .sum()
            .reset_index()
            .join(types[["category", "negative", "max_points"]], on="record_type")
        )
        bound = effects["max_points"]
        effects["effect"] = effects["contribution"].clip(lower=-bound, upper=bound)
        signed = (
            effects.groupby(["subject_id", "category", "negative"])["effect"]
            .sum()
            .unstack("negative", fill_value=0.0)
            .reindex(columns=[False, True], fill_value=0.0)
        )
        cap = caps[signed.index.get_level_values("category")]
        sub = signed[False].clip(upper=cap) + signed[True]
        sums = sub.unstack("category", fill_value=0.0).reindex(
            columns=range(len(CATEGORIES)), fill_value=0.0
        )
        results.append(sums)
    scores = pd.concat(results)
    scores.to_parquet(out / "pandas.parquet")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "records": records,
        "parts": len(parts),
        "peak_rss": _peak_rss(),
        "max_rel_diff": _check(scores.reset_index(), parts, book),
    }


def _sql_number(value: float | None) -> str:
    return "NULL" if value is None else f"CAST('{float(value)!r}' AS DOUBLE)"


def run_duckdb(path: Path, out: Path, limit: int, threads: int, book: Rulebook) -> dict[str, Any]:
    """The same formula in SQL over the Parquet files; sub-scores per subject written
    back."""
    import duckdb

    parts = _subset(path, limit)
    at = to_micros(NOW)
    types = TypeTable(book)
    values = ", ".join(
        f"('{c}', {float(p)!r}, {bool(h)}, {float(m)!r}, {float(hl)!r}, {float(r)!r}, {int(k)}, "
        f"{rt.negative}, {_sql_number(rt.max_points)})"
        for c, p, h, m, hl, r, k, rt in zip(
            types.codes,
            types.points,
            types.has_quantity,
            types.max_units,
            types.half_life,
            types.retention,
            types.category,
            book.record_types,
            strict=True,
        )
    )
    caps = ", ".join(f"({j}, {_sql_number(cap)})" for j, cap in enumerate(_positive_caps(book)))
    files = ", ".join(f"'{p.records}'" for p in parts)
    sums = ", ".join(
        f"sum(CASE WHEN category = {j} THEN sub ELSE 0 END) AS {c.value}"
        for j, c in enumerate(CATEGORIES)
    )
    query = f"""
        COPY (
          WITH types(code, points, has_quantity, max_units, half_life, retention, category,
                     negative, max_points)
            AS (VALUES {values}),
          caps(category, cap) AS (VALUES {caps}),
          scored AS (
            SELECT r.subject_id, r.record_type, t.category, t.negative, t.max_points,
                   CASE WHEN age >= 0 AND age < t.retention
                        THEN (CASE WHEN t.has_quantity AND NOT isnan(r.quantity)
                                   THEN t.points * least(greatest(r.quantity, 0), t.max_units)
                                   ELSE t.points END)
                             * pow(2.0, -greatest(age, 0) / t.half_life)
                        ELSE 0 END AS contribution
            FROM (SELECT *, ({at} - occurred_at) / {MICROS_PER_DAY}.0 AS age
                  FROM read_parquet([{files}])) r
            JOIN types t ON r.record_type = t.code
            WHERE r.received_at <= {at} AND (r.ended_at IS NULL OR r.ended_at > {at})
          ),
          effects AS (
            SELECT subject_id, category, negative,
                   CASE WHEN max_points IS NULL THEN sum(contribution)
                        ELSE least(greatest(sum(contribution), -max_points), max_points)
                        END AS effect
            FROM scored GROUP BY subject_id, record_type, category, negative, max_points
          ),
          subs AS (
            SELECT e.subject_id, e.category,
                   least(coalesce(sum(e.effect) FILTER (WHERE NOT e.negative), 0), c.cap)
                   + coalesce(sum(e.effect) FILTER (WHERE e.negative), 0) AS sub
            FROM effects e JOIN caps c ON e.category = c.category
            GROUP BY e.subject_id, e.category, c.cap
          )
          SELECT subject_id, {sums}
          FROM subs GROUP BY subject_id
        ) TO '{out / "duckdb.parquet"}' (FORMAT parquet)
    """
    cpu, started = time.process_time(), time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET memory_limit = '8GB'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(query)
    seconds = time.perf_counter() - started
    records = sum(p.record_count for p in parts)
    result = pq.read_table(out / "duckdb.parquet").to_pandas()
    return {
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "records": records,
        "parts": len(parts),
        "peak_rss": _peak_rss(),
        "max_rel_diff": _check(result, parts, book),
    }


def _check(frame: Any, parts: list[columnar.PartInput], book: Rulebook) -> float:
    """Largest relative difference between ``frame`` (subject_id + the four sub-scores)
    and the columnar scorer's sub-scores on the same parts."""
    kernel = columnar.Kernel(TypeTable(book), to_micros(NOW))
    worst = 0.0
    ids = frame["subject_id"].to_numpy()
    names = [c.value for c in CATEGORIES]
    frame = frame.rename(columns=dict(enumerate(names)))
    by_id = np.full(max(p.first_subject + p.subjects for p in parts), -1, dtype=np.int64)
    by_id[ids] = np.arange(len(ids))
    for part in parts:
        tallied, _ = columnar.score_part_sums(part, kernel)
        sub = formula.finish(tallied, book).sub_scores
        rows = by_id[part.first_subject : part.first_subject + part.subjects]
        has = rows >= 0
        for j, name in enumerate(names):
            theirs = np.zeros(part.subjects)
            theirs[has] = frame[name].to_numpy()[rows[has]]
            diff = np.abs(theirs - sub[:, j]) / np.maximum(1.0, np.abs(sub[:, j]))
            worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def run_spark(path: Path, out: Path, runs: int, book: Rulebook) -> dict[str, Any]:
    from credence.scoring.spark import score_parquet_spark, spark_session

    started = time.perf_counter()
    session = spark_session("local[2]", memory="4g", shuffle_partitions=8)
    startup = time.perf_counter() - started
    times = []
    records = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        summary = score_parquet_spark(path, out, at=NOW, rulebook=book, spark=session)
        times.append(time.perf_counter() - t0)
        records = summary.records
    session.stop()
    return {"startup": startup, "runs": times, "records": records}


# --- orchestration -------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.population)
    book = rulebook_of(args.rulebook)
    if args.worker == "columnar":
        result = run_columnar(path, out, args.workers, book)
    elif args.worker == "kernel":
        result = run_kernel(path, args.pandas_records, book)
    elif args.worker == "pandas":
        result = run_pandas(path, out, args.pandas_records, book)
    elif args.worker == "duckdb":
        result = run_duckdb(path, out, args.duckdb_records, args.workers, book)
    else:
        result = run_spark(path, out, args.runs, book)
    # Which code and rulebook ran (the A/B checks that each version ran its own).
    result |= {"credence": credence.__file__, "rulebook_version": book.version}
    print(json.dumps(result))


def worker_command(
    engine: str, population: Path, out: Path, workers: int, *options: str
) -> list[str]:
    """The command line of one ``--worker`` run of ``engine`` (``options`` appended)."""
    return [
        sys.executable,
        "-m",
        "bench.batch",
        "--worker",
        engine,
        "--population",
        str(population),
        "--out",
        str(out),
        "--workers",
        str(workers),
        *options,
    ]


def _spawn(args: argparse.Namespace, engine: str, population: Path) -> dict[str, Any]:
    command = worker_command(
        engine,
        population,
        Path(args.work) / f"out-{engine}",
        args.workers,
        *("--pandas-records", str(args.pandas_records)),
        *("--duckdb-records", str(args.duckdb_records)),
        *("--runs", str(args.runs)),
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median_of(args: argparse.Namespace, engine: str, population: Path) -> dict[str, Any]:
    runs = [_spawn(args, engine, population) for _ in range(args.runs)]
    seconds = statistics.median(r["seconds"] for r in runs)
    best = runs[0] | {
        "seconds": seconds,
        "all_seconds": [round(r["seconds"], 3) for r in runs],
        "cpu": statistics.median(r["cpu"] for r in runs),
        "peak_rss": max(r["peak_rss"] for r in runs),
    }
    best["rate"] = best["records"] / seconds
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__)
    parser.add_argument("--subjects", type=int, default=10_000_000)
    parser.add_argument("--records", type=int, default=200_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per engine (median)")
    parser.add_argument("--workers", type=int, default=CORES, help="threads per engine")
    parser.add_argument(
        "--pandas-records", type=int, default=20_000_000, help="pandas runs on this many"
    )
    parser.add_argument("--duckdb-records", type=int, default=10**12, help="DuckDB subset")
    parser.add_argument("--spark-subjects", type=int, default=1_000_000)
    parser.add_argument("--spark-records", type=int, default=20_000_000)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument(
        "--work",
        default=str(Path(tempfile.gettempdir()) / "credence-bench"),
        help="scratch directory (populations are kept there and reused)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--population", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--rulebook", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return

    work = Path(args.work)
    population = work / f"pop-{args.subjects}-{args.records}"
    print(f"population: {args.subjects:,} subjects, {args.records:,} records in {population}")
    gen = ensure_population(population, args.subjects, args.records)
    if gen["generated"]:
        print(
            f"  generated in {gen['seconds']:.1f} s, {gen['bytes'] / 2**30:.2f} GiB on disk, "
            f"peak RSS {gen['peak_rss'] / 2**20:.0f} MiB"
        )
    results = {}
    for engine in ("columnar", "kernel", "duckdb", "pandas"):
        print(f"timing {engine} ({args.runs} runs)…", flush=True)
        results[engine] = _median_of(args, engine, population)
    spark: dict[str, Any] | None = None
    if not args.no_spark:
        small = work / f"pop-{args.spark_subjects}-{args.spark_records}"
        ensure_population(small, args.spark_subjects, args.spark_records)
        print(f"timing spark on {args.spark_records:,} records ({args.runs} runs)…", flush=True)
        spark = _spawn(args, "spark", small)
    report(args, results, spark)


def report(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], spark: dict[str, Any] | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    col = results["columnar"]
    table = Table(
        "engine",
        "records",
        "median s",
        "records/s",
        "per core",
        "per CPU-s",
        "peak RSS",
        "columnar ×",
        "max rel diff",
        title=f"Batch rescore, {args.subjects:,} subjects / {args.records:,} records, "
        f"{CORES} cores, {datetime.now(UTC):%Y-%m-%d}",
    )
    for engine, r in results.items():
        table.add_row(
            "kernel only, 1 thread" if engine == "kernel" else engine,
            f"{r['records']:,}",
            f"{r['seconds']:.2f} {r['all_seconds']}",
            f"{r['rate'] / 1e6:.1f} M",
            f"{r['rate'] / (1 if engine == 'kernel' else CORES) / 1e6:.1f} M",
            f"{r['records'] / r['cpu'] / 1e6:.1f} M" if r["cpu"] else "-",
            f"{r['peak_rss'] / 2**30:.2f} GiB",
            "-" if engine == "kernel" else f"{col['rate'] / r['rate']:.1f}",
            f"{r.get('max_rel_diff', 0.0):.1e}",
        )
    if spark is not None:
        median = statistics.median(spark["runs"])
        rate = spark["records"] / median
        table.add_row(
            "spark local[2]",
            f"{spark['records']:,}",
            f"{median:.2f} {[round(s, 2) for s in spark['runs']]}",
            f"{rate / 1e6:.1f} M",
            f"{rate / CORES / 1e6:.1f} M",
            "-",
            "-",
            f"{col['rate'] / rate:.1f}",
            "test_spark",
        )
    Console(width=160).print(table)
    if spark is not None:
        print(f"spark session startup: {spark['startup']:.1f} s (not in the timings)")


if __name__ == "__main__":
    main()
