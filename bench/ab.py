"""A/B of the online benchmark: the working tree against a git revision, in one run.

``python -m bench.ab --base REV`` measures decisions over HTTP (``wrk``) and HTTP batch
ingestion the way :mod:`bench.online` does, for two versions of the code, on the same
machine, in the same run:

* **base**: ``REV`` checked out with ``git worktree add`` into a temporary folder
  (removed at the end);
* **new**: the working tree (HEAD and any uncommitted change).

Each version's server is ``credence serve`` (one uvicorn worker) run by this venv's
Python with ``PYTHONPATH`` set to that version's ``src`` (both use the same installed
dependencies); the benchmark checks that each server imports ``credence`` from there.

**The store.** Built once by the base version's own ``bench.store.build`` (its
migrations, its bulk load) and cached under ``bench/out/`` by size, seed and base
commit. The new version runs on a copy of it upgraded by the new code's migrations
(``credence.migrate.upgrade``), as a deployment upgrades a store; that copy is made
again on every run, since the working tree changes. Both versions thus read and write
the same rows, each with the schema it was written for. The new version's copy then gets
the new code's default rulebook published (as its release would publish it; checks and
limits a new edition adds, such as intake's, apply only through it), unless
``--base-rulebook`` keeps the base's edition in force. Every server start gets a fresh
copy of its version's store (SQLite file copy; PostgreSQL ``CREATE DATABASE …
TEMPLATE``), so ingestion in one round does not grow the next round's store.

**Rounds.** The versions alternate, base then new, ``--rounds`` times (``--order abba``
swaps the order every other round), so the drift of a shared machine touches both. In
each round a version's server answers 50 preflight decisions (all must succeed), a
``--warmup`` of decisions, one timed ``wrk`` run of ``--duration`` seconds
(``--connections``), an ingestion warm-up and one timed ingestion run (``--batch``
records per batch, ``--ingest-connections`` client threads), then the benchmark counts
the acknowledged records in the store on a connection of its own (a run whose
acknowledged records are not all stored fails).

**Report.** Medians over the rounds, per version: decisions/s and server CPU µs per
decision (from ``/proc``, every thread of the server process), records/s and server CPU
µs per record; the ratio new/base of each, and the verdict on CPU per operation against
``--max-growth`` percent. Raw results go to a JSON file under ``bench/out/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url, text

from bench import server as bench_server
from bench.decisions import bench_decisions, ensure_wrk
from bench.http_ingestion import bench_ingestion
from bench.store import OUT, SEED, SERVICES, Built
from credence.db import make_engine, normalise_url

REPO = Path(__file__).resolve().parent.parent

#: Builds the store with the version's own benchmark code (run in that version's tree).
BUILD = """
import json, sys
from pathlib import Path
try:
    from bench.store import build
except ImportError:  # a revision from before bench.online was split
    from bench.online import build
url, subjects, per_subject, seed, ids_file, manifest = sys.argv[1:]
got = build(url, subjects=int(subjects), per_subject=float(per_subject), seed=int(seed),
            ids_file=Path(ids_file))
Path(manifest).write_text(json.dumps(got, indent=2))
"""

#: Upgrades a store with the version's own migrations (run with that version's src), then,
#: unless told otherwise, publishes the version's default rulebook as a release does.
UPGRADE = """
import sys
from datetime import UTC, datetime
from credence.db import make_engine, session_factory
from credence.errors import Conflict
from credence.migrate import upgrade
from credence.rulebook import store
from credence.rulebook.loader import default_text
engine = make_engine(sys.argv[1])
upgrade(engine)
if sys.argv[2] == "publish":
    try:
        with session_factory(engine).begin() as session:
            edition = store.publish(session, text=default_text(), at=datetime.now(UTC))
            print(f"store: the new code's default rulebook {edition.rulebook.version} in force")
    except Conflict as error:
        print(f"store: the new code's default rulebook not published: {error.message}")
