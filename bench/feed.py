"""A bank's day-to-day feed that intake takes whole: nothing refused, nothing held.

Since rulebook 2026.3 intake refuses a record of a streak type (``min_spacing_days``)
dated closer than its period to another of the same type from the same source about the
same subject, and holds the positives that take a subject past 12 from one source in 30
days (or past 12 from all sources, for a subject registered less than a year ago). Random
records about random subjects, as the benchmarks sent before, are refused and held by the
thousand: a benchmark of them would time the refusal and hold paths, not intake. The feed
here is what a bank plausibly sends:

* **spread over the store's persons**: records other than streaks visit them in one
  shuffled order, each person once before any is visited again, so a person gets a
  repayment or a default every ``len(ids)`` such records;
* **a streak at most once per person per feed**, and only to persons with no streak of
  the bank dated within a year of it (read from the store when the feed starts): twelve
  months of on-time payments end once a year;
* **recent dates**: a streak occurred 1–10 days ago, anything else 1–60 days ago;
* the store's persons were registered years before (:mod:`bench.store`), so none is a new
  identity.

A feed belongs to one store (one server's fresh copy, or one import store): it remembers
whom it sent a streak, so it raises :class:`FeedExhausted` rather than send a record
intake would refuse or hold when the store has too few persons for the run (use more
subjects or a shorter run). Batch ``b`` of a feed is the same records in every run with
the same seed and store, whichever thread asks for it, so two versions of the code get
the same records.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text

from credence.clock import to_micros
from credence.db import make_engine

SOURCE = "city_bank"
STREAK = "on_time_payment_streak"
#: What the bank sends: mostly good news, some defaults (with a reference). A bank with
#: N customers ends about N twelve-month streaks a year, and repays and reports more.
BANK_TYPES = (
    (STREAK, 0.30),
    ("loan_repaid", 0.65),
    ("loan_default", 0.03),
    ("credit_card_default", 0.02),
)
STREAK_AGE_DAYS = 10
OTHER_AGE_DAYS = 60
#: The period of a streak (the default rulebook's min_spacing_days for it).
STREAK_SPACING_DAYS = 365
#: Visits of every person by non-streak records before the feed stops: with a streak,
#: that many positives from one source in one run stays under the burst limit (12).
MAX_VISITS = 6


class FeedExhausted(RuntimeError):
    """The store has too few persons for this many records without a refusal or hold."""


def recent_streaks(url: str, now: datetime) -> set[str]:
    """Public ids of the subjects with a streak from the bank that occurred within a
    streak's period (and the feed's dating of its own) before ``now``, in the store at
    ``url``. Retracted ones count too: excluding a few more persons is harmless."""
    cutoff = now - timedelta(days=STREAK_SPACING_DAYS + STREAK_AGE_DAYS + 2)
    query = text(
        "SELECT DISTINCT s.public_id FROM records r "
        "JOIN subjects s ON s.id = r.subject_id "
        "JOIN sources o ON o.id = r.source_id "
        "WHERE o.code = :source AND r.record_type = :streak AND r.occurred_at > :cutoff"
    ).bindparams(bindparam("cutoff"))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                query, {"source": SOURCE, "streak": STREAK, "cutoff": to_micros(cutoff)}
            )
            return {str(r[0]) for r in rows}
    finally:
        engine.dispose()


class BankFeed:
    """The bank's records for one store, batch by batch (thread-safe)."""

    def __init__(self, ids: list[str], busy: set[str], now: datetime, seed: int) -> None:
        self.ids = ids
        self.now = now
        self.seed = seed
        rng = np.random.default_rng([seed, 13])
        eligible = np.array([i for i, s in enumerate(ids) if s not in busy], dtype=np.int64)
        self.streak_subjects = rng.permutation(eligible)
        self.order = rng.permutation(len(ids))
        self.codes = [c for c, _ in BANK_TYPES]
        self.weights = [w for _, w in BANK_TYPES]
        self._lock = threading.Lock()
        self._batches = 0
        self._streaks = 0
        self._others = 0

    @classmethod
    def of_store(cls, url: str, ids: list[str], now: datetime, seed: int) -> BankFeed:
        return cls(ids, recent_streaks(url, now), now, seed)

    @property
    def sent(self) -> dict[str, int]:
        return {"batches": self._batches, "streaks": self._streaks, "others": self._others}

    def batch(self, size: int, prefix: str) -> list[dict[str, Any]]:
        """The next ``size`` records, source references ``{prefix}-{batch}-{k}``."""
        with self._lock:
            b = self._batches
            rng = np.random.default_rng([self.seed, 17, b])
            which = rng.choice(len(self.codes), size=size, p=self.weights)
            streaks = int((which == 0).sum())
            s0, o0 = self._streaks, self._others
            if s0 + streaks > self.streak_subjects.size:
                raise FeedExhausted(
                    f"every one of the {self.streak_subjects.size:,} persons who may end a "
                    "streak got one: use more subjects or a shorter run"
                )
            if o0 + size - streaks > MAX_VISITS * len(self.ids):
                raise FeedExhausted(
                    f"every person got {MAX_VISITS} records: use more subjects or a shorter run"
                )
            self._batches, self._streaks, self._others = b + 1, s0 + streaks, o0 + size - streaks
        streak_ages = rng.integers(86_400, STREAK_AGE_DAYS * 86_400, size=size)
        other_ages = rng.integers(86_400, OTHER_AGE_DAYS * 86_400, size=size)
        records: list[dict[str, Any]] = []
        s, o = s0, o0
        n = len(self.ids)
        for k in range(size):
            code = self.codes[int(which[k])]
            if code == STREAK:
                subject, age = int(self.streak_subjects[s]), int(streak_ages[k])
                s += 1
            else:
                subject, age = int(self.order[o % n]), int(other_ages[k])
                o += 1
            ref = f"{prefix}-{b}-{k}"
            records.append(
                {
                    "source_ref": ref,
                    "subject_id": self.ids[subject],
                    "record_type": code,
                    "occurred_at": (self.now - timedelta(seconds=age)).isoformat(),
                    "decision_ref": f"HCB-DEF-{ref}" if code.endswith("default") else None,
                }
            )
        return records
