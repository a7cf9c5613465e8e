"""Writing and reading the access log.

Every read of a subject's file, score or explanation is logged with who, when, what
and the declared purpose, in the same transaction as the read, so a read that was
answered is a read that was logged. A subject reading their own file is logged too (they
see it as "you"); everyone else must declare a purpose from the catalogue of
:mod:`credence.audit.purposes`, which the subject sees in plain words.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.access.policy import Caller, Role
from credence.audit import purposes
from credence.audit.tables import AccessEntry

OWN_FILE = purposes.OWN_FILE


@dataclass(frozen=True)
class Access:
    role: str
    actor: str
    action: str
    what: str
    #: As logged: a code of the catalogue (``legal_order:<reference>``), ``own file``,
    #: ``operations``, or the free text of a read logged before the catalogue.
    purpose: str
    at: datetime
    #: What the subject reads for it (see :func:`credence.audit.purposes.describe`).
    purpose_label: str
    legal_order_reference: str | None


def declared_purpose(caller: Caller, subject_id: int, purpose: str | None) -> str:
    """The purpose to log: the subject's own reads need none; everyone else must say why,
    with a purpose from the catalogue (:func:`credence.audit.purposes.parse`)."""
    if caller.role is Role.SUBJECT and caller.subject_id == subject_id:
        return purpose or OWN_FILE
    if not purpose or not purpose.strip():
        raise purposes.required()
    return purposes.parse(purpose).code


def log_read(
    session: Session,
    *,
    caller: Caller,
    subject_id: int,
    action: str,
    what: str,
    purpose: str,
    at: datetime,
) -> None:
    session.add(
        AccessEntry(
            subject_id=subject_id,
            principal_id=caller.principal_id,
            role=caller.role.value,
            actor=caller.name,
            action=action,
            what=what,
            purpose=purpose,
            at=at,
        )
    )


def log_operator_action(
    session: Session,
    *,
    action: str,
    what: str,
    at: datetime,
    caller: Caller | None = None,
    subject_id: int | None = None,
    purpose: str = "operations",
) -> None:
    """Log an operator's action; from the command line the actor is the shell user."""
    session.add(
        AccessEntry(
            subject_id=subject_id,
            principal_id=caller.principal_id if caller else None,
            role=caller.role.value if caller else Role.OPERATOR.value,
            actor=caller.name if caller else f"cli:{_shell_user()}",
            action=action,
            what=what,
            purpose=purpose,
            at=at,
        )
    )


def _shell_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def accesses(session: Session, subject_id: int, *, limit: int = 200) -> list[Access]:
    """Who looked at a subject's file, newest first."""
    rows = session.scalars(
        select(AccessEntry)
        .where(AccessEntry.subject_id == subject_id)
        .order_by(AccessEntry.at.desc(), AccessEntry.id.desc())
        .limit(limit)
    )
    return [
        Access(r.role, r.actor, r.action, r.what, r.purpose, r.at, *purposes.describe(r.purpose))
        for r in rows
    ]
