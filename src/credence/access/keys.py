"""Principals, their API keys, and relying parties with the services they may ask about.

A key looks like ``cr_rp_<43 url-safe characters>``: the role abbreviation tells a person
what a leaked key is for, the random part carries 256 bits. Only the SHA-256 of a key
and its first :data:`PREFIX_LEN` characters (to name it in lists, logs and revocations)
are stored; the plaintext is returned once, by :func:`issue_key`, and never again.

Issuing, revoking and rotating keys writes journal entries, so every change of who may
call the system is on the transparency log.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from credence import journal
from credence.access.policy import Caller, Role
from credence.access.tables import ApiKey, PartyService, Principal, RelyingParty
from credence.clock import Clock, ensure_utc, from_micros
from credence.db import Direct, Prepared
from credence.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from credence.notifications.service import record_event

ROLE_ABBREV: dict[Role, str] = {
    Role.SOURCE: "src",
    Role.RELYING_PARTY: "rp",
    Role.SUBJECT: "sub",
    Role.REVIEWER: "rev",
    Role.OPERATOR: "op",
}
"""The tag after ``cr_`` in a key: which role the key speaks for."""

PREFIX_LEN = 12
"""How many leading characters of a key are stored in clear to identify it."""

# Which link each role needs; roles not listed carry no link.
_LINK: dict[Role, str] = {
    Role.SOURCE: "source_id",
    Role.RELYING_PARTY: "party_id",
    Role.SUBJECT: "subject_id",
}


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex.

    A fast hash is the right choice here, unlike for passwords: a key has 256 bits of
    randomness, so no amount of hashing speed makes guessing it feasible. Slow hashes
    (bcrypt, argon2) defend low-entropy secrets and would add tens of milliseconds to
    every request; a deterministic fast hash also lets us find the key by an indexed
    equality lookup on ``key_hash``.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _linked_row_exists(session: Session, column: Any, value: int) -> bool:
    """Whether the row a principal's link column points to exists: the column's foreign
    key names the table, so the policy layer holds opaque ids without knowing the
    ledger's tables."""
    (key,) = column.property.columns[0].foreign_keys
    target = key.column
    return session.execute(select(target).where(target == value)).first() is not None


def create_principal(
    session: Session,
    *,
    role: Role,
    name: str,
    source_id: int | None = None,
    party_id: int | None = None,
    subject_id: int | None = None,
    clock: Clock,
) -> Principal:
    """Create someone who may hold keys, in one role, linked to what they speak for.

    A ``source`` principal needs ``source_id``, a ``relying_party`` needs ``party_id``,
    a ``subject`` needs ``subject_id``; a ``reviewer`` or ``operator`` has no link.
    Raises :class:`InvalidInput` when the links do not fit the role and
    :class:`NotFound` when the linked source, party or subject does not exist.
    """
    role = Role(role)
    if role is Role.PUBLIC:
        raise InvalidInput("the public role needs no key: choose another role")
    name = name.strip()
    if not name:
        raise InvalidInput("a principal needs a name: who holds the key")
    if len(name) > 200:
        raise InvalidInput("a principal's name has at most 200 characters")
    links = {"source_id": source_id, "party_id": party_id, "subject_id": subject_id}
    needed = _LINK.get(role)
    if needed is not None and links[needed] is None:
        raise InvalidInput(
            f"a {role.value} principal needs {needed}: the {needed[:-3]} it speaks for",
            details={"role": role.value, "missing": needed},
        )
    extra = sorted(k for k, v in links.items() if v is not None and k != needed)
    if extra:
        raise InvalidInput(
            f"a {role.value} principal cannot be linked by {', '.join(extra)}",
            details={"role": role.value, "unexpected": extra},
        )
    for column, key, value in (
        (Principal.source_id, "source", source_id),
        (Principal.party_id, "relying party", party_id),
        (Principal.subject_id, "subject", subject_id),
    ):
        if value is not None and not _linked_row_exists(session, column, value):
            raise NotFound(f"no {key} with id {value}")
    principal = Principal(
        role=role.value,
        name=name,
        source_id=source_id,
        party_id=party_id,
        subject_id=subject_id,
        created_at=clock.now(),
    )
    record_event(
        session,
        kind=journal.EventKind.PRINCIPAL_CREATED,
        at=principal.created_at,
        subject_id=subject_id,
        data={"role": role.value},
        rows=[principal],
    )
    return principal


