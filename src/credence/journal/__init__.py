"""The journal: the one ordered account of every step of the ledger, and what it covers.

The base every feature stands on. It imports only :mod:`credence.db`,
:mod:`credence.clock`, :mod:`credence.errors`, :mod:`credence.ids` and libraries, never
a feature: features come to it.

* :class:`EventKind`: every kind of entry, each described (:data:`DESCRIPTIONS`);
  :func:`append` and :func:`append_many` refuse any other.
* :func:`canonical`: canonical JSON of an entry's payload;
  :func:`record_content_hash`: the digest of what a record's source asserts.
* Coverage: each feature registers, with its tables, an :func:`encoder` of the
  columns that define a row (:func:`cover`) or the reason a table needs no proof
  (:func:`exempt`); :func:`uncovered` names every mapped table or column left out, so
  coverage is enforced by a test instead of remembered.

Covered rows (:mod:`credence.journal.rows`): every row of a covered table carries the
``seq`` of the entry that wrote it and a random ``salt``; the entry lists each row it
wrote with its digest (SHA-256 of the salt and the row's canonical bytes), and its log
leaf commits to that list. So ``credence log verify`` checks the rows themselves, and
an erased row (content and salt gone) keeps its place in the log.
"""

from __future__ import annotations

from credence.journal.canonical import ColumnEncoder, Encoder, canonical, encoder
from credence.journal.coverage import (
    JOURNAL_COLUMNS,
    REGISTRY,
    ContentCheck,
    Covered,
    Exempt,
    Registry,
    cover,
    covered_tables,
    exempt,
    registration,
    uncovered,
)
from credence.journal.entries import COLUMNS, append, append_many, checked, covered
from credence.journal.kinds import DESCRIPTIONS, EventKind
from credence.journal.payloads import record_content_hash, text_digest
from credence.journal.rows import (
    Journalled,
    allocate,
    allocate_ids,
    digest,
    listing,
    new_salt,
    new_salts,
    parse_listing,
    row_key,
)
from credence.journal.tables import JournalEntry

__all__ = [
    "COLUMNS",
    "DESCRIPTIONS",
    "JOURNAL_COLUMNS",
    "REGISTRY",
    "ColumnEncoder",
    "ContentCheck",
    "Covered",
    "Encoder",
    "EventKind",
    "Exempt",
    "JournalEntry",
    "Journalled",
    "Registry",
    "allocate",
    "allocate_ids",
    "append",
    "append_many",
    "canonical",
    "checked",
    "cover",
    "covered",
    "covered_tables",
    "digest",
    "encoder",
    "exempt",
    "listing",
    "new_salt",
    "new_salts",
    "parse_listing",
    "record_content_hash",
    "registration",
    "row_key",
    "text_digest",
    "uncovered",
]
