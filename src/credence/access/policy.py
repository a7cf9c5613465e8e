"""The one authorisation layer: a table of role × action → scope.

Handlers never decide who may do what with ``if`` statements; they call
:func:`authorize` with the action and, where it matters, whose resource it is. The
table :data:`POLICY` is the whole policy (docs/roles.md says it in prose). Anything
absent from it is denied; ``tests/access/test_access.py`` pins every cell against an
independently written matrix.

Ownership (:attr:`Scope.OWN`) means, by role:

* a **subject** acts on their own file (``subject_id`` of the resource is theirs);
* a **source** acts on its own records (``source_id`` of the resource is its own).

Some grants are narrowed further by the service that performs the action, because the
narrowing depends on data rather than on the role: only an identity-authority source may
register subjects (ledger service), and a relying party may ask only about the services
it is registered for (decisions service).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from credence.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    """Who is calling. Every principal has exactly one role; ``public`` has no key."""

    SOURCE = "source"
    RELYING_PARTY = "relying_party"
    SUBJECT = "subject"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    PUBLIC = "public"


class Action(StrEnum):
    """What a caller wants to do; one per kind of endpoint or command."""

    RULEBOOK_READ = "rulebook_read"
    LOG_READ = "log_read"
    SOURCE_STATUS_READ = "source_status_read"
    SUBJECT_REGISTER = "subject_register"
    SUBJECT_LOOKUP = "subject_lookup"
    RECORD_SUBMIT = "record_submit"
    RECORD_RETRACT = "record_retract"
    FILE_READ = "file_read"
    SCORE_READ = "score_read"
    DECISION_REQUEST = "decision_request"
    DISPUTE_OPEN = "dispute_open"
    DISPUTE_ANSWER = "dispute_answer"
    DISPUTE_REVIEW = "dispute_review"
    CHANGE_REVIEW = "change_review"
    HOLD_REVIEW = "hold_review"
    BACKFILL_APPROVE = "backfill_approve"
    KEY_MANAGE = "key_manage"
    SOURCE_MANAGE = "source_manage"
    SOURCE_SUSPEND = "source_suspend"
    SOURCE_ALERT = "source_alert"
    PARTY_MANAGE = "party_manage"
    RULEBOOK_PUBLISH = "rulebook_publish"


class Scope(StrEnum):
    """How far a grant reaches."""

    ANY = "any"
    """Any resource of that kind."""
    OWN = "own"
    """Only the caller's own: their file (subject) or its records (source)."""
    NONE = "none"
    """Nothing: the action is denied."""


_R = Role
_A = Action
_S = Scope

# Everyone, including callers without a key, may read what is published for all.
# The sources' status is public too: freshness, volume and their record in public, with
# rates over fewer than 10 cases suppressed (credence.watch.status).
_PUBLIC_GRANTS = {
    _A.RULEBOOK_READ: _S.ANY,
    _A.LOG_READ: _S.ANY,
    _A.SOURCE_STATUS_READ: _S.ANY,
}

