"""Opaque public identifiers (``sub_…``, ``rec_…``, ``inq_…``): random, unguessable and
unrelated to any national identifier, so they are safe in URLs and logs."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_ordered_ids(prefix: str, n: int) -> list[str]:
    """``n`` identifiers as unguessable as :func:`new_id`'s (the same 80 random bits
    each, drawn for all ``n`` in one call), led by the time they were drawn (13 hex
    digits of microseconds since the epoch), so that identifiers drawn later sort later.

    For tables that take millions of rows: a unique index on random keys is written all
    over with every batch (a page per row), one on time-ordered keys only at its end.
    The time is no secret: it is when the row was received, which its file shows.
    """
    stamp = f"{time.time_ns() // 1000:013x}"
    raw = secrets.token_hex(10 * n)
    return [f"{prefix}_{stamp}{raw[20 * i : 20 * i + 20]}" for i in range(n)]