def issue_key(
    session: Session,
    *,
    principal: Principal,
    clock: Clock,
    expires_at: datetime | None = None,
    replaces: ApiKey | None = None,
) -> str:
    """Issue a new key for ``principal`` and return it: the only time it is seen in clear.

    ``expires_at``, if given, must lie in the future. ``replaces`` is the key a rotation
    replaces with this one."""
    now = clock.now()
    if expires_at is not None:
        expires_at = ensure_utc(expires_at)
        if expires_at <= now:
            raise InvalidInput(
                f"expires_at {_when(expires_at)} is not after now ({_when(now)}): "
                "a key's expiry must lie in the future",
                code="expiry_not_in_future",
            )
    if principal.id is None:
        raise ValueError("save the principal first (create_principal does)")
    role = Role(principal.role)
    key, prefix = _new_key(session, role)
    issued = ApiKey(
        principal_id=principal.id,
        prefix=prefix,
        key_hash=hash_key(key),
        created_at=now,
        expires_at=expires_at,
        replaces_id=None if replaces is None else replaces.id,
    )
    record_event(
        session,
        kind=journal.EventKind.KEY_ISSUED,
        rows=[issued],
        at=now,
        data={
            "principal": principal.id,
            "role": role.value,
            "prefix": prefix,
            "expires_at": expires_at,
            **({} if replaces is None else {"replaces": replaces.prefix}),
        },
    )
    session.flush()
    return key


def revoke_key(session: Session, *, prefix: str, clock: Clock) -> ApiKey:
    """Revoke the key named by its ``prefix`` now; it is refused from then on.

    A key whose revocation a rotation scheduled (it is in its overlap) is cut now. A
    revocation during a rotation's overlap cuts both keys of the rotation, the old and
    the new: whoever revokes a key in the middle of replacing it means to stop the
    holder's access, not to swap one live key for the other. Revoking a key that is
    already revoked is a 409.
    """
    now = clock.now()
    row = _key_by_prefix(session, prefix)
    if row.revoked_at is not None and row.revoked_at <= now:
        raise Conflict(
            f"API key {row.prefix}… is already revoked (at {_when(row.revoked_at)})",
            code="key_already_revoked",
        )
    others = _overlapping(session, row, now)
    _revoke(session, row, at=now, now=now)
    for other in others:
        _revoke(session, other, at=now, now=now)
    return row


def _overlapping(session: Session, row: ApiKey, now: datetime) -> list[ApiKey]:
    """The other key of each rotation ``row`` takes part in whose overlap is still
    running at ``now``: the key it replaced while that one's revocation is still to
    come, and the keys that replaced it while it itself was still to be revoked."""
    found: list[ApiKey] = []
    if row.replaces_id is not None:
        old = session.get(ApiKey, row.replaces_id)
        if old is not None and old.revoked_at is not None and old.revoked_at > now:
            found.append(old)
    if row.revoked_at is not None and row.revoked_at > now:
        found.extend(
            key
            for key in session.scalars(select(ApiKey).where(ApiKey.replaces_id == row.id))
            if key.revoked_at is None or key.revoked_at > now
        )
    return found


def rotate_key(
    session: Session,
    *,
    prefix: str,
    clock: Clock,
    expires_at: datetime | None = None,
    overlap: timedelta = timedelta(0),
) -> str:
    """Issue a new key to the holder of key ``prefix`` and revoke the old one.

    ``overlap`` keeps the old key working that much longer, so a holder can deploy the
    new key before the old one stops. Returns the new key in clear. A key already
    revoked, or already being replaced, cannot be rotated (409).
    """
    if overlap < timedelta(0):
        raise InvalidInput("overlap cannot be negative")
    old = _key_by_prefix(session, prefix)
    now = clock.now()
    if old.revoked_at is not None:
        state = "revoked" if old.revoked_at <= now else "being replaced (revoked"
        closing = "" if old.revoked_at <= now else ")"
        raise Conflict(
            f"API key {old.prefix}… is already {state} at {_when(old.revoked_at)}{closing}",
            code="key_already_revoked",
        )
    principal = session.get(Principal, old.principal_id)
    assert principal is not None  # foreign key
    key = issue_key(session, principal=principal, clock=clock, expires_at=expires_at, replaces=old)
    _revoke(session, old, at=now + overlap, now=now)
    return key