_GRANTS: dict[Role, dict[Action, Scope]] = {
    _R.PUBLIC: {},
    _R.SOURCE: {
        _A.RECORD_SUBMIT: _S.OWN,
        _A.RECORD_RETRACT: _S.OWN,
        _A.DISPUTE_ANSWER: _S.OWN,
        # Only identity authorities: enforced by the ledger service.
        _A.SUBJECT_REGISTER: _S.ANY,
        _A.SUBJECT_LOOKUP: _S.ANY,
        # A source may not read scores (nor, by extension, files).
        _A.SCORE_READ: _S.NONE,
        _A.FILE_READ: _S.NONE,
    },
    _R.RELYING_PARTY: {
        # Which services it may ask about: enforced by the decisions service.
        _A.DECISION_REQUEST: _S.ANY,
        _A.SUBJECT_LOOKUP: _S.ANY,
        # A relying party sees outcomes, never records, files or scores.
        _A.FILE_READ: _S.NONE,
        _A.SCORE_READ: _S.NONE,
    },
    _R.SUBJECT: {
        _A.FILE_READ: _S.OWN,
        _A.SCORE_READ: _S.OWN,
        _A.DISPUTE_OPEN: _S.OWN,
    },
    _R.REVIEWER: {
        _A.FILE_READ: _S.ANY,
        _A.DISPUTE_REVIEW: _S.ANY,
        # The second pair of eyes on a change that lifts a sanction (a reviewer other
        # than whoever asked: enforced by credence.disputes.four_eyes).
        _A.CHANGE_REVIEW: _S.ANY,
        # Release or reject records held at intake (credence.ledger.holds).
        _A.HOLD_REVIEW: _S.ANY,
        # A reviewer may not change records directly.
        _A.RECORD_SUBMIT: _S.NONE,
        _A.RECORD_RETRACT: _S.NONE,
    },
    _R.OPERATOR: {
        _A.FILE_READ: _S.ANY,
        _A.SCORE_READ: _S.ANY,
        _A.SUBJECT_LOOKUP: _S.ANY,
        _A.KEY_MANAGE: _S.ANY,
        _A.SOURCE_MANAGE: _S.ANY,
        # Suspend a source (its records held for reviewers) and reinstate it
        # (credence.ledger.suspension).
        _A.SOURCE_SUSPEND: _S.ANY,
        # Read the queue of source alerts, acknowledge and close them
        # (credence.watch.alerts).
        _A.SOURCE_ALERT: _S.ANY,
        _A.PARTY_MANAGE: _S.ANY,
        _A.RULEBOOK_PUBLISH: _S.ANY,
        # Approve a source's backfill run, exempt from intake's volume limits
        # (credence.ledger.backfill); the operator sends no records of it.
        _A.BACKFILL_APPROVE: _S.ANY,
        # An operator may not edit or delete records; sources retract their own.
        _A.RECORD_SUBMIT: _S.NONE,
        _A.RECORD_RETRACT: _S.NONE,
    },
}

POLICY: Mapping[tuple[Role, Action], Scope] = MappingProxyType(
    {
        (role, action): scope
        for role, grants in _GRANTS.items()
        for action, scope in {**_PUBLIC_GRANTS, **grants}.items()
    }
)
"""Role × action → scope. Absent pairs are denied, as are pairs mapped to ``NONE``
(those are listed to document what docs/roles.md forbids explicitly)."""


# How each action reads in a sentence: "a relying_party may not <verb>".
_VERB: Mapping[Action, str] = {
    _A.RULEBOOK_READ: "read the rulebook",
    _A.LOG_READ: "read the transparency log",
    _A.SOURCE_STATUS_READ: "read the sources' status",
    _A.SUBJECT_REGISTER: "register subjects",
    _A.SUBJECT_LOOKUP: "look up subjects",
    _A.RECORD_SUBMIT: "submit records",
    _A.RECORD_RETRACT: "retract records",
    _A.FILE_READ: "read files",
    _A.SCORE_READ: "read scores",
    _A.DECISION_REQUEST: "ask for decisions",
    _A.DISPUTE_OPEN: "open disputes",
    _A.DISPUTE_ANSWER: "answer disputes",
    _A.DISPUTE_REVIEW: "review disputes",
    _A.CHANGE_REVIEW: "confirm or refuse changes that lift a sanction (a reviewer's four eyes)",
    _A.HOLD_REVIEW: "release or reject records held at intake",
    _A.BACKFILL_APPROVE: "approve or list backfill runs",
    _A.KEY_MANAGE: "manage API keys",
    _A.SOURCE_MANAGE: "manage sources",
    _A.SOURCE_SUSPEND: "suspend or reinstate sources",
    _A.SOURCE_ALERT: "read, acknowledge or close source alerts",
    _A.PARTY_MANAGE: "manage relying parties",
    _A.RULEBOOK_PUBLISH: "publish rulebooks",
}

# "a subject may <own verb>"; {pos} is the role's possessive (their / its).
_OWN_VERB: Mapping[Action, str] = {
    _A.FILE_READ: "read only {pos} own file",
    _A.SCORE_READ: "read only {pos} own score",
    _A.DISPUTE_OPEN: "open disputes only about {pos} own file",
    _A.RECORD_SUBMIT: "submit records only as itself",
    _A.RECORD_RETRACT: "retract only {pos} own records",
    _A.DISPUTE_ANSWER: "answer only disputes about {pos} own records",
}


