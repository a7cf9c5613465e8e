"""The access log. Every column is documented: it is what a subject sees about who looked.

Rows are appended, never changed. ``subject_id`` is null for operator actions that
concern no single subject (issuing a key, publishing a rulebook).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class AccessEntry(Base):
    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_subject_at", "subject_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Whose file was read (null for actions about no single subject).
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"), nullable=True)
    #: The principal that acted (null for the command line run by an operator).
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    #: Role and name of who acted, as they were at the time.
    role: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    #: What was done: an :class:`credence.access.policy.Action` value or an operator verb.
    action: Mapped[str] = mapped_column(String(40))
    #: What was read or changed, e.g. "file", "score as of 2026-01-01", "key cr_op_ab12".
    what: Mapped[str] = mapped_column(String(200))
    #: The purpose the caller declared (required of everyone but the subject themselves).
    purpose: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(Instant)


journal.exempt(
    AccessEntry.__table__,
    "the trail of who read a file, score or explanation and of operator actions, shown to "
    "the subject: no score, decision or authorisation reads it (a decision's own row, its "
    "inquiry, is covered)",
)
