"""Typed model of a rulebook.

A rulebook is a human-readable TOML file (see ``default.toml``) loaded by
:mod:`credence.rulebook.loader` into these frozen models. Unknown keys are refused
(``extra="forbid"``); cross-field checks that need the whole book (purpose binding,
domains and statutes, the lines Credence does not cross, duplicate codes) live in the
loader so each problem can be reported with its location.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from credence.identifiers import SubjectKind


class Category(StrEnum):
    """The four areas every record type belongs to (exactly one)."""

    GOVERNMENT_AFFAIRS = "government_affairs"
    COMMERCIAL = "commercial"
    SOCIAL = "social"
    JUDICIAL = "judicial"


#: Fixed column order of per-category arrays in the scoring kernels.
CATEGORIES: tuple[Category, ...] = tuple(Category)
CATEGORY_INDEX: dict[Category, int] = {c: i for i, c in enumerate(CATEGORIES)}
CATEGORY_CODES: frozenset[str] = frozenset(c.value for c in CATEGORIES)


class Severity(StrEnum):
    """Severity class of a record type (credit repair measures, 2023/2026)."""

    MINOR = "minor"
    GENERAL = "general"
    SERIOUS = "serious"


class EvidenceKind(StrEnum):
    """What backs a record. Negative records need a decision by a competent authority."""

    COURT_JUDGMENT = "court_judgment"
    ENFORCEMENT_ORDER = "enforcement_order"
    ADMINISTRATIVE_PENALTY = "administrative_penalty"
    DEFAULT_REGISTRATION = "default_registration"
    SOURCE_ATTESTATION = "source_attestation"
    CERTIFICATE = "certificate"

    @property
    def requires_decision_reference(self) -> bool:
        return self in DECISION_EVIDENCE


DECISION_EVIDENCE = frozenset(
    {
        EvidenceKind.COURT_JUDGMENT,
        EvidenceKind.ENFORCEMENT_ORDER,
        EvidenceKind.ADMINISTRATIVE_PENALTY,
        EvidenceKind.DEFAULT_REGISTRATION,
    }
)


class ServiceKind(StrEnum):
    RESTRICTION = "restriction"
    REWARD = "reward"


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REWARD = "reward"


class OutageMode(StrEnum):
    """What a service does when a category it reads has a source in outage (silent past
    its declared cadence and grace): ``open`` decides on the records held, stating what
    is missing; ``closed`` grants no reward until the category is complete again (only a
    reward service may fail closed: nobody is restricted because data is missing)."""

    OPEN = "open"
    CLOSED = "closed"


class Language(StrEnum):
    """A language a rulebook edition is written in."""

    EN = "en"
    ZH_CN = "zh-CN"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(Strict):
    """A letter tier: subjects whose total is at least ``min_score`` and who meet the
    tier's conditions (tiers are listed highest first; a subject is in the highest tier
    whose threshold and conditions they meet).

    A condition looks at the negative records that weigh against the subject at the
    instant (they count, are within their retention and take points away): none of
    severity ``no_negative_at_or_above`` or worse, at most ``max_negative_records`` of
    any severity. The lowest tier has none: it holds everyone else. A tier's public
    description is generated from its threshold and conditions
    (:meth:`Rulebook.tier_description`), never written by hand.
    """

    code: str = Field(min_length=1, max_length=8)
    min_score: float
    no_negative_at_or_above: Severity | None = None
    max_negative_records: int | None = Field(default=None, ge=0)
    #: Free text, only in editions published before descriptions were generated: read
    #: back so that they stay readable, never shown (the loader refuses it in a new book).
    description: str = ""

    @property
    def conditional(self) -> bool:
        return self.no_negative_at_or_above is not None or self.max_negative_records is not None


#: Severities from the least to the most severe (the order tier conditions compare in).
SEVERITIES: tuple[Severity, ...] = (Severity.MINOR, Severity.GENERAL, Severity.SERIOUS)
SEVERITY_INDEX: dict[Severity, int] = {s: i for i, s in enumerate(SEVERITIES)}


class SeverityClass(Strict):
    """Periods a severity class sets: repair possible after ``repair_after_days``,
    effect ends by ``max_days`` at the latest."""

    repair_after_days: int = Field(ge=0)
    max_days: int = Field(gt=0)
    description: str = ""


class Quantity(Strict):
    """A record type measured in units: points are per unit, up to ``max_units``."""

    unit: str = Field(min_length=1)
    max_units: float = Field(gt=0)


class IntakeAction(StrEnum):
    """What intake does with a record a check stops: refuse it (the source is told why
    and nothing is stored) or hold it (stored, logged and shown on the file as held,
    counting nowhere until a reviewer releases it)."""

    REFUSE = "refuse"
    HOLD = "hold"


class BurstLimit(Strict):
    """Per source and subject: at most ``max_positive`` positive records received in
    any ``window_days`` (by the instant Credence received them, never by when they say
    they occurred: a backdated burst is still a burst)."""

    window_days: int = Field(gt=0)
    max_positive: int = Field(ge=0)
    action: IntakeAction = IntakeAction.HOLD


class NewIdentityLimit(Strict):
    """A subject registered less than ``days`` ago (by the instant of its registration,
    not by the age of its records) gains at most ``max_positive`` positive records from
    every source together; those beyond it get ``action``."""

    days: int = Field(gt=0)
    max_positive: int = Field(ge=0)
    action: IntakeAction = IntakeAction.HOLD


class Intake(Strict):
    """The rulebook's intake checks beyond a record's own validity.

    ``before_birth``: a record that occurred before its subject was born (persons, from
    the resident identity number) or founded (organisations, from their registration).
    ``spacing``: a record of a type with ``min_spacing_days`` that occurred closer than
    that to another of the same type from the same source about the same subject. Both
    always apply, to approved backfill runs too. ``burst`` and ``new_identity`` limit
    volume; records of an approved backfill run within its scope are exempt from them.
    No limit is set when a section is absent (editions published before intake checks).
    """

    before_birth: IntakeAction = IntakeAction.REFUSE
    spacing: IntakeAction = IntakeAction.REFUSE
    burst: BurstLimit | None = None
    new_identity: NewIdentityLimit | None = None


class Outages(Strict):
    """While a source is in outage, its records stop decaying: their age is counted up
    to the outage's start, for at most ``max_freeze_days``; after that they decay again.
    Editions without this section freeze nothing."""

    max_freeze_days: int = Field(gt=0, le=365)


class RecordType(Strict):
    """One kind of fact a source may report, and what it weighs."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    #: The name and description in Simplified Chinese (required by an edition that
    #: declares ``zh-CN`` among its ``languages``).
    name_zh: str | None = Field(default=None, min_length=1)
    description_zh: str | None = Field(default=None, min_length=1)
    category: Category
    #: The conduct domain the type belongs to and the statute that grounds it, from the
    #: catalogues in code (:mod:`credence.rulebook.domains`). Every record type of a new
    #: rulebook names both; only an edition published before they were declared may lack
    #: them (see :func:`credence.rulebook.loader.load_text`).
    domain: str | None = None
    statute: str | None = None
    subject_kinds: tuple[SubjectKind, ...] = Field(min_length=1)
    points: float
    half_life_days: float = Field(gt=0)
    retention_days: float = Field(gt=0)
    evidence: EvidenceKind
    severity: Severity
    quantity: Quantity | None = None
    #: Record types whose presence ends this one's restrictive effect (e.g. a
    #: judgment-satisfied record lifts a judgment-default record).
    lifted_by: tuple[str, ...] = ()
    #: Bounded returns: a subject's records of this type together move the score by at
    #: most this many points (up for a positive type, down for a negative one), however
    #: many there are. None: no bound of its own (its category's may still apply).
    max_points: float | None = Field(default=None, gt=0)
    #: For a type that reports a period (twelve months of on-time payments): two records
    #: of it from one source about one subject must have occurred at least this many days
    #: apart (see :class:`Intake`, ``spacing``). None: no spacing.
    min_spacing_days: float | None = Field(default=None, gt=0)

    @property
    def negative(self) -> bool:
        return self.points < 0


