"""What reading the outages costs a decision: ``freshness.outages_direct`` per request.

Every decision reads, as of its instant, which sources are in outage (to freeze their
records and to state each category's completeness): one statement, each cadence
declared by the instant with its type's last report by the instant (a backward seek on
``ix_records_source_type_received`` per declaration row), and a source's name only for
a source in outage. This benchmark builds the demo city (smaller by default) into an
empty store, with the demo sources' honest cadences (31 declarations of 14 sources),
and times the read on a :class:`~credence.db.Direct` connection, as the API's decision
path runs it:

* **none in outage**: as of the city's last day (the usual case);
* **one in outage**: the same, after a source declares anew, for a type it last reported
  days ago, a one-day cadence (the read then also names the source).

It reports the median wall time of ``--calls`` reads after a warm-up, per case (a
lone process; the statement is the database's work on SQLite, a round trip on
PostgreSQL). Compare with a decision's server CPU in the online benchmark
(:mod:`bench.online`).

```
python -m bench.outage_reads                          # SQLite, 40,000 records
python -m bench.outage_reads --db postgresql://postgres@127.0.0.1:5432/EMPTY_DB
```
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from credence.db import Direct, make_engine, session_factory
from credence.lab.city import build_city
from credence.ledger import freshness
from credence.ledger.tables import Source
from credence.migrate import upgrade


def _median_us(direct: Direct, at: datetime, calls: int) -> tuple[float, int]:
    for _ in range(50):
        freshness.outages_direct(direct, at)
    times = []
    found = 0
    for _ in range(calls):
        started = time.perf_counter()
        found = len(freshness.outages_direct(direct, at))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="an EMPTY database's URL (default: a temporary SQLite)")
    parser.add_argument("--persons", type=int, default=4_000)
    parser.add_argument("--organisations", type=int, default=200)
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'outages.db'}"
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        now = datetime(2026, 12, 7, tzinfo=UTC)
        started = time.perf_counter()
        stats = build_city(
            sessions,
            persons=args.persons,
            organisations=args.organisations,
            records=args.records,
            now=now,
        )
        built = time.perf_counter() - started
        at = stats.now
        with Direct(engine) as direct:
            quiet, none = _median_us(direct, at, args.calls)
        # A declared type silent for more than a day: declared anew at one day, its
        # source is in outage as of at.
        with sessions() as session:
            quiet_types = [
                (f.source_id, t.record_type)
                for f in freshness.freshness(session, at)
                for t in f.types
                if t.declared is not None
                and t.last_report is not None
                and t.last_report < at - timedelta(days=2)
            ]
        picked = quiet_types[0] if quiet_types else None
        if picked is not None:
            with sessions.begin() as session:
                freshness.declare(
                    session,
                    source=session.get_one(Source, picked[0]),
                    cadences=[freshness.Cadence(picked[1], 1, 0)],
                    at=at - timedelta(days=1),
                )
            with Direct(engine) as direct:
                loud, some = _median_us(direct, at, args.calls)
        engine.dispose()
    print(f"store: {engine.dialect.name}, {stats.records:,} records, built in {built:.0f} s")
    print(f"none in outage: {quiet:.1f} µs per read (median of {args.calls}; {none} found)")
    if picked is not None:
        print(f"one in outage:  {loud:.1f} µs per read (median of {args.calls}; {some} found)")


if __name__ == "__main__":
    main()
