"""Purpose-bound decisions: may subject S use service X, and on what terms?

Purpose binding holds by construction: :func:`decide` reads from the ledger only the
record types of the categories the service declares (which the rulebook loader has
already checked against the service's purpose), so records of any other category never
reach :func:`evaluate`. Every decision is kept on the subject's file as an inquiry.

:func:`decide_with` is the one implementation; it reads and writes through a
:class:`DecisionStore`: :class:`SessionStore` (an ORM session: :func:`decide`) or
:class:`~credence.decisions.direct.DirectStore` (a DBAPI connection, for the API's
per-request path: :mod:`credence.decisions.direct`). :func:`ask` takes a request as a
relying party sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    bindparam,
    insert,
    select,
)
from sqlalchemy.orm import Session

from credence.access.policy import Action, Caller, authorize
from credence.access.tables import PartyService
from credence.db import core
from credence.decisions import restriction_warnings
from credence.decisions.tables import Inquiry
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence.identifiers import SubjectKind
from credence.ids import new_id
from credence.ledger import freshness, identities
from credence.ledger.freshness import Outage
from credence.ledger.registry import SubjectKey, get_subject
from credence.ledger.subject_file import (
    RecordView,
    subject_records,
)
from credence.ledger.tables import Subject
from credence.notifications.service import NoticeKind, notify
from credence.rulebook import store
from credence.rulebook.model import Outcome, Rule, Rulebook, Service, ServiceKind
from credence.rulebook.store import Edition
from credence.scoring.completeness import Completeness, Handling, handling, per_category
from credence.scoring.online import MAX_REASONS, Contribution, Score, category_types, compute
from credence.wording import Coded, coded, render, render_all


@dataclass(frozen=True)
class Decision:
    """The answer to a relying party, with everything needed to understand and contest it."""

    decision_id: str
    subject_id: str
    service: str
    service_name: str
    kind: ServiceKind
    purpose: str
    categories: tuple[str, ...]
    outcome: Outcome
    terms: str | None
    #: At most four specific reasons, in English; empty unless the outcome is adverse.
    reasons: list[str]
    #: Records the reasons cite (what the subject may dispute).
    cited_records: list[str]
    score: float
    score_min: float
    score_max: float
    as_of: datetime
    rulebook_version: str
    rulebook_hash: str
    how_to_dispute: str = ""
    dispute_deadline_days: int = 30
    warnings: list[str] = field(default_factory=list)
    #: Each category the service reads: complete, or the sources in outage on it.
    completeness: tuple[Completeness, ...] = ()
    #: How the service met an incomplete category (None: every one is complete).
    outage_handling: Handling | None = None
    #: The same reasons as codes with parameters (:mod:`credence.wording`), from which
    #: ``reasons`` is rendered; what the subject's file shows in their language.
    reason_codes: list[Coded] = field(default_factory=list)
    #: The same warnings as codes with parameters.
    warning_codes: list[Coded] = field(default_factory=list)

    @property
    def adverse(self) -> bool:
        return self.outcome is Outcome.DENY


def _in_force(c: Contribution) -> bool:
    """A record in force: received, not retracted, and within its retention period
    (whatever its points: a record of quantity 0 is in force, for 0 points)."""
    return c.status == "counting"


def active_records(
    contributions: Sequence[Contribution], codes: Sequence[str], book: Rulebook
) -> list[Contribution]:
    """Records of ``codes`` in force and not lifted.

    A record is lifted by a later record of one of its type's ``lifted_by`` types that
    carries the same decision reference (e.g. a judgment-satisfied record for the same
    judgment ends the judgment-default restrictions).
    """
    wanted = set(codes)
    found = []
    for c in contributions:
        if c.record.record_type not in wanted or not _in_force(c):
            continue
        rt = book.record_type(c.record.record_type)
        lifters = set(rt.lifted_by) if rt is not None else set()
        lifted = any(
            other.record.record_type in lifters
            and other.status == "counting"
            and other.record.decision_ref == c.record.decision_ref
            and other.record.occurred_at >= c.record.occurred_at
            for other in contributions
        )
        if not lifted:
            found.append(c)
    return found


def _matches(rule: Rule, score: Score, book: Rulebook) -> tuple[bool, list[Contribution]]:
    """Whether every condition of ``rule`` holds; and the records that made it hold."""
    cited: list[Contribution] = []
    if rule.active_records:
        hits = active_records(score.contributions, rule.active_records, book)
        if not hits:
            return False, []
        cited.extend(hits)
    if rule.no_active_records and active_records(score.contributions, rule.no_active_records, book):
        return False, []
    if rule.min_score is not None and score.total < rule.min_score:
        return False, []
    if rule.max_score is not None and score.total >= rule.max_score:
        return False, []
    return True, cited


def _record(c: Contribution) -> dict[str, Any]:
    """The parameters of a reason that cites record ``c`` (see ``record_cited``)."""
    return {
        "record_type": {"code": c.record.record_type, "name": c.name},
        "source": c.record.source_name,
        "date": c.record.occurred_at.date().isoformat(),
        "decision_ref": c.record.decision_ref or None,
        "record": c.record.record_id,
        "points": c.points,
        "disputed": bool(c.record.disputed),
    }


def _describe(c: Contribution) -> Coded:
    return coded("record_cited", **_record(c))


def _rule(service: Service, rule: Rule) -> dict[str, Any]:
    """A rule's reason as a parameter: the service, the rule's place, its English."""
    return {"service": service.code, "index": service.rules.index(rule), "text": rule.reason}


def _service(service: Service) -> dict[str, str]:
    return {"code": service.code, "name": service.name}


def _negatives(score: Score) -> list[Contribution]:
    return [c for c in score.contributions if c.points < 0]


def evaluate(
    service: Service, score: Score, book: Rulebook
) -> tuple[Outcome, str | None, list[Coded], list[str]]:
    """Apply a service's rules to a purpose-bound score.

    Returns ``(outcome, terms, reasons, cited record ids)``, the reasons as codes with
    parameters (:mod:`credence.wording`); the first matching rule decides, else the
    service's default. Reasons are given for adverse outcomes only, at most
    :data:`MAX_REASONS`, each naming a record or a threshold, never just "score too low".
    """
    for rule in service.rules:
        matched, cited = _matches(rule, score, book)
        if not matched:
            continue
        if rule.outcome is not Outcome.DENY:
            return rule.outcome, rule.terms, [], []
        why = _rule(service, rule)
        if cited:
            reasons = [coded("rule_record", rule=why, **_record(c)) for c in cited[:MAX_REASONS]]
            return Outcome.DENY, None, reasons, [c.record.record_id for c in cited[:MAX_REASONS]]
        if rule.max_score is not None:
            head = coded(
                "score_below_threshold",
                rule=why,
                categories=_categories(service),
                score=score.total,
                required=rule.max_score,
            )
            held_back = _negatives(score)[: MAX_REASONS - 1]
            reasons = [head, *(_describe(c) for c in held_back)]
            return Outcome.DENY, None, reasons, [c.record.record_id for c in held_back]
        reasons, ids = _shortfall(service, score, book)
        return (
            Outcome.DENY,
            None,
            [coded("rule_restriction", rule=why), *reasons][:MAX_REASONS],
            ids,
        )
    if service.default is not Outcome.DENY:
        return service.default, None, [], []
    reasons, ids = _shortfall(service, score, book)
    return Outcome.DENY, None, reasons, ids


def _categories(service: Service) -> list[str]:
    """The service's categories, for reasons ("judicial and commercial" in English)."""
    return [c.value for c in service.categories]


