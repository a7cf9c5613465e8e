"""Warn before punishing (the Rongcheng principle).

Where a restriction service declares a warning period, a subject newly caught by it is
warned, and the restriction applies only once the period has passed. Restrictions
ordered by a court (``court_ordered``) apply at once. A warning is cleared when the
subject is no longer caught, so being caught again later starts a new warning period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence import journal
from credence.decisions.tables import RestrictionWarning
from credence.ledger.registry import SubjectKey
from credence.notifications.service import Notice, NoticeKind, record_event
from credence.rulebook.model import Service, ServiceKind
from credence.wording import Coded, coded


@dataclass(frozen=True)
class WarningState:
    warned_at: datetime
    effective_at: datetime

    def pending(self, at: datetime) -> bool:
        return at < self.effective_at


def needs_warning(service: Service) -> bool:
    return (
        service.kind is ServiceKind.RESTRICTION
        and service.warning_days > 0
        and not service.court_ordered
    )


def _open(session: Session, subject_id: int, service: str) -> RestrictionWarning | None:
    return session.scalar(
        select(RestrictionWarning).where(
            RestrictionWarning.subject_id == subject_id,
            RestrictionWarning.service == service,
            RestrictionWarning.cleared_at.is_(None),
        )
    )


def caught(
    session: Session, *, subject: SubjectKey, service: Service, reasons: list[Coded], at: datetime
) -> WarningState:
    """The subject is caught by ``service``'s restriction: warn them if not yet warned.

    The warning's row keeps the coded reasons that caught the subject (a covered row,
    so ``credence log verify`` covers them), and the notice gives the first two."""
    row = _open(session, subject.id, service.code)
    if row is None:
        row = RestrictionWarning(
            subject_id=subject.id,
            service=service.code,
            warned_at=at,
            effective_at=at + timedelta(days=service.warning_days),
            reason_codes=orjson.dumps(reasons).decode(),
        )
        session.add(row)
        record_event(
            session,
            kind=journal.EventKind.WARNING_ISSUED,
            rows=[row],
            at=at,
            subject_id=subject.id,
            data={
                "subject": subject.public_id,
                "service": service.code,
                "effective_at": row.effective_at,
            },
            notice=Notice.coded_as(
                coded(
                    "restriction_warning",
                    date=row.effective_at,
                    service={"code": service.code, "name": service.name},
                    because=reasons[:2],
                ),
                kind=NoticeKind.RESTRICTION_WARNING,
            ),
        )
    return WarningState(row.warned_at, row.effective_at)


def not_caught(session: Session, *, subject: SubjectKey, service: Service, at: datetime) -> None:
    """The subject is no longer caught: clear an open warning."""
    row = _open(session, subject.id, service.code)
    if row is not None:
        row.cleared_at = at
        record_event(
            session,
            kind=journal.EventKind.WARNING_CLEARED,
            rows=[row],
            at=at,
            subject_id=subject.id,
            data={"subject": subject.public_id, "service": service.code},
        )
