"""Opaque ids (random; record ids time-ordered) and instants as exact microseconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from credence.clock import from_micros, to_micros
from credence.ids import new_id, new_ordered_ids


def test_ordered_ids_sort_by_the_time_they_were_drawn_and_stay_unguessable() -> None:
    first = new_ordered_ids("rec", 1_000)
    time.sleep(0.002)
    second = new_ordered_ids("rec", 1_000)
    assert max(first) < min(second)
    for value in first + second:
        assert re.fullmatch(r"rec_[0-9a-f]{13}[0-9a-f]{20}", value)
        assert len(value) <= 40  # the column's width
    assert len(set(first + second)) == 2_000
    # The 80 random bits differ between ids drawn together.
    assert len({value[-20:] for value in first}) == 1_000
    stamp = int(first[0][4:17], 16)
    assert abs(stamp - time.time_ns() // 1000) < 60_000_000


def test_random_ids_have_80_bits_each() -> None:
    ids = [new_id("sub") for _ in range(500)]
    assert all(re.fullmatch(r"sub_[0-9a-f]{20}", i) for i in ids)
    assert len(set(ids)) == 500


@given(
    us=st.integers(min_value=-(10**16), max_value=10**16),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_to_micros_is_exact_in_any_zone_and_for_naive_utc(us: int, offset_minutes: int) -> None:
    at = from_micros(us)
    zone = timezone(timedelta(minutes=offset_minutes))
    assert to_micros(at) == us
    assert to_micros(at.astimezone(zone)) == us
    assert to_micros(at.replace(tzinfo=None)) == us  # naive values are UTC


def test_to_micros_known_values() -> None:
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_micros(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1_767_225_600_000_001
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
