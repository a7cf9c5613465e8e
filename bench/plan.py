"""Intake's planning step alone: ``plan_records`` on the bank's feed, CPU per record.

``python -m bench.plan URL IDS_FILE`` sends ``--batches`` batches of the bank's feed
(:mod:`bench.feed`, ``--size`` records each) through
:func:`credence.ledger.service.plan_records`, stores and commits each (as HTTP
ingestion does), and reports the median process CPU of planning one batch (on SQLite
that includes the database's work; on PostgreSQL only the client's), and the CPU of
each statement run through :class:`credence.db.Prepared` during planning, per record.
``--profile FILE`` runs the planning under cProfile as well (which inflates
Python-level work, and the timings with it) and prints the functions by cumulative time.

``--marks FILE`` is for a run under ``valgrind --tool=callgrind --dump-before=getpgrp``
(see :mod:`bench.intake_instructions`): the steps ``plan_records`` calls (those of
:data:`STEPS` the version has), ``store_planned`` and the commit are bracketed by
``os.getpgrp()``, so callgrind writes one count per step and per stretch between steps
(labelled ``… before STEP``: the stretch before ``_volume_holds`` is mostly the loop over
the records); FILE gets the labels of the dumps in order, as JSON. ``python -m
bench.plan --sum-marks FILE DIR`` adds them up per label (all batches but the first),
per record.

The store is one built by :mod:`bench.store` (or the A/B's cached base store, upgraded
by ``credence.migrate.upgrade`` with the default rulebook published; see
:mod:`bench.ab`); the run adds its records to it, so give each run a fresh copy (the feed
starts again from the same persons, and a store that already has a run's records holds
the next run's for a burst, which stops it). Run it with
``PYTHONPATH`` set to a version's ``src`` to time that version (one whose
``plan_records`` takes ``session, source, records, rulebook, at``).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import credence.disputes  # noqa: F401 - the dispute endings intake asks about
from bench.feed import SOURCE, BankFeed
from credence import db
from credence.db import make_engine, session_factory
from credence.ledger import registry
from credence.ledger import service as ledger
from credence.rulebook import store as rulebook_store

#: Statement (its first words) → [runs, CPU seconds], while planning.
_STATEMENTS: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
_PLANNING = [False]
#: id of a Prepared → its statement's first words.
_KEYS: dict[int, str] = {}


def _timed_run(original: Any) -> Any:
    def run(self: db.Prepared, direct: db.Direct, params: dict[str, Any]) -> list[Any]:
        if not _PLANNING[0]:
            return original(self, direct, params)  # type: ignore[no-any-return]
        started = time.process_time()
        try:
            return original(self, direct, params)  # type: ignore[no-any-return]
        finally:
            elapsed = time.process_time() - started
            # The statement's text once per statement, outside the timed part (compiling
            # it is not the statement's cost; it used to be counted on every run).
            key = _KEYS.get(id(self))
            if key is None:
                key = _KEYS[id(self)] = " ".join(str(self.statement).split())[:110]
            seen = _STATEMENTS[key]
            seen[0] += 1
            seen[1] += elapsed

    return run


#: (module, function) pairs ``plan_records`` calls: each is a step ``--marks`` counts.
STEPS = (
    ("credence.ledger.turns", "take_sources"),
    ("credence.ledger.suspension", "in_force"),
    ("credence.ledger.catchup", "scopes"),
    ("credence.ledger.service", "source_types"),
    ("credence.ledger.service", "_resolve_subjects"),
    ("credence.ledger.reinsertion", "ended_by_dispute"),
    ("credence.ledger.service", "_spaced"),
    ("credence.ledger.service", "new_ordered_ids"),
    ("credence.ledger.service", "_volume_holds"),
    ("credence.ledger.catchup", "delivered"),
)
#: The label of each callgrind dump, in order (``--marks``).
_MARKS: list[str] = []


def _mark(label: str) -> None:
    """End the stretch ``label`` names: callgrind dumps its count before getpgrp."""
    _MARKS.append(label)
    os.getpgrp()


def _marked(name: str, original: Any) -> Any:
    def step(*args: Any, **kwargs: Any) -> Any:
        _mark(f"… before {name}")
        try:
            return original(*args, **kwargs)
        finally:
            _mark(name)

    return step


def _instrument_now() -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``: the instrumentation on
    from here (the start-up ran uninstrumented, several times faster); busy until
    callgrind has taken the request. Harmless without valgrind."""
    control = subprocess.Popen(
        ["callgrind_control", "--instr=on", str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while control.poll() is None:
        pass


def _install_marks() -> None:
    for module_name, name in STEPS:
        module = sys.modules.get(module_name)
        if module is None:
            try:
                __import__(module_name)
            except ImportError:  # an older version, without the step
                continue
            module = sys.modules[module_name]
        if hasattr(module, name):
            setattr(module, name, _marked(name, getattr(module, name)))


def sum_marks(marks_file: str, folder: str) -> None:
    """Instructions per record by label, from a ``--marks`` run's dumps (in ``folder``,
    ``<prefix>.<n>`` each, n from 1), all batches but the first."""
    marks = json.loads(Path(marks_file).read_text())
    labels, records = marks["labels"], marks["records_after_first"]
    dumps = sorted(Path(folder).glob("*.[0-9]*"), key=lambda p: int(p.suffix[1:]))
    if len(dumps) < len(labels):
        raise SystemExit(f"{len(dumps)} dumps for {len(labels)} labels")
    first_end = labels.index("commit")  # the first batch's last stretch
    totals: dict[str, int] = collections.defaultdict(int)
    for label, dump in list(zip(labels, dumps, strict=False))[first_end + 1 :]:
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                totals[label] += int(line.split()[1])
                break
    whole = sum(v for k, v in totals.items() if k not in ("outside",))
    print(f"instructions per record, {records:,} records (the first batch left out)")
    for label, value in totals.items():
        print(f"  {value / records:10,.0f}  {label}")
    print(f"  {whole / records:10,.0f}  all but 'outside'")


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["--sum-marks"]:
        sum_marks(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__)
    parser.add_argument("url", help="the store (a copy: the run adds to it)")
    parser.add_argument("ids", help="the store's subject ids file (bench.store)")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--size", type=int, default=2_000, help="records per batch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", help="write a cProfile of the planning here")
    parser.add_argument("--marks", help="bracket the steps for callgrind; labels to here")
    args = parser.parse_args(argv)
    if args.marks:
        _install_marks()
        _instrument_now()
        # As `credence import` pauses the collector and `credence serve` freezes its
        # heap: a collection of the harness's heap is not intake's work.
        gc.freeze()
        gc.disable()
    else:
        db.Prepared.run = _timed_run(db.Prepared.run)  # type: ignore[method-assign]
    engine = make_engine(args.url)
    sessions = session_factory(engine)
    with open(args.ids) as handle:
        ids = handle.read().split()
    now = datetime.now(UTC)
    feed = BankFeed.of_store(args.url, ids, now, args.seed)
    profile = cProfile.Profile() if args.profile else None
    planning: list[float] = []
    for _ in range(args.batches):
        lines = feed.batch(args.size, f"plan{now:%H%M%S}")
        with sessions() as session:
            source = registry.source_by_code(session, SOURCE)
            at = datetime.now(UTC)
            rulebook = rulebook_store.in_force(session, at).rulebook
            records = ledger.parse_records(lines)
            if args.marks:
                _mark("outside")
            _PLANNING[0] = True
            started = time.process_time()
            if profile is not None:
                profile.enable()
            planned = ledger.plan_records(
                session, source=source, records=records, rulebook=rulebook, at=at
            )
            if profile is not None:
                profile.disable()
            planning.append(time.process_time() - started)
            _PLANNING[0] = False
            if args.marks:
                _mark("… before the end of plan_records")
            refused = [p.result for p in planned if p.result.status != "created"]
            if refused:
                raise RuntimeError(f"the feed must be taken whole: {refused[:3]}")
            ledger.store_planned(session, planned)
            if args.marks:
                _mark("store_planned")
            session.commit()
            if args.marks:
                _mark("commit")
    engine.dispose()
    if args.marks:
        Path(args.marks).write_text(
            json.dumps({"labels": _MARKS, "records_after_first": (args.batches - 1) * args.size})
        )
    records_in_all = args.batches * args.size
    median = statistics.median(planning)
    print(
        f"plan_records: median {median * 1e3:.1f} ms per batch of {args.size:,} "
        f"({median / args.size * 1e6:.2f} µs per record), {args.batches} batches"
    )
    for statement, (runs, seconds) in sorted(_STATEMENTS.items(), key=lambda kv: -kv[1][1]):
        per_record = seconds / records_in_all * 1e6
        print(f"  {per_record:5.2f} µs/record  {int(runs):3d} runs  {statement}")
    if profile is not None:
        profile.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