def _shortfall(service: Service, score: Score, book: Rulebook) -> tuple[list[Coded], list[str]]:
    """Why no reward applies: what the nearest reward needs, and the records that hold the
    subject back (at most ``MAX_REASONS - 1`` of them, leaving room for a rule's reason)."""
    reasons: list[Coded] = []
    cited: list[Contribution] = []
    cats = _categories(service)
    rewards = [r for r in service.rules if r.outcome is Outcome.REWARD]
    thresholds = [r.min_score for r in rewards if r.min_score is not None]
    if thresholds:
        reasons.append(
            coded(
                "reward_threshold",
                categories=cats,
                score=score.total,
                service=_service(service),
                threshold=min(thresholds),
            )
        )
    for rule in rewards:
        for c in active_records(score.contributions, rule.no_active_records, book):
            if c not in cited:
                cited.append(c)
    cited.extend(c for c in _negatives(score) if c not in cited)
    cited = cited[: MAX_REASONS - 1 - len(reasons)]
    reasons.extend(_describe(c) for c in cited)
    if not cited:
        positive = sum(c.points for c in score.contributions if c.points > 0)
        reasons.append(coded("no_negative_records", categories=cats, positive=positive))
    return reasons, [c.record.record_id for c in cited]


#: The refusal of a request naming the subject twice or not at all.
ONE_SUBJECT = "name the subject by exactly one of subject_id or identifier"