if engine.dialect.name == "sqlite":
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
engine.dispose()
"""

#: Where a version's interpreter finds ``credence``.
ORIGIN = "import credence; print(credence.__file__)"

#: (part, metric, what it is, a cost: lower is better and the growth limit applies)
METRICS = (
    ("decisions", "rps", "decisions/s", False),
    ("decisions", "server_cpu_us", "server CPU µs per decision", True),
    ("decisions", "p50", "decision p50, ms", False),
    ("decisions", "p99", "decision p99, ms", False),
    ("ingestion", "records_per_s", "records/s", False),
    ("ingestion", "server_cpu_us", "server CPU µs per record", True),
)


# --- versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    label: str  # "base" or "new"
    describe: str
    root: Path

    def env(self, *, with_bench: bool = False) -> dict[str, str]:
        """The environment of this version's processes: its ``src`` (and, to build the
        store with its own benchmark code, its root) first on the path."""
        path = [str(self.root / "src")] + ([str(self.root)] if with_bench else [])
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}

    def python(self, code: str, *args: str, with_bench: bool = False, quiet: bool = True) -> str:
        """Run ``code`` with this version's code; its standard output if ``quiet``, else
        the output goes to the terminal."""
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=self.root,
            env=self.env(with_bench=with_bench),
            stdout=subprocess.PIPE if quiet else None,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{self.label}: a helper process failed ({done.returncode})")
        return (done.stdout or "").strip()

    def check_origin(self) -> None:
        found = Path(self.python(ORIGIN)).resolve()
        if not found.is_relative_to((self.root / "src").resolve()):
            raise SystemExit(f"{self.label}: credence is imported from {found}, not its tree")


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def working_tree() -> Version:
    head = git("rev-parse", "--short=10", "HEAD")
    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    describe = f"working tree (HEAD {head} + {len(changed)} uncommitted paths)"
    return Version("new", describe, REPO)


@contextmanager
def base_worktree(sha: str) -> Iterator[Version]:
    """The base revision in a temporary worktree, removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="credence-ab-"))
    path = folder / "base"
    git("worktree", "add", "--detach", str(path), sha)
    try:
        yield Version("base", f"{sha[:10]} ({git('log', '-1', '--format=%cs', sha)})", path)
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "prune"], capture_output=True, check=False
        )


# --- stores --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """The pristine store of each version and what the load needs to drive them."""

    manifest: dict[str, Any]
    ids_file: Path
    pristine: dict[str, str]  # version label -> URL
    db: str | None  # PostgreSQL server URL, None for SQLite
    revisions: dict[str, str]  # version label -> schema revision of its store


def _admin(db: str) -> Engine:
    base = make_url(normalise_url(db))
    url = base.set(database="postgres").render_as_string(hide_password=False)
    return make_engine(url, isolation_level="AUTOCOMMIT")


def _pg_url(db: str, name: str) -> str:
    return make_url(normalise_url(db)).set(database=name).render_as_string(hide_password=False)


def _pg_exists(admin: Engine, name: str) -> bool:
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        return found.first() is not None


def _pg_create(db: str, name: str, template: str | None = None) -> str:
    admin = _admin(db)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            like = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{like}'))
    finally:
        admin.dispose()
    return _pg_url(db, name)