def authenticate(session: Session, token: str | None, *, clock: Clock) -> Caller:
    """The caller a bearer key belongs to, or :class:`Unauthenticated` (401) saying why.

    Reads the key in ``session``'s transaction: what was committed before is what
    counts, so a revocation or a new key applies to the very next request. The key
    itself never appears in a message or log line; at most its prefix does.
    """
    # A prepared statement on the session's connection, in its transaction: the ORM's
    # work per statement would cost more than the indexed read.
    return authenticate_direct(Direct.within(session), token_hash(token), clock=clock)


def authenticate_direct(direct: Direct, key_hash: str, *, clock: Clock) -> Caller:
    """As :func:`authenticate`, for the key whose :func:`token_hash` is ``key_hash``,
    with a prepared statement on a :class:`Direct` connection (the direct decision
    path)."""
    rows = _KEY_DIRECT.run(direct, {"key_hash": key_hash})
    row = rows[0] if rows else None
    if row is not None:
        prefix, revoked, expires, *holder = row
        row = (
            prefix,
            None if revoked is None else from_micros(revoked),
            None if expires is None else from_micros(expires),
            *holder,
        )
    return _KeyState.of(row).caller_at(clock.now())


@dataclass(frozen=True)
class _KeyState:
    """What deciding on a key needs: its prefix, validity window and holder."""

    prefix: str
    revoked_at: datetime | None
    expires_at: datetime | None
    caller: Caller

    @classmethod
    def of(cls, row: Any) -> _KeyState:
        """From a row of :func:`_key_query` (None: no such key, a 401)."""
        if row is None:
            raise Unauthenticated("unknown API key")
        prefix, revoked_at, expires_at, principal_id, role, name, source, party, subject = row
        caller = Caller(
            principal_id=principal_id,
            role=Role(role),
            name=name,
            source_id=source,
            party_id=party,
            subject_id=subject,
        )
        return cls(prefix, revoked_at, expires_at, caller)

    def caller_at(self, now: datetime) -> Caller:
        """The caller, if the key is valid at ``now``; else why not (401)."""
        if self.revoked_at is not None and self.revoked_at <= now:
            raise Unauthenticated(
                f"API key {self.prefix}… revoked at {_when(self.revoked_at)}",
                details={"reason": "revoked", "prefix": self.prefix},
            )
        if self.expires_at is not None and self.expires_at <= now:
            raise Unauthenticated(
                f"API key {self.prefix}… expired at {_when(self.expires_at)}",
                details={"reason": "expired", "prefix": self.prefix},
            )
        return self.caller


def token_hash(token: str | None) -> str:
    """The stored form of a bearer key (:func:`hash_key`); a missing key is a 401."""
    token = (token or "").strip()
    if not token:
        raise Unauthenticated("missing API key: send Authorization: Bearer <key>")
    return hash_key(token)


@functools.cache
def _key_query() -> Select[
    str, datetime | None, datetime | None, int, str, str, int | None, int | None, int | None
]:
    """The one statement :func:`authenticate` runs (parameter ``key_hash``), built once."""
    return (
        select(
            ApiKey.prefix,
            ApiKey.revoked_at,
            ApiKey.expires_at,
            Principal.id,
            Principal.role,
            Principal.name,
            Principal.source_id,
            Principal.party_id,
            Principal.subject_id,
        )
        .join(Principal, Principal.id == ApiKey.principal_id)
        .where(ApiKey.key_hash == bindparam("key_hash"))
    )


_KEY_DIRECT = Prepared(_key_query())


def create_relying_party(
    session: Session, *, code: str, name: str, services: Iterable[str], clock: Clock
) -> RelyingParty:
    """Register a relying party and the services it may ask decisions for.

    The caller checks ``services`` against the rulebook in force; this stores them.
    """
    code = code.strip()
    if not code:
        raise InvalidInput("a relying party needs a code")
    if session.scalar(select(RelyingParty.id).where(RelyingParty.code == code)) is not None:
        raise Conflict(f"relying party {code!r} already exists", code="party_exists")
    party = RelyingParty(code=code, name=name.strip() or code, created_at=clock.now())
    session.add(party)
    session.flush()
    record_event(
        session,
        kind=journal.EventKind.PARTY_REGISTERED,
        at=party.created_at,
        data={"party": code},
        rows=[
            party,
            *(
                PartyService(party_id=party.id, service=service)
                for service in dict.fromkeys(s.strip() for s in services if s.strip())
            ),
        ],
    )
    return party


