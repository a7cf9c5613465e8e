"""What the public statistics page costs the store: ``portal.statistics.statistics``.

The page is public and works its figures out on every request: subjects by kind and
tier (``subject_tiers``), decisions by service and outcome over the last 30 days and all
time (``inquiries``, grouped: a scan of the table), disputes by source and state. This
benchmark builds a small demo city (for its subjects and sources), adds ``--inquiries``
decisions spread over two years among its subjects and services and a tier for every
subject, and times the whole computation (median of ``--calls`` after one warm-up).

```
python -m bench.statistics_page                         # SQLite, 1,000,000 decisions
python -m bench.statistics_page --db postgresql://postgres@127.0.0.1:5432/EMPTY_DB
```
"""

from __future__ import annotations

import argparse
import random
import statistics as stats
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from credence.db import make_engine, session_factory
from credence.decisions.tables import Inquiry
from credence.lab.city import build_city
from credence.ledger.tables import Subject
from credence.migrate import upgrade
from credence.portal.statistics import statistics
from credence.rulebook import store
from credence.tiers.tables import SubjectTier

CHUNK = 20_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="an EMPTY database's URL (default: a temporary SQLite)")
    parser.add_argument("--persons", type=int, default=5_000)
    parser.add_argument("--inquiries", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'statistics.db'}"
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        now = datetime(2026, 12, 7, tzinfo=UTC)
        built = build_city(
            sessions, persons=args.persons, organisations=100, records=2_000, now=now
        )
        at = built.now
        with sessions.begin() as session:
            book = store.in_force(session, at).rulebook
            subjects = list(session.scalars(select(Subject.id)))
            tiers = [t.code for t in book.tiers]
            session.execute(
                insert(SubjectTier),
                [
                    {"subject_id": s, "tier": rng.choice(tiers), "total": 1000.0, "since": at}
                    for s in subjects
                ],
            )
        services = [(s.code, s.default.value) for s in book.services]
        started = time.perf_counter()
        for first in range(0, args.inquiries, CHUNK):
            rows = []
            for n in range(first, min(first + CHUNK, args.inquiries)):
                code, default = rng.choice(services)
                rows.append(
                    {
                        "public_id": f"inq_bench_{n}",
                        "subject_id": rng.choice(subjects),
                        "service": code,
                        "purpose": "bench",
                        "outcome": default if rng.random() < 0.9 else "deny",
                        "score": 1000.0,
                        "rulebook_version": book.version,
                        "reasons": "[]",
                        "at": at - timedelta(seconds=rng.randrange(2 * 365 * 86400)),
                    }
                )
            with sessions.begin() as session:
                session.execute(insert(Inquiry), rows)
        loaded = time.perf_counter() - started
        with sessions() as session:
            statistics(session, at)
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                statistics(session, at)
                times.append(time.perf_counter() - t0)
        engine.dispose()
    print(
        f"store: {engine.dialect.name}, {len(subjects):,} subjects, "
        f"{args.inquiries:,} decisions (loaded in {loaded:.0f} s)"
    )
    print(f"statistics(): {stats.median(times) * 1000:.0f} ms (median of {args.calls})")


if __name__ == "__main__":
    main()
