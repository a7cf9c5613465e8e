"""What outage catch-up costs intake for a source not in outage: an A/B in one run.

``python -m bench.catchup --base REV [--db URL]`` builds one store (the working tree's
migrations; SQLite under ``$TMPDIR`` unless ``--db`` names an empty PostgreSQL
database): the default rulebook, a bank that declares ``loan_repaid=7+7`` and
``--people`` persons, and eight weeks of steady history (one repayment per person a
week, through ``submit_records``). Then, ``--rounds`` times, base then new, each version
in a subprocess of its own (``PYTHONPATH`` at its ``src``: REV's from ``git archive``,
the working tree's) plans, stores and rolls back ``--batches`` batches of ``--size``
repayments three days after the bank's last report (not in outage: the catch-up finds
nothing to do), and reports the median process CPU per batch (on SQLite with the
database's work; on PostgreSQL the client's only). The report: medians over rounds per
version, the ratio new/base, and the cost of the catch-up's look-up alone
(:func:`credence.ledger.catchup.scopes`, median over 200 calls).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

LAST = datetime(2026, 6, 1, tzinfo=UTC)
SOURCE = "bank"


def build(url: str, people: int, recent: bool) -> None:
    import credence.disputes  # noqa: F401 - the dispute endings intake asks about
    from credence.db import make_engine, session_factory
    from credence.identifiers import SubjectKind
    from credence.ledger import freshness, registry
    from credence.ledger import service as ledger
    from credence.ledger.schemas import SubjectIn
    from credence.migrate import upgrade
    from credence.rulebook import store
    from credence.rulebook.loader import default_text

    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    start = LAST - timedelta(weeks=10)
    # Persons registered two years back (no new-identity limit), or with the bank (new).
    registered = start if recent else start - timedelta(days=730)
    with sessions.begin() as session:
        edition = store.publish(session, text=default_text(), at=registered - timedelta(days=1))
        civil = registry.register_source(
            session, code="civil", name="Civil", kind="civil", record_types=[],
            rulebook=edition.rulebook, at=registered, identity_authority_for="person",
        )  # fmt: skip
        bank = registry.register_source(
            session, code=SOURCE, name="Bank", kind="bank",
            record_types=["loan_repaid", "loan_default"], rulebook=edition.rulebook, at=start,
        )  # fmt: skip
        freshness.declare(
            session, source=bank, cadences=[freshness.Cadence("loan_repaid", 7, 7)], at=start
        )
        ids = [
            registry.register_subject(
                session,
                source=civil,
                data=SubjectIn(kind=SubjectKind.PERSON, identifier=person(n), name=f"P{n}"),
                at=registered,
            )[0].public_id
            for n in range(people)
        ]
    Path(url_ids(url)).write_text("\n".join(ids))
    for week in range(8, 0, -1):
        at = LAST - timedelta(weeks=week - 1)
        with sessions.begin() as session:
            source = registry.source_by_code(session, SOURCE)
            results = ledger.submit_records(
                session,
                source=source,
                records=ledger.parse_records(batch(ids, f"H{week}", at)),
                rulebook=edition.rulebook,
                at=at,
            )
            assert all(r.status == "created" for r in results), results[:3]
    engine.dispose()


def person(n: int) -> str:
    from datetime import date

    from credence.identifiers import make_resident_id

    return make_resident_id("110105", date(1960, 1, 1) + timedelta(days=(97 * n) % 14_600), n)


def batch(ids: list[str], tag: str, at: datetime) -> list[dict[str, object]]:
    return [
        {
            "source_ref": f"{tag}-{i}",
            "subject_id": subject,
            "record_type": "loan_repaid",
            "occurred_at": (at - timedelta(days=1)).isoformat(),
        }
        for i, subject in enumerate(ids)
    ]


def url_ids(url: str) -> str:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"catchup-bench-{digest}.ids")


def measure(url: str, size: int, batches: int) -> dict[str, float]:
    """Median CPU seconds of planning and storing one batch (rolled back)."""
    import credence.disputes  # noqa: F401 - the dispute endings intake asks about
    from credence.db import make_engine, session_factory
    from credence.ledger import registry
    from credence.ledger import service as ledger
    from credence.rulebook import store

    engine = make_engine(url)
    sessions = session_factory(engine)
    ids = Path(url_ids(url)).read_text().split()
    at = LAST + timedelta(days=3)
    lines = batch(ids[:size], "M", at)
    took = []
    for _ in range(batches + 2):
        with sessions() as session:
            source = registry.source_by_code(session, SOURCE)
            rulebook = store.in_force(session, at).rulebook
            records = ledger.parse_records(lines)
            started = time.process_time()
            planned = ledger.plan_records(
                session, source=source, records=records, rulebook=rulebook, at=at
            )
            ledger.store_planned(session, planned)
            session.flush()
            took.append(time.process_time() - started)
            assert all(p.result.status == "created" for p in planned)
            session.rollback()
    out = {"batch": statistics.median(took[2:])}
    try:
        from credence.ledger import catchup
    except ImportError:
        return out
    lookups = []
    with sessions() as session:
        source = registry.source_by_code(session, SOURCE)
        for _ in range(200):
            started = time.perf_counter()
            found = catchup.scopes(session, source=source, record_types={"loan_repaid"}, at=at)
            lookups.append(time.perf_counter() - started)
            assert not found
    out["lookup"] = statistics.median(lookups)
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.catchup", description=__doc__)
    parser.add_argument("--base", help="the git revision to compare with")
    parser.add_argument("--db", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--size", type=int, default=2_000)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--recent",
        action="store_true",
        help="persons registered with the bank's history "
        "(the new-identity limit counts their positives: its query runs too)",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.size, args.batches)))
        return
    if not args.base:
        parser.error("--base REV is required")
    work = Path(tempfile.mkdtemp(prefix="catchup-bench-"))
    url = args.db or f"sqlite:///{work / 'store.db'}"
    here = Path(__file__).resolve().parent.parent
    base = work / "base"
    base.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(here), "archive", args.base, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    build(url, args.people, args.recent)
    versions = {"base": base / "src", "new": here / "src"}
    found: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    for _ in range(args.rounds):
        for name, src in versions.items():
            env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{here}"}
            done = subprocess.run(
                [sys.executable, "-m", "bench.catchup", "--measure", url,
                 "--size", str(args.size), "--batches", str(args.batches)],
                env=env, capture_output=True, text=True, cwd=here,
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr}")
            found[name].append(json.loads(done.stdout))
    store = "PostgreSQL" if args.db else "SQLite"
    who = "new identities" if args.recent else "persons registered two years back"
    print(
        f"{store}, batches of {args.size:,} from a source not in outage about {who}, "
        f"{args.rounds} rounds"
    )
    medians = {}
    for name, runs in found.items():
        per = [r["batch"] for r in runs]
        medians[name] = statistics.median(per)
        shown = ", ".join(f"{p * 1e3:.1f}" for p in per)
        print(
            f"  {name}: median {medians[name] * 1e3:.1f} ms CPU per batch "
            f"({medians[name] / args.size * 1e6:.2f} µs per record; rounds {shown})"
        )
    ratios = [n["batch"] / b["batch"] for b, n in zip(found["base"], found["new"], strict=True)]
    print(
        f"  new/base: {medians['new'] / medians['base']:.3f} "
        f"(per round {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    lookups = [r["lookup"] for r in found["new"] if "lookup" in r]
    if lookups:
        print(
            f"  catch-up look-up alone: median {statistics.median(lookups) * 1e6:.0f} µs per batch"
        )


if __name__ == "__main__":
    main()