def ask(
    session: Session,
    caller: Caller,
    *,
    subject_id: str | None,
    identifier: str | None,
    service_code: str,
    at: datetime,
) -> Decision:
    """A relying party's request, as it comes (the subject by public id or national
    identifier): authorised first (a caller who may not ask must not learn whether an
    identifier is registered: 403 either way, never 404 vs 403), then :func:`decide`
    under the edition in force."""
    authorize(caller, Action.DECISION_REQUEST)
    if (subject_id is None) == (identifier is None):
        raise InvalidInput(ONE_SUBJECT)
    subject: Subject = get_subject(session, public_id=subject_id, identifier=identifier)
    return decide(
        session,
        subject=subject,
        service_code=service_code,
        edition=store.in_force(session, at),
        at=at,
        party_id=caller.party_id,
        principal_id=caller.principal_id,
    )


def decide(
    session: Session,
    *,
    subject: SubjectKey,
    service_code: str,
    edition: Edition,
    at: datetime,
    party_id: int | None,
    principal_id: int | None,
) -> Decision:
    """Decide, record the inquiry on the subject's file, and return the decision.

    A relying party (``party_id``) may ask only about services it is registered for.
    """
    return decide_with(
        SessionStore(session),
        subject=subject,
        service_code=service_code,
        edition=edition,
        at=at,
        party_id=party_id,
        principal_id=principal_id,
    )


def decide_with(
    store: DecisionStore,
    *,
    subject: SubjectKey,
    service_code: str,
    edition: Edition,
    at: datetime,
    party_id: int | None,
    principal_id: int | None,
) -> Decision:
    """:func:`decide`, reading and writing through ``store`` (the caller commits)."""
    book = edition.rulebook
    service = book.service(service_code)
    if service is None:
        raise NotFound(
            f"no service {service_code!r} in rulebook {book.version}", code="unknown_service"
        )
    if party_id is not None and not store.registered(party_id, service_code):
        raise Forbidden(
            f"this relying party is not registered for service {service_code!r}",
            code="service_not_registered",
        )
    if SubjectKind(subject.kind) not in service.subject_kinds:
        raise InvalidInput(
            f"service {service_code!r} does not apply to a {subject.kind}",
            code="service_not_for_subject_kind",
        )
    if store.voided(subject.id):
        raise identity_voided()
    # Purpose binding: only the record types of the service's categories are read from
    # the ledger, so no other record can reach the score or the rules.
    record_types = category_types(book, frozenset(service.categories))
    outages = store.outages(at)
    score = compute(store.records(subject.id, record_types, at), edition, at, outages=outages)
    outcome, terms, reasons, cited = evaluate(service, score, book)
    complete = per_category(outages, book, service.categories)
    handled = handling(service, book, complete, outcome)
    if handled is not None and handled.changed_outcome:
        # Fails closed: no reward on incomplete data; the default, for that reason.
        outcome, terms, cited = service.default, None, []
        reasons = [handled.reason] if outcome is Outcome.DENY else []
    notices: list[Coded] = []
    if restriction_warnings.needs_warning(service):
        if outcome is Outcome.DENY:
            state = store.caught(subject, service, reasons, at)
            if state.pending(at):
                # Warned, not yet punished: the restriction applies from effective_at.
                outcome = Outcome.ALLOW
                pending = coded(
                    "restriction_pending", service=_service(service), date=state.effective_at
                )
                notices = [pending, *reasons][:MAX_REASONS]
                reasons, cited = [], []
        else:
            store.not_caught(subject, service, at)
    decision = Decision(
        decision_id=new_id("dec"),
        subject_id=subject.public_id,
        service=service.code,
        service_name=service.name,
        kind=service.kind,
        purpose=service.purpose,
        categories=tuple(c.value for c in service.categories),
        outcome=outcome,
        terms=terms,
        reasons=render_all(reasons),
        cited_records=cited,
        score=score.total,
        score_min=score.minimum,
        score_max=score.maximum,
        as_of=at,
        rulebook_version=edition.version,
        rulebook_hash=edition.content_hash,
        how_to_dispute=book.dispute.how_to,
        dispute_deadline_days=book.dispute.deadline_days,
        warnings=render_all(notices),
        completeness=complete,
        outage_handling=handled,
        reason_codes=reasons,
        warning_codes=notices,
    )
    if outcome is Outcome.DENY:
        store.notify(
            subject.id,
            NoticeKind.ADVERSE_DECISION,
            coded(
                "adverse_decision",
                service=_service(service),
                date=at,
                decision=decision.decision_id,
                reasons=reasons,
                how_to={"text": book.dispute.how_to},
            ),
            at,
        )
    store.add_inquiry(
        {
            "public_id": decision.decision_id,
            "subject_id": subject.id,
            "party_id": party_id,
            "principal_id": principal_id,
            "service": service.code,
            "purpose": service.purpose,
            "outcome": outcome.value,
            "terms": terms,
            "score": score.total,
            "rulebook_version": edition.version,
            "reasons": orjson.dumps(decision.reasons).decode(),
            "reason_codes": orjson.dumps(reasons).decode(),
            "at": at,
        }
    )
    return decision


