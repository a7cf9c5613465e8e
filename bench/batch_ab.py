"""A/B of the batch benchmark: the working tree against a git revision, in one run.

``python -m bench.batch_ab --base REV`` times the columnar scorer
(:func:`credence.scoring.columnar.score_parquet`, end to end: Parquet in, scores out)
and its kernel alone (:func:`bench.batch.run_kernel`: one thread, batches in memory) for
two versions of the code, on the same machine, in the same run:

* **base**: ``REV`` checked out with ``git worktree add`` into a temporary folder
  (removed at the end), scoring by its own default rulebook;
* **new**: the working tree (HEAD and any uncommitted change), scoring by its own
  default rulebook;
* **new, base rulebook** (unless ``--no-split``): the working tree's code scoring by the
  base's default rulebook (its text, read back as a published edition). Against base,
  this is what the code costs by itself; against new, what the new rulebook costs.

Every run is a fresh ``python -m bench.batch --worker …`` subprocess of this venv's
Python, with ``PYTHONPATH`` set to the version's ``src`` (the benchmark harness is this
tree's for every version; only ``credence`` differs). Each run reports which
``credence`` it imported and which rulebook it scored by, and the A/B checks both.

**Population.** One population (``--subjects``, ``--records``), generated once by this
tree's :func:`bench.batch.ensure_population` and cached under ``--work``; every version
reads the same files.

**Rounds.** ``--runs`` rounds; the versions run in order in even rounds and in reverse
order in odd rounds (ABBA), so the drift of a shared machine touches all of them. In
each round: the columnar scorer of every version, then the kernel of every version.

**Report.** Medians of wall time and of process CPU time per version and engine, the
ratio to base of each (of the medians, and per round), the load average around the
runs, the verdict of new against base on ``--max-growth`` percent, and what each
version's scores were (tier counts; the base and "new, base rulebook" score files
compared subject by subject). Raw results go to a JSON file under ``bench/out/``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.ab import REPO, Version, base_worktree, git, working_tree
from bench.batch import CORES, ensure_population, worker_command

OUT = REPO / "bench" / "out"
ENGINES = ("columnar", "kernel")
#: The rulebook file's place in a version's tree.
DEFAULT_TOML = Path("src/credence/rulebook/default.toml")


@dataclass(frozen=True)
class Variant:
    """One version of the code and the rulebook it scores by."""

    label: str
    version: Version
    rulebook: Path | None  # None: the version's own default
    describe: str

    @property
    def folder(self) -> str:
        """Where its runs write scores (under ``--work``)."""
        return "ab-out-" + "-".join(self.label.replace(",", "").split())


def spawn(
    args: argparse.Namespace, variant: Variant, engine: str, population: Path
) -> dict[str, Any]:
    """One timed run of ``engine`` by ``variant``, in a fresh subprocess."""
    out = Path(args.work) / variant.folder
    command = worker_command(
        engine, population, out, args.workers, "--pandas-records", str(args.kernel_records)
    )
    if variant.rulebook is not None:
        command += ["--rulebook", str(variant.rulebook)]
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        command, cwd=REPO, env=variant.version.env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant.label} {engine} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    origin = Path(result["credence"]).resolve()
    if not origin.is_relative_to((variant.version.root / "src").resolve()):
        raise SystemExit(f"{variant.label}: credence was imported from {origin}")
    return result | {"load_before": load_before, "load_after": os.getloadavg()[0]}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def summarise(rounds: list[dict[str, dict[str, Any]]], labels: list[str]) -> dict[str, Any]:
    """Per engine and variant: medians of wall and CPU seconds, and ratios to base (of the
    medians, and per round)."""
    summary: dict[str, Any] = {}
    for engine in ENGINES:
        runs = {v: [r[v][engine] for r in rounds if engine in r[v]] for v in labels}
        if not all(runs.values()):
            continue
        entry: dict[str, Any] = {}
        for v in labels:
            got: dict[str, Any] = {
                "records": runs[v][0]["records"],
                "rulebook_version": runs[v][0]["rulebook_version"],
                "peak_rss": max(r["peak_rss"] for r in runs[v]),
            }
            got["sys"] = _median(runs[v], "sys")
            got["sys_runs"] = [r["sys"] for r in runs[v]]
            for key in ("seconds", "cpu"):
                got[key] = _median(runs[v], key)
                got[f"{key}_runs"] = [r[key] for r in runs[v]]
                base = entry["base"][key] if v != "base" else got[key]
                got[f"{key}_ratio"] = got[key] / base
                if v != "base":
                    got[f"{key}_paired"] = [
                        n[key] / b[key] for b, n in zip(runs["base"], runs[v], strict=True)
                    ]
            entry[v] = got
        summary[engine] = entry
    return summary


def compare_scores(work: Path, variants: list[Variant]) -> dict[str, Any]:
    """What the last run of each variant wrote: subjects per tier, and the score files
    of base and "new, base rulebook" compared subject by subject (same rulebook, so the
    same scores up to rounding), and base and new (how many subjects changed tier)."""
    tables = {v.label: _scores(work / v.folder) for v in variants}
    labels = [v.label for v in variants]
    got: dict[str, Any] = {}
    base = tables["base"]
    for v in labels:
        if v == "base":
            continue
        other = tables[v]
        if not np.array_equal(base["subject_id"], other["subject_id"]):
            raise SystemExit(f"{v}: the score files do not cover the same subjects as base")
        numbers = ["total", *(c for c in base if c not in ("subject_id", "total", "tier"))]
        worst = 0.0
        for name in numbers:
            a, b = base[name], other[name]
            worst = max(worst, float((np.abs(a - b) / np.maximum(1.0, np.abs(a))).max()))
        moved = base["tier"] != other["tier"]
        got[v] = {
            "max_rel_diff": worst,
            "tier_changed": int(moved.sum()),
            "total_changed": int((base["total"] != other["total"]).sum()),
        }
    return got


def _scores(out: Path) -> dict[str, Any]:
    files = sorted((out / "scores").glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


# --- report --------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    s = results["settings"]
    loads = [
        r[v][e][k]
        for r in results["rounds"]
        for v in r
        for e in r[v]
        for k in ("load_before", "load_after")
    ]
    print()
    print(
        f"A/B batch benchmark, {results['date']}, {results['machine']}: "
        f"{s['subjects']:,} subjects, {s['records']:,} records; {len(results['rounds'])} "
        f"rounds, ABBA; load average {min(loads):.1f}–{max(loads):.1f}"
    )
    for v, what in results["variants"].items():
        print(f"  {v}: {what}")
    print()
    labels = list(results["variants"])
    for engine, entry in results["summary"].items():
        title = (
            f"columnar end to end, {s['workers']} threads"
            if engine == "columnar"
            else "kernel alone, 1 thread, batches in memory"
        )
        print(f"| {title} | records | wall s, median (runs) | CPU s, median (runs) "
              "| of which system | wall ×base | CPU ×base | peak RSS |")  # fmt: skip
        print("|---|---:|---|---|---:|---:|---:|---:|")
        for v in labels:
            e = entry[v]
            runs = {k: ", ".join(f"{x:.2f}" for x in e[f"{k}_runs"]) for k in ("seconds", "cpu")}
            print(
                f"| {v} (rulebook {e['rulebook_version']}) | {e['records']:,} "
                f"| {e['seconds']:.2f} ({runs['seconds']}) | {e['cpu']:.2f} ({runs['cpu']}) "
                f"| {e['sys']:.2f} | {e['seconds_ratio']:.3f} | {e['cpu_ratio']:.3f} "
                f"| {e['peak_rss'] / 2**30:.2f} GiB |"
            )
        print()
        for v in labels[1:]:
            paired = {
                k: " · ".join(f"{x:.3f}" for x in entry[v][f"{k}_paired"])
                for k in ("seconds", "cpu")
            }
            print(f"  {engine}, {v}/base per round: wall {paired['seconds']}; CPU {paired['cpu']}")
        print()
    for v, got in results["scores"].items():
        print(
            f"  scores, {v} against base: max rel diff {got['max_rel_diff']:.1e}, "
            f"{got['total_changed']:,} totals and {got['tier_changed']:,} tiers differ"
        )
    for v in labels:
        tiers = results["rounds"][-1][v]["columnar"]["tiers"]
        print(f"  tiers, {v}: " + ", ".join(f"{t} {n:,}" for t, n in tiers.items()))
    limit = 1 + s["max_growth"] / 100
    col = results["summary"]["columnar"]["new"]
    within = {k: col[f"{k}_ratio"] <= limit for k in ("seconds", "cpu")}
    print(
        f"  verdict (columnar end to end, new/base ≤ {limit:.2f}): wall "
        f"{col['seconds_ratio']:.3f} {'within' if within['seconds'] else 'OVER'}, CPU "
        f"{col['cpu_ratio']:.3f} {'within' if within['cpu'] else 'OVER'}"
    )


# --- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=20_000_000)
    parser.add_argument("--runs", type=int, default=5, help="rounds (every version once each)")
    parser.add_argument("--workers", type=int, default=CORES, help="threads of the scorer")
    parser.add_argument(
        "--kernel-records", type=int, default=20_000_000, help="the kernel runs on this many"
    )
    parser.add_argument("--no-kernel", action="store_true", help="columnar end to end only")
    parser.add_argument(
        "--no-split", action="store_true", help="skip the new code with the base's rulebook"
    )
    parser.add_argument(
        "--max-growth", type=float, default=10.0, help="largest acceptable growth, percent"
    )
    parser.add_argument(
        "--work",
        default=str(Path(tempfile.gettempdir()) / "credence-bench"),
        help="scratch directory (populations are kept there and reused)",
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    # A terminated run still removes its worktree.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sha = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"not a revision of this repository: {args.base}") from None
    work = Path(args.work)
    population = work / f"pop-{args.subjects}-{args.records}"
    print(f"population: {args.subjects:,} subjects, {args.records:,} records in {population}")
    gen = ensure_population(population, args.subjects, args.records)
    if gen["generated"]:
        print(f"  generated in {gen['seconds']:.1f} s", flush=True)
    engines = ("columnar",) if args.no_kernel else ENGINES
    new = working_tree()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with base_worktree(sha) as base:
        for version in (base, new):
            version.check_origin()
            print(f"{version.label}: {version.describe}, from {version.root}", flush=True)
        variants = [
            Variant("base", base, None, f"{base.describe}, its default rulebook"),
            Variant("new", new, None, f"{new.describe}, its default rulebook"),
        ]
        if not args.no_split:
            book = base.root / DEFAULT_TOML
            variants.append(
                Variant("new, base rulebook", new, book, f"{new.describe}, base's default.toml")
            )
        labels = [v.label for v in variants]
        rounds: list[dict[str, dict[str, Any]]] = []
        for r in range(args.runs):
            order = variants if r % 2 == 0 else variants[::-1]
            row: dict[str, dict[str, Any]] = {v.label: {} for v in variants}
            for engine in engines:
                for variant in order:
                    print(f"round {r + 1}/{args.runs}: {variant.label} {engine}", flush=True)
                    row[variant.label][engine] = spawn(args, variant, engine, population)
            rounds.append(row)
        expected = {v.label: rounds[0][v.label]["columnar"]["rulebook_version"] for v in variants}
        for v in variants:
            if v.rulebook is not None and expected[v.label] != expected["base"]:
                raise SystemExit(f"{v.label}: scored by rulebook {expected[v.label]}, not base's")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "base_sha": sha,
        "variants": {v.label: v.describe for v in variants},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "rounds": rounds,
        "summary": summarise(rounds, labels),
        "scores": compare_scores(work, variants),
    }
    report(results)
    OUT.mkdir(parents=True, exist_ok=True)
    path = args.json or OUT / f"batch-ab-results-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"  raw results: {path}")


if __name__ == "__main__":
    main()
