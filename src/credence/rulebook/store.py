"""Publishing rulebooks and reading the edition in force at any instant.

A published edition is immutable and stays readable forever. The edition in force at
``t`` is the latest one published at or before ``t``; before the first publication the
first edition applies (there was nothing else to apply). Parsed rulebooks are cached by
content hash, so reading the edition in force costs one small query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.errors import Conflict, NotFound
from credence.ledger import journal
from credence.rulebook.loader import content_hash, load_text
from credence.rulebook.model import Rulebook
from credence.rulebook.tables import PublishedRulebook
from credence.scoring.formula import TypeTable


@dataclass(frozen=True)
class Edition:
    """A published rulebook: its text, hash, publication instant and parsed form."""

    version: str
    content_hash: str
    published_at: datetime
    text: str
    rulebook: Rulebook
    types: TypeTable


_cache: dict[str, tuple[Rulebook, TypeTable, str]] = {}
_cache_lock = threading.Lock()


def _parsed(text: str, digest: str) -> tuple[Rulebook, TypeTable, str]:
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        book = load_text(text, origin=f"rulebook {digest[:12]}")
        hit = (book, TypeTable(book), text)
        with _cache_lock:
            _cache[digest] = hit
    return hit


def _edition(row: PublishedRulebook) -> Edition:
    book, types, _ = _parsed(row.text, row.content_hash)
    return Edition(row.version, row.content_hash, row.published_at, row.text, book, types)


def publish(session: Session, *, text: str, at: datetime, origin: str = "<rulebook>") -> Edition:
    """Validate and publish a rulebook; publishing the same text again is a no-op.

    Raises :class:`RulebookInvalid` for a book that does not load and :class:`Conflict`
    when its version number is already taken by other content.
    """
    book = load_text(text, origin=origin)
    digest = content_hash(text)
    existing = session.scalar(
        select(PublishedRulebook).where(PublishedRulebook.version == book.version)
    )
    if existing is not None:
        if existing.content_hash == digest:
            return _edition(existing)
        raise Conflict(
            f"rulebook version {book.version} is already published with other content "
            f"(hash {existing.content_hash[:12]}…); give the new edition a new version",
            code="rulebook_version_taken",
        )
    latest = session.scalar(
        select(PublishedRulebook.published_at).order_by(PublishedRulebook.published_at.desc())
    )
    if latest is not None and at < latest:
        raise Conflict("a rulebook cannot be published before the latest edition")
    row = PublishedRulebook(version=book.version, content_hash=digest, text=text, published_at=at)
    session.add(row)
    journal.append(
        session,
        kind="rulebook_published",
        at=at,
        data={"version": book.version, "content_hash": digest, "published_at": at},
    )
    session.flush()
    return _edition(row)


def in_force(session: Session, at: datetime) -> Edition:
    """The edition in force at ``at``."""
    head = select(
        PublishedRulebook.id, PublishedRulebook.content_hash, PublishedRulebook.published_at
    )
    row = session.execute(
        head.where(PublishedRulebook.published_at <= at)
        .order_by(PublishedRulebook.published_at.desc(), PublishedRulebook.id.desc())
        .limit(1)
    ).first()
    if row is None:
        row = session.execute(head.order_by(PublishedRulebook.published_at).limit(1)).first()
    if row is None:
        raise NotFound(
            "no rulebook has been published yet; an operator publishes one with "
            "`credence rulebook publish`",
            code="no_rulebook",
        )
    return _by_id(session, row.id, row.content_hash)


def _by_id(session: Session, row_id: int, digest: str) -> Edition:
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        row = session.get(PublishedRulebook, row_id)
        assert row is not None
        return _edition(row)
    meta = session.execute(
        select(PublishedRulebook.version, PublishedRulebook.published_at).where(
            PublishedRulebook.id == row_id
        )
    ).one()
    return Edition(meta.version, digest, meta.published_at, hit[2], hit[0], hit[1])


def by_version(session: Session, version: str) -> Edition:
    """A published edition by version; :class:`NotFound` if there is none."""
    row = session.scalar(select(PublishedRulebook).where(PublishedRulebook.version == version))
    if row is None:
        raise NotFound(f"no rulebook version {version!r} has been published", code="no_rulebook")
    return _edition(row)


def history(session: Session) -> list[tuple[str, str, datetime]]:
    """(version, content hash, published_at) of every edition, oldest first."""
    rows = session.execute(
        select(
            PublishedRulebook.version,
            PublishedRulebook.content_hash,
            PublishedRulebook.published_at,
        ).order_by(PublishedRulebook.published_at, PublishedRulebook.id)
    ).all()
    return [(r.version, r.content_hash, r.published_at) for r in rows]
