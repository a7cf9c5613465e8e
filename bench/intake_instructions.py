"""A/B of intake in instructions: bulk import and HTTP ingestion, counted by callgrind.

``python -m bench.intake_instructions --base REV`` runs the same work with two versions
of the code (the working tree and ``REV`` in a temporary worktree, on the stores of
:mod:`bench.ab`: built once by the base code, a copy upgraded by the new code's
migrations with its default rulebook published), each in a fresh process of its version
under ``valgrind --tool=callgrind``, which counts the instructions the process executes.
The count does not depend on what else the machine runs, so it can be compared where
wall and CPU time cannot (a shared machine, whose load moves the CPU per record by a
factor of 1.7 within a run). One process per version and round does, on fresh copies
of its version's store:

* **import**: :func:`credence.ledger.importer.import_file` (the code behind ``credence
  import``) of one file of ``--records`` of the bank's feed (:mod:`bench.feed`);
* **http**: the app of ``credence serve`` (``create_app``, the heap settled as the
  command settles it) driven in-process through Starlette's test client: one warm-up
  batch, then ``--records`` records in batches of ``--batch`` to ``POST /v1/records``
  (each must be taken whole). The HTTP server (uvicorn) is not in it; the test client's
  own work is, the same for both versions. The API's checkpoint timer is off
  (``CREDENCE_CHECKPOINT_EVERY_SECONDS=0``): it signs the journal's new entries every
  minute of wall time, and under valgrind a part lasts minutes.

Only the parts are counted: the process calls ``os.getpgrp()`` between them, and
``--dump-before=getpgrp`` makes callgrind write the count since the previous call (the
start-up, the import's context, the app and its warm-up are left out). The start-up
(importing every feature: more instructions than both parts) runs uninstrumented
(``--instr-atstart=no``, several times faster); the process then has
``callgrind_control --instr=on`` switch the instrumentation on. Instructions
per record, medians over ``--rounds`` (``--order abba`` swaps the order every other
round), and the ratio new/base. ``PYTHONHASHSEED`` is fixed, so the runs of a version
differ only by the random ids and salts they draw.

On SQLite the count includes the database's work (it runs in the process). On
PostgreSQL it is the client's alone (the Python process: the driver, SQLAlchemy,
intake's code); the server's work is not counted. Instructions are not time: cache
misses, I/O waits, fsync and system calls are not in them (callgrind counts user-space
instructions only), so a change that saves instructions but adds misses or round trips
would not show here. ``--cpu`` runs the same processes without valgrind and reports
process CPU time per record instead (the noisy measure, for context).

``--keep DIR`` keeps the callgrind files (``callgrind_annotate`` reads them; the part
files are ``cg.<version>.<round>.<pid>.<n>``: 2 is the import, 4 the HTTP batches).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import make_url

from bench.ab import (
    Stores,
    Version,
    _pg_create,
    _pg_drop,
    _sqlite_copy,
    _sqlite_path,
    _sqlite_remove,
    base_worktree,
    git,
    prepare_stores,
    store_arguments,
    working_tree,
)
from bench.feed import SOURCE, BankFeed
from bench.ingest import write_file
from bench.store import OUT

#: The process of one round of a version: the import, then the HTTP batches, the parts
#: separated by ``os.getpgrp()`` (callgrind dumps its count before each call).
WORKER = """
import gc, json, os, resource, subprocess, sys
from pathlib import Path
import orjson
from starlette.testclient import TestClient
from credence.api.app import create_app
from credence.cli.terminal import open_context
from credence.clock import SystemClock
from credence.ledger.importer import import_file

import_url, http_url, path, bodies_path, source, key = sys.argv[1:]
bodies = Path(bodies_path).read_bytes().split(b"\\n")

def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime

ctx = open_context(import_url)
if os.environ.get("BENCH_CALLGRIND"):
    # Started with --instr-atstart=no (the start-up runs several times faster): the
    # instrumentation on from here, kept busy until callgrind has taken the request.
    control = subprocess.Popen(["callgrind_control", "--instr=on", str(os.getpid())],
                               stdout=subprocess.DEVNULL)
    while control.poll() is None:
        pass
os.getpgrp()  # part 1 ends: start-up (only what ran since the instrumentation went on)
started = cpu()
report = import_file(ctx.sessions, Path(path), source_code=source, clock=SystemClock())
import_cpu = cpu() - started
os.getpgrp()  # part 2 ends: the import
ctx.engine.dispose()
if not report.stored or report.created != report.lines:
    raise SystemExit(f"the file was not taken whole: {report.created} of {report.lines}")

