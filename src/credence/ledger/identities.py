"""Identities: probable duplicates, and what the identity authority finds of them.

A market in fictitious identities works by registering a second "Zhang Wei" next to the
real one and buying it a record. Registration (:func:`credence.ledger.registry.
register_subject`) still registers such a subject, but :func:`flag_duplicates` flags it
for its identity authority when an earlier subject of the same kind has

* ``same_name_birth_region``: the same name, the same birth date (a person's, from the
  resident identity number) or founding date (an organisation's, if both registries gave
  one), and the same region (or either has none registered); or
* ``near_identifier``: the same name and an identifier whose 17 body characters (all but
  the check character) are one character, or one swap of two neighbours, away.

Both look-ups are indexed: the first by name and region (``ix_subjects_name_region``),
the second by identifier (the unique index), with every neighbour of the new identifier
computed here and asked for at once; nothing scans the subjects. A flag is a covered
row (``identity_flags``) with an ``identity_flagged`` entry naming the two public ids
and the test, never a name or an identifier.

The identity authority for the subject's kind (a source whose ``identity_authority_for``
is ``person`` or ``organisation``) resolves a flag once (:func:`resolve_flag`):

* ``distinct``: two persons or organisations after all;
* ``merged``: one, registered twice. The flagged subject becomes an *alias* read into
  the other's file (``subject_aliases``) by every engine, its records staying as they
  were stored (:func:`aliases_at`, :func:`alias_rows`); :func:`end_alias` undoes it
  (``alias_ends``), and the alias is a file of its own again from then on;
* ``voided``: the flagged subject is fictitious (``identity_voids``). From then on its
  new records are held at intake (which reads the void with the batch's subjects), it
  can obtain no decision (:func:`voided_among`), and its records stop counting (an
  ending, ``credence.ledger.endings``).

Each is an ``identity_resolutions`` row (one per flag) with its entry
(``identity_confirmed_distinct``, ``subjects_merged``, ``identity_voided``;
``subjects_unmerged`` for an end), written in the same transaction by
:func:`credence.notifications.service.record_event`; both subjects are told (for a void,
the real person above all). The authority's reasons are stored on the row and shown on
the files; the entry keeps a digest. Resolving a resolved flag again gives the same
answer if it is the same outcome (a resend) and 409 ``flag_resolved`` otherwise; two at
once store one (``db.insert_new`` on the unique flag, the steps on a pair of subjects
taken in turn). Functions take the caller's session and commit nothing.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Date, Select, bindparam, func, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from credence import journal
from credence.clock import EARLIEST, to_micros
from credence.db import chunked, core, in_list, insert_new
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence.identifiers import (
    USCC_ALPHABET,
    SubjectKind,
    birth_date,
    date_in_china,
    start_in_china,
)
from credence.ids import new_id
from credence.ledger.tables import (
    AliasEnd,
    IdentityFlag,
    IdentityResolution,
    IdentityVoid,
    Source,
    Subject,
    SubjectAlias,
)
from credence.notifications.service import Notice, notify, record_event
from credence.wording import coded, render

#: The tests that flag a probable duplicate (an ``identity_flags.test``).
SAME_NAME_BIRTH_REGION = "same_name_birth_region"
NEAR_IDENTIFIER = "near_identifier"
TESTS = (SAME_NAME_BIRTH_REGION, NEAR_IDENTIFIER)

#: What the identity authority may find (an ``identity_resolutions.outcome``).
DISTINCT = "distinct"
MERGED = "merged"
VOIDED = "voided"
OUTCOMES = (DISTINCT, MERGED, VOIDED)

#: Where a flag stands: open, or its outcome (``unmerged`` once a merge is undone).
FlagStatus = Literal["open", "distinct", "merged", "unmerged", "voided"]
FlagFilter = Literal["open", "resolved", "all"]

#: Most probable duplicates one registration is flagged against (the earliest
#: registered first): past a handful, the identity authority looks at the name anyway.
MAX_FLAGS = 20
#: Longest reason the identity authority may give (it is shown to the subjects).
MAX_REASON = 2000
#: The earliest founding date taken: no record can be dated before it either.
EARLIEST_FOUNDING = EARLIEST.date()

#: The characters of an identifier's body, by kind of subject.
_PERSON_BODY = "0123456789"
_ORGANISATION_BODY = USCC_ALPHABET

_TEST_TEXT = {
    SAME_NAME_BIRTH_REGION: "the same name, birth or founding date and region",
    NEAR_IDENTIFIER: "the same name and an identifier one character or one swap away",
}


# --- founding dates ----------------------------------------------------------------------


def check_founding(kind: SubjectKind, founded_on: date | None, at: datetime) -> None:
    """Refuse a founding date that a registration may not carry: any for a person (a
    person's birth date is in the resident identity number), one after the date in China
    at ``at``, or one before :data:`EARLIEST_FOUNDING`. The message never quotes it."""
    if founded_on is None:
        return
    if kind is SubjectKind.PERSON:
        raise InvalidInput(
            "founded_on is an organisation's founding date; a person's birth date is read "
            "from the resident identity number: leave founded_on out",
            code="founded_on_for_person",
        )
    if founded_on > date_in_china(at):
        raise InvalidInput(
            "founded_on is after today's date in China; give the date the organisation was founded",
            code="founded_on_in_future",
        )
    if founded_on < EARLIEST_FOUNDING:
        raise InvalidInput(
            f"founded_on is before {EARLIEST_FOUNDING.isoformat()}, the earliest date "
            "Credence takes (no record can be dated before it); leave it out for an "
            "older organisation",
            code="founded_on_out_of_range",
        )


def founded_instant(founded_on: date) -> int:
    """The instant (microseconds since the epoch, UTC) at which the day ``founded_on``
    begins in China: an organisation exists from then on, as a person from the start of
    their birth date (:func:`credence.identifiers.start_in_china`)."""
    return to_micros(start_in_china(founded_on))


# --- probable duplicates -----------------------------------------------------------------


def near(a: str, b: str) -> bool:
    """Whether two identifiers' bodies (their first 17 characters) differ in exactly one
    character, or by one swap of two neighbouring characters."""
    x, y = a[:17], b[:17]
    if len(x) != 17 or len(y) != 17 or x == y:
        return False
    differ = [i for i in range(17) if x[i] != y[i]]
    if len(differ) == 1:
        return True
    if len(differ) == 2 and differ[1] == differ[0] + 1:
        i = differ[0]
        return x[i] == y[i + 1] and x[i + 1] == y[i]
    return False


@dataclass(frozen=True)
class _Checksum:
    """How an identifier's check character follows from its 17 body characters: a
    weighted sum of their values (what python-stdnum computes, written so that a body
    one character or one swap away is summed again in one step, not seventeen)."""

    alphabet: str
    weights: tuple[int, ...]
    modulus: int

    def total(self, body: str) -> int:
        return sum(self.alphabet.index(c) * w for c, w in zip(body, self.weights, strict=True))

    def check(self, total: int) -> str:
        if self.modulus == 11:  # a resident identity number: stdnum's cn.ric
            value = (1 - 2 * total) % 11
            return "X" if value == 10 else str(value)
        return self.alphabet[(31 - total) % 31]  # a credit code: stdnum's cn.uscc


#: A resident identity number's body read in base 13, modulo 11 (``cn.ric``).
_PERSON = _Checksum(_PERSON_BODY, tuple(pow(13, 16 - i, 11) for i in range(17)), 11)
_ORGANISATION = _Checksum(
    _ORGANISATION_BODY, (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28), 31
)


def neighbours(kind: str, identifier: str) -> list[str]:
    """Every valid identifier whose body is one character, or one swap of neighbours,
    away from ``identifier``'s (compact, valid): what :func:`near` matches, as whole
    identifiers (body and its check character) to look up by the unique index."""
    scheme = _PERSON if kind == SubjectKind.PERSON.value else _ORGANISATION
    body = identifier[:17]
    alphabet, weights = scheme.alphabet, scheme.weights
    values = [alphabet.index(c) for c in body]
    total = scheme.total(body)
    found: set[str] = set()
    for i in range(17):
        head, tail, weight, value = body[:i], body[i + 1 :], weights[i], values[i]
        for v, other in enumerate(alphabet):
            if v != value:
                found.add(head + other + tail + scheme.check(total + (v - value) * weight))
    for i in range(16):
        a, b = values[i], values[i + 1]
        if a != b:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            moved = total + (b - a) * weights[i] + (a - b) * weights[i + 1]
            found.add(swapped + scheme.check(moved))
    return sorted(found)


def _birth_key(kind: str, identifier: str, founded_on: date | None) -> date | None:
    """A subject's birth date (a person's, from the identifier) or founding date."""
    if kind == SubjectKind.PERSON.value:
        return birth_date(identifier)
    return founded_on


def _name_lock(session: Session, kind: str, name: str) -> None:
    """PostgreSQL: take turns with other registrations of the same kind and name until
    this transaction ends, so that of two registered at once the second looks for
    duplicates once the first is committed, and finds it. (SQLite: the registration's
    insert already holds the store's one write lock.) The lock's key is a hash: the
    name is never sent with it."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"credence.identities\0{kind}\0{name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@functools.lru_cache(maxsize=16)
def _candidates(dialect: str, person: bool, region: bool, founded: bool) -> Any:
    """Earlier subjects of a kind and name (parameters ``kind``, ``name``) that may be
    duplicates: by name and region (``region``, if the new subject has one) with the same
    birth date (``born``, ``YYYYMMDD``, a person's) or founding date (``founded``), and
    by every neighbouring identifier (``near``); each branch indexed. Built once per
    shape: building a statement costs more than running it."""
    columns = (
        Subject.id,
        Subject.public_id,
        Subject.identifier,
        Subject.region,
        Subject.founded_on,
    )
    same = [Subject.kind == bindparam("kind"), Subject.name == bindparam("name")]
    branches = [select(*columns).where(*same, in_list(Subject.identifier, "near", dialect))]
    if region:
        same.append(or_(Subject.region == bindparam("region"), Subject.region.is_(None)))
    if person:
        born = func.substr(Subject.identifier, 7, 8) == bindparam("born")
        branches.append(select(*columns).where(*same, born))
    elif founded:
        founding = Subject.founded_on == bindparam("founded", type_=Date())
        branches.append(select(*columns).where(*same, founding))
    return union_all(*branches)


def _test(
    subject: Subject,
    mine: date | None,
    identifier: str,
    region: str | None,
    founded_on: date | None,
) -> str | None:
    """Which test an earlier subject of the same kind and name meets against
    ``subject`` (born or founded on ``mine``), if any (the first of :data:`TESTS` it
    meets)."""
    theirs = _birth_key(subject.kind, identifier, founded_on)
    same_region = region is None or subject.region is None or region == subject.region
    if mine is not None and theirs == mine and same_region:
        return SAME_NAME_BIRTH_REGION
    if near(identifier, subject.identifier):
        return NEAR_IDENTIFIER
    return None


def flag_duplicates(session: Session, subject: Subject, at: datetime) -> list[IdentityFlag]:
    """Flag ``subject``, just registered, against each earlier subject of its kind it
    may duplicate (see the module's docstring), at most :data:`MAX_FLAGS`, each with
    its entry; the flags (none if it resembles nobody)."""
    _name_lock(session, subject.kind, subject.name)
    person = subject.kind == SubjectKind.PERSON.value
    mine = _birth_key(subject.kind, subject.identifier, subject.founded_on)
    connection = core(session)
    statement = _candidates(
        connection.dialect.name, person, subject.region is not None, subject.founded_on is not None
    )
    rows = connection.execute(
        statement,
        {
            "kind": subject.kind,
            "name": subject.name,
            "region": subject.region,
            "born": mine.strftime("%Y%m%d") if person and mine is not None else None,
            "founded": subject.founded_on,
            "near": neighbours(subject.kind, subject.identifier),
        },
    ).all()
    found: dict[int, tuple[str, str]] = {}
    for other_id, public_id, identifier, region, founded_on in rows:
        if other_id == subject.id:
            continue
        test = _test(subject, mine, identifier, region, founded_on)
        if test is not None:
            found[other_id] = (public_id, test)
    flags = []
    for other_id in sorted(found)[:MAX_FLAGS]:
        other, test = found[other_id]
        flag = IdentityFlag(
            public_id=new_id("idf"),
            subject_id=subject.id,
            other_subject_id=other_id,
            test=test,
            flagged_at=at,
        )
        session.add(flag)
        session.flush()
        record_event(
            session,
            kind=journal.EventKind.IDENTITY_FLAGGED,
            at=at,
            subject_id=subject.id,
            data={
                "flag": flag.public_id,
                "subject": subject.public_id,
                "other": other,
                "test": test,
            },
            rows=[flag],
        )
        flags.append(flag)
    return flags


# --- what the identity authority finds ----------------------------------------------------


@dataclass(frozen=True)
class FlagView:
    """A flag and where it stands: its resolution, and the merge it made, if any."""

    flag_id: str
    #: The flagged subject's kind (``person``, ``company``, ``government``).
    kind: str
    #: The flagged subject (registered later) and the earlier one it resembles.
    subject_id: str
    other_subject_id: str
    test: str
    flagged_at: datetime
    status: FlagStatus
    resolution_id: str | None
    resolved_at: datetime | None
    #: The identity authority's reasons (shown to both subjects).
    reason: str | None
    #: A merge: the alias, from when, and when (and why) it was undone.
    alias_id: str | None
    merged_at: datetime | None
    unmerged_at: datetime | None
    unmerge_reason: str | None
    #: For the identity authority's queue only (never in an entry or on a file).
    subject_name: str
    other_name: str
    subject_region: str | None
    other_region: str | None
    #: Internal ids: the flag's, and its two subjects'.
    id: int
    subject: int
    other: int


@dataclass(frozen=True)
class IdentityNote:
    """A flag as one subject's file shows it: from that subject's side."""

    flag_id: str
    #: ``flagged``: this subject was registered resembling the other; ``resembled``:
    #: another was registered resembling this one.
    role: Literal["flagged", "resembled"]
    other_subject_id: str
    test: str
    flagged_at: datetime
    status: FlagStatus
    resolved_at: datetime | None
    reason: str | None
    alias_id: str | None
    #: A merge: the subject whose file the alias is read into (the flag's other).
    read_into: str | None
    merged_at: datetime | None
    unmerged_at: datetime | None


def _authority(kind: str) -> str:
    """The ``identity_authority_for`` of a source that answers for subjects of ``kind``,
    and what a subject of ``kind`` is called in a notice (a person, an organisation)."""
    return "person" if kind == SubjectKind.PERSON.value else "organisation"


def check_authority(source: Source | None, kind: str) -> Source:
    """``source`` if it is an identity authority for subjects of ``kind``; else 403
    ``not_identity_authority``."""
    needed = _authority(kind)
    if source is None or source.identity_authority_for != needed:
        raise Forbidden(
            "only an identity authority for "
            + ("persons" if needed == "person" else "organisations")
            + " (a civil or business registry) may answer for this identity",
            code="not_identity_authority",
        )
    return source


def clean_reason(reason: str) -> str:
    """The identity authority's reasons as stored: stripped, not empty, at most
    :data:`MAX_REASON` characters, no NUL; else 422."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give your reasons: both subjects read them", code="reasons_required")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reasons are at most {MAX_REASON} characters", code="reasons_too_long")
    if "\x00" in reason:
        raise InvalidInput("reasons may not hold a NUL character", code="invalid_character")
    return reason


_FLAGGED = aliased(Subject, name="flagged")
_OTHER = aliased(Subject, name="resembled")


def _view_query() -> Select[*tuple[Any, ...]]:
    return (
        select(
            IdentityFlag,
            IdentityResolution,
            SubjectAlias,
            AliasEnd,
            _FLAGGED.public_id,
            _FLAGGED.kind,
            _FLAGGED.name,
            _FLAGGED.region,
            _OTHER.public_id,
            _OTHER.name,
            _OTHER.region,
        )
        .join(_FLAGGED, _FLAGGED.id == IdentityFlag.subject_id)
        .join(_OTHER, _OTHER.id == IdentityFlag.other_subject_id)
        .outerjoin(IdentityResolution, IdentityResolution.flag_id == IdentityFlag.id)
        .outerjoin(SubjectAlias, SubjectAlias.resolution_id == IdentityResolution.id)
        .outerjoin(AliasEnd, AliasEnd.alias_id == SubjectAlias.id)
    )


def _status(resolution: IdentityResolution | None, end: AliasEnd | None) -> FlagStatus:
    if resolution is None:
        return "open"
    if resolution.outcome == MERGED and end is not None:
        return "unmerged"
    return resolution.outcome  # type: ignore[return-value]


def _views(session: Session, query: Select[*tuple[Any, ...]]) -> list[FlagView]:
    rows = session.execute(
        query.order_by(IdentityFlag.flagged_at.desc(), IdentityFlag.id.desc())
    ).all()
    return [
        FlagView(
            flag_id=flag.public_id,
            kind=kind,
            subject_id=subject,
            other_subject_id=other,
            test=flag.test,
            flagged_at=flag.flagged_at,
            status=_status(resolution, end),
            resolution_id=None if resolution is None else resolution.public_id,
            resolved_at=None if resolution is None else resolution.resolved_at,
            reason=None if resolution is None else resolution.reason,
            alias_id=None if alias is None else alias.public_id,
            merged_at=None if alias is None else alias.merged_at,
            unmerged_at=None if end is None else end.ended_at,
            unmerge_reason=None if end is None else end.reason,
            subject_name=subject_name,
            other_name=other_name,
            subject_region=subject_region,
            other_region=other_region,
            id=flag.id,
            subject=flag.subject_id,
            other=flag.other_subject_id,
        )
        for (
            flag,
            resolution,
            alias,
            end,
            subject,
            kind,
            subject_name,
            subject_region,
            other,
            other_name,
            other_region,
        ) in rows
    ]


def get_flag(session: Session, flag_id: str) -> FlagView:
    """One flag by public id; 404 ``unknown_flag``."""
    found = _views(session, _view_query().where(IdentityFlag.public_id == flag_id))
    if not found:
        raise NotFound(f"no identity flag {flag_id!r}", code="unknown_flag")
    return found[0]


def list_flags(
    session: Session, *, authority_for: str, status: FlagFilter = "open"
) -> list[FlagView]:
    """The flags an identity authority for ``authority_for`` (``person`` or
    ``organisation``) answers, newest first: those awaiting it (``open``), those it
    resolved, or all."""
    query = _view_query()
    if authority_for == "person":
        query = query.where(_FLAGGED.kind == SubjectKind.PERSON.value)
    else:
        query = query.where(_FLAGGED.kind != SubjectKind.PERSON.value)
    if status == "open":
        query = query.where(IdentityResolution.id.is_(None))
    elif status == "resolved":
        query = query.where(IdentityResolution.id.is_not(None))
    return _views(session, query)


def flags_of(session: Session, subject_id: int) -> list[FlagView]:
    """The flags raised when ``subject_id`` was registered, earliest subject first."""
    views = _views(session, _view_query().where(IdentityFlag.subject_id == subject_id))
    return sorted(views, key=lambda v: v.other)


def file_notes(session: Session, subject_id: int) -> list[IdentityNote]:
    """What the file of ``subject_id`` shows of identities, newest first: every flag
    raised at its registration or against it, each with its resolution, the merge it
    made (which file the alias is read into, from when, until when) or the void."""
    views = _views(
        session,
        _view_query().where(
            or_(IdentityFlag.subject_id == subject_id, IdentityFlag.other_subject_id == subject_id)
        ),
    )
    return [
        IdentityNote(
            flag_id=v.flag_id,
            role="flagged" if v.subject == subject_id else "resembled",
            other_subject_id=v.other_subject_id if v.subject == subject_id else v.subject_id,
            test=v.test,
            flagged_at=v.flagged_at,
            status=v.status,
            resolved_at=v.resolved_at,
            reason=v.reason,
            alias_id=v.alias_id,
            read_into=v.other_subject_id if v.alias_id is not None else None,
            merged_at=v.merged_at,
            unmerged_at=v.unmerged_at,
        )
        for v in views
    ]


def _take_turns(session: Session, subject_ids: Iterable[int]) -> None:
    """Take turns with any other step on these subjects' identities until the
    transaction ends, and read only after: PostgreSQL locks their rows (``FOR NO KEY
    UPDATE``, in id order; records may still be stored for them), SQLite takes its one
    write lock (a write that changes nothing)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(Subject.id)
            .where(Subject.id.in_(sorted(set(subject_ids))))
            .order_by(Subject.id)
            .with_for_update(key_share=True)
        ).all()
    else:
        session.execute(text("DELETE FROM identity_voids WHERE 0 = 1"))


def _active_alias(
    session: Session, *, of: int | None = None, into: int | None = None
) -> SubjectAlias | None:
    """An alias not ended: of subject ``of`` (read into another), or into ``into``."""
    query = (
        select(SubjectAlias)
        .outerjoin(AliasEnd, AliasEnd.alias_id == SubjectAlias.id)
        .where(AliasEnd.id.is_(None))
    )
    if of is not None:
        query = query.where(SubjectAlias.alias_subject_id == of)
    if into is not None:
        query = query.where(SubjectAlias.into_subject_id == into)
    return session.scalars(query.order_by(SubjectAlias.id).limit(1)).first()


def _check_merge(session: Session, subject: Subject, other: Subject) -> None:
    """Refuse (409) a merge of ``subject`` into ``other`` that would read a voided file,
    read one subject into two files, or make a chain of aliases."""
    voided_ids = voided_among(session, (subject.id, other.id))
    for voided in (subject, other):
        if voided.id in voided_ids:
            raise Conflict(
                f"subject {voided.public_id} was voided as fictitious: no file can be read "
                "into it or out of it",
                code="identity_voided",
                details={"subject_id": voided.public_id},
            )
    alias = _active_alias(session, of=subject.id)
    if alias is not None:
        raise Conflict(
            f"subject {subject.public_id} is read into another file already (alias "
            f"{alias.public_id}); end that alias first",
            code="subject_merged",
            details={"alias_id": alias.public_id},
        )
    chained = _active_alias(session, of=other.id) or _active_alias(session, into=subject.id)
    if chained is not None:
        raise Conflict(
            "a merge may not make a chain of aliases: "
            + (
                f"subject {other.public_id} is itself read into another file"
                if chained.alias_subject_id == other.id
                else f"another file is read into subject {subject.public_id}"
            )
            + f" (alias {chained.public_id}); end that alias first",
            code="alias_chain",
            details={"alias_id": chained.public_id},
        )


def _check_void(session: Session, subject: Subject) -> None:
    alias = _active_alias(session, of=subject.id)
    if alias is not None:
        raise Conflict(
            f"subject {subject.public_id} is read into another file (alias "
            f"{alias.public_id}); end that alias before voiding it",
            code="subject_merged",
            details={"alias_id": alias.public_id},
        )


def _resent(view: FlagView, outcome: str) -> FlagView:
    """``view`` if its flag was resolved with ``outcome`` (a resend), else 409."""
    stored = MERGED if view.status == "unmerged" else view.status
    if stored == outcome:
        return view
    raise Conflict(
        f"identity flag {view.flag_id} was already resolved {stored} on "
        f"{_when(view.resolved_at)}; a flag is resolved once",
        code="flag_resolved",
        details={"flag_id": view.flag_id, "outcome": stored},
    )


def _when(at: datetime | None) -> str:
    return "an earlier date" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def resolve_flag(
    session: Session,
    *,
    flag_id: str,
    outcome: str,
    authority: Source | None,
    principal_id: int | None,
    reason: str,
    at: datetime,
) -> tuple[FlagView, bool]:
    """Resolve an open flag as ``outcome`` (``distinct``, ``merged`` or ``voided``) on
    the word of ``authority`` (an identity authority for the flagged subject's kind):
    ``(view, created)``. A flag resolved already gives its view again if ``outcome`` is
    its outcome (a resend, not created), 409 ``flag_resolved`` naming it otherwise."""
    if outcome not in OUTCOMES:
        raise InvalidInput(
            f"an identity flag is resolved {', '.join(OUTCOMES)}", code="unknown_outcome"
        )
    view = get_flag(session, flag_id)
    source = check_authority(authority, view.kind)
    reason = clean_reason(reason)
    if view.status != "open":
        return _resent(view, outcome), False
    _take_turns(session, (view.subject, view.other))
    view = get_flag(session, flag_id)  # as it stands now that this step has its turn
    if view.status != "open":
        return _resent(view, outcome), False
    subject = session.get_one(Subject, view.subject)
    other = session.get_one(Subject, view.other)
    if outcome == MERGED:
        _check_merge(session, subject, other)
    elif outcome == VOIDED:
        _check_void(session, subject)
    resolution_id = insert_new(
        session,
        _RESOLUTIONS,
        {
            "public_id": new_id("idr"),
            "flag_id": view.id,
            "outcome": outcome,
            "source_id": source.id,
            "principal_id": principal_id,
            "reason": reason,
            "resolved_at": at,
        },
        unique=("flag_id",),
    )
    if resolution_id is None:  # resolved at the same moment by another request
        return _resent(get_flag(session, flag_id), outcome), False
    resolution = session.get_one(IdentityResolution, resolution_id)
    rows: list[Any] = [resolution]
    data: dict[str, Any] = {
        "flag": view.flag_id,
        "resolution": resolution.public_id,
        "subject": subject.public_id,
        "other": other.public_id,
        "authority": source.code,
        "reason_sha256": journal.text_digest(reason),
    }
    what = _authority(subject.kind)
    # Who found it, when and why: in every notice of the resolution.
    found = {"authority": source.name, "at": at, "reason": reason}
    if outcome == DISTINCT:
        kind = journal.EventKind.IDENTITY_CONFIRMED_DISTINCT
        told_subject = coded(
            "identity_distinct",
            **found,
            other=other.public_id,
            test=view.test,
            whats=what,
        )
        told_other = coded(
            "identity_distinct_other",
            **found,
            subject=subject.public_id,
            a_what=what,
            test=view.test,
            whats=what,
        )
    elif outcome == MERGED:
        kind = journal.EventKind.SUBJECTS_MERGED
        prior = session.scalar(
            select(func.count())
            .select_from(SubjectAlias)
            .where(SubjectAlias.alias_subject_id == subject.id)
        )
        alias_id = insert_new(
            session,
            _ALIASES,
            {
                "public_id": new_id("als"),
                "resolution_id": resolution.id,
                "alias_subject_id": subject.id,
                "into_subject_id": other.id,
                "attempt": prior or 0,
                "merged_at": at,
            },
            unique=("alias_subject_id", "attempt"),
        )
        if alias_id is None:  # never while steps take turns; refuse rather than guess
            raise Conflict(
                f"subject {subject.public_id} was merged by another request at the same moment",
                code="subject_merged",
            )
        alias = session.get_one(SubjectAlias, alias_id)
        rows.append(alias)
        data |= {
            "alias": alias.public_id,
            "alias_subject": subject.public_id,
            "into": other.public_id,
        }
        told_subject = coded(
            "identity_merged",
            **found,
            subject=subject.public_id,
            other=other.public_id,
            what=what,
            alias=alias.public_id,
        )
        told_other = coded(
            "identity_merged_other", **found, subject=subject.public_id, alias=alias.public_id
        )
    else:
        kind = journal.EventKind.IDENTITY_VOIDED
        void_id = insert_new(  # None if voided already, on another flag
            session,
            _VOIDS,
            {"subject_id": subject.id, "resolution_id": resolution.id, "voided_at": at},
            unique=("subject_id",),
        )
        if void_id is not None:
            rows.append(session.get_one(IdentityVoid, void_id))
        told_subject = coded("identity_voided", **found, subject=subject.public_id, what=what)
        told_other = coded(
            "identity_voided_other",
            **found,
            subject=subject.public_id,
            a_what=what,
            test=view.test,
        )
    session.flush()
    record_event(
        session,
        kind=kind,
        at=at,
        subject_id=subject.id,
        data=data,
        rows=rows,
        notice=Notice.coded_as(told_subject),
    )
    notify(
        session,
        subject_id=other.id,
        kind=kind,
        text=render(told_other["code"], told_other["params"]),
        at=at,
        coded=told_other,
    )
    session.flush()
    return get_flag(session, flag_id), True


def end_alias(
    session: Session,
    *,
    alias_id: str,
    authority: Source | None,
    principal_id: int | None,
    reason: str,
    at: datetime,
) -> tuple[FlagView, bool]:
    """Undo a merge on the word of ``authority``: from ``at`` the alias is read as a
    file of its own again. ``(view of its flag, created)``; an alias ended already gives
    the same view (a resend, not created)."""
    alias = session.scalars(select(SubjectAlias).where(SubjectAlias.public_id == alias_id)).first()
    if alias is None:
        raise NotFound(f"no alias {alias_id!r}", code="unknown_alias")
    subject = session.get_one(Subject, alias.alias_subject_id)
    source = check_authority(authority, subject.kind)
    reason = clean_reason(reason)
    flag_id = session.scalars(
        select(IdentityFlag.public_id)
        .join(IdentityResolution, IdentityResolution.flag_id == IdentityFlag.id)
        .where(IdentityResolution.id == alias.resolution_id)
    ).one()
    _take_turns(session, (alias.alias_subject_id, alias.into_subject_id))
    end_id = insert_new(
        session,
        _ALIAS_ENDS,
        {
            "alias_id": alias.id,
            "source_id": source.id,
            "principal_id": principal_id,
            "reason": reason,
            "ended_at": at,
        },
        unique=("alias_id",),
    )
    if end_id is None:  # ended before (a resend), or by another request at once
        return get_flag(session, flag_id), False
    end = session.get_one(AliasEnd, end_id)
    into = session.get_one(Subject, alias.into_subject_id)
    what = _authority(subject.kind)
    found = {"authority": source.name, "at": at, "reason": reason}
    record_event(
        session,
        kind=journal.EventKind.SUBJECTS_UNMERGED,
        at=at,
        subject_id=subject.id,
        data={
            "alias": alias.public_id,
            "flag": flag_id,
            "alias_subject": subject.public_id,
            "into": into.public_id,
            "authority": source.code,
            "reason_sha256": journal.text_digest(reason),
        },
        rows=[end],
        notice=Notice.coded_as(
            coded(
                "subjects_unmerged",
                **found,
                subject=subject.public_id,
                into=into.public_id,
                alias=alias.public_id,
                whats=what,
            )
        ),
    )
    told_into = coded(
        "subjects_unmerged_other", **found, subject=subject.public_id, alias=alias.public_id
    )
    notify(
        session,
        subject_id=into.id,
        kind=journal.EventKind.SUBJECTS_UNMERGED,
        text=render(told_into["code"], told_into["params"]),
        at=at,
        coded=told_into,
    )
    session.flush()
    return get_flag(session, flag_id), True


_RESOLUTIONS = IdentityResolution.metadata.tables[IdentityResolution.__tablename__]
_ALIASES = SubjectAlias.metadata.tables[SubjectAlias.__tablename__]
_ALIAS_ENDS = AliasEnd.metadata.tables[AliasEnd.__tablename__]
_VOIDS = IdentityVoid.metadata.tables[IdentityVoid.__tablename__]


# --- what the engines read ----------------------------------------------------------------


def voided_among(session: Session, subject_ids: Collection[int]) -> set[int]:
    """Those of ``subject_ids`` voided as fictitious (by now): one indexed statement
    for the whole collection (intake holds their new records)."""
    ids = sorted(set(subject_ids))
    if not ids:
        return set()
    connection = core(session)
    dialect = connection.dialect.name
    found: set[int] = set()
    for chunk in chunked(ids):
        found.update(
            connection.execute(
                select(IdentityVoid.subject_id).where(
                    in_list(IdentityVoid.subject_id, "ids", dialect)
                ),
                {"ids": list(chunk)},
            ).scalars()
        )
    return found


def alias_rows() -> Select[int, int, datetime, datetime | None]:
    """Every merge, ended or not: ``(alias_subject_id, into_subject_id, merged_at,
    ended_at)`` (``ended_at`` None while it lasts). The alias's records are read into
    ``into_subject_id``'s file at every instant in ``[merged_at, ended_at)``."""
    return select(
        SubjectAlias.alias_subject_id,
        SubjectAlias.into_subject_id,
        SubjectAlias.merged_at,
        AliasEnd.ended_at,
    ).outerjoin(AliasEnd, AliasEnd.alias_id == SubjectAlias.id)


def aliases_at(session: Session, at: datetime) -> dict[int, int]:
    """The aliases in force at ``at``: alias subject id -> the subject whose file it is
    read into (merged at or before ``at``, not ended by then)."""
    rows = alias_rows().subquery()
    query = select(rows.c.alias_subject_id, rows.c.into_subject_id).where(
        rows.c.merged_at <= at, or_(rows.c.ended_at.is_(None), rows.c.ended_at > at)
    )
    return {alias: into for alias, into in core(session).execute(query)}
