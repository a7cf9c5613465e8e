"""The authorisation table (every role × action cell) and API keys on every backend."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import (
    PREFIX_LEN,
    authenticate,
    create_principal,
    create_relying_party,
    issue_key,
    party_services,
    revoke_key,
    rotate_key,
)
from credence.access.policy import (
    POLICY,
    PUBLIC,
    Action,
    Caller,
    Role,
    Scope,
    allowed,
    authorize,
    grants,
    scope_of,
)
from credence.access.tables import ApiKey, Principal, RelyingParty
from credence.clock import FixedClock
from credence.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from credence.journal import JournalEntry
from credence.ledger.tables import Source, Subject

# --- the policy table --------------------------------------------------------------------

# Written out by hand from docs/roles.md, independently of credence.access.policy: changing
# POLICY without changing this matrix fails the test. "-" is denied.
EXPECTED_MATRIX = """
action              source  relying_party  subject  reviewer  operator  public
rulebook_read       any     any            any      any       any       any
log_read            any     any            any      any       any       any
source_status_read  any     any            any      any       any       any
subject_register    any     -              -        -         -         -
subject_lookup      any     any            -        -         any       -
record_submit       own     -              -        -         -         -
record_retract      own     -              -        -         -         -
file_read           -       -              own      any       any       -
score_read          -       -              own      -         any       -
decision_request    -       any            -        -         -         -
dispute_open        -       -              own      -         -         -
dispute_answer      own     -              -        -         -         -
dispute_review      -       -              -        any       -         -
change_review       -       -              -        any       -         -
hold_review         -       -              -        any       -         -
backfill_approve    -       -              -        -         any       -
key_manage          -       -              -        -         any       -
source_manage       -       -              -        -         any       -
source_suspend      -       -              -        -         any       -
source_alert        -       -              -        -         any       -
party_manage        -       -              -        -         any       -
rulebook_publish    -       -              -        -         any       -
"""


def _parse_matrix(text: str) -> dict[tuple[str, str], str]:
    header, *rows = [line.split() for line in text.strip().splitlines()]
    roles = header[1:]
    return {(role, row[0]): cell for row in rows for role, cell in zip(roles, row[1:], strict=True)}


EXPECTED = _parse_matrix(EXPECTED_MATRIX)

# The ids each role's caller owns; "another" resource is always id + 1.
OWN_SOURCE, OWN_PARTY, OWN_SUBJECT = 10, 20, 30


def caller_for(role: Role) -> Caller:
    if role is Role.PUBLIC:
        return PUBLIC
    return Caller(
        principal_id=1,
        role=role,
        name=f"a {role.value}",
        source_id=OWN_SOURCE if role is Role.SOURCE else None,
        party_id=OWN_PARTY if role is Role.RELYING_PARTY else None,
        subject_id=OWN_SUBJECT if role is Role.SUBJECT else None,
    )


def test_matrix_covers_every_role_and_action() -> None:
    assert {role for role, _ in EXPECTED} == {r.value for r in Role}
    assert {action for _, action in EXPECTED} == {a.value for a in Action}
    assert len(EXPECTED) == len(Role) * len(Action)


def test_policy_table_matches_matrix() -> None:
    actual = {
        (role.value, action.value): scope_of(role, action).value.replace("none", "-")
        for role in Role
        for action in Action
    }
    assert actual == EXPECTED
    # Nothing in the table refers to anything outside the enums.
    assert all(isinstance(r, Role) and isinstance(a, Action) for r, a in POLICY)


CELLS = [(role, action) for role in Role for action in Action]


@pytest.mark.parametrize(("role", "action"), CELLS, ids=[f"{r}-{a}" for r, a in CELLS])
def test_authorize_obeys_matrix(role: Role, action: Action) -> None:
    caller = caller_for(role)
    expected = EXPECTED[(role.value, action.value)]
    mine = {"subject_id": OWN_SUBJECT, "source_id": OWN_SOURCE}
    theirs = {"subject_id": OWN_SUBJECT + 1, "source_id": OWN_SOURCE + 1}
    if expected == "any":
        authorize(caller, action, **mine)
        authorize(caller, action, **theirs)
        authorize(caller, action)
        assert allowed(caller, action, **theirs)
    elif expected == "own":
        authorize(caller, action, **mine)
        assert allowed(caller, action, **mine)
        with pytest.raises(Forbidden, match="only"):
            authorize(caller, action, **theirs)
        assert not allowed(caller, action, **theirs)
    else:
        denied = Unauthenticated if role is Role.PUBLIC else Forbidden
        with pytest.raises(denied):
            authorize(caller, action, **mine)
        assert not allowed(caller, action, **mine)


def test_denial_names_role_and_action() -> None:
    with pytest.raises(Forbidden) as err:
        authorize(caller_for(Role.RELYING_PARTY), Action.SCORE_READ, subject_id=1)
    assert err.value.message == "a relying_party may not read scores"
    assert err.value.status == 403
    with pytest.raises(Forbidden, match=r"^an operator may not submit records$"):
        authorize(caller_for(Role.OPERATOR), Action.RECORD_SUBMIT, source_id=1)
    with pytest.raises(Forbidden, match=r"^a source may not read files$"):
        authorize(caller_for(Role.SOURCE), Action.FILE_READ, subject_id=1)


def test_public_is_asked_for_a_key() -> None:
    with pytest.raises(Unauthenticated) as err:
        authorize(PUBLIC, Action.FILE_READ, subject_id=1)
    assert err.value.status == 401
    assert "Authorization: Bearer" in err.value.message
    authorize(PUBLIC, Action.RULEBOOK_READ)
    authorize(PUBLIC, Action.LOG_READ)
    authorize(PUBLIC, Action.SOURCE_STATUS_READ)


def test_subject_reads_only_own_file() -> None:
    subject = caller_for(Role.SUBJECT)
    authorize(subject, Action.FILE_READ, subject_id=OWN_SUBJECT)
    authorize(subject, Action.SCORE_READ, subject_id=OWN_SUBJECT)
    with pytest.raises(Forbidden, match=r"^a subject may read only their own file$"):
        authorize(subject, Action.FILE_READ, subject_id=OWN_SUBJECT + 1)
    with pytest.raises(Forbidden, match=r"^a subject may read only their own score$"):
        authorize(subject, Action.SCORE_READ, subject_id=OWN_SUBJECT + 1)
    with pytest.raises(Forbidden, match="own file"):
        authorize(subject, Action.DISPUTE_OPEN, subject_id=OWN_SUBJECT + 1)
    # A source id says nothing about whose file it is.
    with pytest.raises(ValueError, match="needs subject_id"):
        authorize(subject, Action.FILE_READ, source_id=OWN_SOURCE)


def test_source_acts_only_on_own_records() -> None:
    source = caller_for(Role.SOURCE)
    authorize(source, Action.RECORD_RETRACT, source_id=OWN_SOURCE)
    with pytest.raises(Forbidden, match=r"^a source may retract only its own records$"):
        authorize(source, Action.RECORD_RETRACT, source_id=OWN_SOURCE + 1)
    with pytest.raises(Forbidden, match="disputes about its own records"):
        authorize(source, Action.DISPUTE_ANSWER, source_id=OWN_SOURCE + 1)
    with pytest.raises(ValueError, match="needs source_id"):
        authorize(source, Action.RECORD_RETRACT, subject_id=OWN_SUBJECT)


def test_unlinked_principal_is_refused_own_scope() -> None:
    orphan = Caller(principal_id=1, role=Role.SUBJECT, name="orphan")
    with pytest.raises(Forbidden, match="not linked"):
        authorize(orphan, Action.FILE_READ, subject_id=OWN_SUBJECT)


def test_grants_lists_allowed_actions() -> None:
    assert grants(Role.PUBLIC) == {
        Action.RULEBOOK_READ: Scope.ANY,
        Action.LOG_READ: Scope.ANY,
        Action.SOURCE_STATUS_READ: Scope.ANY,
    }
    assert grants(Role.SUBJECT)[Action.FILE_READ] is Scope.OWN
    assert Action.SCORE_READ not in grants(Role.RELYING_PARTY)


# --- keys, on every backend --------------------------------------------------------------

KEY_RE = re.compile(r"^cr_(src|rp|sub|rev|op)_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> dict[str, int]:
    """A source, a subject and a relying party to link principals to."""
    now = clock.now()
    with sessions.begin() as session:
        source = Source(code="city_bank", name="City Bank", kind="bank", created_at=now)
        session.add(source)
        session.flush()
        subject = Subject(
            public_id="sub_test",
            kind="person",
            identifier="11010519491231002X",
            name="Li Lei",
            registered_by=source.id,
            registered_at=now,
        )
        session.add(subject)
        party = create_relying_party(
            session,
            code="sky_airlines",
            name="Sky Airlines",
            services=["air_travel", "air_travel", "lounge"],
            clock=clock,
        )
        session.flush()
        return {"source_id": source.id, "subject_id": subject.id, "party_id": party.id}


def _links(role: Role, world: dict[str, int]) -> dict[str, int]:
    needed = {Role.SOURCE: "source_id", Role.RELYING_PARTY: "party_id", Role.SUBJECT: "subject_id"}
    return {needed[role]: world[needed[role]]} if role in needed else {}


def _issue(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    role: Role,
    world: dict[str, int],
    **kw: Any,
) -> str:
    with sessions.begin() as session:
        principal = create_principal(
            session, role=role, name=f"{role.value} holder", clock=clock, **_links(role, world)
        )
        return issue_key(session, principal=principal, clock=clock, **kw)


def _auth(sessions: sessionmaker[Session], token: str | None, clock: FixedClock) -> Caller:
    with sessions() as session:
        return authenticate(session, token, clock=clock)


KEY_ROLES = [r for r in Role if r is not Role.PUBLIC]


@pytest.mark.parametrize("role", KEY_ROLES)
def test_issue_then_authenticate(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int], role: Role
) -> None:
    key = _issue(sessions, clock, role, world)
    assert KEY_RE.match(key)
    caller = _auth(sessions, key, clock)
    links = _links(role, world)
    assert caller.role is role
    assert caller.name == f"{role.value} holder"
    assert caller.principal_id is not None
    assert caller.source_id == links.get("source_id")
    assert caller.party_id == links.get("party_id")
    assert caller.subject_id == links.get("subject_id")
    # Surrounding whitespace from a copied header does not matter.
    assert _auth(sessions, f" {key}\n", clock) == caller


def test_only_hash_and_prefix_are_stored(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    key = _issue(sessions, clock, Role.OPERATOR, world)
    secret = key[PREFIX_LEN:]
    with sessions() as session:
        row = session.scalars(select(ApiKey)).one()
        assert row.prefix == key[:PREFIX_LEN]
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        issued = session.scalars(select(JournalEntry).where(JournalEntry.kind == "key_issued"))
        entry = issued.one()
        assert f'"prefix":"{row.prefix}"' in entry.data
        assert '"role":"operator"' in entry.data
        assert row.key_hash not in entry.data
    # No column of any table holds the key or its secret part.
    present = MetaData()
    present.reflect(engine)
    with engine.connect() as conn:
        for table in present.sorted_tables:
            for values in conn.execute(table.select()):
                for value in values:
                    assert secret not in str(value), f"key found in {table.name}"


def test_missing_and_unknown_keys(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    for token in (None, "", "   "):
        with pytest.raises(Unauthenticated) as err:
            _auth(sessions, token, clock)
        assert err.value.message == "missing API key: send Authorization: Bearer <key>"
        assert err.value.status == 401
    with pytest.raises(Unauthenticated, match=r"^unknown API key$"):
        _auth(sessions, "cr_op_" + "A" * 43, clock)


def test_revoked_key_is_refused(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    key = _issue(sessions, clock, Role.SOURCE, world)
    clock.advance(timedelta(hours=1))
    with sessions.begin() as session:
        row = revoke_key(session, prefix=key[:PREFIX_LEN], clock=clock)
        assert row.revoked_at == clock.now()
    with pytest.raises(Unauthenticated) as err:
        _auth(sessions, key, clock)
    assert err.value.status == 401
    assert err.value.message == f"API key {key[:PREFIX_LEN]}… revoked at 2026-06-01T01:00:00Z"
    assert key[PREFIX_LEN:] not in err.value.message
    with sessions.begin() as session:
        kinds = list(session.scalars(select(JournalEntry.kind).order_by(JournalEntry.seq)))
        assert kinds[-1] == "key_revoked"
    with sessions.begin() as session, pytest.raises(Conflict, match="already revoked"):
        revoke_key(session, prefix=key[:PREFIX_LEN], clock=clock)
    with sessions.begin() as session, pytest.raises(NotFound):
        revoke_key(session, prefix="cr_op_nope00", clock=clock)


def test_expired_key_is_refused(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    expiry = clock.now() + timedelta(days=1)
    key = _issue(sessions, clock, Role.SUBJECT, world, expires_at=expiry)
    clock.advance(timedelta(days=1) - timedelta(microseconds=1))
    assert _auth(sessions, key, clock).role is Role.SUBJECT
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(Unauthenticated) as err:
        _auth(sessions, key, clock)
    assert err.value.message == f"API key {key[:PREFIX_LEN]}… expired at 2026-06-02T00:00:00Z"
    assert err.value.details == {"reason": "expired", "prefix": key[:PREFIX_LEN]}


def test_expiry_must_be_in_the_future(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput, match="not after now"):
        _issue(sessions, clock, Role.OPERATOR, world, expires_at=clock.now())


def test_rotation(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    old = _issue(sessions, clock, Role.RELYING_PARTY, world)
    with sessions.begin() as session:
        new = rotate_key(session, prefix=old[:PREFIX_LEN], clock=clock)
    assert new != old
    assert _auth(sessions, new, clock).party_id == world["party_id"]
    with pytest.raises(Unauthenticated, match="revoked"):
        _auth(sessions, old, clock)
    # With an overlap, the old key keeps working until the overlap ends.
    with sessions.begin() as session:
        newer = rotate_key(
            session, prefix=new[:PREFIX_LEN], clock=clock, overlap=timedelta(hours=2)
        )
    assert _auth(sessions, new, clock) == _auth(sessions, newer, clock)
    clock.advance(timedelta(hours=2))
    with pytest.raises(Unauthenticated, match="revoked at 2026-06-01T02:00:00Z"):
        _auth(sessions, new, clock)
    assert _auth(sessions, newer, clock).role is Role.RELYING_PARTY
    with sessions() as session:
        principals = session.scalars(select(ApiKey.principal_id)).all()
        assert len(set(principals)) == 1  # all three keys belong to one principal


@pytest.mark.parametrize(
    ("role", "links", "error", "message"),
    [
        (Role.SOURCE, {}, InvalidInput, "needs source_id"),
        (Role.RELYING_PARTY, {"source_id": 1}, InvalidInput, "needs party_id"),
        (Role.SUBJECT, {}, InvalidInput, "needs subject_id"),
        (Role.OPERATOR, {"subject_id": 1}, InvalidInput, "cannot be linked by subject_id"),
        (Role.REVIEWER, {"party_id": 1}, InvalidInput, "cannot be linked by party_id"),
        (Role.PUBLIC, {}, InvalidInput, "public role needs no key"),
        (Role.SOURCE, {"source_id": 9999}, NotFound, "no source with id 9999"),
        (Role.SUBJECT, {"subject_id": 9999}, NotFound, "no subject with id 9999"),
    ],
)
def test_principal_links_must_fit_role(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    role: Role,
    links: dict[str, int],
    error: type[Exception],
    message: str,
) -> None:
    with sessions.begin() as session, pytest.raises(error, match=message):
        create_principal(session, role=role, name="someone", clock=clock, **links)
    with sessions() as session:
        assert session.scalars(select(Principal)).all() == []


def test_relying_party_services(
    sessions: sessionmaker[Session], clock: FixedClock, world: dict[str, int]
) -> None:
    with sessions() as session:
        assert party_services(session, world["party_id"]) == {"air_travel", "lounge"}
        assert party_services(session, world["party_id"] + 1) == set()
        party = session.get(RelyingParty, world["party_id"])
        assert party is not None
        assert party.created_at == clock.now()
    with sessions.begin() as session, pytest.raises(Conflict, match="already exists"):
        create_relying_party(session, code="sky_airlines", name="Again", services=[], clock=clock)
