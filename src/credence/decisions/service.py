"""Purpose-bound decisions: may subject S use service X, and on what terms?

Purpose binding holds by construction: :func:`decide` reads from the ledger only the
record types of the categories the service declares (which the rulebook loader has
already checked against the service's purpose), so records of any other category never
reach :func:`evaluate`. Every decision is kept on the subject's file as an inquiry.

:func:`decide_with` is the one implementation; it reads and writes through a
:class:`DecisionStore`: :class:`SessionStore` (an ORM session: :func:`decide`) or
:class:`DirectStore` (a DBAPI connection, for the API's per-request path, which cannot
write restriction warnings and says so before writing anything).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    CompoundSelect,
    bindparam,
    case,
    exists,
    func,
    insert,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from credence.access.tables import ApiKey, PartyService
from credence.clock import to_micros
from credence.db import Direct, Prepared, core
from credence.decisions import restriction_warnings
from credence.decisions.tables import Inquiry
from credence.errors import Forbidden, InvalidInput, NotFound
from credence.identifiers import SubjectKind, validate_any
from credence.ids import new_id
from credence.ledger.service import (
    SubjectKey,
    SubjectRef,
    unknown_subject,
)
from credence.ledger.subject_file import (
    RecordView,
    file_query,
    subject_records,
    views_direct,
)
from credence.ledger.tables import Subject
from credence.notifications.service import NoticeKind, notification_row, notify
from credence.notifications.tables import Notification
from credence.rulebook.model import Outcome, Rule, Rulebook, Service, ServiceKind
from credence.rulebook.store import Edition
from credence.rulebook.tables import PublishedRulebook
from credence.scoring.online import MAX_REASONS, Contribution, Score, category_types, compute


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
    #: At most four specific reasons; empty unless the outcome is adverse.
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


def _describe(c: Contribution) -> str:
    when = c.record.occurred_at.date().isoformat()
    ref = f", decision {c.record.decision_ref}" if c.record.decision_ref else ""
    return (
        f"{c.name} reported by {c.record.source_name} on {when}{ref} "
        f"(record {c.record.record_id}; {c.points:+.1f} points now"
        f"{'; disputed by the subject, awaiting the answer' if c.record.disputed else ''})"
    )


def _negatives(score: Score) -> list[Contribution]:
    return [c for c in score.contributions if c.points < 0]


def evaluate(
    service: Service, score: Score, book: Rulebook
) -> tuple[Outcome, str | None, list[str], list[str]]:
    """Apply a service's rules to a purpose-bound score.

    Returns ``(outcome, terms, reasons, cited record ids)``; the first matching rule
    decides, else the service's default. Reasons are given for adverse outcomes only,
    at most :data:`MAX_REASONS`, each naming a record or a threshold, never just "score
    too low".
    """
    for rule in service.rules:
        matched, cited = _matches(rule, score, book)
        if not matched:
            continue
        if rule.outcome is not Outcome.DENY:
            return rule.outcome, rule.terms, [], []
        if cited:
            reasons = [f"{rule.reason} — {_describe(c)}" for c in cited[:MAX_REASONS]]
            return Outcome.DENY, None, reasons, [c.record.record_id for c in cited[:MAX_REASONS]]
        if rule.max_score is not None:
            head = (
                f"{rule.reason} Your {_categories_text(service)} score is {score.total:.0f}; "
                "this service requires "
                f"at least {rule.max_score:.0f}."
            )
            held_back = _negatives(score)[: MAX_REASONS - 1]
            reasons = [head, *(_describe(c) for c in held_back)]
            return Outcome.DENY, None, reasons, [c.record.record_id for c in held_back]
        reasons, ids = _shortfall(service, score, book, _categories_text(service))
        return Outcome.DENY, None, [rule.reason, *reasons][:MAX_REASONS], ids
    if service.default is not Outcome.DENY:
        return service.default, None, [], []
    reasons, ids = _shortfall(service, score, book, _categories_text(service))
    return Outcome.DENY, None, reasons, ids


def _categories_text(service: Service) -> str:
    """The service's categories in words ("judicial and commercial"), for reasons."""
    return " and ".join(c.value.replace("_", " ") for c in service.categories)