ctx = open_context(http_url)
app = create_app(ctx)
gc.collect(); gc.freeze(); gc.set_threshold(20_000, 10, 10)  # as credence serve does
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

def post(client, body):
    response = client.post("/v1/records", content=body, headers=headers)
    answer = response.json()
    if response.status_code != 200 or answer["created"] != len(answer["results"]):
        odd = [r for r in answer.get("results", []) if r["status"] != "created"][:3]
        raise SystemExit(f"a batch was not taken whole ({response.status_code}): {odd or answer}")
    return answer["created"]

with TestClient(app) as client:
    post(client, bodies[0])  # warm-up
    os.getpgrp()  # part 3 ends: the app and its warm-up
    started = cpu()
    created = sum(post(client, body) for body in bodies[1:])
    http_cpu = cpu() - started
    os.getpgrp()  # part 4 ends: the HTTP batches
print(json.dumps({"import_records": report.created, "import_cpu": import_cpu,
                  "http_records": created, "http_cpu": http_cpu}))
"""

PARTS = {"import": 2, "http": 4}


def _bodies(feed: BankFeed, records: int, batch: int, prefix: str) -> bytes:
    """One warm-up batch and ``records`` in batches of ``batch``, one JSON body a line."""
    sizes = [min(batch, 500)] + [batch] * (records // batch)
    bodies = []
    for n, size in enumerate(sizes):
        items = [
            {k: v for k, v in item.items() if v is not None}
            for item in feed.batch(size, f"{prefix}b{n}")
        ]
        bodies.append(orjson.dumps({"records": items}))
    return b"\n".join(bodies)


@contextmanager
def fresh_copy(stores: Stores, label: str, part: str) -> Iterator[str]:
    """A fresh copy of a version's pristine store for one part of a round; removed after."""
    pristine = stores.pristine[label]
    if stores.db is None:
        target = OUT / f"ii-run-{os.getpid()}-{label}-{part}.db"
        _sqlite_copy(_sqlite_path(pristine), target)
        try:
            yield f"sqlite:///{target}"
        finally:
            _sqlite_remove(target)
    else:
        name = f"credence_ii_run_{os.getpid()}_{label}_{part}"
        url = _pg_create(stores.db, name, make_url(pristine).database or "")
        try:
            yield url
        finally:
            _pg_drop(stores.db, name)


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def one_round(
    version: Version,
    urls: tuple[str, str],
    files: tuple[Path, Path],
    key: str,
    out: Path | None,
    tag: str,
) -> dict[str, Any]:
    """One process of ``version``: instructions (None with ``--cpu``) and CPU seconds
    per part, and the records each part created."""
    command = [sys.executable, "-c", WORKER, *urls, *map(str, files), SOURCE, key]
    if out is not None:
        prefix = out / f"cg.{tag}"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={prefix}.%p",
            "--dump-before=getpgrp",
            "--instr-atstart=no",
            *command,
        ]
    env = {
        **version.env(),
        "PYTHONHASHSEED": "0",
        "BENCH_CALLGRIND": "1" if out else "",
        # The API's checkpoint timer signs the journal's new entries in a thread every
        # minute of wall time: work by the clock, not by the record, off here.
        "CREDENCE_CHECKPOINT_EVERY_SECONDS": "0",
    }
    done = subprocess.run(
        command, cwd=version.root, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{version.label}: the round failed:\n{done.stderr[-3000:]}")
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result: dict[str, Any] = {}
    for part, n in PARTS.items():
        records = got[f"{part}_records"]
        entry = {"records": records, "cpu_us": got[f"{part}_cpu"] / records * 1e6}
        if out is not None:
            (dump,) = out.glob(f"cg.{tag}.*.{n}")
            entry["instructions"] = _totals(dump) / records
        result[part] = entry
    return result


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake_instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    store_arguments(parser)
    parser.set_defaults(subjects=50_000)
    parser.add_argument("--records", type=int, default=10_000, help="records per part")
    parser.add_argument("--batch", type=int, default=2_000, help="records per HTTP batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--order", choices=("ab", "abba"), default="abba")
    parser.add_argument("--max-growth", type=float, default=10.0, help="percent")
    parser.add_argument(
        "--new",
        help="git revision to measure as new, in a worktree, or the folder of a tree "
        "(default: the working tree)",
    )
    parser.add_argument("--cpu", action="store_true", help="CPU time, not instructions")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files here")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)

    sha = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    rounds: list[dict[str, Any]] = []
    keep = args.keep
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        base = stack.enter_context(base_worktree(sha))
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        if args.new and Path(args.new).is_dir():  # a tree already checked out
            new = Version("new", f"tree {args.new} ({_head(Path(args.new))})", Path(args.new))
        elif args.new:
            new_sha = git("rev-parse", "--verify", f"{args.new}^{{commit}}")
            new = replace(stack.enter_context(base_worktree(new_sha)), label="new")
        else:
            new = working_tree()
        versions = {"base": base, "new": new}
        for version in versions.values():
            version.check_origin()
            print(f"{version.label}: {version.describe}, from {version.root}", flush=True)
        stores = prepare_stores(args, base, new, sha)
        ids = stores.ids_file.read_text().split()
        key = stores.manifest["keys"]["bank"]
        now = datetime.now(UTC)
        feed = BankFeed.of_store(stores.pristine["base"], ids, now, args.seed)
        lines = feed.batch(args.records, f"ii{stamp}")
        path = write_file(lines, "jsonl", Path(scratch) / "import")
        # The HTTP batches from a feed of their own: they go to another copy of the store.
        feed = BankFeed.of_store(stores.pristine["base"], ids, now, args.seed)
        bodies = Path(scratch) / "bodies"
        bodies.write_bytes(_bodies(feed, args.records, args.batch, f"ih{stamp}"))
        out = None if args.cpu else (keep or Path(scratch))
        try:
            for r in range(args.rounds):
                order = ["base", "new"]
                if args.order == "abba" and r % 2:
                    order.reverse()
                row: dict[str, Any] = {}
                for label in order:
                    load = os.getloadavg()[0]
                    with (
                        fresh_copy(stores, label, "import") as import_url,
                        fresh_copy(stores, label, "http") as http_url,
                    ):
                        got = one_round(
                            versions[label],
                            (import_url, http_url),
                            (path, bodies),
                            key,
                            out,
                            f"{label}.{r}",
                        )
                    row[label] = {**got, "load": load}
                    print(
                        f"round {r + 1}/{args.rounds} {label}: "
                        + "; ".join(f"{part} {_describe(got[part])}" for part in PARTS),
                        flush=True,
                    )
                rounds.append(row)
        finally:
            if stores.db is not None:
                _pg_drop(stores.db, make_url(stores.pristine["new"]).database or "")
            else:
                _sqlite_remove(_sqlite_path(stores.pristine["new"]))
    backend = "SQLite" if args.db is None else "PostgreSQL"
    metric = "cpu_us" if args.cpu else "instructions"
    what = "process CPU µs per record" if args.cpu else "instructions per record"
    print()
    print(
        f"A/B intake {what}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {backend}: "
        f"{len(ids):,} subjects, {args.records:,} records per part, HTTP batches of "
        f"{args.batch:,}; {args.rounds} rounds, order {args.order}"
    )
    print(f"  base: {base.describe} ({stores.revisions['base']})")
    print(f"  new:  {new.describe} ({stores.revisions['new']})")
    print()
    print(f"| {backend}, {what}, median (per round) | base {sha[:7]} | new | new/base |")
    print("|---|---:|---:|---:|")
    summary: dict[str, Any] = {}
    limit = 1 + args.max_growth / 100
    for part in PARTS:
        values = {k: [r[k][part][metric] for r in rounds] for k in ("base", "new")}
        ratio = _median(values["new"]) / _median(values["base"])
        summary[part] = {**values, "ratio": ratio}
        runs = {k: " · ".join(_fmt(v) for v in vs) for k, vs in values.items()}
        print(
            f"| {part} | {_fmt(_median(values['base']))} ({runs['base']}) | "
            f"{_fmt(_median(values['new']))} ({runs['new']}) | **{ratio:.3f}** "
            f"({'within' if ratio <= limit else 'NOT within'} +{args.max_growth:g} %) |"
        )
    results = {
        "backend": backend,
        "metric": metric,
        "base_sha": sha,
        "versions": {k: v.describe for k, v in versions.items()},
        "revisions": stores.revisions,
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("json", "db")},
        "rounds": rounds,
        "summary": summary,
    }
    target = args.json or OUT / f"intake-instructions-{stamp}.json"
    target.write_text(json.dumps(results, indent=2, default=str))
    print(f"  raw results: {target}")


def _head(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def _describe(part: dict[str, Any]) -> str:
    if "instructions" in part:
        return f"{part['instructions']:,.0f} instructions/record"
    return f"{part['cpu_us']:.1f} µs/record CPU"


if __name__ == "__main__":
    main()
