"""Opaque public identifiers (``sub_…``, ``rec_…``, ``inq_…``): random, unguessable and
unrelated to any national identifier, so they are safe in URLs and logs."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