@dataclass(frozen=True)
class Caller:
    """Who is making a call, as established by :func:`credence.access.keys.authenticate`.

    Exactly one of ``source_id``, ``party_id``, ``subject_id`` is set for the roles
    source, relying_party and subject; none for the others.
    """

    principal_id: int | None
    role: Role
    name: str
    source_id: int | None = None
    party_id: int | None = None
    subject_id: int | None = None


PUBLIC = Caller(principal_id=None, role=Role.PUBLIC, name="public")
"""The caller of an endpoint that needs no key."""


def scope_of(role: Role, action: Action) -> Scope:
    """The scope ``role`` has for ``action`` (``NONE`` when the table has no entry)."""
    return POLICY.get((role, action), Scope.NONE)


def grants(role: Role) -> dict[Action, Scope]:
    """Every action ``role`` may take and how far (for documentation and ``/v1/me``)."""
    return {
        action: scope for action in Action if (scope := scope_of(role, action)) is not Scope.NONE
    }


def authorize(
    caller: Caller,
    action: Action,
    *,
    subject_id: int | None = None,
    source_id: int | None = None,
) -> None:
    """Allow the call or raise.

    ``subject_id`` is the subject whose file the action touches; ``source_id`` the
    source that owns the record it touches. They are needed only where the caller's
    grant is :attr:`Scope.OWN` (a subject's or a source's); forgetting them there is a
    programming error (:class:`ValueError`), never a silent grant.

    Raises :class:`~credence.errors.Forbidden` (403) naming the role and the action,
    or :class:`~credence.errors.Unauthenticated` (401) when a caller without a key asks
    for something that needs one.
    """
    scope = scope_of(caller.role, action)
    if scope is Scope.ANY:
        return
    if scope is Scope.NONE:
        if caller.role is Role.PUBLIC:
            raise Unauthenticated(
                f"{_VERB[action]} needs an API key: send Authorization: Bearer <key>",
                details={"action": action.value},
            )
        raise Forbidden(
            f"{_article(caller.role)} {caller.role.value} may not {_VERB[action]}",
            details={"role": caller.role.value, "action": action.value},
        )
    _check_own(caller, action, subject_id=subject_id, source_id=source_id)


def allowed(
    caller: Caller,
    action: Action,
    *,
    subject_id: int | None = None,
    source_id: int | None = None,
) -> bool:
    """Whether :func:`authorize` would let the call through (for showing or hiding UI)."""
    try:
        authorize(caller, action, subject_id=subject_id, source_id=source_id)
    except (Forbidden, Unauthenticated):
        return False
    return True


def _check_own(
    caller: Caller, action: Action, *, subject_id: int | None, source_id: int | None
) -> None:
    if caller.role is Role.SUBJECT:
        mine, theirs, pos, what = caller.subject_id, subject_id, "their", "subject_id"
    elif caller.role is Role.SOURCE:
        mine, theirs, pos, what = caller.source_id, source_id, "its", "source_id"
    else:  # pragma: no cover - the table grants OWN only to subjects and sources
        raise ValueError(f"Scope.OWN has no meaning for role {caller.role.value}")
    if mine is None:
        # A principal of this role always has its link; refuse rather than guess.
        raise Forbidden(
            f"this {caller.role.value} key is not linked to a {caller.role.value}",
            details={"role": caller.role.value, "action": action.value},
        )
    if theirs is None:
        raise ValueError(f"authorize({action.value}) for a {caller.role.value} needs {what}")
    if mine != theirs:
        own = _OWN_VERB.get(action, f"{_VERB[action]} only for {{pos}} own")
        raise Forbidden(
            f"{_article(caller.role)} {caller.role.value} may {own.format(pos=pos)}",
            details={"role": caller.role.value, "action": action.value, "scope": "own"},
        )


def _article(role: Role) -> str:
    return "an" if role.value[0] in "aeiou" else "a"
