"""The journal: the one ordered account of every step of the ledger, and what it covers.

The base every feature stands on. It imports only :mod:`credence.db`,
:mod:`credence.clock`, :mod:`credence.errors`, :mod:`credence.ids` and libraries, never
a feature: features come to it.

* :class:`EventKind`: every kind of entry, each described (:data:`DESCRIPTIONS`);
  :func:`append` and :func:`append_many` refuse any other.
* :func:`canonical`: canonical JSON of an entry's payload; :func:`record_data` and
  :func:`record_content_hash`: a record's payload and the digest of what its source
  asserts.
* Coverage: each feature registers, with its tables, an :func:`encoder` of the
  columns that define a row (:func:`cover`) or the reason a table needs no proof
  (:func:`exempt`); :func:`uncovered` names every mapped table or column left out, so
  coverage is enforced by a test instead of remembered.

Today a log leaf is a journal row's canonical JSON, a second copy of what the rows
say, and ``credence log verify`` checks the journal alone. The next steps make the
covered rows themselves what the log proves:

1. **Row sequence numbers.** Each covered table gets a ``seq`` column naming the entry
   that wrote the row; the steps written today without an entry (a relying party or
   principal created, an inquiry, a look-up, a tier first assigned or its total
   updated) get kinds of their own, and what is updated in place (a key's
   ``revoked_at``, a warning's ``cleared_at``, a subject's tier) becomes an entry, the
   columns declared ``later`` when covered.
2. **Verify over covered rows.** ``credence log verify`` streams every covered table,
   recomputes each row's bytes with its registered encoder and checks them against
   the leaf of its entry, and each ``later`` column against the entries that set it;
   it names the table, the row and the entry of any edit, deletion or insertion,
   reports entries after the last checkpoint as not yet signed, and refuses a
   rulebook whose text does not hash to its recorded SHA-256.
3. **Salted leaves and erasure.** A leaf commits to SHA-256 of a per-row random salt
   and the row's canonical bytes (which may hold personal data, so they never leave
   the store in clear); erasing a record drops its content and salt, keeps its id,
   subject, sequence number and leaf hash, and is an entry of its own.
4. **A new log origin.** The new leaf format starts a new log whose first entry is the
   old log's last checkpoint; the old journal keeps only its leaf hashes, so earlier
   checkpoints stay verifiable and no JSON copy of a record's content remains.
"""

from __future__ import annotations

from credence.journal.canonical import ColumnEncoder, Encoder, canonical, encoder
from credence.journal.coverage import (
    REGISTRY,
    Covered,
    Exempt,
    Registry,
    cover,
    exempt,
    registration,
    uncovered,
)
from credence.journal.entries import COLUMNS, append, append_many, checked
from credence.journal.kinds import DESCRIPTIONS, EventKind
from credence.journal.payloads import record_content_hash, record_data
from credence.journal.tables import JournalEntry

__all__ = [
    "COLUMNS",
    "DESCRIPTIONS",
    "REGISTRY",
    "ColumnEncoder",
    "Covered",
    "Encoder",
    "EventKind",
    "Exempt",
    "JournalEntry",
    "Registry",
    "append",
    "append_many",
    "canonical",
    "checked",
    "cover",
    "encoder",
    "exempt",
    "record_content_hash",
    "record_data",
    "registration",
    "uncovered",
]
