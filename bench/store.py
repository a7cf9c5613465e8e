"""The online benchmark's store: built once per size and seed, then copied per run.

:func:`ensure_store` returns the pristine store for a size and seed (an SQLite file under
``bench/out/``, or a PostgreSQL database used as a template), building it with
:func:`build` unless it is already there: schema by the migrations, rulebook, sources, a
relying party and keys through the services, then subjects, records, retractions and
their journal entries by bulk inserts (:mod:`bench.bulk`), from the synthetic history of
:mod:`bench.history`. The history is a load of the past, as a deployment makes it: one
backfill run per source approved for its records (:mod:`credence.ledger.backfill`), each
record stored with its run, and the run's delivery logged, so the volume limits of
intake count none of it. Every run starts from :func:`fresh_copy` of it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

from bench.bulk import BulkLoader
from bench.history import (
    HISTORY_DAYS,
    US,
    hex_ids,
    person_codes,
    plan_records,
    ranks_within,
)
from credence import journal
from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.clock import EPOCH, FixedClock, to_micros
from credence.db import make_engine, normalise_url, session_factory
from credence.identifiers import make_resident_id
from credence.lab.city import PERSON_PLACES
from credence.lab.sources import register_demo_sources
from credence.ledger import backfill
from credence.ledger.tables import Source
from credence.migrate import upgrade
from credence.rulebook import store as rulebook_store
from credence.rulebook.loader import default_text

OUT = Path(__file__).resolve().parent / "out"
FORMAT = "credence-online-bench/3"
SEED = 7
#: The columns the builder writes, in order (a covered row ends with its seq and salt).
SUBJECT_COLUMNS = ("id", "public_id", "kind", "identifier", "name", "region",
                   "registered_by", "registered_at", "seq", "salt")  # fmt: skip
RECORD_COLUMNS = ("id", "public_id", "source_id", "source_ref", "subject_id", "record_type",
                  "occurred_at", "received_at", "quantity", "decision_ref", "content_hash",
                  "backfill_run_id", "seq", "salt")  # fmt: skip
RETRACTION_COLUMNS = ("id", "record_id", "source_id", "reason", "received_at", "seq", "salt")
JOURNAL_COLUMNS = ("seq", "kind", "subject_id", "at", "data", "rows")

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
#: Records per insert chunk while building.
CHUNK = 200_000


@dataclass(frozen=True)
class Built:
    """A built store: where it is and what the benchmark needs to drive it."""

    manifest: dict[str, Any]
    #: The pristine store: an SQLite file, or a PostgreSQL database used as a template.
    url: str
    ids_file: Path


def _key(subjects: int, per_subject: float, seed: int, backend: str) -> str:
    return f"online-{backend}-s{subjects}-r{per_subject:g}-seed{seed}"


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
    now_us = int((now - EPOCH).total_seconds()) * US
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
        # Everything drawn at random, in the order the store has always drawn it: the
        # subjects, then their records (whose volume per source the runs are approved for).
        places = rng.choice(
            len(PERSON_PLACES), size=subjects, p=np.array([p.weight for p in PERSON_PLACES])
        )
        births = rng.integers(0, (date(2006, 12, 31) - date(1950, 1, 1)).days + 1, size=subjects)
        public_ids = hex_ids(rng, "sub", subjects)
        plan, streams = plan_records(rng, subjects, per_subject, now_us, book)
        runs = _approve_runs(session, plan.stream, streams, sources, start, now)
        run_ids = {code: run.run_id for code, run in runs.items()}
    loader = BulkLoader(engine)
    # Entries written by the services above hold the first numbers; the bulk rows' entries
    # follow, numbered here, each listing its row's salted digest (as the services do).
    with engine.connect() as conn:
        seq = conn.execute(text("SELECT max(seq) FROM journal")).scalar_one()
    numbers = itertools.count(int(seq) + 1)
    encode = {
        name: _encoder(name, columns)
        for name, columns in (
            ("subjects", SUBJECT_COLUMNS),
            ("records", RECORD_COLUMNS),
            ("retractions", RETRACTION_COLUMNS),
        )
    }
    start_us = int((start - EPOCH).total_seconds()) * US

    # Subjects (persons), each registered by the civil registry at the start.
    print(f"building: {subjects:,} subjects…", flush=True)
    codes = person_codes()
    first_day = date(1950, 1, 1)
    years = np.array([(first_day + timedelta(days=d)).year for d in range(int(births.max()) + 1)])
    code_of = np.array(
        [
            [int(codes.get((p, y), "0")) for y in range(1950, 2007)]
            for p in range(len(PERSON_PLACES))
        ]
    )
    # Places can share a region code: the sequence number is unique per (code, birthday).
    seqs = ranks_within(code_of[places, years[births] - 1950] * 100_000 + births)
    if seqs.size and int(seqs.max()) >= 1000:
        raise SystemExit("too many persons for the identifier space; use fewer subjects")
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
    n = plan.subject.size
    print(f"building: {n:,} records…", flush=True)
    record_ids = hex_ids(rng, "rec", n)
    retractions: list[tuple[int, int]] = sorted(
        (int(plan.retracted_at[i]), i) for i in np.flatnonzero(plan.retracted_at >= 0).tolist()
    )
    r_next = 0
    ret_id = 0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        rows: list[list[Any]] = []
        # (at, order, journal row, table row)
        events: list[tuple[int, int, tuple[Any, ...], list[Any]]] = []
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
                 received, quantity, ref, digest, run_ids[src], None, None]
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
        for _, order, entry, stored in events:
            # Numbered in the journal's order; the row carries its entry's number and salt.
            table, columns = (
                ("records", RECORD_COLUMNS) if order < n else ("retractions", RETRACTION_COLUMNS)
            )
            stored[-2], stored[-1] = next(numbers), journal.new_salt()
            covered = encode[table](dict(zip(columns, stored, strict=True)))
            digest = journal.digest(stored[-1], covered)
            entries.append((stored[-2], *entry, journal.listing([(table, stored[0], digest)])))
        loader.load("records", RECORD_COLUMNS, [tuple(r) for r in rows])
        loader.load("retractions", RETRACTION_COLUMNS, [tuple(r) for r in ret_rows])
        loader.load("journal", JOURNAL_COLUMNS, entries)
        loader.commit()
        print(f"  {hi:,} / {n:,}", flush=True)
    loader.close()
    # Each run's one delivery, logged after its records (sequences are past them now).
    with sessions.begin() as session:
        for run in runs.values():
            backfill.deliver(session, run, at=now)
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
        "backfill_runs": {code: run.public_id for code, run in runs.items()},
    }


def _encoder(table: str, written: tuple[str, ...]) -> Callable[[dict[str, Any]], bytes]:
    """The journal's encoder of ``table``'s rows, for rows of the columns ``written``:
    every covered column the builder does not write (``subjects.founded_on``, or any a
    later release adds) stays NULL in the store and is encoded as NULL, which the encoder
    leaves out of the bytes for a column added after rows were logged."""
    encoder = journal.covered(table).encoder
    unwritten: dict[str, Any] = dict.fromkeys(c for c in encoder.columns if c not in written)
    return lambda values: encoder({**unwritten, **values})


def _approve_runs(
    session: Session,
    stream: npt.NDArray[np.int64],
    streams: list[tuple[str, str]],
    sources: dict[str, Source],
    start: datetime,
    now: datetime,
) -> dict[str, backfill.Scope]:
    """One backfill run per source of the history, approved at its start for the records
    it is about to load (their period, their number), as an operator approves a source's
    load; each as delivered whole (every record it was approved for exempted)."""
    volume = Counter(streams[s][1] for s in stream.tolist())
    runs: dict[str, backfill.Scope] = {}
    for code, count in sorted(volume.items()):
        until = now + timedelta(microseconds=1)
        run = backfill.approve(
            session,
            source=sources[code],
            occurred_from=start,
            occurred_until=until,
            expected_records=count,
            principal_id=None,
            at=start,
        )
        session.flush()
        runs[code] = backfill.Scope(
            run_id=run.id,
            public_id=run.public_id,
            source_id=run.source_id,
            occurred_from_us=to_micros(start),
            occurred_until_us=to_micros(until),
            remaining=0,
            exempted=count,
        )
    return runs


def _flush_subjects(
    loader: BulkLoader, subject_rows: list[tuple[Any, ...]], entry_rows: list[tuple[Any, ...]]
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