def _pg_drop(db: str, name: str) -> None:
    admin = _admin(db)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _sqlite_remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_copy(source: Path, target: Path) -> None:
    _sqlite_remove(target)
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def _revision(url: str) -> str:
    """The store's schema revision and the version of its newest rulebook."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            book = conn.execute(
                text("SELECT version FROM rulebooks ORDER BY published_at DESC LIMIT 1")
            ).scalar()
            return f"{schema}, rulebook {book}"
    finally:
        engine.dispose()


def prepare_stores(args: argparse.Namespace, base: Version, new: Version, sha: str) -> Stores:
    """The base store (built by the base code, cached) and its copy upgraded by the new
    code's migrations (made again every run)."""
    OUT.mkdir(parents=True, exist_ok=True)
    backend = "sqlite" if args.db is None else "pg"
    per = f"{args.records_per_subject:g}".replace(".", "p")
    key = f"ab-{backend}-s{args.subjects}-r{per}-seed{args.seed}-{sha[:10]}"
    manifest_path, ids_file = OUT / f"{key}.json", OUT / f"{key}.ids"
    if args.db is None:
        base_url = f"sqlite:///{OUT / f'{key}.db'}"
        present = _sqlite_path(base_url).exists()
    else:
        name = key.replace("-", "_")
        base_url = _pg_url(args.db, name)
        admin = _admin(args.db)
        try:
            present = _pg_exists(admin, name)
        finally:
            admin.dispose()
    if present and manifest_path.exists() and ids_file.exists():
        manifest = json.loads(manifest_path.read_text())
        print(f"store: reusing {key} (built {manifest.get('built_at')})", flush=True)
    else:
        print(f"store: building {key} with the base code…", flush=True)
        started = time.perf_counter()
        if args.db is None:
            _sqlite_remove(_sqlite_path(base_url))
        else:
            _pg_create(args.db, key.replace("-", "_"))
        manifest_path.unlink(missing_ok=True)
        base.python(
            BUILD,
            base_url,
            str(args.subjects),
            str(args.records_per_subject),
            str(args.seed),
            str(ids_file),
            str(manifest_path),
            with_bench=True,
            quiet=False,
        )
        manifest = json.loads(manifest_path.read_text())
        print(f"store: built in {time.perf_counter() - started:.0f} s", flush=True)
    if args.db is None:
        new_path = OUT / f"{key}-new.db"
        _sqlite_copy(_sqlite_path(base_url), new_path)
        new_url = f"sqlite:///{new_path}"
    else:
        new_url = _pg_create(args.db, f"{key.replace('-', '_')}_new", key.replace("-", "_"))
    print("store: upgrading a copy with the new code's migrations…", flush=True)
    new.python(UPGRADE, new_url, "keep" if args.base_rulebook else "publish", quiet=False)
    revisions = {"base": _revision(base_url), "new": _revision(new_url)}
    print(f"store: schema revision base {revisions['base']}, new {revisions['new']}", flush=True)
    return Stores(manifest, ids_file, {"base": base_url, "new": new_url}, args.db, revisions)


@contextmanager
def run_copy(stores: Stores, label: str) -> Iterator[str]:
    """A fresh copy of a version's pristine store for one server; removed after."""
    pristine = stores.pristine[label]
    if stores.db is None:
        target = OUT / f"ab-run-{label}.db"
        _sqlite_copy(_sqlite_path(pristine), target)
        try:
            yield f"sqlite:///{target}"
        finally:
            _sqlite_remove(target)
    else:
        name = f"credence_ab_run_{label}"
        template = make_url(pristine).database or ""
        url = _pg_create(stores.db, name, template)
        try:
            yield url
        finally:
            _pg_drop(stores.db, name)


# --- the servers ---------------------------------------------------------------------


@contextmanager
def serving(version: Version, url: str, log: Path) -> Iterator[bench_server.Server]:
    """``credence serve`` of ``version`` (one uvicorn worker) on a free loopback port:
    :func:`bench.server.serving` run from that version's tree, with its ``PYTHONPATH``."""
    with bench_server.serving(
        url, log, env=version.env(), cwd=version.root, what=f"the {version.label} server"
    ) as server:
        yield server


# --- one round -----------------------------------------------------------------------


