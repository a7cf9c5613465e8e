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
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import Engine, make_url, text

from credence import journal
from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.clock import EPOCH, FixedClock, from_micros
from credence.db import make_engine, normalise_url, session_factory
from credence.errors import InvalidIdentifier
from credence.identifiers import make_resident_id, validate_resident_id
from credence.lab.city import DECISION_PREFIXES, DELAY_MEAN_DAYS, PERSON_PLACES, STREAMS
from credence.lab.sources import register_demo_sources
from credence.migrate import upgrade
from credence.rulebook import store as rulebook_store
from credence.rulebook.loader import default_text

OUT = Path(__file__).resolve().parent / "out"
FORMAT = "credence-online-bench/2"
SEED = 7
#: The columns the builder writes, in order (a covered row ends with its seq and salt).
SUBJECT_COLUMNS = ("id", "public_id", "kind", "identifier", "name", "region",
                   "registered_by", "registered_at", "seq", "salt")  # fmt: skip
RECORD_COLUMNS = ("id", "public_id", "source_id", "source_ref", "subject_id", "record_type",
                  "occurred_at", "received_at", "quantity", "decision_ref", "content_hash",
                  "seq", "salt")  # fmt: skip
RETRACTION_COLUMNS = ("id", "record_id", "source_id", "reason", "received_at", "seq", "salt")
JOURNAL_COLUMNS = ("seq", "kind", "subject_id", "at", "data", "rows")
US = 1_000_000
DAY_US = 86_400 * US

#: Services the benchmark's relying party asks about (every person service of the
#: default rulebook): restrictions read the judicial category, rewards the others.
SERVICES = (
    "air_travel",
    "high_speed_rail",
    "star_rated_hotel",
    "luxury_property",
    "loan_rate_discount",
    "deposit_free_rental",
    "community_perks",
)
#: Days of history records occurred over; a little longer than most retentions.
HISTORY_DAYS = 5 * 365
#: Share of records their source retracts later.
RETRACTED_SHARE = 0.005
#: Share of judgment defaults followed by a judgment satisfied (same case).
SATISFIED_SHARE = 0.5
#: Records per insert chunk while building.
CHUNK = 200_000

IntArray = npt.NDArray[np.int64]