class Rule(Strict):
    """One rule of a service. All conditions present must hold for the rule to match;
    the first matching rule decides. Scores are over the service's categories only."""

    outcome: Outcome
    reason: str = Field(min_length=1, description="Plain-language reason shown to the subject.")
    reason_zh: str | None = Field(default=None, min_length=1)
    active_records: tuple[str, ...] = ()
    no_active_records: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    terms: str | None = None
    terms_zh: str | None = Field(default=None, min_length=1)


class Service(Strict):
    """A question a relying party may ask: may subject S use this service, on what terms?"""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    name: str = Field(min_length=1)
    name_zh: str | None = Field(default=None, min_length=1)
    kind: ServiceKind
    purpose: str
    description: str = Field(min_length=1)
    description_zh: str | None = Field(default=None, min_length=1)
    legal_basis: str = ""
    categories: tuple[Category, ...] = Field(min_length=1)
    subject_kinds: tuple[SubjectKind, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)
    default: Outcome
    warning_days: int = Field(default=0, ge=0)
    court_ordered: bool = False
    #: When a category the service reads has a source in outage (:class:`OutageMode`).
    on_outage: OutageMode = OutageMode.OPEN


PositiveCap = Annotated[float, Field(gt=0)]


class Scale(Strict):
    base: float
    min: float
    max: float


class Dispute(Strict):
    deadline_days: int = Field(default=30, gt=0)
    deadline_days_with_new_information: int = Field(default=45, gt=0)
    how_to: str = Field(min_length=1)
    how_to_zh: str | None = Field(default=None, min_length=1)


