"""How many tiers a bank's outage moves, with and without the freeze (outages are not
behaviour): ``python -m bench.outage_freeze``.

Builds the demo city (``credence demo``'s sizes and seed) into an SQLite file, then, in a
copy, removes the city bank's records received after ``--stop-days`` before the city's
instant (the bank stops; every other source goes on reporting). As of the bank's outage
start ``o`` (the freshness rule) and ``--days`` later, the nightly engine scores everyone
under the default edition (which freezes) and under the same edition without its
maximum freeze (as editions before it); it counts the subjects whose tier moved between
the two instants, and at ``o + days`` those whose tier differs from the one the full
history (the bank never stopped) gives. Prints a table; writes nothing else.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from credence.clock import to_micros
from credence.db import make_engine
from credence.lab.city import build_city
from credence.ledger import freshness
from credence.ledger.tables import Record, Source, Subject
from credence.migrate import upgrade
from credence.rulebook import store
from credence.rulebook.store import Edition
from credence.scoring.batch import score_population

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def tiers(url: str, edition: Edition | None, at: datetime) -> tuple[list[str], Edition]:
    """Every subject's tier as of ``at`` (by subject id) under ``edition`` (default: the
    one in force), by the nightly engine."""
    engine = make_engine(url)
    with sessionmaker(engine)() as session:
        chosen = edition or store.in_force(session, at)
        population = score_population(session, chosen, at)
    engine.dispose()
    return population.tiers, chosen


def quiet(url: str, since: datetime, until: datetime) -> list[bool]:
    """Per subject (by id): no record of theirs received in (since, until], from any
    source: whatever moves their tier then is time alone."""
    engine = make_engine(url)
    with sessionmaker(engine)() as session:
        ids = sorted(session.scalars(select(Subject.id)))
        busy = set(
            session.scalars(
                select(Record.subject_id)
                .where(Record.received_at > since, Record.received_at <= until)
                .distinct()
            )
        )
    engine.dispose()
    return [i not in busy for i in ids]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/outage_freeze"))
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--organisations", type=int, default=500)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--stop-days", type=int, default=120)
    parser.add_argument("--days", type=int, default=59)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    full = args.out / "city.db"
    if not full.exists():
        started = time.perf_counter()
        engine = make_engine(f"sqlite:///{full}")
        upgrade(engine)
        build_city(
            sessionmaker(engine),
            persons=args.persons,
            organisations=args.organisations,
            records=args.records,
            seed=7,
            now=NOW,
        )
        engine.dispose()
        print(f"built the city in {time.perf_counter() - started:.0f} s")
    stopped = args.out / "stopped.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{stopped}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(full, stopped)
    stop = NOW - timedelta(days=args.stop_days)
    engine = make_engine(f"sqlite:///{stopped}")
    with sessionmaker(engine)() as session:
        bank = session.scalars(select(Source.id).where(Source.code == "city_bank")).one()
    engine.dispose()
    raw = sqlite3.connect(stopped)  # foreign keys off: the scratch copy only
    removed = raw.execute(
        "DELETE FROM records WHERE source_id = ? AND received_at > ?", (bank, to_micros(stop))
    ).rowcount
    raw.commit()
    raw.close()
    url, truth_url = f"sqlite:///{stopped}", f"sqlite:///{full}"
    engine = make_engine(url)
    with sessionmaker(engine)() as session:
        probe = stop + timedelta(days=60)
        outage = freshness.outages(session, probe).get(bank)
        others = sorted(o.code for o in freshness.outages(session, probe).values())
    engine.dispose()
    assert outage is not None, "the bank is not in outage"
    since = outage.since
    late = since + timedelta(days=args.days)
    print(
        f"the bank stops at {stop:%Y-%m-%d} ({removed} of its records never arrive); in "
        f"outage since {since:%Y-%m-%d} (types {', '.join(outage.record_types)}); in outage "
        f"then: {', '.join(others)}"
    )
    start_tiers, edition = tiers(url, None, since)
    plain = replace(edition, rulebook=edition.rulebook.model_copy(update={"outages": None}))
    truth, _ = tiers(truth_url, edition, late)
    n = len(start_tiers)
    still = quiet(url, since, late)
    q = sum(still)
    print(
        f"| {n:,} subjects, {args.days} days of the bank's outage | moved a tier since the "
        f"outage began | of them, with no new record ({q:,} subjects) | tier differs from "
        "the full history's |"
    )
    print("|---|---:|---:|---:|")
    for name, chosen in (("with the freeze (2026.4)", edition), ("without it", plain)):
        late_tiers, _ = tiers(url, chosen, late)
        moved = [a != b for a, b in zip(start_tiers, late_tiers, strict=True)]
        alone = sum(m and s for m, s in zip(moved, still, strict=True))
        wrong = sum(a != b for a, b in zip(truth, late_tiers, strict=True))
        print(
            f"| {name} | {sum(moved):,} ({sum(moved) / n:.2%}) | {alone:,} ({alone / q:.2%}) "
            f"| {wrong:,} ({wrong / n:.2%}) |"
        )
    moved_truth = sum(a != b for a, b in zip(start_tiers, truth, strict=True))
    print(f"| (the bank never stopped) | {moved_truth:,} ({moved_truth / n:.2%}) | | 0 |")
    print("tiers at the outage's start:", dict(Counter(start_tiers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
