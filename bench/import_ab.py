"""A/B of ``credence import``: the working tree against a git revision, in one run.

``python -m bench.import_ab --base REV`` imports the same file of a bank's records
(:mod:`bench.feed`: plausible records that intake takes whole, JSON lines by default)
with two versions of the code, alternately, on the same machine:

* **base**: ``REV`` in a temporary worktree; **new**: the working tree (as
  :mod:`bench.ab`, whose stores this shares: built once by the base code's
  ``bench.store``, and a copy upgraded by the new code's migrations, with the new code's
  default rulebook published unless ``--base-rulebook``).

Each import runs in a fresh process of its version (``PYTHONPATH`` its ``src``; the
modules the command line loads, then :func:`credence.ledger.importer.import_file`, the
code behind ``credence import``) on a fresh copy of its version's store, so every round
imports the same lines into the same rows. Timed: the import's own seconds (reading,
checking, storing and the commit), and the process CPU time of the call (user and
system, every thread; on SQLite that includes the database's work, on PostgreSQL only
the client's). ``--order abba`` swaps the order every other round. Medians, per-round
values and the ratio new/base of each; the verdict on CPU per record against
``--max-growth`` percent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from bench.ab import (
    Version,
    _fmt,
    _pg_drop,
    _sqlite_path,
    _sqlite_remove,
    base_worktree,
    compare,
    git,
    prepare_stores,
    run_copy,
    store_arguments,
    working_tree,
)
from bench.feed import SOURCE, BankFeed
from bench.ingest import FORMATS, write_file
from bench.store import OUT

#: One import with a version's code: prints its report and the CPU it took, as JSON.
IMPORT = """
import json, resource, sys
from pathlib import Path
from credence.cli.terminal import open_context  # the command's context: every feature
from credence.clock import SystemClock
from credence.ledger.importer import import_file
url, path, source = sys.argv[1:]
ctx = open_context(url)

def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime

before = cpu()
report = import_file(ctx.sessions, Path(path), source_code=source, clock=SystemClock())
used = cpu() - before
ctx.engine.dispose()
print(json.dumps({
    "lines": report.lines, "created": report.created, "stored": report.stored,
    "seconds": report.seconds, "cpu": used,
    "errors": [f"{e.code}: {e.message}" for e in report.errors[:3]],
}))
"""


def one_import(version: Version, url: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT, url, str(path), SOURCE],
        cwd=version.root,
        env=version.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{version.label}: the import failed:\n{done.stderr[-3000:]}")
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not got["stored"] or got["created"] != got["lines"]:
        raise SystemExit(
            f"{version.label}: the file was not taken whole ({got['created']:,} of "
            f"{got['lines']:,} created): {got['errors']}"
        )
    return {
        "records_per_s": got["created"] / got["seconds"],
        "cpu_us": got["cpu"] / got["created"] * 1e6,
        "seconds": got["seconds"],
        "records": got["created"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    store_arguments(parser)
    parser.add_argument("--records", type=int, default=100_000, help="records in the file")
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--order", choices=("ab", "abba"), default="abba")
    parser.add_argument("--max-growth", type=float, default=10.0, help="percent")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)

    sha = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    new = working_tree()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    rounds: list[dict[str, Any]] = []
    with base_worktree(sha) as base:
        versions = {"base": base, "new": new}
        for version in versions.values():
            version.check_origin()
            print(f"{version.label}: {version.describe}, from {version.root}", flush=True)
        stores = prepare_stores(args, base, new, sha)
        ids = stores.ids_file.read_text().split()
        feed = BankFeed.of_store(stores.pristine["base"], ids, datetime.now(UTC), args.seed)
        lines = feed.batch(args.records, f"imp{stamp}")
        path = write_file(lines, args.format, OUT / f"import-ab-{stamp}")
        print(f"file: {path.name}, {len(lines):,} records ({feed.sent['streaks']:,} streaks)")
        try:
            for r in range(args.rounds):
                order = ["base", "new"]
                if args.order == "abba" and r % 2:
                    order.reverse()
                row: dict[str, Any] = {}
                for label in order:
                    load = os.getloadavg()[0]
                    with run_copy(stores, label) as url:
                        got = one_import(versions[label], url, path)
                    row[label] = {**got, "load_before": load, "load_after": os.getloadavg()[0]}
                    print(
                        f"round {r + 1}/{args.rounds} {label}: {got['records_per_s']:,.0f} "
                        f"records/s, CPU {got['cpu_us']:.1f} µs/record (load {load:.1f})",
                        flush=True,
                    )
                rounds.append(row)
        finally:
            path.unlink(missing_ok=True)
            if stores.db is not None:
                _pg_drop(stores.db, make_url(stores.pristine["new"]).database or "")
            else:
                _sqlite_remove(_sqlite_path(stores.pristine["new"]))
    summary = {
        metric: compare([r["base"][metric] for r in rounds], [r["new"][metric] for r in rounds])
        for metric in ("records_per_s", "cpu_us")
    }
    loads = [
        r[k][w] for r in rounds for k in ("base", "new") for w in ("load_before", "load_after")
    ]
    backend = "SQLite" if args.db is None else "PostgreSQL"
    print()
    print(
        f"A/B credence import, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{backend}: {len(ids):,} subjects, one {args.format} file of {args.records:,} "
        f"records; {args.rounds} rounds, order {args.order}; load average "
        f"{min(loads):.1f}–{max(loads):.1f}"
    )
    print(f"  base: {base.describe} ({stores.revisions['base']})")
    print(f"  new:  {new.describe} ({stores.revisions['new']})")
    print()
    title = f"{backend}, {len(ids):,} subjects, median of {args.rounds} rounds"
    print(f"| {title} | base {sha[:7]} | new | new/base |")
    print("|---|---:|---:|---:|")
    what = {"records_per_s": "records/s", "cpu_us": "import process CPU µs per record"}
    for metric, entry in summary.items():
        runs = {k: " · ".join(_fmt(v) for v in entry[f"{k}_runs"]) for k in ("base", "new")}
        print(
            f"| {what[metric]} | {_fmt(entry['base'])} ({runs['base']}) | {_fmt(entry['new'])} "
            f"({runs['new']}) | **{entry['ratio']:.3f}** |"
        )
    cpu = summary["cpu_us"]
    print()
    print("  CPU per record, new/base per round " + " · ".join(f"{p:.3f}" for p in cpu["paired"]))
    limit = 1 + args.max_growth / 100
    verdict = "within" if cpu["ratio"] <= limit else "NOT within"
    print(f"  verdict: CPU per record {verdict} +{args.max_growth:g} % of the base")
    results = {
        "backend": backend,
        "base_sha": sha,
        "versions": {k: v.describe for k, v in versions.items()},
        "revisions": stores.revisions,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "db")},
        "rounds": rounds,
        "summary": summary,
    }
    out = args.json or OUT / f"import-ab-results-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"  raw results: {out}")


if __name__ == "__main__":
    main()
