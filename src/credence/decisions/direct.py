"""The direct decision path: a decision in one statement on one DBAPI connection.

Relying parties ask for decisions far more often than anything else is asked. The API
answers them on a :class:`~credence.db.Direct` connection (see
:mod:`credence.api.routers.decisions`), through :func:`decide_direct`: usually one
prepared statement (:func:`read_file`) reads the subject, their records of the
service's categories, the relying party's registration, the newest edition's hash and
whether the caller's key is valid; then :func:`~credence.decisions.service.decide_with`
decides with the same code as every other path, through :class:`DirectStore`, which
leaves its writes (the inquiry, a notice) to the caller's group commit.

Caches, and their one rule: what is kept never changes (a key's holder, the parsed
newest edition by its hash); what can change (a key's validity, which edition is the
newest) is read again by every decision, in the statement it already runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

from credence.access.keys import authenticate_direct
from credence.access.policy import Action, Caller, authorize
from credence.access.tables import ApiKey
from credence.clock import Clock, to_micros
from credence.db import Direct, Prepared
from credence.decisions import restriction_warnings
from credence.decisions.service import (
    ONE_SUBJECT,
    REGISTERED,
    Decision,
    decide_with,
)
from credence.decisions.tables import Inquiry
from credence.errors import CredenceError, InvalidInput, Unauthenticated
from credence.identifiers import validate_any
from credence.ledger import freshness, registry
from credence.ledger.freshness import Outage
from credence.ledger.registry import SubjectKey, SubjectRef, unknown_subject
from credence.ledger.subject_file import RecordView, file_query, subject_records, views_direct
from credence.ledger.tables import IdentityVoid, Subject
from credence.notifications.service import NoticeKind, notification_row
from credence.notifications.tables import Notification
from credence.rulebook import store
from credence.rulebook.model import Service
from credence.rulebook.store import Edition
from credence.rulebook.tables import PublishedRulebook
from credence.scoring.online import category_types
from credence.wording import Coded, render


class NeedsSession(Exception):
    """A :class:`DirectStore` cannot take this decision: take it with a session."""


_INQUIRY = insert(Inquiry).values(
    {c.key: bindparam(c.key, type_=c.type) for c in Inquiry.__table__.columns if c.key != "id"}
)
_NOTIFICATION = insert(Notification).values(
    {
        c.key: bindparam(c.key, type_=c.type)
        for c in Notification.__table__.columns
        if c.key in ("subject_id", "kind", "text", "at", "code", "params")
    }
)
_PREPARED_REGISTERED = Prepared(REGISTERED)
#: Whether a subject was voided as fictitious (its void row, by the unique index).
_VOIDED = select(IdentityVoid.id).where(IdentityVoid.subject_id == bindparam("subject_id"))
_PREPARED_VOIDED = Prepared(_VOIDED)
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

    def voided(self, subject_id: int) -> bool:
        file = self.file
        if file is not None and file.subject.id == subject_id:
            return file.voided
        return bool(_PREPARED_VOIDED.run(self.direct, {"subject_id": subject_id}))

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

    def outages(self, at: datetime) -> dict[int, Outage]:
        return freshness.outages_direct(self.direct, at)

    def caught(
        self, subject: SubjectKey, service: Service, reasons: list[Coded], at: datetime
    ) -> restriction_warnings.WarningState:
        raise NeedsSession(service.code)

    def not_caught(self, subject: SubjectKey, service: Service, at: datetime) -> None:
        raise NeedsSession(service.code)

    def notify(self, subject_id: int, kind: NoticeKind, message: Coded, at: datetime) -> None:
        text = render(message["code"], message["params"])
        self._write(
            _PREPARED_NOTIFICATION,
            notification_row(subject_id=subject_id, kind=kind, text=text, at=at, coded=message),
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
    #: Whether the subject was voided as fictitious (no decision about it).
    voided: bool = False


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
    exists(REGISTERED).label("registered"),
    _NEWEST_HASH.scalar_subquery().label("newest_edition"),
    _KEY_VALID_UNTIL.scalar_subquery().label("key_valid_until"),
    exists(select(IdentityVoid.id).where(IdentityVoid.subject_id == Subject.id)).label("voided"),
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
    is registered for ``service``, the newest edition's hash, whether the caller's key
    (``key_hash``) is valid at ``at`` and whether the subject was voided as fictitious:
    what a decision on :class:`DirectStore` would read in six. :class:`NotFound` for an
    unknown subject, as :func:`credence.ledger.registry.subject_ref` raises it."""
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
        voided=bool(first[6]),
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