def measure(
    args: argparse.Namespace,
    wrk: str,
    version: Version,
    stores: Stores,
    ids: list[str],
    tag: str,
) -> dict[str, Any]:
    """One server of ``version`` on a fresh store: one timed run of each part."""
    parts = set(args.only.split(","))
    settings = argparse.Namespace(
        services=args.services,
        runs=1,
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        wrk_threads=args.wrk_threads,
        sweep="",
        sweep_duration=0.0,
        batch=args.batch,
        ingest_connections=args.ingest_connections,
    )
    got: dict[str, Any] = {"version": version.label, "load_before": os.getloadavg()[0]}
    with (
        run_copy(stores, version.label) as url,
        serving(version, url, OUT / f"ab-server-{version.label}.log") as server,
    ):
        built = Built(stores.manifest, url, stores.ids_file)
        if "decisions" in parts:
            d = bench_decisions(settings, wrk, server, built, ids)
            got["decisions"] = {**d["runs"][0], "failed": d["errors"]}
        if "ingestion" in parts:
            g = bench_ingestion(settings, server, built, ids, tag, url)
            got["ingestion"] = g["runs"][0]
    got["load_after"] = os.getloadavg()[0]
    return got


# --- summary -------------------------------------------------------------------------


def summarise(rounds: list[dict[str, Any]], max_growth: float) -> dict[str, Any]:
    """Medians per version, ratios new/base (of the medians, and per round)."""
    summary: dict[str, Any] = {}
    for part, metric, _, cost in METRICS:
        values = {
            label: [r[label][part][metric] for r in rounds if part in r[label]]
            for label in ("base", "new")
        }
        if not values["base"] or not values["new"]:
            continue
        entry = compare(values["base"], values["new"])
        if cost:
            entry["within"] = entry["ratio"] <= 1 + max_growth / 100
        summary[f"{part}.{metric}"] = entry
    return summary


def compare(base_runs: list[float], new_runs: list[float]) -> dict[str, Any]:
    """One measure's runs of each version, round by round: the medians, the ratio of the
    medians new/base and the ratio in each round."""
    base, new = statistics.median(base_runs), statistics.median(new_runs)
    return {
        "base": base,
        "new": new,
        "base_runs": base_runs,
        "new_runs": new_runs,
        "ratio": new / base if base else float("nan"),
        "paired": [n / b for b, n in zip(base_runs, new_runs, strict=True) if b],
    }


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _rounds(n: int) -> str:
    return f"{n} round{'' if n == 1 else 's'}"


def report(results: dict[str, Any]) -> None:
    summary, store = results["summary"], results["store"]
    backend = "SQLite" if results["backend"] == "sqlite" else "PostgreSQL"
    loads = [r[k]["load_" + w] for r in results["rounds"] for k in ("base", "new")
             for w in ("before", "after")]  # fmt: skip
    print()
    print(
        f"A/B online benchmark, {results['date']}, {results['machine']}, {backend}: "
        f"{store['subjects']:,} subjects, {store['records']:,} records; "
        f"{_rounds(len(results['rounds']))}, order {results['order']}; "
        f"load average {min(loads):.1f}–{max(loads):.1f}"
    )
    print(f"  base: {results['versions']['base']} (schema {results['revisions']['base']})")
    print(f"  new:  {results['versions']['new']} (schema {results['revisions']['new']})")
    failed = sum(r[k].get("decisions", {}).get("failed", 0) for r in results["rounds"]
                 for k in ("base", "new"))  # fmt: skip
    if failed:
        print(f"  !! {failed:.0f} decisions failed (non-2xx or socket errors): not comparable")
    print()
    s = results["settings"]
    title = (
        f"{backend}, {store['subjects']:,} subjects, one worker, median of "
        f"{_rounds(len(results['rounds']))}"
    )
    print(f"| {title} | base {results['base_sha'][:7]} | new | new/base |")
    print("|---|---:|---:|---:|")
    for part, metric, what, cost in METRICS:
        entry = summary.get(f"{part}.{metric}")
        if entry is None:
            continue
        where = (
            f"{s['connections']} connections"
            if part == "decisions"
            else f"{s['ingest_connections']} connections, {s['batch']:,} a batch"
        )
        runs = {k: " · ".join(_fmt(v) for v in entry[f"{k}_runs"]) for k in ("base", "new")}
        verdict = ""
        if cost:
            limit = 1 + s["max_growth"] / 100
            verdict = f" ({'within' if entry['within'] else 'OVER'} {limit:.2f})"
        print(
            f"| {what} ({where}) | {_fmt(entry['base'])} ({runs['base']}) "
            f"| {_fmt(entry['new'])} ({runs['new']}) | **{entry['ratio']:.3f}**{verdict} |"
        )
    print()
    for part, metric, what, cost in METRICS:
        entry = summary.get(f"{part}.{metric}")
        if entry is not None and cost:
            paired = " · ".join(f"{p:.3f}" for p in entry["paired"])
            print(f"  {what}: new/base per round {paired}")
    costs = [summary[f"{p}.{m}"] for p, m, _, c in METRICS if c and f"{p}.{m}" in summary]
    ok = all(e["within"] for e in costs) and not failed
    print(
        f"  verdict: CPU per operation {'within' if ok else 'NOT within'} "
        f"+{s['max_growth']:g} % of the base"
    )


