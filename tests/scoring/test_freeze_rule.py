"""The freeze of outages, as :mod:`credence.scoring.counting` writes it once: for any
instants, a record's age is never negative once it occurred, is its plain age when its
source is not in outage (or the edition never freezes), is counted to the outage's start
for at most the maximum, and one record's age has the same bits as a column's."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from credence.clock import MICROS_PER_DAY
from credence.scoring import counting

#: Instants within 2^52 microseconds of the epoch (every float conversion exact).
INSTANT = st.integers(min_value=0, max_value=1 << 52)


@given(
    at=INSTANT,
    occurred=INSTANT,
    since=st.none() | INSTANT,
    max_days=st.none() | st.integers(min_value=1, max_value=365),
)
def test_the_frozen_age(at: int, occurred: int, since: int | None, max_days: int | None) -> None:
    start, end = counting.freeze(at, since, max_days)
    frozen = int(counting.frozen(occurred, start, end))
    age = counting.age_of(at, occurred, frozen)
    plain = counting.age_of(at, occurred)
    assert frozen >= 0
    if since is None or max_days is None or since >= at:
        assert (start, end, frozen) == (at, at, 0)
        assert age == plain
        return
    assert start == since
    assert end == min(at, since + max_days * MICROS_PER_DAY)
    if occurred <= at:
        assert age >= 0
        assert frozen <= max_days * MICROS_PER_DAY
    if occurred <= since:
        # Counted to the outage's start while within the maximum; past it, the maximum
        # younger than its plain age.
        expected = since - occurred if at <= end else at - occurred - max_days * MICROS_PER_DAY
        assert at - occurred - frozen == expected
    # One record's age has the bits of the column's.
    column = counting.age_days(
        at, np.array([occurred]), counting.frozen(np.array([occurred]), start, end)
    )
    assert column[0] == age