class Holders:
    """Who holds each key the direct path has seen: the principal (role, name, what it
    speaks for), which never changes for a key. Whether the key is still valid is never
    remembered: :func:`read_file` reads it with the decision's own statement, and any
    other path reads the key again (:func:`credence.access.keys.authenticate_direct`),
    so a revocation or expiry applies to the very next request."""

    #: Most keys remembered; emptied when full (keys are few in practice).
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._known: dict[str, Caller] = {}

    def get(self, direct: Direct, key_hash: str, *, clock: Clock) -> tuple[Caller, bool]:
        """The holder of the key, and whether its validity was read just now (else the
        caller must check it: see :func:`_decide`). 401 for an unknown or invalid key
        that is read now."""
        caller = self._known.get(key_hash)
        if caller is not None:
            return caller, False
        caller = authenticate_direct(direct, key_hash, clock=clock)
        if len(self._known) >= self.MAX_ENTRIES:
            self._known.clear()
        self._known[key_hash] = caller
        return caller, True


class DirectDecider:
    """Decisions on a :class:`Direct` connection, with what the direct path keeps between
    requests (the key holders it has seen, the newest edition): one per application."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holders = Holders()
        self.newest = NewestEdition()

    def decide(
        self,
        direct: Direct,
        *,
        subject_id: str | None,
        identifier: str | None,
        service_code: str,
        key_hash: str,
        writes: list[Write] | None,
    ) -> Decision | None:
        """What :func:`credence.decisions.service.ask` does, on ``direct``, leaving the
        writes in ``writes`` if given: the decision, or None when the service needs a
        session (a restriction with a warning period).

        Usually one statement reads everything (:func:`read_file`): the subject, their
        records of the service's categories under the newest edition, the relying
        party's registration, the newest edition's hash and whether the caller's key is
        valid now. If that shows another edition, or none is remembered, or the service
        is not in it, the decision reads step by step as ``ask`` does, so every error
        comes in the same order. An invalid key is a 401 before any other answer:
        whenever the key's validity was not read with the file, the key is read in full
        (:func:`authenticate_direct`)."""
        caller, checked = self.holders.get(direct, key_hash, clock=self.clock)
        try:
            return self._decide_as(
                direct, caller, checked, subject_id, identifier, service_code, key_hash, writes
            )
        except CredenceError as refused:
            if not checked and not isinstance(refused, Unauthenticated):
                authenticate_direct(direct, key_hash, clock=self.clock)
            raise

    def _decide_as(
        self,
        direct: Direct,
        caller: Caller,
        checked: bool,
        subject_id: str | None,
        identifier: str | None,
        service_code: str,
        key_hash: str,
        writes: list[Write] | None,
    ) -> Decision | None:
        authorize(caller, Action.DECISION_REQUEST)  # before the lookup: no existence oracle
        if (subject_id is None) == (identifier is None):
            raise InvalidInput(ONE_SUBJECT)
        at = self.clock.now()
        file: SubjectFile | None = None
        known = self.newest.get(at)
        service = known.rulebook.service(service_code) if known is not None else None
        if known is not None and service is not None:
            file = read_file(
                direct,
                public_id=subject_id,
                identifier=identifier,
                service=service_code,
                record_types=category_types(known.rulebook, frozenset(service.categories)),
                party_id=caller.party_id,
                at=at,
                key_hash=key_hash,
            )
            if not file.key_valid:  # revoked or expired since: a 401 saying which
                authenticate_direct(direct, key_hash, clock=self.clock)
            if file.newest_edition != known.content_hash:
                file = None  # an edition was published since: read it
        if file is not None and known is not None:
            subject: SubjectKey = file.subject
            edition = known
        else:
            if not checked:
                authenticate_direct(direct, key_hash, clock=self.clock)
            subject = registry.subject_ref(direct, public_id=subject_id, identifier=identifier)
            edition = store.in_force(direct, at)
            self.newest.learn(direct, edition, at)
        try:
            return decide_with(
                DirectStore(direct, writes, file),
                subject=subject,
                service_code=service_code,
                edition=edition,
                at=at,
                party_id=caller.party_id,
                principal_id=caller.principal_id,
            )
        except NeedsSession:
            return None
