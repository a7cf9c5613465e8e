"""Tier hysteresis: a subject hovering at a boundary does not flap between two tiers.

A subject moves up into a tier only once their total reaches the tier's cut-off plus the
rulebook's ``tier_hysteresis`` band, and moves down out of a tier only once their total
falls below its cut-off minus the band. Within the band the previous tier stands. With a
band of zero this is exactly the tier of the score
(:func:`credence.scoring.formula.tier_of`).

The band softens thresholds only, never a tier's conditions: a subject who no longer
meets a condition of the tier shown (a serious negative record now weighs against them,
say) leaves it at once, and moves into a tier only while meeting its conditions.
"""

from __future__ import annotations

from collections.abc import Sequence

from credence.rulebook.model import Rulebook
from credence.scoring.formula import meets, tier_of


def rank(book: Rulebook, tier: str) -> int:
    """0 for the highest tier, increasing downwards; unknown tiers rank lowest."""
    for i, t in enumerate(book.tiers):
        if t.code == tier:
            return i
    return len(book.tiers)


def next_tier(book: Rulebook, previous: str | None, total: float, against: Sequence[float]) -> str:
    """The tier to show for ``total`` given the tier shown until now; ``against``: how
    many negative records of each severity (least severe first) weigh against the
    subject."""
    if previous is None or not _meets(book, previous, against):
        return tier_of(total, book, against)
    band = book.tier_hysteresis
    up = tier_of(total - band, book, against)  # the best tier cleared by more than the band
    if rank(book, up) < rank(book, previous):
        return up
    down = tier_of(total + band, book, against)  # the best tier still within the band
    if rank(book, down) > rank(book, previous):
        return down
    return previous


def _meets(book: Rulebook, tier: str, against: Sequence[float]) -> bool:
    """Whether a subject meets the conditions of ``tier`` (an unknown tier: no)."""
    found = next((t for t in book.tiers if t.code == tier), None)
    return found is not None and meets(found, against)