def _shortfall(
    service: Service, score: Score, book: Rulebook, cats: str
) -> tuple[list[str], list[str]]:
    """Why no reward applies: what the nearest reward needs, and the records that hold the
    subject back (at most ``MAX_REASONS - 1`` of them, leaving room for a rule's reason)."""
    reasons: list[str] = []
    cited: list[Contribution] = []
    rewards = [r for r in service.rules if r.outcome is Outcome.REWARD]
    thresholds = [r.min_score for r in rewards if r.min_score is not None]
    if thresholds:
        reasons.append(
            f"Your {cats} score is {score.total:.0f}; {service.name} starts at "
            f"{min(thresholds):.0f}."
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
        reasons.append(
            f"No negative {cats} records count against you; positive records add "
            f"{positive:.1f} points so far."
        )
    return reasons, [c.record.record_id for c in cited]


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
    # Purpose binding: only the record types of the service's categories are read from
    # the ledger, so no other record can reach the score or the rules.
    record_types = category_types(book, frozenset(service.categories))
    score = compute(store.records(subject.id, record_types, at), edition, at)
    outcome, terms, reasons, cited = evaluate(service, score, book)
    notices: list[str] = []
    if restriction_warnings.needs_warning(service):
        if outcome is Outcome.DENY:
            state = store.caught(subject, service, reasons, at)
            if state.pending(at):
                # Warned, not yet punished: the restriction applies from effective_at.
                outcome = Outcome.ALLOW
                notices = [
                    f"The subject has been warned: {service.name} will be restricted from "
                    f"{state.effective_at:%Y-%m-%d} unless this changes.",
                    *reasons,
                ][:MAX_REASONS]
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
        reasons=reasons,
        cited_records=cited,
        score=score.total,
        score_min=score.minimum,
        score_max=score.maximum,
        as_of=at,
        rulebook_version=edition.version,
        rulebook_hash=edition.content_hash,
        how_to_dispute=book.dispute.how_to,
        dispute_deadline_days=book.dispute.deadline_days,
        warnings=notices,
    )
    if outcome is Outcome.DENY:
        store.notify(
            subject.id,
            NoticeKind.ADVERSE_DECISION,
            f"{service.name}: denied on {at:%Y-%m-%d} (decision {decision.decision_id}). "
            + " ".join(reasons)
            + f" {book.dispute.how_to}",
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
            "reasons": orjson.dumps(reasons).decode(),
            "at": at,
        }
    )
    return decision


# --- where decisions read and write ---------------------------------------------------


class DecisionStore(Protocol):
    """What :func:`decide_with` reads from and writes to, in the caller's transaction."""

    def registered(self, party_id: int, service: str) -> bool:
        """Whether relying party ``party_id`` may ask about ``service``."""
        ...

    def records(
        self, subject_id: int, record_types: Sequence[str], at: datetime
    ) -> list[RecordView]:
        """The subject's records of these types as of ``at`` (and no others)."""
        ...

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[str], at: datetime
    ) -> restriction_warnings.WarningState:
        """See :func:`credence.decisions.restriction_warnings.caught`."""
        ...

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        """See :func:`credence.decisions.restriction_warnings.not_caught`."""
        ...

    def notify(self, subject_id: int, kind: NoticeKind, text: str, at: datetime) -> None:
        """See :func:`credence.notifications.service.notify`."""
        ...

    def add_inquiry(self, row: dict[str, Any]) -> None:
        """Keep the decision on the subject's file (a row of ``inquiries``)."""
        ...


#: Whether a relying party is registered for a service (built once: see subject_ref).
_REGISTERED = select(PartyService.service).where(
    PartyService.party_id == bindparam("party_id"), PartyService.service == bindparam("service")
)