# --- tools ---------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of ``wrk``; installed with apt-get (Debian/Ubuntu) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit("wrk is not installed and apt-get is not available: install wrk")
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("wrk is missing: installing it with apt-get…", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, apt, "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, apt, "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get did not install wrk")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the store -----------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A built store: where it is and what the benchmark needs to drive it."""

    manifest: dict[str, Any]
    #: The pristine store: an SQLite file, or a PostgreSQL database used as a template.
    url: str
    ids_file: Path


def _key(subjects: int, per_subject: float, seed: int, backend: str) -> str:
    return f"online-{backend}-s{subjects}-r{per_subject:g}-seed{seed}"


def _person_codes() -> dict[tuple[int, int], str]:
    """The region code each place's residents born in each year carry (the first of the
    place's codes python-stdnum accepts for that year)."""
    codes: dict[tuple[int, int], str] = {}
    for p, place in enumerate(PERSON_PLACES):
        for year in range(1950, 2007):
            for code in place.id_codes:
                try:
                    validate_resident_id(make_resident_id(code, date(year, 7, 1), 0))
                except InvalidIdentifier:
                    continue
                codes[p, year] = code
                break
    return codes


def _hex_ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    """``n`` opaque ids like :func:`credence.ids.new_id` (drawn from ``rng``)."""
    raw = rng.bytes(10 * n).hex()
    return [f"{prefix}_{raw[20 * i : 20 * i + 20]}" for i in range(n)]


def _ranks_within(keys: IntArray) -> IntArray:
    """For each element, how many equal keys come before it (0, 1, 2, … per key)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
    ranks = np.empty_like(keys)
    ranks[order] = np.arange(len(ordered)) - run_start
    return ranks


@dataclass
class _Plan:
    subject: IntArray  # index 0..n-1
    stream: IntArray
    occurred: IntArray  # µs
    received: IntArray  # µs
    quantity: npt.NDArray[np.float64]  # NaN: none
    decision_ref: list[str | None]
    retracted_at: IntArray  # µs, -1: not retracted


def _plan_records(
    rng: np.random.Generator, n_subjects: int, per_subject: float, now_us: int, book: Any
) -> tuple[_Plan, list[tuple[str, str]]]:
    """Records of every person, in the order they were received."""
    streams = [(s.record_type, s.source) for s in STREAMS if s.person > 0]
    rates = np.array([s.person for s in STREAMS if s.person > 0])
    streams.append(("judgment_satisfied", "intermediate_court"))
    satisfied_stream = len(streams) - 1
    total = round(n_subjects * per_subject)
    activity = rng.lognormal(-0.125, 0.5, size=n_subjects)
    counts = rng.multinomial(total, activity / activity.sum())
    subject = np.repeat(np.arange(n_subjects, dtype=np.int64), counts)
    stream = rng.choice(len(rates), size=total, p=rates / rates.sum()).astype(np.int64)
    occurred = now_us - rng.integers(DAY_US, HISTORY_DAYS * DAY_US, size=total)
    # A judgment default is often performed later: a judgment_satisfied, same case.
    defaults = np.flatnonzero(np.array([streams[int(s)][0] for s in stream]) == "judgment_default")
    follows = defaults[rng.random(defaults.size) < SATISFIED_SHARE]
    later = occurred[follows] + rng.integers(30 * DAY_US, 700 * DAY_US, size=follows.size)
    keep = later < now_us - 2 * DAY_US
    follows, later = follows[keep], later[keep]
    subject = np.r_[subject, subject[follows]]
    stream = np.r_[stream, np.full(follows.size, satisfied_stream, dtype=np.int64)]
    occurred = np.r_[occurred, later]
    n = subject.size
    delay_days = np.array([DELAY_MEAN_DAYS.get(src, 3.0) for _, src in streams])[stream]
    delay = np.minimum(rng.exponential(delay_days), 20.0) * DAY_US
    received = np.minimum(occurred + delay.astype(np.int64), now_us - US)
    quantity = np.full(n, np.nan)
    for t, (code, _) in enumerate(streams):
        rt = book.record_type(code)
        if rt.quantity is not None:
            where = np.flatnonzero(stream == t)
            quantity[where] = np.round(
                rng.lognormal(np.log(rt.quantity.max_units * 0.08), 1.0, size=where.size), 2
            )
    negative = np.array([book.record_type(c).negative for c, _ in streams])
    refs: list[str | None] = [None] * n
    for i in np.flatnonzero(negative[stream]).tolist():
        code, src = streams[int(stream[i])]
        year = from_micros(int(occurred[i])).year
        refs[i] = (
            f"({year})Lu10Zhi{i}"
            if src == "intermediate_court"
            else f"{DECISION_PREFIXES.get(src, 'REF')}-{i:09d}"
        )
    base = len(follows)
    for j, i in enumerate(follows.tolist()):
        refs[n - base + j] = refs[i]
    retracted = np.full(n, -1, dtype=np.int64)
    chosen = np.flatnonzero(rng.random(n) < RETRACTED_SHARE)
    at = received[chosen] + rng.integers(DAY_US, 365 * DAY_US, size=chosen.size)
    ok = at < now_us - US
    retracted[chosen[ok]] = at[ok]
    order = np.argsort(received, kind="stable")
    plan = _Plan(
        subject=subject[order],
        stream=stream[order],
        occurred=occurred[order],
        received=received[order],
        quantity=quantity[order],
        decision_ref=[refs[i] for i in order.tolist()],
        retracted_at=retracted[order],
    )
    return plan, streams


class _Loader:
    """Bulk rows into one store: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn = engine.raw_connection()
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            self.conn.commit()
            cur = self.conn.cursor()
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-1000000"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

    def load(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" for _ in columns)
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        else:
            with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        cur.close()

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        if self.sqlite:
            cur = self.conn.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        else:
            self.conn.commit()
            cur = self.conn.cursor()
            for table in ("subjects", "records", "retractions", "journal"):
                cur.execute(f"ANALYZE {table}")
            cur.close()
            self.conn.commit()
            self._reset_sequences()
        self.conn.close()

    def _reset_sequences(self) -> None:
        # Rows were copied with explicit ids: move each serial past them.
        with self.engine.begin() as conn:
            for table, column in (
                ("subjects", "id"),
                ("records", "id"),
                ("retractions", "id"),
                ("journal", "seq"),
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"(SELECT coalesce(max({column}), 1) FROM {table}))"
                    )
                )


def build(
    url: str, *, subjects: int, per_subject: float, seed: int, ids_file: Path
) -> dict[str, Any]:
    """Build the benchmark store at ``url`` (empty); return its manifest."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now = today - timedelta(days=1)
    start = now - timedelta(days=HISTORY_DAYS + 30)
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    clock = FixedClock(start)
    with sessions.begin() as session:
        edition = rulebook_store.publish(session, text=default_text(), at=start)
        book = edition.rulebook
        sources = register_demo_sources(session, book, start)
        party = create_relying_party(
            session, code="bench_party", name="Benchmark Party", services=SERVICES, clock=clock
        )
        keys: dict[str, str] = {}
        for name, role, links in (
            ("party", Role.RELYING_PARTY, {"party_id": party.id}),
            ("bank", Role.SOURCE, {"source_id": sources["city_bank"].id}),
            ("court", Role.SOURCE, {"source_id": sources["intermediate_court"].id}),
        ):
            principal = create_principal(
                session, role=role, name=f"bench {name}", clock=clock, **links
            )
            keys[name] = issue_key(session, principal=principal, clock=clock)
        source_ids = {code: s.id for code, s in sources.items()}
    loader = _Loader(engine)
    # Entries written by the services above hold the first numbers; the bulk rows' entries
    # follow, numbered here, each listing its row's salted digest (as the services do).
    with engine.connect() as conn:
        seq = conn.execute(text("SELECT max(seq) FROM journal")).scalar_one()
    numbers = itertools.count(int(seq) + 1)
    encode = {
        name: journal.covered(name).encoder for name in ("subjects", "records", "retractions")
    }
    now_us = int((now - EPOCH).total_seconds()) * US
    start_us = int((start - EPOCH).total_seconds()) * US

    # Subjects (persons), each registered by the civil registry at the start.
    print(f"building: {subjects:,} subjects…", flush=True)
    places = rng.choice(
        len(PERSON_PLACES), size=subjects, p=np.array([p.weight for p in PERSON_PLACES])
    )
    births = rng.integers(0, (date(2006, 12, 31) - date(1950, 1, 1)).days + 1, size=subjects)
    codes = _person_codes()
    first_day = date(1950, 1, 1)
    years = np.array([(first_day + timedelta(days=d)).year for d in range(int(births.max()) + 1)])
    code_of = np.array(
        [
            [int(codes.get((p, y), "0")) for y in range(1950, 2007)]
            for p in range(len(PERSON_PLACES))
        ]
    )
    # Places can share a region code: the sequence number is unique per (code, birthday).
    seqs = _ranks_within(code_of[places, years[births] - 1950] * 100_000 + births)
    if seqs.size and int(seqs.max()) >= 1000:
        raise SystemExit("too many persons for the identifier space; use fewer subjects")
    public_ids = _hex_ids(rng, "sub", subjects)
    registry = source_ids["civil_registry"]
    subject_rows: list[tuple[Any, ...]] = []
    entry_rows: list[tuple[Any, ...]] = []
    for i in range(subjects):
        born = first_day + timedelta(days=int(births[i]))
        p = int(places[i])
        ident = make_resident_id(codes[p, born.year], born, int(seqs[i]))
        number, salt = next(numbers), journal.new_salt()
        row = (i + 1, public_ids[i], "person", ident, f"Person {i + 1:07d}",
               PERSON_PLACES[p].region, registry, start_us, number, salt)  # fmt: skip
        subject_rows.append(row)
        digest = journal.digest(
            salt, encode["subjects"](dict(zip(SUBJECT_COLUMNS, row, strict=True)))
        )
        entry_rows.append(
            (number, journal.EventKind.SUBJECT_REGISTERED.value, i + 1, start_us,
             journal.canonical({"subject": public_ids[i]}),
             journal.listing([("subjects", i + 1, digest)]))
        )  # fmt: skip
        if len(subject_rows) == CHUNK:
            _flush_subjects(loader, subject_rows, entry_rows)
    _flush_subjects(loader, subject_rows, entry_rows)
    loader.commit()
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text("\n".join(public_ids) + "\n")

    # Records in the order they were received; retractions after them.
    plan, streams = _plan_records(rng, subjects, per_subject, now_us, book)
    n = plan.subject.size
    print(f"building: {n:,} records…", flush=True)
    record_ids = _hex_ids(rng, "rec", n)
    retractions: list[tuple[int, int]] = sorted(
        (int(plan.retracted_at[i]), i) for i in np.flatnonzero(plan.retracted_at >= 0).tolist()
    )
    r_next = 0
    ret_id = 0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        rows: list[list[Any]] = []
        events: list[tuple[int, int, tuple[Any, ...]]] = []  # (at, order, journal row)
        for i in range(lo, hi):
            code, src = streams[int(plan.stream[i])]
            q = float(plan.quantity[i])
            quantity = None if q != q else q
            sid = int(plan.subject[i]) + 1
            occurred, received = int(plan.occurred[i]), int(plan.received[i])
            ref = plan.decision_ref[i]
            source_ref = f"B{i:010d}"
            # Instants go in as integer µs: canonical() writes datetimes the same way.
            digest = journal.record_content_hash(
                subject_id=public_ids[sid - 1],
                record_type=code,
                occurred_at=occurred,  # type: ignore[arg-type]
                quantity=quantity,
                decision_ref=ref,
            )
            rows.append(
                [i + 1, record_ids[i], source_ids[src], source_ref, sid, code, occurred,
                 received, quantity, ref, digest, None, None]
            )  # fmt: skip
            data = journal.canonical({"record": record_ids[i]})
            events.append(
                (received, i, (journal.EventKind.RECORD.value, sid, received, data), rows[-1])
            )
        horizon = int(plan.received[hi]) if hi < n else now_us + 1
        ret_rows: list[list[Any]] = []
        while r_next < len(retractions) and retractions[r_next][0] < horizon:
            at, i = retractions[r_next]
            r_next += 1
            src = streams[int(plan.stream[i])][1]
            reason = "withdrawn by the source (benchmark)"
            ret_id += 1
            ret_rows.append([ret_id, i + 1, source_ids[src], reason, at, None, None])
            data = journal.canonical({"record": record_ids[i]})
            sid = int(plan.subject[i]) + 1
            events.append(
                (at, n + i, (journal.EventKind.RETRACTION.value, sid, at, data), ret_rows[-1])
            )
        events.sort(key=lambda e: (e[0], e[1]))
        entries: list[tuple[Any, ...]] = []
        for _, order, entry, row in events:
            # Numbered in the journal's order; the row carries its entry's number and salt.
            table, columns = (
                ("records", RECORD_COLUMNS) if order < n else ("retractions", RETRACTION_COLUMNS)
            )
            row[-2], row[-1] = next(numbers), journal.new_salt()
            digest = journal.digest(row[-1], encode[table](dict(zip(columns, row, strict=True))))
            entries.append((row[-2], *entry, journal.listing([(table, row[0], digest)])))
        loader.load("records", RECORD_COLUMNS, [tuple(r) for r in rows])
        loader.load("retractions", RETRACTION_COLUMNS, [tuple(r) for r in ret_rows])
        loader.load("journal", JOURNAL_COLUMNS, entries)
        loader.commit()
        print(f"  {hi:,} / {n:,}", flush=True)
    loader.close()
    engine.dispose()
    return {
        "format": FORMAT,
        "subjects": subjects,
        "records": n,
        "retractions": len(retractions),
        "per_subject": per_subject,
        "seed": seed,
        "now": now.isoformat(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "keys": keys,
        "services": list(SERVICES),
    }


def _flush_subjects(
    loader: _Loader, subject_rows: list[tuple[Any, ...]], entry_rows: list[tuple[Any, ...]]
) -> None:
    loader.load("subjects", SUBJECT_COLUMNS, subject_rows)
    loader.load("journal", JOURNAL_COLUMNS, entry_rows)
    subject_rows.clear()
    entry_rows.clear()


def _pg_database_exists(admin: Engine, name: str) -> bool:
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        return found.first() is not None


def ensure_store(db: str | None, subjects: int, per_subject: float, seed: int) -> Built:
    """The pristine store for these arguments, built unless already there."""
    OUT.mkdir(parents=True, exist_ok=True)
    backend = "sqlite" if db is None else "pg"
    key = _key(subjects, per_subject, seed, backend)
    manifest_path = OUT / f"{key}.json"
    ids_file = OUT / f"{key}.ids"
    if db is None:
        path = OUT / f"{key}.db"
        url = f"sqlite:///{path}"
        present = path.exists()
    else:
        base = make_url(normalise_url(db))
        url = base.set(database=key.replace("-", "_")).render_as_string(hide_password=False)
        admin = make_engine(
            base.set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
        )
        present = _pg_database_exists(admin, key.replace("-", "_"))
    if present and manifest_path.exists() and ids_file.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") == FORMAT:
            print(f"store: reusing {key} (built {manifest['built_at']})", flush=True)
            if db is not None:
                admin.dispose()
            return Built(manifest, url, ids_file)
    # Start from nothing: a half-built store from an interrupted run is thrown away.
    if db is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = key.replace("-", "_")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    manifest = build(url, subjects=subjects, per_subject=per_subject, seed=seed, ids_file=ids_file)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    print(f"store: built {key} in {manifest['seconds']} s", flush=True)
    return Built(manifest, url, ids_file)


def fresh_copy(built: Built, db: str | None) -> str:
    """A working copy of the pristine store for one benchmark run; its URL."""
    if db is None:
        source = Path(make_url(built.url).database or "")
        target = OUT / "online-run.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source, target)
        return f"sqlite:///{target}"
    base = make_url(normalise_url(db))
    admin = make_engine(
        base.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    template = make_url(built.url).database
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "credence_online_run"'))
        conn.execute(text(f'CREATE DATABASE "credence_online_run" TEMPLATE "{template}"'))
    admin.dispose()
    return base.set(database="credence_online_run").render_as_string(hide_password=False)


# --- the server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(
    url: str,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    what: str = "the server",
) -> Iterator[Server]:
    """``credence serve`` (one uvicorn worker) on a free loopback port; stopped after.
    ``env`` replaces the environment it starts from (default: this process's), and
    ``cwd`` its working directory: :mod:`bench.ab` runs another version's code so."""
    port = free_port()
    command = [sys.executable, "-c", "from credence.cli import main; main()"]
    env = {
        **(os.environ if env is None else env),
        "CREDENCE_DB_URL": url,
        # No access log line per request: the benchmark measures the API, not the terminal.
        "CREDENCE_LOG_LEVEL": "warning",
        "CREDENCE_LOG_KEY_PATH": str(OUT / "online-log.key"),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{what} stopped at start; see {log}")
                try:
                    status, _ = request(port, "GET", "/v1/health", None, None)
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{what} did not answer within 60 s; see {log}")
                time.sleep(0.2)
            yield Server(port, proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def request(
    port: int, method: str, path: str, body: Any, key: str | None, *, timeout: float = 30
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, orjson.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, orjson.loads(response.read() or b"null")
    finally:
        conn.close()


# --- decisions with wrk ----------------------------------------------------------------

WRK_SCRIPT = """
-- POST /v1/decisions about random subjects (ids from a file) for random services.
local ids = {}
local services = {%(services)s}
local key = ""
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  key = args[2]
  math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
  local id = ids[math.random(#ids)]
  local service = services[math.random(#services)]
  local body = '{"service":"' .. service .. '","subject_id":"' .. id .. '"}'
  return wrk.format("POST", "/v1/decisions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str) -> dict[str, float]:
    """requests/s, p50/p75/p90/p99 (ms), requests and errors from ``wrk --latency``."""
    result: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M):
        result[f"p{pct}"] = float(value) * _UNITS[unit]
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rps is None or total is None or "p99" not in result:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    result["rps"] = float(rps.group(1))
    result["requests"] = float(total.group(1))
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    result["socket_errors"] = float(sum(int(g) for g in sock.groups())) if sock else 0.0
    return result


def run_wrk(
    wrk: str,
    port: int,
    script: Path,
    ids_file: Path,
    key: str,
    *,
    duration: float,
    connections: int,
    threads: int,
) -> dict[str, float]:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/v1/decisions",
        "--",
        str(ids_file),
        key,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    )
    return parse_wrk(done.stdout)


def preflight(port: int, ids: Sequence[str], key: str, services: Sequence[str]) -> dict[str, int]:
    """Ask a few decisions one by one: every one must succeed (a benchmark of errors is
    worthless); returns the outcomes seen."""
    outcomes: dict[str, int] = {}
    rng = np.random.default_rng(1)
    for k in range(50):
        body = {
            "service": services[k % len(services)],
            "subject_id": ids[int(rng.integers(len(ids)))],
        }
        status, answer = request(port, "POST", "/v1/decisions", body, key)
        if status != 200:
            raise SystemExit(f"preflight decision failed ({status}): {answer}")
        outcomes[answer["outcome"]] = outcomes.get(answer["outcome"], 0) + 1
    return outcomes


def bench_decisions(
    args: argparse.Namespace, wrk: str, server: Server, built: Built, ids: Sequence[str]
) -> dict[str, Any]:
    services = args.services.split(",")
    key = built.manifest["keys"]["party"]
    port = server.port
    outcomes = preflight(port, ids, key, services)
    script = OUT / "online-decisions.lua"
    script.write_text(WRK_SCRIPT % {"services": ", ".join(f'"{s}"' for s in services)})

    def run(duration: float, connections: int) -> dict[str, float]:
        cpu = server.cpu_seconds()
        got = run_wrk(
            wrk,
            port,
            script,
            built.ids_file,
            key,
            duration=duration,
            connections=connections,
            threads=args.wrk_threads,
        )
        # Server CPU per decision: what the rate would be on a core of its own.
        got["server_cpu_us"] = (server.cpu_seconds() - cpu) / max(got["requests"], 1) * 1e6
        return got

    print(f"decisions: warm-up {args.warmup:g} s…", flush=True)
    run(args.warmup, args.connections)
    runs = []
    for r in range(args.runs):
        got = run(args.duration, args.connections)
        print(
            f"  run {r + 1}: {got['rps']:,.0f} decisions/s, p50 {got['p50']:.2f} ms, "
            f"p99 {got['p99']:.2f} ms, server CPU {got['server_cpu_us']:.0f} µs/decision, "
            f"errors {got['errors']:.0f}",
            flush=True,
        )
        runs.append(got)
    sweep = {}
    for connections in [int(c) for c in args.sweep.split(",") if c]:
        got = run(args.sweep_duration, connections)
        print(
            f"  {connections} connections: {got['rps']:,.0f} decisions/s, "
            f"p50 {got['p50']:.2f} ms, p99 {got['p99']:.2f} ms",
            flush=True,
        )
        sweep[connections] = got
    metrics = ("rps", "p50", "p90", "p99", "server_cpu_us")
    return {
        "services": services,
        "preflight_outcomes": outcomes,
        "runs": runs,
        **{m: statistics.median(r[m] for r in runs) for m in metrics},
        "errors": sum(r["errors"] + r["socket_errors"] for r in runs)
        + sum(r["errors"] + r["socket_errors"] for r in sweep.values()),
        "connections": args.connections,
        "threads": args.wrk_threads,
        "sweep": sweep,
    }


# --- ingestion -----------------------------------------------------------------------

#: What the benchmark's bank sends: mostly good news, some defaults (with a reference).
BANK_TYPES = (
    ("on_time_payment_streak", 0.55),
    ("loan_repaid", 0.40),
    ("loan_default", 0.03),
    ("credit_card_default", 0.02),
)


def _batch_body(
    rng: np.random.Generator, ids: Sequence[str], size: int, tag: str, now: datetime
) -> bytes:
    codes = [c for c, _ in BANK_TYPES]
    which = rng.choice(len(codes), size=size, p=[w for _, w in BANK_TYPES])
    subjects = rng.integers(len(ids), size=size)
    ages = rng.integers(1, 700 * 86_400, size=size)
    records = []
    for k in range(size):
        code = codes[int(which[k])]
        item: dict[str, Any] = {
            "source_ref": f"{tag}-{k}",
            "subject_id": ids[int(subjects[k])],
            "record_type": code,
            "occurred_at": (now - timedelta(seconds=int(ages[k]))).isoformat(),
        }
        if code.endswith("default"):
            item["decision_ref"] = f"HCB-DEF-{tag}-{k}"
        records.append(item)
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
    now = datetime.now(UTC)

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
        if answer["rejected"]:
            raise RuntimeError(f"records rejected: {answer['results'][:2]}")
        created: int = answer["created"]
        return created

    def one_run(label: str, seconds: float) -> dict[str, float]:
        stop_at = time.perf_counter() + seconds
        created = [0] * args.ingest_connections
        batches = [0] * args.ingest_connections
        errors: list[BaseException] = []

        def worker(w: int) -> None:
            rng = np.random.default_rng([w, abs(hash(label)) % 2**32])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                n = 0
                body = _batch_body(rng, ids, args.batch, f"{label}-{w}-{n}", now)
                while time.perf_counter() < stop_at:
                    created[w] += post(conn, body)
                    batches[w] += 1
                    n += 1
                    body = _batch_body(rng, ids, args.batch, f"{label}-{w}-{n}", now)
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


# --- freshness -----------------------------------------------------------------------


def bench_freshness(
    server: Server, built: Built, ids: Sequence[str], samples: int, run_tag: str
) -> dict[str, Any]:
    """Lag from submitting a judgment default to the first decision that reflects it."""
    port = server.port
    party, court = built.manifest["keys"]["party"], built.manifest["keys"]["court"]
    rng = np.random.default_rng(11)
    lags: list[float] = []
    after_ack: list[float] = []
    tries = 0
    while len(lags) < samples and tries < samples * 20:
        tries += 1
        subject = ids[int(rng.integers(len(ids)))]
        ask = {"service": "air_travel", "subject_id": subject}
        status, answer = request(port, "POST", "/v1/decisions", ask, party)
        if status != 200 or answer["outcome"] != "allow":
            continue  # already restricted: pick another subject
        record = {
            "source_ref": f"fresh-{run_tag}-{tries}",
            "subject_id": subject,
            "record_type": "judgment_default",
            "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "decision_ref": f"(2026)Lu10Zhi{run_tag}{tries}",
        }
        sent = time.perf_counter()
        status, answer = request(port, "POST", "/v1/records", {"records": [record]}, court)
        acked = time.perf_counter()
        if status != 200 or answer["created"] != 1:
            raise SystemExit(f"freshness: the record was not created ({status}): {answer}")
        deadline = acked + 10.0
        while True:
            status, answer = request(port, "POST", "/v1/decisions", ask, party)
            now = time.perf_counter()
            if status == 200 and answer["outcome"] == "deny":
                lags.append((now - sent) * 1000)
                after_ack.append((now - acked) * 1000)
                break
            if now > deadline:
                raise SystemExit("freshness: the record was not reflected within 10 s")
    return {
        "samples": len(lags),
        "median_ms": statistics.median(lags),
        "max_ms": max(lags),
        "median_after_ack_ms": statistics.median(after_ack),
    }


# --- main ----------------------------------------------------------------------------


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
