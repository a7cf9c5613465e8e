"""The portal's server-side sessions (table ``portal_sessions``).

A person signed in to the portal holds a random token in a cookie; only its SHA-256
is stored here, with the principal and the key the sign-in used, when the session
began, when it was last seen and the absolute instant it ends. A session ends (``ended_at``
and ``ended_why``: ``signed_out``, ``revoked``, ``key_expired``, ``idle``, ``expired``)
and is never used again; rows are kept for the trail and never change otherwise.

The rules (limits, re-checking the key on every request) are in
:mod:`credence.portal.session`; this module holds the table only, below the models
layer, so that Alembic and the drift check see it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class PortalSession(Base):
    """One sign-in to the portal, from its start to its end."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 (hex) of the cookie's token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Who signed in, and with which key (re-checked on every request).
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(Instant)
    last_seen: Mapped[datetime] = mapped_column(Instant)
    #: The absolute end, however active the session is.
    expires_at: Mapped[datetime] = mapped_column(Instant)
    ended_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    #: Why it ended: signed_out, revoked, key_expired, idle or expired.
    ended_why: Mapped[str | None] = mapped_column(String(16), nullable=True)


journal.exempt(
    PortalSession.__table__,
    "the portal's sign-ins: no score, decision or authorisation of the API reads them, and "
    "a lost or altered row can only end a session or let it last no longer than the key "
    "it came from, which is re-checked on every request",
)
