"""The synthetic history of the online benchmark's store: persons and their records.

Persons live in the demo city's places (:data:`credence.lab.city.PERSON_PLACES`) and
carry valid resident identifiers; their records come from the city's streams at its
rates, over :data:`HISTORY_DAYS` of history, received after the city's delays, some
judgment defaults later satisfied and a few records retracted by their source.
:func:`plan_records` draws them all at once (numpy), in the order they were received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from credence.clock import from_micros
from credence.errors import InvalidIdentifier
from credence.identifiers import make_resident_id, validate_resident_id
from credence.lab.city import DECISION_PREFIXES, DELAY_MEAN_DAYS, PERSON_PLACES, STREAMS

US = 1_000_000
DAY_US = 86_400 * US

#: Days of history records occurred over; a little longer than most retentions.
HISTORY_DAYS = 5 * 365
#: Share of records their source retracts later.
RETRACTED_SHARE = 0.005
#: Share of judgment defaults followed by a judgment satisfied (same case).
SATISFIED_SHARE = 0.5

IntArray = npt.NDArray[np.int64]


def person_codes() -> dict[tuple[int, int], str]:
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


def hex_ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    """``n`` opaque ids like :func:`credence.ids.new_id` (drawn from ``rng``)."""
    raw = rng.bytes(10 * n).hex()
    return [f"{prefix}_{raw[20 * i : 20 * i + 20]}" for i in range(n)]


def ranks_within(keys: IntArray) -> IntArray:
    """For each element, how many equal keys come before it (0, 1, 2, … per key)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
    ranks = np.empty_like(keys)
    ranks[order] = np.arange(len(ordered)) - run_start
    return ranks


@dataclass
class RecordPlan:
    subject: IntArray  # index 0..n-1
    stream: IntArray
    occurred: IntArray  # µs
    received: IntArray  # µs
    quantity: npt.NDArray[np.float64]  # NaN: none
    decision_ref: list[str | None]
    retracted_at: IntArray  # µs, -1: not retracted


def plan_records(
    rng: np.random.Generator, n_subjects: int, per_subject: float, now_us: int, book: Any
) -> tuple[RecordPlan, list[tuple[str, str]]]:
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
    plan = RecordPlan(
        subject=subject[order],
        stream=stream[order],
        occurred=occurred[order],
        received=received[order],
        quantity=quantity[order],
        decision_ref=[refs[i] for i in order.tolist()],
        retracted_at=retracted[order],
    )
    return plan, streams
