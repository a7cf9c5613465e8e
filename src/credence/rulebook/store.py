"""Publishing rulebooks and reading the edition in force at any instant.

A published edition is immutable and stays readable forever. The edition in force at
``t`` is the latest one published at or before ``t``; before the first publication the
first edition applies (there was nothing else to apply). Parsed rulebooks are cached by
content hash and the list of editions by store, so reading the edition in force costs one
small indexed query (of the newest edition's row, to see that the list is current).

An edition is parsed only from text that hashes to its recorded SHA-256: a stored text
edited afterwards raises :class:`~credence.errors.RulebookTampered` (503) wherever it is
read, instead of being applied under the hash it no longer has.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from credence import journal
from credence.db import Connectable, Prepared, as_direct, core
from credence.errors import Conflict, NotFound, RulebookTampered
from credence.notifications.service import record_event
from credence.rulebook.loader import content_hash, load_text
from credence.rulebook.model import Rulebook
from credence.rulebook.tables import PublishedRulebook


@dataclass(frozen=True)
class Edition:
    """A published rulebook: its text, hash, publication instant and parsed form."""

    version: str
    content_hash: str
    published_at: datetime
    text: str
    rulebook: Rulebook


_cache: dict[str, tuple[Rulebook, str]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every parsed edition and list of editions (the next read loads them)."""
    with _cache_lock:
        _cache.clear()
        _published_cache.clear()


def tampered(version: str) -> RulebookTampered:
    """The error of an edition whose stored text does not hash to its recorded hash."""
    return RulebookTampered(
        f"the rulebook in force failed its integrity check: the stored text of edition "
        f"{version} does not hash to its recorded SHA-256, so it is not applied; an "
        "operator restores the published text (`credence log verify` names the edition)",
        code="rulebook_tampered",
    )


def _parsed(text: str, digest: str, version: str) -> tuple[Rulebook, str]:
    """The parsed edition of ``text``, refused unless ``text`` hashes to ``digest``; only
    checked text is cached (by its hash)."""
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        if content_hash(text) != digest:
            raise tampered(version)
        book = load_text(text, origin=f"rulebook {digest[:12]}", published=True)
        hit = (book, text)
        with _cache_lock:
            _cache[digest] = hit
    return hit


def edition_of(version: str, digest: str, published_at: datetime, text: str) -> Edition:
    """An edition from its parts (a stored row's, an export's file), refused with
    :func:`tampered` unless ``text`` hashes to ``digest``: checked even when its parse
    is cached, since the text is at hand."""
    if content_hash(text) != digest:
        raise tampered(version)
    book, text = _parsed(text, digest, version)
    return Edition(version, digest, published_at, text, book)


def _edition(row: PublishedRulebook) -> Edition:
    return edition_of(row.version, row.content_hash, row.published_at, row.text)


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
    record_event(
        session,
        kind=journal.EventKind.RULEBOOK_PUBLISHED,
        rows=[row],
        at=at,
        data={"version": book.version, "content_hash": digest, "published_at": at},
    )
    session.flush()
    return _edition(row)


def in_force(conn: Connectable, at: datetime) -> Edition:
    """The edition in force at ``at``, on any connection (a session's or the decision
    path's :class:`Direct`): one indexed probe of the newest edition, and the list of
    editions read again only when it changed (see :func:`_published`)."""
    return choose(_published(conn), at)


def choose(editions: Sequence[Edition], at: datetime) -> Edition:
    """The edition of ``editions`` (ordered by publication) in force at ``at``: the last
    one published by then, or the first if ``at`` precedes them all."""
    if not editions:
        raise NotFound(
            "no rulebook has been published yet; an operator publishes one with "
            "`credence rulebook publish`",
            code="no_rulebook",
        )
    chosen = editions[0]
    for edition in editions:  # by (published_at, id): the last one published by ``at``
        if edition.published_at > at:
            break
        chosen = edition
    return chosen


#: The newest edition's (id, content hash, published_at in µs): what the list was read at.
_Newest = tuple[int, str, int] | None
#: Every published edition, oldest first, by engine; with the newest row it was read at.
_published_cache: weakref.WeakKeyDictionary[Engine, tuple[_Newest, tuple[Edition, ...]]]
_published_cache = weakref.WeakKeyDictionary()


def _published(conn: Connectable) -> tuple[Edition, ...]:
    """Every edition, ordered by (published_at, id), read again only when the newest row
    changed: editions are never updated or deleted, so one indexed probe of the newest
    row tells whether anything was published (here or by another process) since the
    list was read. The decision path calls this on every request."""
    direct = as_direct(conn)
    rows = _PREPARED_NEWEST.run(direct, {})
    newest: _Newest = tuple(rows[0]) if rows else None
    engine = direct.engine
    with _cache_lock:
        hit = _published_cache.get(engine)
    if hit is not None and hit[0] == newest:
        return hit[1]
    if isinstance(conn, Session):
        editions = _read_editions(core(conn))
    else:
        with engine.connect() as connection:
            editions = _read_editions(connection)
    with _cache_lock:
        _published_cache[engine] = (newest, editions)
    return editions


def _read_editions(connection: Connection) -> tuple[Edition, ...]:
    rows = connection.execute(
        select(
            PublishedRulebook.id,
            PublishedRulebook.version,
            PublishedRulebook.content_hash,
            PublishedRulebook.published_at,
        ).order_by(PublishedRulebook.published_at, PublishedRulebook.id)
    ).all()
    return tuple(_listed(connection, *r) for r in rows)


def _listed(
    connection: Connection, row_id: int, version: str, digest: str, published_at: datetime
) -> Edition:
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        text = connection.execute(
            select(PublishedRulebook.text).where(PublishedRulebook.id == row_id)
        ).scalar_one()
        hit = _parsed(text, digest, version)
    return Edition(version, digest, published_at, hit[1], hit[0])


_NEWEST = (
    select(PublishedRulebook.id, PublishedRulebook.content_hash, PublishedRulebook.published_at)
    .order_by(PublishedRulebook.id.desc())
    .limit(1)
)
_PREPARED_NEWEST = Prepared(_NEWEST)


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