def identity_voided() -> Conflict:
    """The refusal of a decision about a subject whose identity authority voided it as
    fictitious: 409, as the request is sound but the subject's state forbids any answer
    (naming no subject: the caller named it)."""
    return Conflict(
        "the identity authority voided this subject as fictitious: no decision can be "
        "made about it; if the identity is real, its holder should contact the identity "
        "authority",
        code="identity_voided",
    )


# --- where decisions read and write ---------------------------------------------------


class DecisionStore(Protocol):
    """What :func:`decide_with` reads from and writes to, in the caller's transaction."""

    def registered(self, party_id: int, service: str) -> bool:
        """Whether relying party ``party_id`` may ask about ``service``."""
        ...

    def voided(self, subject_id: int) -> bool:
        """Whether the subject was voided as fictitious
        (:func:`credence.ledger.identities.voided_among`)."""
        ...

    def records(
        self, subject_id: int, record_types: Sequence[str], at: datetime
    ) -> list[RecordView]:
        """The subject's records of these types as of ``at`` (and no others)."""
        ...

    def outages(self, at: datetime) -> dict[int, Outage]:
        """The sources in outage at ``at`` (:func:`credence.ledger.freshness.outages`)."""
        ...

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[Coded], at: datetime
    ) -> restriction_warnings.WarningState:
        """See :func:`credence.decisions.restriction_warnings.caught`."""
        ...

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        """See :func:`credence.decisions.restriction_warnings.not_caught`."""
        ...

    def notify(self, subject_id: int, kind: NoticeKind, message: Coded, at: datetime) -> None:
        """See :func:`credence.notifications.service.notify` (the text: the coded
        message in English)."""
        ...

    def add_inquiry(self, row: dict[str, Any]) -> None:
        """Keep the decision on the subject's file (a row of ``inquiries``)."""
        ...


#: Whether a relying party is registered for a service (built once: see subject_ref).
REGISTERED = select(PartyService.service).where(
    PartyService.party_id == bindparam("party_id"), PartyService.service == bindparam("service")
)


class SessionStore:
    """A :class:`DecisionStore` on an ORM session: every kind of decision."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def registered(self, party_id: int, service: str) -> bool:
        found = core(self.session).execute(REGISTERED, {"party_id": party_id, "service": service})
        return found.first() is not None

    def voided(self, subject_id: int) -> bool:
        return bool(identities.voided_among(self.session, (subject_id,)))

    def records(
        self, subject_id: int, record_types: Sequence[str], at: datetime
    ) -> list[RecordView]:
        return subject_records(self.session, subject_id, record_types=record_types, at=at)

    def outages(self, at: datetime) -> dict[int, Outage]:
        return freshness.outages(self.session, at)

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[Coded], at: datetime
    ) -> restriction_warnings.WarningState:
        return restriction_warnings.caught(
            self.session, subject=subject, service=service, reasons=reasons, at=at
        )

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        restriction_warnings.not_caught(self.session, subject=subject, service=service, at=at)

    def notify(self, subject_id: int, kind: NoticeKind, message: Coded, at: datetime) -> None:
        text = render(message["code"], message["params"])
        notify(self.session, subject_id=subject_id, kind=kind, text=text, at=at, coded=message)

    def add_inquiry(self, row: dict[str, Any]) -> None:
        # A Core insert: the ORM's unit of work costs more than the rest of a decision.
        core(self.session).execute(insert(Inquiry), row)
