"""Opaque public identifiers (``sub_…``, ``rec_…``, ``inq_…``): random, unguessable and
unrelated to any national identifier, so they are safe in URLs and logs."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` identifiers like :func:`new_id`'s, from one draw of random bytes (a batch
    of records would otherwise pay a system call for each)."""
    raw = secrets.token_hex(10 * n)
    return [f"{prefix}_{raw[20 * i : 20 * i + 20]}" for i in range(n)]
