"""What a score or a decision knows it is missing: per category, the sources in outage.

A source in outage (:mod:`credence.ledger.freshness`: silent past the cadence and grace
it declared for a record type) leaves a hole in the categories of the types it stopped
reporting. A score and a decision say so, per category they read: **complete**, or the
sources in outage that report on it, since when, and which of their types are silent.

A service declares in the rulebook what it does with an incomplete category
(:class:`~credence.rulebook.model.OutageMode`), and the decision says which applied
and why (:func:`handling`):

* **open**: the decision is taken on the records held (those of the silent source stop
  decaying, see :mod:`credence.scoring.counting`), and names what is missing;
* **closed** (reward services only; the loader refuses a restriction that fails closed):
  no reward is granted while a category it reads is incomplete. The outcome is then the
  service's default, with the outage as the specific reason, and it says when the
  service can answer again: once the source reports.

Nothing here names a subject: sources, types and instants only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credence.ledger.freshness import Outage
from credence.rulebook.model import CATEGORIES, Category, OutageMode, Outcome, Rulebook, Service
from credence.wording import Coded, coded, render


@dataclass(frozen=True)
class Missing:
    """A source in outage that reports on a category: since when, and its silent types
    of that category."""

    source: str
    source_name: str
    since: datetime
    record_types: tuple[str, ...]


@dataclass(frozen=True)
class Completeness:
    """One category: complete, or the sources in outage that report on it."""

    category: Category
    missing: tuple[Missing, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing


def per_category(
    outages: Mapping[int, Outage], book: Rulebook, categories: Iterable[Category] = CATEGORIES
) -> tuple[Completeness, ...]:
    """The completeness of each of ``categories`` (in the rulebook's order of
    categories), given the sources in outage (by source id) as of the instant scored: a
    source is missing from a category when one of its types in outage is of it."""
    wanted = set(categories)
    by_category: dict[Category, list[Missing]] = {c: [] for c in CATEGORIES if c in wanted}
    for outage in sorted(outages.values(), key=lambda o: (o.since, o.code)):
        silent: dict[Category, list[str]] = {}
        for code in outage.record_types:
            rt = book.record_type(code)
            if rt is not None and rt.category in by_category:
                silent.setdefault(rt.category, []).append(code)
        for category, types in silent.items():
            by_category[category].append(
                Missing(outage.code, outage.name, outage.since, tuple(types))
            )
    return tuple(Completeness(c, tuple(m)) for c, m in by_category.items())


@dataclass(frozen=True)
class Handling:
    """How a decision met an incomplete category: the service's mode, whether it changed
    the outcome, and the plain-language account the decision carries (``text``, in
    English; ``reason``, the same as a code with parameters: :mod:`credence.wording`)."""

    mode: OutageMode
    changed_outcome: bool
    text: str
    reason: Coded


def _missing(book: Rulebook, c: Completeness) -> dict[str, Any]:
    """One incomplete category as the ``missing`` parameter of an outage reason."""
    return {
        "category": c.category.value,
        "text": book.categories.get(c.category, c.category.value),
        "sources": [
            {"name": m.source_name, "types": list(m.record_types), "since": f"{m.since:%Y-%m-%d}"}
            for m in c.missing
        ],
    }


def _handled(mode: OutageMode, changed: bool, reason: Coded) -> Handling:
    return Handling(mode, changed, render(reason["code"], reason["params"]), reason)


def handling(
    service: Service, book: Rulebook, completeness: Iterable[Completeness], outcome: Outcome
) -> Handling | None:
    """How ``service`` handles the incomplete categories among ``completeness`` (None
    when all are complete), given the outcome its rules reached on the records held:
    failing closed turns a reward into the service's default; failing open, or a
    closed service that grants no reward anyway, leaves the outcome as it is."""
    incomplete = [c for c in completeness if not c.complete]
    if not incomplete:
        return None
    missing = [_missing(book, c) for c in incomplete]
    limit = book.outages.max_freeze_days if book.outages is not None else None
    named = {"code": service.code, "name": service.name}
    if service.on_outage is OutageMode.CLOSED and outcome is Outcome.REWARD:
        return _handled(
            OutageMode.CLOSED,
            True,
            coded("outage_incomplete_closed_changed", missing=missing, service=named),
        )
    if service.on_outage is OutageMode.CLOSED:
        return _handled(
            OutageMode.CLOSED,
            False,
            coded("outage_incomplete_closed", missing=missing, service=named, freeze_days=limit),
        )
    return _handled(
        OutageMode.OPEN,
        False,
        coded("outage_incomplete_open", missing=missing, service=named, freeze_days=limit),
    )