def party_services(session: Session, party_id: int) -> set[str]:
    """The services relying party ``party_id`` may ask decisions for."""
    return set(
        session.scalars(select(PartyService.service).where(PartyService.party_id == party_id))
    )


def _new_key(session: Session, role: Role) -> tuple[str, str]:
    # The prefix holds only ~5 random characters, so make sure it names one key.
    for _ in range(8):
        key = f"cr_{ROLE_ABBREV[role]}_{secrets.token_urlsafe(32)}"
        prefix = key[:PREFIX_LEN]
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            return key, prefix
    raise RuntimeError("could not find an unused key prefix")  # pragma: no cover


def _key_by_prefix(session: Session, prefix: str) -> ApiKey:
    rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == prefix.strip())).all())
    if not rows:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if len(rows) > 1:  # pragma: no cover - issue_key keeps prefixes unique
        raise Conflict(f"prefix {prefix!r} names {len(rows)} keys")
    return rows[0]


def _revoke(session: Session, row: ApiKey, *, at: datetime, now: datetime) -> None:
    row.revoked_at = at
    principal = session.get(Principal, row.principal_id)
    assert principal is not None  # foreign key
    record_event(
        session,
        kind=journal.EventKind.KEY_REVOKED,
        rows=[row],
        at=now,
        data={
            "principal": principal.id,
            "role": principal.role,
            "prefix": row.prefix,
            "revoked_at": at,
        },
    )
    session.flush()


def _when(at: datetime) -> str:
    return ensure_utc(at).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- listings (read only) ----------------------------------------------------------------


@dataclass(frozen=True)
class KeyListing:
    """What may be shown of a key: its prefix, holder and validity; never the key or its
    hash."""

    prefix: str
    role: str
    holder: str
    #: The relying party's code for a relying party's key; None otherwise.
    party: str | None
    #: The opaque ids a source's or a subject's key speaks for (the ledger names them).
    source_id: int | None
    subject_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, at: datetime) -> str:
        """``active``, ``revoked``, ``expired``, or ``revoking`` (a rotation's overlap:
        it works until ``revoked_at``)."""
        if self.revoked_at is not None and ensure_utc(self.revoked_at) <= at:
            return "revoked"
        if self.expires_at is not None and ensure_utc(self.expires_at) <= at:
            return "expired"
        return "revoking" if self.revoked_at is not None else "active"


def list_keys(session: Session, *, role: Role | None = None) -> list[KeyListing]:
    """Every key issued, oldest first (of one ``role``, if given); a subject's key shows
    no holder name."""
    query = (
        select(
            ApiKey.prefix,
            Principal.role,
            Principal.name,
            RelyingParty.code,
            Principal.source_id,
            Principal.subject_id,
            ApiKey.created_at,
            ApiKey.expires_at,
            ApiKey.revoked_at,
        )
        .join(Principal, Principal.id == ApiKey.principal_id)
        .outerjoin(RelyingParty, RelyingParty.id == Principal.party_id)
        .order_by(ApiKey.id)
    )
    if role is not None:
        query = query.where(Principal.role == Role(role).value)
    # A subject's key is held by a person: their name is not shown (nor exported).
    listed = []
    for row in session.execute(query):
        key = KeyListing(*row)
        if key.role == Role.SUBJECT.value:
            key = dataclasses.replace(key, holder="(subject)")
        listed.append(key)
    return listed


@dataclass(frozen=True)
class PartyListing:
    """A relying party and the services it may ask decisions for."""

    code: str
    name: str
    services: tuple[str, ...]
    created_at: datetime


def list_parties(session: Session) -> list[PartyListing]:
    """Every relying party, by code."""
    services: dict[int, list[str]] = {}
    for party_id, service in session.execute(
        select(PartyService.party_id, PartyService.service).order_by(PartyService.service)
    ):
        services.setdefault(party_id, []).append(service)
    return [
        PartyListing(code, name, tuple(services.get(party_id, ())), created_at)
        for party_id, code, name, created_at in session.execute(
            select(
                RelyingParty.id, RelyingParty.code, RelyingParty.name, RelyingParty.created_at
            ).order_by(RelyingParty.code)
        )
    ]


def party_by_code(session: Session, code: str) -> RelyingParty:
    """The relying party registered as ``code``; :class:`NotFound` if none is."""
    party = session.scalar(select(RelyingParty).where(RelyingParty.code == code.strip()))
    if party is None:
        raise NotFound(f"no relying party {code!r}", code="unknown_party")
    return party
