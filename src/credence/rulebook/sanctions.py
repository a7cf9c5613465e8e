"""Which records restrict someone: the one definition.

A change that ends such a record's effect (a source's retraction, a dispute answered
``deleted`` or ``corrected``) lifts a sanction, and takes effect only once a second pair
of eyes confirms it (:mod:`credence.ledger.lifting`). A record type *restricts* when it
is negative (its points take away) and at least one of these holds, in the rulebook in
force:

* its category is ``judicial`` (court judgments and their enforcement);
* its severity is ``serious``;
* a rule of a ``court_ordered`` service names it in ``active_records`` (the rule that
  denies air travel to a listed judgment defaulter, say).

A positive record never restricts, nor does a minor or general negative record of
another category that no court-ordered rule names (a traffic ticket, a loan default).
The definition is by type: whether one record restricts someone *now* also asks whether
its effect has ended already (:func:`credence.ledger.lifting.lifts_a_sanction`).
"""

from __future__ import annotations

from credence.rulebook.model import Category, RecordType, Rulebook, Severity


def court_ordered_types(rulebook: Rulebook) -> frozenset[str]:
    """The record types a rule of a court-ordered service names in ``active_records``."""
    return frozenset(
        code
        for service in rulebook.services
        if service.court_ordered
        for rule in service.rules
        for code in rule.active_records
    )


def restricting(rt: RecordType, rulebook: Rulebook) -> bool:
    """Whether records of type ``rt`` restrict someone under ``rulebook`` (see the
    module's docstring)."""
    if not rt.negative:
        return False
    return (
        rt.category is Category.JUDICIAL
        or rt.severity is Severity.SERIOUS
        or rt.code in court_ordered_types(rulebook)
    )


def restricting_types(rulebook: Rulebook) -> frozenset[str]:
    """Every record type of ``rulebook`` whose records restrict someone."""
    return frozenset(rt.code for rt in rulebook.record_types if restricting(rt, rulebook))


def restricts(rulebook: Rulebook, record_type: str | None) -> bool:
    """Whether a record of type ``record_type`` restricts someone under ``rulebook``; a
    type the rulebook does not know (or an erased record's, None) does not."""
    rt = rulebook.record_type(record_type) if record_type is not None else None
    return rt is not None and restricting(rt, rulebook)