# --- main ----------------------------------------------------------------------------


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of an A/B's base revision and of the store both versions run on."""
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--subjects", type=int, default=200_000, help="persons in the store")
    parser.add_argument("--records-per-subject", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--db", help="PostgreSQL server URL (default: SQLite under bench/out)")
    parser.add_argument(
        "--base-rulebook",
        action="store_true",
        help="the new version keeps the base store's rulebook (default: the new code's "
        "default rulebook is published on its store, as its release would)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    store_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per version")
    parser.add_argument(
        "--order",
        choices=("ab", "abba"),
        default="ab",
        help="ab: base then new in every round; abba: the order swaps every other round",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated")
    parser.add_argument("--batch", type=int, default=2_000, help="records per ingestion batch")
    parser.add_argument("--ingest-connections", type=int, default=4)
    parser.add_argument(
        "--only", default="decisions,ingestion", help="which parts to run (comma-separated)"
    )
    parser.add_argument(
        "--max-growth",
        type=float,
        default=5.0,
        help="largest acceptable growth of CPU per operation, percent",
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    # A terminated run still removes its worktree, store copies and servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_wrk() if "decisions" in args.only.split(",") else ""
    try:
        sha = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"not a revision of this repository: {args.base}") from None
    new = working_tree()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with base_worktree(sha) as base:
        versions = {"base": base, "new": new}
        for version in versions.values():
            version.check_origin()
            print(f"{version.label}: {version.describe}, from {version.root}", flush=True)
        stores = prepare_stores(args, base, new, sha)
        ids = stores.ids_file.read_text().split()
        rounds: list[dict[str, Any]] = []
        try:
            for r in range(args.rounds):
                order = ["base", "new"]
                if args.order == "abba" and r % 2:
                    order.reverse()
                row: dict[str, Any] = {}
                for label in order:
                    print(f"=== round {r + 1}/{args.rounds}: {label} ===", flush=True)
                    tag = f"ab{stamp}{label}{r}"
                    row[label] = measure(args, wrk, versions[label], stores, ids, tag)
                rounds.append(row)
        finally:
            if stores.db is not None:
                _pg_drop(stores.db, make_url(stores.pristine["new"]).database or "")
            else:
                _sqlite_remove(_sqlite_path(stores.pristine["new"]))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "backend": "sqlite" if args.db is None else "postgresql",
        "store": {k: v for k, v in stores.manifest.items() if k != "keys"},
        "base_sha": sha,
        "versions": {k: v.describe for k, v in versions.items()},
        "revisions": stores.revisions,
        "order": args.order,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "db")},
        "rounds": rounds,
        "summary": summarise(rounds, args.max_growth),
    }
    report(results)
    path = args.json or OUT / f"ab-results-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"  raw results: {path}")


if __name__ == "__main__":
    main()
