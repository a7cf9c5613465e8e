"""A literal transcription of RFC 9162 §2.1, for tests only.

Slow on purpose: every function is the RFC's recursive definition over the list of leaf
*inputs* (not hashes), with no storage and no shortcuts, so it can be read against the
RFC line by line. :mod:`credence.translog.merkle` is checked against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _k(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) (§2.1.1)."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), the inclusion proof of leaf ``m`` (§2.1.3.1)."""
    n = len(d)
    if not 0 <= m < n:
        raise ValueError("m must be a leaf of D")
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]), the consistency proof from the tree of ``m`` leaves (§2.1.4.1).

    The RFC defines it for 0 < m < n as SUBPROOF(m, D[n], true); the same formula gives
    the empty proof for m = n (SUBPROOF(m, D[m], true) is empty). There is none for m = 0.
    """
    if not 0 < m <= len(d):
        raise ValueError("PROOF(m, D[n]) needs 0 < m ≤ n")
    return _subproof(m, d, True)


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), mth(d[:k])]


__all__ = ["mth", "path", "proof"]