class SessionStore:
    """A :class:`DecisionStore` on an ORM session: every kind of decision."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def registered(self, party_id: int, service: str) -> bool:
        found = core(self.session).execute(_REGISTERED, {"party_id": party_id, "service": service})
        return found.first() is not None

    def records(
        self, subject_id: int, record_types: Sequence[str], at: datetime
    ) -> list[RecordView]:
        return subject_records(self.session, subject_id, record_types=record_types, at=at)

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[str], at: datetime
    ) -> restriction_warnings.WarningState:
        return restriction_warnings.caught(
            self.session, subject=subject, service=service, reasons=reasons, at=at
        )

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        restriction_warnings.not_caught(self.session, subject=subject, service=service, at=at)

    def notify(self, subject_id: int, kind: NoticeKind, text: str, at: datetime) -> None:
        notify(self.session, subject_id=subject_id, kind=kind, text=text, at=at)

    def add_inquiry(self, row: dict[str, Any]) -> None:
        # A Core insert: the ORM's unit of work costs more than the rest of a decision.
        core(self.session).execute(insert(Inquiry), row)


class NeedsSession(Exception):
    """A :class:`DirectStore` cannot take this decision: take it with a session."""


_INQUIRY = insert(Inquiry).values(
    {c.key: bindparam(c.key, type_=c.type) for c in Inquiry.__table__.columns if c.key != "id"}
)
_NOTIFICATION = insert(Notification).values(
    {
        c.key: bindparam(c.key, type_=c.type)
        for c in Notification.__table__.columns
        if c.key in ("subject_id", "kind", "text", "at")
    }
)
_PREPARED_REGISTERED = Prepared(_REGISTERED)
_PREPARED_INQUIRY = Prepared(_INQUIRY)
_PREPARED_NOTIFICATION = Prepared(_NOTIFICATION)


#: A write :class:`DirectStore` leaves to its caller: a statement and its parameters.
Write = tuple[Prepared, dict[str, Any]]


class DirectStore:
    """A :class:`DecisionStore` on a :class:`Direct` connection: the API's decision path,
    without the ORM's or SQLAlchemy's per-statement work (see :class:`Prepared`).

    The same statements as :class:`SessionStore`'s. A restriction with a warning period
    reads and writes warnings through the ORM: for those it raises :class:`NeedsSession`
    before anything is written, and the caller decides with a session instead.

    With ``pending``, writes are not run but appended there, in order, for the caller to
    run (several decisions' writes in one transaction: a group commit). With ``file``
    (see :func:`read_file`), the registration and the records it holds are answered
    from it, not read again.
    """

    def __init__(
        self, direct: Direct, pending: list[Write] | None = None, file: SubjectFile | None = None
    ) -> None:
        self.direct = direct
        self.pending = pending
        self.file = file

    def _write(self, statement: Prepared, params: dict[str, Any]) -> None:
        if self.pending is not None:
            self.pending.append((statement, params))
        else:
            statement.run(self.direct, params)

    def registered(self, party_id: int, service: str) -> bool:
        file = self.file
        if file is not None and file.party_id == party_id and file.service == service:
            return file.registered
        found = _PREPARED_REGISTERED.run(self.direct, {"party_id": party_id, "service": service})
        return bool(found)

    def records(
        self, subject_id: int, record_types: Sequence[str], at: datetime
    ) -> list[RecordView]:
        file = self.file
        if (
            file is not None
            and file.subject.id == subject_id
            and file.at == at
            and (record_types is file.given_types or _type_key(record_types) == file.record_types)
        ):
            return file.records
        return subject_records(self.direct, subject_id, record_types=record_types, at=at)

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[str], at: datetime
    ) -> restriction_warnings.WarningState:
        raise NeedsSession(service.code)

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        raise NeedsSession(service.code)

    def notify(self, subject_id: int, kind: NoticeKind, text: str, at: datetime) -> None:
        self._write(
            _PREPARED_NOTIFICATION,
            notification_row(subject_id=subject_id, kind=kind, text=text, at=at),
        )

    def add_inquiry(self, row: dict[str, Any]) -> None:
        self._write(_PREPARED_INQUIRY, row)


def run_writes(direct: Direct, writes: Sequence[Write]) -> None:
    """Run pending writes: one ``executemany`` per statement, each statement's rows in
    the order they were written (the tables written here do not refer to each other)."""
    by_statement: dict[int, tuple[Prepared, list[dict[str, Any]]]] = {}
    for statement, params in writes:
        by_statement.setdefault(id(statement), (statement, []))[1].append(params)
    for statement, rows in by_statement.values():
        statement.run_many(direct, rows)


# --- the direct path's one read: the subject's file, with what the decision checks ----


@dataclass(frozen=True)
class SubjectFile:
    """What :func:`read_file` read in one statement: the subject, their records of some
    types as of ``at``, whether the relying party is registered for the service, and the
    newest published edition (to check that the edition the types came from is current)."""

    subject: SubjectRef
    party_id: int | None
    service: str
    #: The record types read, as given and as a sorted tuple.
    given_types: Sequence[str]
    record_types: tuple[str, ...]
    at: datetime
    records: list[RecordView]
    registered: bool
    #: The newest published edition's content hash (None before the first).
    newest_edition: str | None
    #: Whether the caller's key (by its hash) existed and was neither revoked nor
    #: expired at ``at``, read in the same statement.
    key_valid: bool


def _type_key(record_types: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(record_types)))


#: The newest edition's content hash: editions are never updated or deleted and no two
#: have the same content, so it changes exactly when an edition is published.
#: A key valid for ever, in :func:`read_file`'s key column (microseconds; any instant
#: Credence stores is earlier).
_FOREVER = 2**62

_NEWEST_HASH = select(PublishedRulebook.content_hash).where(
    PublishedRulebook.id == select(func.max(PublishedRulebook.id)).scalar_subquery()
)
#: The subject's row in the file statement: what :class:`SubjectRef` holds, whether the
#: relying party is registered for the service, and the newest edition's hash.
#: Until when the caller's key (by ``key_hash``) is valid: the earlier of its revocation
#: and expiry instants, :data:`_FOREVER` if it has neither, NULL if there is no such key.
_KEY_VALID_UNTIL = select(
    case(
        (ApiKey.revoked_at.is_(None), func.coalesce(ApiKey.expires_at, _FOREVER)),
        (ApiKey.expires_at.is_(None), ApiKey.revoked_at),
        (ApiKey.revoked_at < ApiKey.expires_at, ApiKey.revoked_at),
        else_=ApiKey.expires_at,
    )
).where(ApiKey.key_hash == bindparam("key_hash"))
_SUBJECT_COLUMNS = (
    Subject.id,
    Subject.public_id,
    Subject.kind,
    exists(_REGISTERED).label("registered"),
    _NEWEST_HASH.scalar_subquery().label("newest_edition"),
    _KEY_VALID_UNTIL.scalar_subquery().label("key_valid_until"),
)
#: Where a row of the file statement has the record's columns.
_RECORD_AT = len(_SUBJECT_COLUMNS)


def _file_statement(by: str) -> CompoundSelect[Any]:
    """The subject's row (found by ``key``), then one row per record and ending event
    (:func:`credence.ledger.subject_file.file_query`, the subject's statements left out),
    each padded with NULLs to the other's columns."""
    records = file_query(as_of=True, some_types=True, by=by, statements=False)
    key = Subject.public_id if by == "public_id" else Subject.identifier
    subject = select(*_SUBJECT_COLUMNS, *(null() for _ in records.selected_columns)).where(
        key == bindparam("key")
    )
    padded = records.with_only_columns(
        *(null() for _ in _SUBJECT_COLUMNS), *records.selected_columns
    )
    return union_all(subject, padded)


@functools.lru_cache(maxsize=512)
def _prepared_file(by: str, record_types: tuple[str, ...]) -> Prepared:
    return Prepared(_file_statement(by), record_types=list(record_types))


def read_file(
    direct: Direct,
    *,
    public_id: str | None,
    identifier: str | None,
    service: str,
    record_types: Sequence[str],
    party_id: int | None,
    at: datetime,
    key_hash: str,
) -> SubjectFile:
    """Find the subject (by ``public_id``, else by national ``identifier``) and read, in
    one statement, their records of ``record_types`` as of ``at``, whether ``party_id``
    is registered for ``service``, the newest edition's hash, and whether the caller's
    key (``key_hash``) is valid at ``at``: what a decision on :class:`DirectStore` would
    read in five. :class:`NotFound` for an unknown subject, as
    :func:`credence.ledger.service.subject_ref` raises it."""
    types = _type_key(record_types)
    if public_id is not None:
        by, key = "public_id", public_id
    else:
        by = "identifier"
        _, key = validate_any(identifier or "")
    params = {"key": key, "party_id": party_id, "service": service, "at": at, "key_hash": key_hash}
    rows = _prepared_file(by, types).run(direct, params)
    cut = _RECORD_AT
    # The subject's row is the one without a record; the rest are the records'.
    first = next((r for r in rows if r[cut] is None), None)
    if first is None:
        raise unknown_subject(public_id)
    return SubjectFile(
        subject=SubjectRef(first[0], first[1], first[2]),
        party_id=party_id,
        service=service,
        given_types=record_types,
        record_types=types,
        at=at,
        records=views_direct([r[cut:] for r in rows if r[cut] is not None], at),
        registered=bool(first[3]),
        newest_edition=first[4],
        key_valid=first[5] is not None and first[5] > to_micros(at),
    )


class NewestEdition:
    """The newest published edition, remembered while it is in force: the direct path
    takes the record types to read from it before reading, and :func:`read_file` reads
    the newest edition's hash with the file, so the decision checks in the same
    statement that the edition is still the newest (what
    :func:`credence.rulebook.store.in_force` checks with a statement of its own). An
    edition published for a later instant is not in force yet: then :meth:`get` gives
    None, and the caller reads the edition in force as usual."""

    def __init__(self) -> None:
        self._known: Edition | None = None

    def get(self, at: datetime) -> Edition | None:
        """The newest edition, if it is in force at ``at``."""
        known = self._known
        return known if known is not None and known.published_at <= at else None

    def learn(self, direct: Direct, edition: Edition, at: datetime) -> None:
        """Remember ``edition`` (in force at ``at``: by
        :func:`credence.rulebook.store.in_force`) if it is the newest; else
        nothing (a newer one is not in force yet)."""
        rows = _PREPARED_NEWEST_HASH.run(direct, {})
        newest = bool(rows) and rows[0][0] == edition.content_hash
        self._known = edition if newest and edition.published_at <= at else None


_PREPARED_NEWEST_HASH = Prepared(_NEWEST_HASH)
