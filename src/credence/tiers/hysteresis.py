"""Tier hysteresis: a subject hovering at a boundary does not flap between two tiers.

A subject moves up into a tier only once their total reaches the tier's cut-off plus the
rulebook's ``tier_hysteresis`` band, and moves down out of a tier only once their total
falls below its cut-off minus the band. Within the band the previous tier stands. With a
band of zero this is exactly the tier of the total
(:func:`credence.scoring.formula.tier_of`).
"""

from __future__ import annotations

from credence.rulebook.model import Rulebook
from credence.scoring.formula import tier_of


def rank(book: Rulebook, tier: str) -> int:
    """0 for the highest tier, increasing downwards; unknown tiers rank lowest."""
    for i, t in enumerate(book.tiers):
        if t.code == tier:
            return i
    return len(book.tiers)


def next_tier(book: Rulebook, previous: str | None, total: float) -> str:
    """The tier to show for ``total`` given the tier shown until now."""
    if previous is None:
        return tier_of(total, book)
    band = book.tier_hysteresis
    up = tier_of(total - band, book)  # the best tier cleared by more than the band
    if rank(book, up) < rank(book, previous):
        return up
    down = tier_of(total + band, book)  # the best tier still within the band
    if rank(book, down) > rank(book, previous):
        return down
    return previous