class Rulebook(Strict):
    """A complete, versioned rulebook."""

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    #: The languages the edition is written in: English always; ``zh-CN`` when it gives
    #: every name, description and reason in Simplified Chinese too (the ``*_zh`` fields,
    #: checked by the loader). Editions published before Chinese texts declare none.
    languages: tuple[Language, ...] = (Language.EN,)
    title: str
    title_zh: str | None = Field(default=None, min_length=1)
    region: str = "national"
    summary: str = ""
    summary_zh: str | None = Field(default=None, min_length=1)
    scale: Scale
    tiers: tuple[Tier, ...] = Field(min_length=2)
    tier_hysteresis: float = Field(default=5.0, ge=0)
    categories: dict[Category, str]
    categories_zh: dict[Category, str] = Field(default_factory=dict)
    #: Bounded returns per category: the positive records of a category together add at
    #: most this many points (negative records are not bounded by it).
    positive_caps: dict[Category, PositiveCap] = Field(default_factory=dict)
    severity_classes: dict[Severity, SeverityClass]
    dispute: Dispute
    #: Intake checks: plausibility, bursts, new identities (:class:`Intake`).
    intake: Intake = Field(default_factory=Intake)
    #: Outages are not behaviour: how long a silent source's records stop decaying
    #: (:class:`Outages`); None: they never stop (editions published before outages).
    outages: Outages | None = None
    record_types: tuple[RecordType, ...] = Field(min_length=1)
    services: tuple[Service, ...] = Field(min_length=1)

    @cached_property
    def record_type_index(self) -> dict[str, RecordType]:
        return {rt.code: rt for rt in self.record_types}

    @cached_property
    def service_index(self) -> dict[str, Service]:
        return {s.code: s for s in self.services}

    def record_type(self, code: str) -> RecordType | None:
        return self.record_type_index.get(code)

    def service(self, code: str) -> Service | None:
        return self.service_index.get(code)

    @property
    def chinese(self) -> bool:
        """Whether the edition gives its texts in Simplified Chinese too."""
        return Language.ZH_CN in self.languages

    def zh(self, kind: str, key: str) -> str | None:
        """The edition's Simplified Chinese word for a thing (None if it has none):
        ``service`` / ``record_type`` (key: the code), ``rule`` (key ``service:index``),
        ``how_to`` and ``category`` (key: the category's code). The look-up the
        renderer of coded messages takes (:data:`credence.wording.Names`)."""
        if kind == "service":
            service = self.service(key)
            return service.name_zh if service is not None else None
        if kind == "record_type":
            rt = self.record_type(key)
            return rt.name_zh if rt is not None else None
        if kind == "rule":
            code, _, index = key.partition(":")
            service = self.service(code)
            if service is None or not index.isdigit() or int(index) >= len(service.rules):
                return None
            return service.rules[int(index)].reason_zh
        if kind == "how_to":
            return self.dispute.how_to_zh
        if kind == "category":
            return self.categories_zh.get(Category(key)) if key in CATEGORY_CODES else None
        return None

    def tier_description_zh(self, code: str) -> str:
        """:meth:`tier_description` in Simplified Chinese."""
        for i, tier in enumerate(self.tiers):
            if tier.code == code:
                return tier_text_zh(tier, lowest=i == len(self.tiers) - 1)
        raise KeyError(code)

    def tier_description(self, code: str) -> str:
        """The public description of tier ``code``, generated from its threshold and
        conditions, so that it cannot say more or less than the rule enforces. (It names
        no upper bound: a subject above a higher tier's threshold who misses one of its
        conditions is placed in the highest tier whose conditions they meet.)"""
        for i, tier in enumerate(self.tiers):
            if tier.code == code:
                return tier_text(tier, lowest=i == len(self.tiers) - 1)
        raise KeyError(code)


def _points(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def tier_text(tier: Tier, *, lowest: bool) -> str:
    """The description of ``tier`` from its threshold and conditions."""
    if lowest:
        return "Every subject not placed in a higher tier."
    parts = [f"a total of at least {_points(tier.min_score)} points"]
    severity = tier.no_negative_at_or_above
    if severity is not None:
        worse = " or worse" if severity is not SEVERITIES[-1] else ""
        parts.append(f"no negative record of severity {severity.value}{worse} still counting")
    most = tier.max_negative_records
    if most == 0:
        parts.append("no negative record of any severity still counting")
    elif most is not None:
        plural = "record" if most == 1 else "records"
        parts.append(f"at most {most} negative {plural} still counting")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


#: Severities in Simplified Chinese (the words of the credit repair measures).
SEVERITY_ZH: dict[Severity, str] = {
    Severity.MINOR: "轻微",
    Severity.GENERAL: "一般",
    Severity.SERIOUS: "严重",
}


def tier_text_zh(tier: Tier, *, lowest: bool) -> str:
    """:func:`tier_text` in Simplified Chinese, from the same threshold and conditions."""
    if lowest:
        return "未列入更高等级的所有主体。"
    parts = [f"总分不低于 {_points(tier.min_score)} 分"]
    severity = tier.no_negative_at_or_above
    if severity is not None:
        worse = "及以上" if severity is not SEVERITIES[-1] else ""
        parts.append(f"没有仍在计分的{SEVERITY_ZH[severity]}{worse}失信记录")
    most = tier.max_negative_records
    if most == 0:
        parts.append("没有任何仍在计分的失信记录")
    elif most is not None:
        parts.append(f"仍在计分的失信记录不超过 {most} 条")
    return "；".join(parts) + "。"
