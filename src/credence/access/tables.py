"""Principals (who calls), their API keys (hashed) and relying parties' services."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class RelyingParty(journal.Journalled, Base):
    """A lender, airline, railway, hotel chain, procurement office, ..."""

    __tablename__ = "relying_parties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Instant)


class PartyService(journal.Journalled, Base):
    """A service a relying party is registered to ask decisions for."""

    __tablename__ = "party_services"

    party_id: Mapped[int] = mapped_column(ForeignKey("relying_parties.id"), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)


class Principal(journal.Journalled, Base):
    """Someone who calls the API, in exactly one role."""

    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"), nullable=True)
    party_id: Mapped[int | None] = mapped_column(ForeignKey("relying_parties.id"), nullable=True)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Instant)


class ApiKey(journal.Journalled, Base):
    """A bearer key. Only its SHA-256 is stored; ``prefix`` identifies it to people."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Instant)
    expires_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Instant, nullable=True)
    #: The key this one replaced by a rotation (:func:`credence.access.keys.rotate_key`).
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)


# --- what the log covers (see credence.journal.coverage) ---------------------------------

_parties = RelyingParty.__table__
journal.cover(_parties, journal.encoder(_parties, "id", "code", "name", "created_at"))
_services = PartyService.__table__
journal.cover(_services, journal.encoder(_services, "party_id", "service"))
_principals = Principal.__table__
journal.cover(
    _principals,
    journal.encoder(
        _principals, "id", "role", "name", "source_id", "party_id", "subject_id", "created_at"
    ),
)
_keys = ApiKey.__table__
journal.cover(
    _keys,
    journal.encoder(
        _keys,
        "id",
        "principal_id",
        "prefix",
        "key_hash",
        "created_at",
        "expires_at",
        "revoked_at",
        "replaces_id",
    ),
)
