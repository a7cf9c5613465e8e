"""The checks that need a whole rulebook, each yielding located problems.

Beyond what the typed model validates item by item, a book must weigh only conduct in
the catalogues of domains and statutes (:mod:`credence.rulebook.domains`), must not
speak of a protected ground (:mod:`credence.rulebook.redlines`), must have unique codes,
due process for negative records (a final decision or registered default behind each),
references to record types it defines, services bound to their purpose's categories,
a scale and tiers in order, complete tables whose retention limits hold, and services
whose outcomes make sense. :data:`CHECKS` lists them in the order they run;
:data:`PREDATING_DOMAINS_CHECKS` are those of an edition published before record types
declared their domains.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from credence.rulebook.domains import DOMAINS, STATUTES
from credence.rulebook.languages import check_languages
from credence.rulebook.model import (
    Category,
    OutageMode,
    Outcome,
    RecordType,
    Service,
    ServiceKind,
    Severity,
    Tier,
)
from credence.rulebook.parts import Parts
from credence.rulebook.problems import Loc, Locator, Problem
from credence.rulebook.purposes import PURPOSES
from credence.rulebook.redlines import prohibited_grounds, third_party_term

__all__ = ["AUTHORING_CHECKS", "CHECKS", "PREDATING_DOMAINS_CHECKS"]


def _show(number: float) -> str:
    return f"{number:g}"


def _check_prohibited(parts: Parts, locate: Locator) -> Iterator[Problem]:
    def fields(item: RecordType | Service) -> list[tuple[str, str]]:
        out = [("code", item.code), ("name", item.name), ("description", item.description)]
        # The Chinese texts speak to the same readers: the same lines apply to them.
        out += [
            (f, t)
            for f, t in (("name_zh", item.name_zh), ("description_zh", item.description_zh))
            if t
        ]
        if isinstance(item, RecordType) and item.quantity is not None:
            out.append(("quantity", item.quantity.unit))
        return out

    items: list[tuple[Loc, str, RecordType | Service]] = [
        *((("record_types", i), "record type", rt) for i, rt in parts.record_types),
        *((("services", i), "service", s) for i, s in parts.services),
    ]
    for path, noun, item in items:
        verb = "scores" if noun == "record type" else "decides on"
        reported: set[str] = set()
        for field, text in fields(item):
            for ground, matched in prohibited_grounds(text):
                if ground in reported:
                    continue
                reported.add(ground)
                yield Problem(
                    locate((*path, field)),
                    f"{noun} {item.code!r} is about {ground} (matched {matched!r}); "
                    f"Credence never {verb} it",
                )
        if isinstance(item, Service) and item.kind is ServiceKind.RESTRICTION:
            for field, text in fields(item):
                reached = third_party_term(text)
                if reached is not None:
                    yield Problem(
                        locate((*path, field)),
                        f"service {item.code!r} reaches a third party (matched "
                        f"{reached!r}); Credence restricts only the subject itself",
                    )
                    break


def _check_domains(parts: Parts, locate: Locator) -> Iterator[Problem]:
    known = ", ".join(DOMAINS)
    for i, rt in parts.record_types:
        path: Loc = ("record_types", i)
        domain = DOMAINS.get(rt.domain) if rt.domain is not None else None
        if rt.domain is None:
            yield Problem(
                locate((*path, "domain")),
                f"record type {rt.code!r} names no conduct domain; every record type "
                f"declares the domain it belongs to (domain = one of: {known})",
            )
        elif domain is None:
            yield Problem(
                locate((*path, "domain")),
                f"record type {rt.code!r} claims domain {rt.domain!r}, which is not a "
                f"conduct domain Credence weighs (domains: {known})",
            )
        allowed = ""
        if domain is not None:
            allowed = f" (domain {domain.code!r} allows: {', '.join(domain.statutes)})"
        if rt.statute is None:
            yield Problem(
                locate((*path, "statute")),
                f"record type {rt.code!r} names no statute; every record type declares the "
                f"statute that grounds it{allowed}",
            )
        elif rt.statute not in STATUTES:
            yield Problem(
                locate((*path, "statute")),
                f"record type {rt.code!r} cites statute {rt.statute!r}, which is not in the "
                f"statute catalogue{allowed}",
            )
        elif domain is not None and rt.statute not in domain.statutes:
            yield Problem(
                locate((*path, "statute")),
                f"record type {rt.code!r} cites statute {rt.statute!r}, which does not "
                f"ground domain {domain.code!r} (it allows: {', '.join(domain.statutes)})",
            )
        if domain is None:
            continue
        if domain.positive_only and rt.negative:
            yield Problem(
                locate((*path, "points")),
                f"record type {rt.code!r} takes points away ({_show(rt.points)}) in domain "
                f"{domain.code!r}, which only ever adds points: not doing a voluntary act is "
                "never held against anyone",
            )
        if domain.subject_kinds is not None:
            outside = [k.value for k in rt.subject_kinds if k not in domain.subject_kinds]
            if outside:
                covered = ", ".join(sorted(k.value for k in domain.subject_kinds))
                yield Problem(
                    locate((*path, "subject_kinds")),
                    f"record type {rt.code!r} applies to {', '.join(outside)}, but domain "
                    f"{domain.code!r} covers the conduct of {covered} subjects only",
                )


def _check_duplicates(parts: Parts, locate: Locator) -> Iterator[Problem]:
    nouns = {"record_types": "record type", "services": "service", "tiers": "tier"}
    for key, noun in nouns.items():
        first: dict[str, int] = {}
        for i, code in parts.codes[key]:
            if code not in first:
                first[code] = i
                continue
            j = first[code]
            line = locate.line((key, j))
            at = f"{key}[{j}]" + (f", line {line}" if line is not None else "")
            yield Problem(
                locate((key, i, "code")),
                f"duplicate {noun} code {code!r} (first defined at {at})",
            )


def _check_due_process(parts: Parts, locate: Locator) -> Iterator[Problem]:
    for i, rt in parts.record_types:
        if rt.negative and not rt.evidence.requires_decision_reference:
            yield Problem(
                locate(("record_types", i, "evidence")),
                f"record type {rt.code!r} takes points away ({_show(rt.points)}) but its "
                f"evidence {rt.evidence.value!r} is not a final decision or a registered "
                "default; a negative record needs a court judgment, enforcement order, "
                "administrative penalty or default registration",
            )


def _check_references(parts: Parts, locate: Locator) -> Iterator[Problem]:
    for i, rt in parts.record_types:
        for code in rt.lifted_by:
            if code not in parts.declared_types:
                yield Problem(
                    locate(("record_types", i, "lifted_by")),
                    f"record type {rt.code!r} is lifted by {code!r}, which the rulebook "
                    "does not define",
                )


def _check_purpose_binding(parts: Parts, locate: Locator) -> Iterator[Problem]:
    types = {rt.code: rt for _, rt in parts.record_types}
    for i, service in parts.services:
        purpose = PURPOSES.get(service.purpose)
        if purpose is None:
            yield Problem(
                locate(("services", i, "purpose")),
                f"service {service.code!r} declares purpose {service.purpose!r}, which is "
                f"not in the purpose catalogue (known: {', '.join(sorted(PURPOSES))})",
            )
        else:
            allowed = ", ".join(sorted(purpose.categories))
            for category in service.categories:
                if category not in purpose.categories:
                    yield Problem(
                        locate(("services", i, "categories")),
                        f"service {service.code!r} reads category {category.value!r} outside "
                        f"its purpose {purpose.code!r} (allows: {allowed})",
                    )
        for r, rule in enumerate(service.rules):
            for field in ("active_records", "no_active_records"):
                for code in getattr(rule, field):
                    path: Loc = ("services", i, "rules", r, field)
                    if code not in parts.declared_types:
                        yield Problem(
                            locate(path),
                            f"service {service.code!r} rule {r + 1} names record type "
                            f"{code!r}, which the rulebook does not define",
                        )
                    elif code in types and types[code].category not in service.categories:
                        served = ", ".join(c.value for c in service.categories)
                        yield Problem(
                            locate(path),
                            f"service {service.code!r} rule {r + 1} reads record type "
                            f"{code!r} of category {types[code].category.value!r}, outside "
                            f"the service's categories ({served})",
                        )


def _check_scale_and_tiers(parts: Parts, locate: Locator) -> Iterator[Problem]:
    scale = parts.scale
    if scale is not None and not scale.min < scale.base < scale.max:
        yield Problem(
            locate(("scale",)),
            "the scale must have min < base < max (got min "
            f"{_show(scale.min)}, base {_show(scale.base)}, max {_show(scale.max)})",
        )
    previous: Tier | None = None
    for i, tier in parts.tiers:
        if previous is not None and tier.min_score >= previous.min_score:
            yield Problem(
                locate(("tiers", i, "min_score")),
                f"tier {tier.code!r} (min_score {_show(tier.min_score)}) is not below tier "
                f"{previous.code!r} (min_score {_show(previous.min_score)}); tiers are "
                "listed highest first with strictly descending min_score",
            )
        if i == parts.tiers[-1][0] and tier.conditional:
            yield Problem(
                locate(("tiers", i)),
                f"tier {tier.code!r} is the lowest tier and sets conditions; the lowest "
                "tier holds every subject not placed higher, so it can have none",
            )
        if scale is not None and not scale.min <= tier.min_score <= scale.max:
            yield Problem(
                locate(("tiers", i, "min_score")),
                f"tier {tier.code!r} (min_score {_show(tier.min_score)}) lies outside the "
                f"scale ({_show(scale.min)} to {_show(scale.max)})",
            )
        previous = tier


def _check_tables(parts: Parts, locate: Locator) -> Iterator[Problem]:
    if parts.categories is not None:
        missing = [c.value for c in Category if c not in parts.categories]
        if missing:
            yield Problem(
                locate(("categories",)),
                "the categories table must describe all four categories; missing: "
                + ", ".join(missing),
            )
    classes = parts.severity_classes
    if classes is None:
        return
    missing = [s.value for s in Severity if s not in classes]
    if missing:
        yield Problem(
            locate(("severity_classes",)),
            "severity_classes must define minor, general and serious; missing: "
            + ", ".join(missing),
        )
    for severity, cls in classes.items():
        if cls.repair_after_days > cls.max_days:
            yield Problem(
                locate(("severity_classes", severity.value, "repair_after_days")),
                f"severity class {severity.value!r} allows repair only after "
                f"{cls.repair_after_days} days, later than its max_days ({cls.max_days})",
            )
    for i, rt in parts.record_types:
        limit = classes.get(rt.severity)
        if rt.negative and limit is not None and rt.retention_days > limit.max_days:
            yield Problem(
                locate(("record_types", i, "retention_days")),
                f"record type {rt.code!r} is kept {_show(rt.retention_days)} days, longer "
                f"than its severity class {rt.severity.value!r} allows ({limit.max_days} "
                "days)",
            )


_SCORE_TOO_LOW = re.compile(r"\bscore\b.{0,20}\btoo low\b", re.IGNORECASE)


def _check_services(parts: Parts, locate: Locator) -> Iterator[Problem]:
    for i, service in parts.services:
        if service.kind is ServiceKind.RESTRICTION and service.on_outage is OutageMode.CLOSED:
            yield Problem(
                locate(("services", i, "on_outage")),
                f"service {service.code!r} is a restriction and cannot fail closed: nobody "
                "is restricted because a source is silent; use on_outage = 'open'",
            )
        if service.default is Outcome.REWARD:
            yield Problem(
                locate(("services", i, "default")),
                f"service {service.code!r} cannot default to 'reward': a reward needs "
                "terms, which only a rule carries",
            )
        for r, rule in enumerate(service.rules):
            path: Loc = ("services", i, "rules", r)
            if rule.outcome is Outcome.REWARD:
                if service.kind is ServiceKind.RESTRICTION:
                    yield Problem(
                        locate((*path, "outcome")),
                        f"service {service.code!r} is a restriction; its rule {r + 1} "
                        "cannot grant a reward",
                    )
                elif not (rule.terms or "").strip():
                    yield Problem(
                        locate((*path, "terms")),
                        f"service {service.code!r} rule {r + 1} grants a reward without "
                        "terms; say what the subject gets",
                    )
            if rule.outcome is Outcome.DENY and _SCORE_TOO_LOW.search(rule.reason):
                yield Problem(
                    locate((*path, "reason")),
                    f"service {service.code!r} rule {r + 1} gives 'score too low' as a "
                    "reason; name the specific records or behaviour instead",
                )


def _check_tier_descriptions(parts: Parts, locate: Locator) -> Iterator[Problem]:
    for i, tier in parts.tiers:
        if tier.description:
            yield Problem(
                locate(("tiers", i, "description")),
                f"tier {tier.code!r} has a written description; a tier's description is "
                "generated from its threshold and conditions, so remove it (state what "
                "the tier requires with no_negative_at_or_above / max_negative_records)",
            )


Check = Callable[[Parts, Locator], Iterator[Problem]]

CHECKS: tuple[Check, ...] = (
    _check_domains,
    _check_prohibited,
    _check_duplicates,
    _check_due_process,
    _check_references,
    _check_purpose_binding,
    _check_scale_and_tiers,
    _check_tables,
    _check_services,
    check_languages,
)

#: The checks of an edition published before record types declared their domain and
#: statute: every check but that one (such an edition still reads; see
#: :func:`credence.rulebook.loader.load_text`).
PREDATING_DOMAINS_CHECKS: tuple[Check, ...] = tuple(c for c in CHECKS if c is not _check_domains)

#: The checks only a new book gets, not a published edition read back: those of rules
#: that came after editions were published (a published edition stays readable).
AUTHORING_CHECKS: tuple[Check, ...] = (_check_tier_descriptions,)
