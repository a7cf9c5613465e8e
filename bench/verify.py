"""``credence log verify`` benchmark: time and memory against the size of the log.

Run ``python -m bench.verify`` (defaults: stores of 250,000, 1,000,000 and 5,000,000
journal entries, 3 runs each, and the demo city). For each size it

1. builds (or reuses, from ``bench/out/``) an SQLite store of exactly that many journal
   entries: the default rulebook published and one source registered through the
   services; then, by bulk inserts, one subject registered per ten records, and the
   records themselves stored by :func:`credence.ledger.service.store_planned` (the
   ingestion path's own storing step: preallocated ids and entry numbers, a salt per
   row, one ``record`` entry per record listing the row's digest). A checkpoint is
   signed at every size of the run on the way, so a larger store holds the checkpoints
   of the smaller ones too (``--sizes 250000,1000000,2500000,5000000``: the 5 M store
   holds four). A larger size continues from the largest cached smaller one;
2. runs :func:`credence.translog.verify.verify_log` (with the log's key: signatures
   checked), each run in a fresh subprocess, and reports the median wall time, the CPU
   time and the memory: the peak RSS of the process (``VmHWM``, as ``ru_maxrss`` would
   be if Linux did not carry it over from the forked parent) and, sampled every
   20 ms during the verify, the peak of its anonymous memory (``RssAnon``: the heap, not
   the pages of the store's file that SQLite maps, which count in RSS as they are read,
   up to SQLite's 2 GiB map), each also as growth over the moment before verify started;
3. for the demo city (``credence demo``, built once into ``bench/out/verify-demo.db``),
   counts its entries and times the command itself, ``credence log verify --db ...``
   (process start included), and the function alone.

Every run must report the log verified, with every entry and row counted: a benchmark
of a verify that found problems, or read less than everything, is worthless.

    python -m bench.verify                                  # 250 k, 1 M, 5 M; the demo
    python -m bench.verify --sizes 250000,1000000,2500000,5000000
    python -m bench.verify --sizes 50000 --runs 1 --no-demo # a quick look
    python -m bench.verify --no-mmap --runs 1 --no-demo     # SQLite's map off: RSS = heap

Results are described in bench/README.md ("Verify: every covered row, streaming").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
FORMAT = "credence-verify-bench/1"
SEED = 7
ORIGIN = "bench.credence.example/log"
KEY = OUT / "verify.key"
WORK = OUT / "verify-work.db"
DEMO_DB = OUT / "verify-demo.db"
DEMO_KEY = OUT / "verify-demo.key"
#: The console script, next to this interpreter (the venv's).
CREDENCE = str(Path(sys.executable).parent / "credence")
DEFAULT_SIZES = (250_000, 1_000_000, 5_000_000)
#: Records stored per call of store_planned (and per commit).
CHUNK = 100_000
#: One subject registered per this many records.
RECORDS_PER_SUBJECT = 10
#: Between two consecutive entries, on the journal's clock.
STEP_US = 30 * 1_000_000
START = datetime(2021, 6, 1, tzinfo=UTC)
#: Record types drawn for the records (all apply to persons), with their weights.
TYPES = (
    ("loan_repaid", 30),
    ("on_time_payment_streak", 30),
    ("tax_paid_on_time", 25),
    ("volunteer_service", 8),  # with a quantity (hours)
    ("judgment_default", 4),  # with a decision reference
    ("rental_completed", 3),
)


def _store(size: int) -> Path:
    return OUT / f"verify-{size}.db"


def _manifest(size: int) -> Path:
    return OUT / f"verify-{size}.json"


def _cached(size: int) -> dict[str, Any] | None:
    path = _manifest(size)
    if not (path.exists() and _store(size).exists() and KEY.exists()):
        return None
    got: dict[str, Any] = json.loads(path.read_text())
    return got if got.get("format") == FORMAT and got.get("entries") == size else None


# --- building stores --------------------------------------------------------------------


class _Builder:
    """Grows one store, entry by entry count, in the order a real log would be written."""

    def __init__(self, path: Path, *, fresh: bool) -> None:
        from sqlalchemy import func, select

        from credence.db import make_engine, session_factory
        from credence.journal import JournalEntry
        from credence.ledger import registry
        from credence.ledger.tables import Record, Source, Subject
        from credence.migrate import upgrade
        from credence.rulebook import store as rulebook_store
        from credence.rulebook.loader import default_text
        from credence.translog.keys import load_signer

        self.engine = make_engine(f"sqlite:///{path}")
        self.sessions = session_factory(self.engine)
        self.signer, _ = load_signer(KEY, name=ORIGIN, create=True)
        self.rng = random.Random(SEED)
        if fresh:
            upgrade(self.engine)
            with self.sessions.begin() as session:
                edition = rulebook_store.publish(session, text=default_text(), at=START)
                registry.register_source(
                    session,
                    code="bench_bank",
                    name="Benchmark Bank",
                    kind="bank",
                    record_types=[code for code, _ in TYPES],
                    rulebook=edition.rulebook,
                    at=START,
                )
        with self.sessions() as session:
            self.entries = session.scalar(select(func.count()).select_from(JournalEntry)) or 0
            self.last_seq = session.scalar(select(func.max(JournalEntry.seq))) or 0
            self.subjects = session.scalar(select(func.count()).select_from(Subject)) or 0
            self.source_id = session.scalar(select(Source.id).where(Source.code == "bench_bank"))
            self.records = session.scalar(select(func.count()).select_from(Record)) or 0
        self.rng.seed(f"{SEED}-{self.entries}")

    def _at(self) -> int:
        from credence.clock import to_micros

        return to_micros(START) + self.last_seq * STEP_US

    def add_subjects(self, session: Any, n: int) -> None:
        """``n`` persons registered, as :func:`credence.ledger.registry.register_subject`
        writes them (row stamped with its entry, entry listing the row's digest), by bulk
        inserts."""
        from credence import journal
        from credence.db import insert_rows
        from credence.ids import new_ordered_ids
        from credence.ledger.tables import Subject

        table = Subject.metadata.tables[Subject.__tablename__]
        encoder = journal.covered("subjects").encoder
        ids = journal.allocate_ids(session, table, n)
        seqs = journal.allocate(session, n)
        public_ids = new_ordered_ids("sub", n)
        columns = ("id", "public_id", "kind", "identifier", "name", "region",
                   "registered_by", "registered_at", "seq", "salt")  # fmt: skip
        rows, entries = [], []
        for subject_id, seq, public_id in zip(ids, seqs, public_ids, strict=True):
            self.last_seq = seq
            at = self._at()
            salt = journal.new_salt()
            row = (subject_id, public_id, "person", f"BENCH{subject_id:012d}",
                   f"Person {subject_id}", "440300", self.source_id, at, seq, salt)  # fmt: skip
            rows.append(row)
            digest = journal.digest(salt, encoder(dict(zip(columns, row, strict=True))))
            listed = journal.listing([("subjects", subject_id, digest)])
            data = journal.canonical({"subject": public_id})
            entries.append(
                (seq, journal.EventKind.SUBJECT_REGISTERED.value, subject_id, at, data, listed)
            )
        insert_rows(session, table, columns, rows)
        insert_rows(session, journal.JournalEntry.__table__, journal.COLUMNS, entries)
        self.subjects += n
        self.entries += n

    def add_records(self, session: Any, n: int) -> None:
        """``n`` records about random registered subjects, stored by
        :func:`credence.ledger.service.store_planned` (planned here without the checks)."""
        from credence import journal
        from credence.clock import from_micros
        from credence.ids import new_ordered_ids
        from credence.ledger import service as ledger

        codes = [code for code, _ in TYPES]
        weights = [w for _, w in TYPES]
        rng = self.rng
        kind = journal.EventKind.RECORD.value
        planned = []
        for k, public_id in enumerate(new_ordered_ids("rec", n)):
            subject_id = rng.randint(1, self.subjects)
            code = rng.choices(codes, weights)[0]
            received = self._at() + (k + 1) * STEP_US
            occurred = received - rng.randint(1, 700) * 86_400_000_000
            quantity = float(rng.randint(1, 40)) if code == "volunteer_service" else None
            ref = f"CASE-{self.records + k}" if code == "judgment_default" else None
            digest = journal.record_content_hash(
                subject_id=f"subject-{subject_id}",
                record_type=code,
                occurred_at=from_micros(occurred),
                quantity=quantity,
                decision_ref=ref,
            )
            row = (public_id, self.source_id, f"B{self.records + k:012d}", subject_id, code,
                   occurred, received, quantity, ref, digest)  # fmt: skip
            entry = (kind, subject_id, received, journal.canonical({"record": public_id}))
            planned.append(ledger._Planned(None, row, entry))  # type: ignore[arg-type]
        ledger.store_planned(session, planned)
        self.records += n
        self.entries += n
        self.last_seq += n

    def grow(self, target: int) -> None:
        """Add subjects and records (one subject per ten records) up to ``target``
        entries, in chunks of :data:`CHUNK` records, each committed."""
        from credence.db import bulk_load_cache

        while self.entries < target:
            left = target - self.entries
            chunk = min(CHUNK, left * RECORDS_PER_SUBJECT // (RECORDS_PER_SUBJECT + 1))
            subjects = max(chunk // RECORDS_PER_SUBJECT, 1 if self.subjects == 0 else 0)
            subjects = min(subjects, left)
            chunk = min(chunk, left - subjects) if chunk or subjects else left
            # The bulk cache is left before the commit (the order of the two exits).
            with self.sessions.begin() as session, bulk_load_cache(session):
                if subjects:
                    self.add_subjects(session, subjects)
                if chunk:
                    self.add_records(session, chunk)
            print(f"  {self.entries:,} / {target:,} entries", flush=True)

    def checkpoint(self) -> int:
        from credence.translog.checkpoints import checkpoint

        with self.sessions.begin() as session:
            cp = checkpoint(session, signer=self.signer, at=datetime.now(UTC))
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return cp.tree_size

    def close(self) -> None:
        self.engine.dispose()


def ensure_stores(sizes: list[int]) -> dict[int, dict[str, Any]]:
    """A store of each size (entries) under ``bench/out/``, built if not cached."""
    OUT.mkdir(parents=True, exist_ok=True)
    found = {size: m for size in sizes if (m := _cached(size)) is not None}
    missing = sorted(size for size in sizes if size not in found)
    if not missing:
        return found
    below = [
        int(p.stem.split("-")[1])
        for p in OUT.glob("verify-*.json")
        if p.stem.split("-")[1].isdigit() and int(p.stem.split("-")[1]) < missing[0]
    ]
    base = max((s for s in below if _cached(s) is not None), default=None)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{WORK}{suffix}").unlink(missing_ok=True)
    if base is not None:
        print(f"building from the cached store of {base:,} entries", flush=True)
        shutil.copyfile(_store(base), WORK)
    started = time.perf_counter()
    builder = _Builder(WORK, fresh=base is None)
    for size in missing:
        t0 = time.perf_counter()
        print(f"building {size:,} entries…", flush=True)
        builder.grow(size)
        t1 = time.perf_counter()
        signed = builder.checkpoint()
        t2 = time.perf_counter()
        shutil.copyfile(WORK, _store(size))
        manifest = {
            "format": FORMAT,
            "entries": builder.entries,
            "subjects": builder.subjects,
            "records": builder.records,
            "checkpoint": signed,
            "grow_seconds": round(t1 - t0, 1),
            "checkpoint_seconds": round(t2 - t1, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "from": base,
            "bytes": _store(size).stat().st_size,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _manifest(size).write_text(json.dumps(manifest, indent=1) + "\n")
        found[size] = manifest
        print(f"  {json.dumps(manifest)}", flush=True)
    builder.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{WORK}{suffix}").unlink(missing_ok=True)
    return found


def ensure_demo() -> None:
    """The demo city (``credence demo``) in ``bench/out/verify-demo.db``, with its own key."""
    if DEMO_DB.exists() and DEMO_KEY.exists():
        return
    OUT.mkdir(parents=True, exist_ok=True)
    print("building the demo city (credence demo)…", flush=True)
    subprocess.run(
        [CREDENCE, "demo", "--db", f"sqlite:///{DEMO_DB}",
         "--reset", "--no-serve", "--env-file", str(OUT / "verify-demo.env")],
        env={**os.environ, "CREDENCE_LOG_KEY_PATH": str(DEMO_KEY)},
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


# --- measuring (each run in a fresh subprocess) -------------------------------------------


def _status() -> dict[str, int]:
    """This process's memory from /proc (bytes): VmRSS, RssAnon, RssFile, VmHWM."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def measure(db: Path, key_path: Path, origin: str, *, mmap: bool = True) -> dict[str, Any]:
    """One verify of ``db`` in this process (run as ``--child``): time and memory. Without
    ``mmap``, SQLite reads the file with system calls into its page cache instead of
    mapping it (``PRAGMA mmap_size=0``)."""
    import gc

    from sqlalchemy import event, text

    from credence.db import make_engine, session_factory
    from credence.translog.keys import load_signer
    from credence.translog.verify import verify_log

    engine = make_engine(f"sqlite:///{db}")
    if not mmap:

        @event.listens_for(engine, "connect")
        def _no_mmap(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA mmap_size=0")

    sessions = session_factory(engine)
    signer, _ = load_signer(key_path, name=origin, create=False)
    peak = {"anon": 0, "file": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = _status()
            peak["anon"] = max(peak["anon"], now["RssAnon"])
            peak["file"] = max(peak["file"], now["RssFile"] + now.get("RssShmem", 0))
            stop.wait(0.02)

    with sessions() as session:
        session.execute(text("SELECT 1"))  # the connection opened before the clock starts
        gc.collect()
        before = _status()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        report = verify_log(session, key=signer.public)
        seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    end = _status()
    peak["anon"] = max(peak["anon"], end["RssAnon"])
    return {
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime),
        "ok": report.ok,
        "problems": [f"{p.kind}: {p.message}" for p in report.problems[:5]],
        "entries": report.entries,
        "committed": report.committed,
        "checkpoints": report.checkpoints,
        "signatures_checked": report.signatures_checked,
        "rows": report.rows,
        "rss_before": before["VmRSS"],
        "anon_before": before["RssAnon"],
        # The peak of this process's own memory: ru_maxrss would do, but Linux carries it
        # over an exec from the forked parent (the harness, with every store it built).
        "maxrss": end["VmHWM"],
        "ru_maxrss": after.ru_maxrss * 1024,
        "peak_anon": peak["anon"],
        "peak_file": peak["file"],
    }


def _child(db: Path, key_path: Path, origin: str, *, mmap: bool = True) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.verify", "--child", str(db), str(key_path), origin]
    command += [] if mmap else ["--no-mmap"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["ok"] or result["committed"] == 0 or not result["signatures_checked"]:
        raise SystemExit(f"verify did not pass on {db}: {result}")
    return result


#: ``credence log verify`` as the console script runs it (``credence.cli:main``), which
#: writes its peak RSS (``VmHWM``) to stderr as it exits.
_CLI = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\nbench-hwm ' + line.split()[1] + '\\n')\n"
    "atexit.register(hwm)\n"
    "from credence.cli import main\n"
    "sys.argv = ['credence', *sys.argv[1:]]\n"
    "main()\n"
)


def _cli(db: Path, key_path: Path) -> dict[str, Any]:
    """``credence log verify --db ...`` as a user runs it: wall time from process start
    (interpreter and imports included), and its peak RSS."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "log", "verify", "--db", f"sqlite:///{db}"],
        env={**os.environ, "CREDENCE_LOG_KEY_PATH": str(key_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0 or "log verified" not in done.stdout:
        raise SystemExit(
            f"credence log verify failed on {db}:\n{(done.stdout + done.stderr)[-3000:]}"
        )
    hwm = [line for line in done.stderr.splitlines() if line.startswith("bench-hwm ")]
    return {
        "seconds": seconds,
        "maxrss": int(hwm[-1].split()[1]) * 1024,
        "output": [line for line in done.stdout.splitlines() if "verified" in line],
    }


def _count_entries(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])


# --- report -------------------------------------------------------------------------------

MB = 1024 * 1024


def _runs(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({' · '.join(fmt.format(v) for v in values)})"


def report(results: dict[str, Any]) -> None:
    base = results["sizes"][0] if results["sizes"] else None
    print("\n| entries | rows checked | store | median s (runs) | entries/s | CPU s | "
          "peak RSS MB | RSS growth MB | peak heap MB | heap growth MB |")  # fmt: skip
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in results["sizes"]:
        runs = results["runs"][str(size)]
        s = [r["seconds"] for r in runs]
        m = statistics.median
        gib = results["stores"][str(size)]["bytes"] / MB / 1024
        print(
            f"| {size:,} | {runs[0]['rows']:,} | {gib:.2f} GiB "
            f"| {_runs(s, '{:.1f}')} | {size / m(s):,.0f} "
            f"| {m([r['cpu_seconds'] for r in runs]):.1f} "
            f"| {m([r['maxrss'] / MB for r in runs]):.0f} "
            f"| {m([(r['maxrss'] - r['rss_before']) / MB for r in runs]):.0f} "
            f"| {m([r['peak_anon'] / MB for r in runs]):.1f} "
            f"| {m([(r['peak_anon'] - r['anon_before']) / MB for r in runs]):.1f} |"
        )
    if base is not None and len(results["sizes"]) > 1:
        first = statistics.median(r["seconds"] for r in results["runs"][str(base)])
        for size in results["sizes"][1:]:
            t = statistics.median(r["seconds"] for r in results["runs"][str(size)])
            print(f"time ×{t / first:.2f} for ×{size / base:g} entries ({size:,} vs {base:,})")
    demo = results.get("demo")
    if demo:
        print(
            f"\ndemo city: {demo['entries']:,} entries; `credence log verify`: "
            f"{_runs([r['seconds'] for r in demo['cli']], '{:.1f}')} s, peak RSS "
            f"{statistics.median(r['maxrss'] / MB for r in demo['cli']):.0f} MB; verify_log alone "
            f"{_runs([r['seconds'] for r in demo['function']], '{:.1f}')} s"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="journal entries of each store, comma-separated",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--build-only", action="store_true", help="build the stores and stop")
    parser.add_argument(
        "--mmap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-mmap: SQLite reads the store into its page cache instead of mapping it "
        "(the RSS is then the heap alone)",
    )
    parser.add_argument("--child", nargs=3, metavar=("DB", "KEY", "ORIGIN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        db, key_path, origin = args.child
        print(json.dumps(measure(Path(db), Path(key_path), origin, mmap=args.mmap)))
        return
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s})
    stores = ensure_stores(sizes)
    if args.demo:
        ensure_demo()
    if args.build_only:
        return
    results: dict[str, Any] = {
        "sizes": sizes,
        "stores": {str(s): stores[s] for s in sizes},
        "runs": {},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_before": os.getloadavg(),
        "mmap": args.mmap,
    }
    for size in sizes:
        for k in range(args.runs):
            run = _child(_store(size), KEY, ORIGIN, mmap=args.mmap)
            if run["entries"] != size:
                raise SystemExit(f"verify read {run['entries']} entries of {size}")
            results["runs"].setdefault(str(size), []).append(run)
            print(
                f"{size:,} entries, run {k + 1}: {run['seconds']:.2f} s, CPU "
                f"{run['cpu_seconds']:.2f} s, maxrss {run['maxrss'] / MB:.0f} MB "
                f"(before {run['rss_before'] / MB:.0f}), heap peak {run['peak_anon'] / MB:.1f} MB "
                f"(before {run['anon_before'] / MB:.1f}), mapped file peak "
                f"{run['peak_file'] / MB:.0f} MB",
                flush=True,
            )
    if args.demo:
        from credence.settings import Settings

        origin = Settings().log_origin
        demo: dict[str, Any] = {"entries": _count_entries(DEMO_DB), "cli": [], "function": []}
        for k in range(args.runs):
            cli = _cli(DEMO_DB, DEMO_KEY)
            demo["cli"].append(cli)
            function = _child(DEMO_DB, DEMO_KEY, origin)
            demo["function"].append(function)
            print(
                f"demo city ({demo['entries']:,} entries), run {k + 1}: credence log verify "
                f"{cli['seconds']:.2f} s (maxrss {cli['maxrss'] / MB:.0f} MB); verify_log "
                f"{function['seconds']:.2f} s",
                flush=True,
            )
        results["demo"] = demo
    results["load_after"] = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (OUT / f"verify-results-{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    report(results)


if __name__ == "__main__":
    main()
