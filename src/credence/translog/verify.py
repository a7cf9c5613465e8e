"""``credence log verify``: the log recomputed from storage, and every covered row
checked against the entry that wrote it.

What is checked, streaming (memory grows with the number of checkpoints and of tables,
not of entries or rows):

1. **Leaves.** Every journal row's leaf is recomputed and compared with the leaf hash
   the log committed to (``log_leaves``), naming the first entry ``changed``,
   ``removed`` or ``inserted``; the committed leaf hashes are folded into each
   checkpoint's root (a :class:`~credence.translog.merkle.Frontier`), and each
   checkpoint's text and signature (with the log's key) are checked.
2. **Entries after the last checkpoint** are read too and reported as not yet signed:
   each must be a known kind with canonical data and, on SQLite, none may be missing.
3. **Rows, from each entry's side.** Every row an entry lists must still exist, and must
   not be older than the entry (a row rewritten by a later entry, such as a key revoked,
   cannot be put back as it was before).
4. **Rows, from each table's side.** Every row of every covered table is re-encoded
   with its table's encoder, salted and hashed, and compared with the digest the entry
   named by its ``seq`` lists for it; a row no entry wrote, or that its entry does not
   list, is reported ``inserted``, a row whose digest differs ``changed``, each naming
   the table, the row's key and the entry. An erased record is one its erasure entry
   wrote again, content NULL: checked like any other row.
5. **Rulebooks.** Each edition's text must hash to its recorded SHA-256 (an edited one
   does not load either).
6. **The continued log.** When this log continues an earlier one (see
   :mod:`credence.translog.continuation`), the earlier log's leaf hashes must give the
   roots of its checkpoints and the tree head the new log's first entry records.

Messages name tables, keys and entry numbers, never a row's content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import BigInteger, Table, func, inspect, select, tuple_, type_coerce
from sqlalchemy.orm import Session

from credence import journal
from credence.db import Instant
from credence.journal import EventKind, JournalEntry, canonical
from credence.translog import merkle
from credence.translog.checkpoints import (
    Checkpoint,
    checkpoint_of,
    checkpoints,
    parse_checkpoint_text,
    verify_checkpoint,
)
from credence.translog.keys import LogKey, NoteError
from credence.translog.leaves import BATCH, ROW_COLUMNS, leaf_hash_of, stream_rows
from credence.translog.tables import LegacyCheckpoint, LegacyLeaf, LogLeaf

#: Listed rows looked up per query (well under both stores' parameter limits).
_LOOKUP = 900

_KINDS = frozenset(kind.value for kind in EventKind)


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify_log` found wrong; ``seq`` is the entry it concerns."""

    kind: str
    """``changed``, ``removed``, ``inserted``, ``log_tampered``, ``checkpoint``,
    ``rulebook`` or ``legacy``."""
    message: str
    seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_log` checked and found."""

    entries: int
    """Journal rows read."""
    committed: int
    """Leaves the log committed to (covered by a checkpoint)."""
    checkpoints: int
    signatures_checked: bool
    problems: tuple[Problem, ...] = field(default=())
    latest_checkpoint: int | None = None
    """The id of the newest checkpoint, if any: entries after it are not yet signed."""
    rows: int = 0
    """Covered rows checked against their entries."""
    erased: int = 0
    """Of those, rows whose content was erased (checked against their erasure)."""
    legacy_entries: int | None = None
    """Entries of the earlier log this one continues, if it continues one."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def pending(self) -> int:
        """Entries appended after the latest checkpoint (checked, but not yet signed)."""
        return max(self.entries - self.committed, 0)

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest journal ``seq`` a problem names, if any does."""
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None


def verify_log(
    session: Session,
    *,
    key: LogKey | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Recompute the log and every covered row from storage and check them (see the
    module docstring); ``progress(done, total)`` is called as entries and rows are read.
    Never uses the process's cached tree."""
    stored = checkpoints(session)
    tables = list(journal.covered_tables(JournalEntry.metadata))
    problems: list[Problem] = _unknown_tables(session)
    entries_total = session.scalar(select(func.count()).select_from(JournalEntry)) or 0
    rows_total = sum(
        session.scalar(select(func.count()).select_from(table)) or 0 for table, _ in tables
    )
    done = _Progress(progress, entries_total + rows_total)

    leaves = _LeafCheck(stored, key)
    listed = _ListedRows(session)
    unsigned = _Unsigned(dense=session.get_bind().dialect.name == "sqlite")
    committed_leaves = select(LogLeaf.leaf_index, LogLeaf.seq, LogLeaf.leaf_hash).order_by(
        LogLeaf.leaf_index
    )
    log = _Peek(stream_rows(session, committed_leaves))
    read = 0
    journal_rows: Iterable[Any] = stream_rows(
        session, select(*ROW_COLUMNS).order_by(JournalEntry.seq)
    )
    for row in journal_rows:
        seq = row[0]
        while log.head is not None and log.head[1] < seq:
            index, committed_seq, digest = log.pop()
            leaves.leaf(index, committed_seq, bytes(digest))
            problems.append(_removed(committed_seq, index))
        if log.head is not None and log.head[1] == seq:
            index, _, digest = log.pop()
            leaves.leaf(index, seq, bytes(digest))
            if leaf_hash_of(row) != bytes(digest):
                problems.append(
                    Problem(
                        "changed",
                        f"entry {seq} (leaf {index}) differs from what the log committed to",
                        seq,
                    )
                )
        elif log.head is not None:
            problems.append(
                Problem(
                    "inserted",
                    f"entry {seq} is not in the log but comes before committed entry {log.head[1]}",
                    seq,
                )
            )
        else:
            unsigned.check(row)
        problems += listed.add(seq, row[5])
        read += 1
        done.step()
    while log.head is not None:
        index, committed_seq, digest = log.pop()
        leaves.leaf(index, committed_seq, bytes(digest))
        problems.append(_removed(committed_seq, index))
    problems += listed.flush()
    problems += leaves.finish()
    problems += unsigned.problems

    checked = erased = 0
    for table, covered in tables:
        table_problems, n, n_erased = _check_table(session, table, covered, done)
        problems += table_problems
        checked += n
        erased += n_erased
    legacy_problems, legacy_entries = _check_legacy(session, key)
    problems += legacy_problems
    problems.sort(key=lambda pr: (pr.seq is None, pr.seq if pr.seq is not None else 0))
    return VerifyReport(
        entries=read,
        committed=leaves.count,
        checkpoints=len(stored),
        signatures_checked=key is not None,
        problems=tuple(problems),
        latest_checkpoint=stored[-1].id if stored else None,
        rows=checked,
        erased=erased,
        legacy_entries=legacy_entries,
    )


def _unknown_tables(session: Session) -> list[Problem]:
    """Tables in the store that this process has not mapped: rows there would go
    unchecked. The caller loads every table (``credence.models``) before verifying."""
    present = set(inspect(session.connection()).get_table_names()) - {"alembic_version"}
    return [
        Problem(
            "unknown_table",
            f"table {name} is in the store but unknown to this verifier (not a Credence "
            "table, or its feature is not loaded): its rows are not checked",
        )
        for name in sorted(present - set(JournalEntry.metadata.tables))
    ]


# --- streaming helpers -----------------------------------------------------------------


class _Peek:
    """An iterator whose next item can be looked at before it is taken."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items: Iterator[Any] = iter(items)
        self.head: Any = next(self._items, None)

    def pop(self) -> Any:
        item = self.head
        self.head = next(self._items, None)
        return item


class _Progress:
    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def step(self) -> None:
        self.done += 1
        if self.callback is not None and (self.done % BATCH == 0 or self.done == self.total):
            self.callback(self.done, self.total)


def _removed(seq: int, index: int) -> Problem:
    return Problem("removed", f"entry {seq} (leaf {index}) was committed but is gone", seq)


# --- 1. leaves and checkpoints -----------------------------------------------------------


class _LeafCheck:
    """The committed leaf hashes, in order, folded into every checkpoint's root."""

    def __init__(self, stored: Sequence[Checkpoint], key: LogKey | None) -> None:
        self.problems: list[Problem] = []
        previous = 0
        for cp in stored:
            label = _label(cp)
            self.problems += _check_note(cp, label, key)
            if cp.tree_size < previous:
                self.problems.append(
                    Problem("checkpoint", f"{label} is smaller than the one before ({previous})")
                )
            previous = max(previous, cp.tree_size)
        self.pending = sorted(stored, key=lambda cp: (cp.tree_size, cp.id))
        self.frontier = merkle.Frontier()
        self.count = 0
        self.last_seq = 0
        self.out_of_order = False
        #: The size of the largest checkpoint whose root matched, and the seq of the leaf
        #: right after it: where a doctored range starts.
        self.good = 0
        self.after_good: int | None = None
        self._settle()

    def leaf(self, index: int, seq: int, digest: bytes) -> None:
        if (index != self.count or seq <= self.last_seq) and not self.out_of_order:
            self.out_of_order = True  # one report: after a gap every leaf is out of place
            self.problems.append(
                Problem(
                    "log_tampered",
                    f"the log's leaf table is out of order at leaf {index} (entry {seq})",
                    seq,
                )
            )
        if self.count == self.good:
            self.after_good = seq
        self.count += 1
        self.last_seq = seq
        try:
            self.frontier.append(digest)
        except ValueError:
            self.frontier.append(b"\0" * merkle.HASH_SIZE)  # reported by the roots below
        self._settle()

    def _settle(self) -> None:
        while self.pending and self.pending[0].tree_size == self.count:
            cp = self.pending.pop(0)
            if self.frontier.root() == cp.root_hash:
                self.good = max(self.good, cp.tree_size)
            elif cp.tree_size == 0:
                self.problems.append(
                    Problem("checkpoint", f"{_label(cp)}: not the root of the empty tree")
                )
            else:
                first = self.after_good if self.after_good is not None else self.last_seq
                self.problems.append(
                    Problem(
                        "log_tampered",
                        f"the log's leaf hashes no longer give the root of {_label(cp)}: a "
                        f"committed entry between {first} and {self.last_seq} was altered in "
                        "the journal and in the log alike",
                        first,
                    )
                )

    def finish(self) -> list[Problem]:
        for cp in self.pending:
            self.problems.append(
                Problem(
                    "log_tampered",
                    f"{_label(cp)} covers more leaves than the log holds ({self.count}): "
                    f"committed entries after {self.last_seq} were removed",
                    self.last_seq + 1,
                )
            )
        self.pending = []
        return self.problems


def _label(cp: Checkpoint) -> str:
    return f"checkpoint {cp.id} (size {cp.tree_size})"


def _check_note(cp: Checkpoint, label: str, key: LogKey | None) -> list[Problem]:
    try:
        if key is not None:
            origin, size, root_hash = verify_checkpoint(cp.signed_note, key)
        else:
            body, _, _ = cp.signed_note.rpartition("\n\n")
            origin, size, root_hash = parse_checkpoint_text(body + "\n")
    except NoteError as exc:
        return [Problem("checkpoint", f"{label}: {exc.message}")]
    if (origin, size, root_hash) != (cp.origin, cp.tree_size, cp.root_hash):
        return [Problem("checkpoint", f"{label}: its stored fields differ from its signed text")]
    return []


# --- 2. entries after the last checkpoint --------------------------------------------------


class _Unsigned:
    """Checks of the entries after the last checkpoint, which no leaf commits to yet:
    each must be a known kind with canonical JSON data; on SQLite (``seq`` dense) none
    may be missing between two. (Their rows are checked like every row.)"""

    def __init__(self, *, dense: bool) -> None:
        self.dense = dense
        self.last: int | None = None
        self.problems: list[Problem] = []

    def check(self, row: Any) -> None:
        seq, kind, _, _, data, _ = row
        if self.dense and self.last is not None and seq != self.last + 1:
            missing = (
                f"entry {self.last + 1} (not yet signed) is"
                if seq == self.last + 2
                else f"entries {self.last + 1} to {seq - 1} (not yet signed) are"
            )
            self.problems.append(Problem("removed", f"{missing} gone", self.last + 1))
        self.last = seq
        if kind not in _KINDS:
            self.problems.append(Problem("changed", f"entry {seq} has an unknown kind", seq))
            return
        try:
            payload = orjson.loads(data)
            well_formed = isinstance(payload, dict) and canonical(payload) == data
        except orjson.JSONDecodeError:
            well_formed = False
        if not well_formed:
            self.problems.append(
                Problem("changed", f"entry {seq} (not yet signed) is not canonical JSON", seq)
            )


# --- 3. rows, from each entry's side --------------------------------------------------------


class _ListedRows:
    """The rows entries list, looked up in batches: each must exist, and be no older than
    the entry that lists it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_table: dict[str, list[tuple[Any, int]]] = {}
        self.size = 0

    def add(self, seq: int, rows: str) -> list[Problem]:
        try:
            items = journal.parse_listing(rows)
        except (ValueError, orjson.JSONDecodeError):
            return [Problem("changed", f"entry {seq}: its list of rows is malformed", seq)]
        problems = []
        for table, key, _ in items:
            if not isinstance(journal.registration(table), journal.Covered):
                problems.append(
                    Problem("changed", f"entry {seq} lists a row of uncovered table {table}", seq)
                )
                continue
            self.by_table.setdefault(table, []).append((key, seq))
            self.size += 1
        if self.size >= BATCH:
            problems += self.flush()
        return problems

    def flush(self) -> list[Problem]:
        problems: list[Problem] = []
        for name, wanted in self.by_table.items():
            table = JournalEntry.metadata.tables[name]
            columns = list(table.primary_key.columns)
            for start in range(0, len(wanted), _LOOKUP):
                chunk = wanted[start : start + _LOOKUP]
                keys = [key for key, _ in chunk]
                if len(columns) == 1:
                    where = columns[0].in_(keys)
                else:
                    where = tuple_(*columns).in_([tuple(k) for k in keys])
                found = {
                    (r[0] if len(columns) == 1 else tuple(r[:-1])): r[-1]
                    for r in self.session.execute(select(*columns, table.c.seq).where(where))
                }
                for key, seq in chunk:
                    if key not in found:
                        problems.append(
                            Problem(
                                "removed",
                                f"table {name}, row {_key_text(key)}: written by entry {seq}, "
                                "but gone",
                                seq,
                            )
                        )
                    elif found[key] is None or found[key] < seq:
                        problems.append(
                            Problem(
                                "changed",
                                f"table {name}, row {_key_text(key)}: older than entry {seq}, "
                                "which rewrote it (a change was undone)",
                                seq,
                            )
                        )
        self.by_table = {}
        self.size = 0
        return problems


def _key_text(key: Any) -> str:
    if isinstance(key, tuple | list):
        return "(" + ", ".join(str(k) for k in key) + ")"
    return str(key)


# --- 4. rows, from each table's side ---------------------------------------------------------


def _check_table(
    session: Session, table: Table, covered: journal.Covered, done: _Progress
) -> tuple[list[Problem], int, int]:
    """Every row of ``table`` against the entry its ``seq`` names: (problems, rows,
    erased rows)."""
    entries = JournalEntry.__table__
    columns = [
        type_coerce(c, BigInteger).label(c.name) if isinstance(c.type, Instant) else c
        for c in table.columns
    ]
    key_names = [c.name for c in table.primary_key.columns]
    stmt = select(
        *columns,
        entries.c.seq.label("_entry_seq"),
        entries.c.rows.label("_entry_rows"),
    ).outerjoin(entries, entries.c.seq == table.c.seq)
    erasures = covered.erased_in
    if erasures is not None:
        erasure_name, erased_column = erasures
        erasure_table = JournalEntry.metadata.tables[erasure_name]
        stmt = stmt.add_columns(erasure_table.c.id.label("_erasure")).outerjoin(
            erasure_table, erasure_table.c[erased_column] == table.c[key_names[0]]
        )
    stmt = stmt.order_by(*table.primary_key.columns)
    problems: list[Problem] = []
    n = n_erased = 0
    listing_of: tuple[int | None, dict[Any, str]] = (None, {})
    table_rows: Iterable[Any] = stream_rows(session, stmt)
    for row in table_rows:
        values = row._mapping
        n += 1
        done.step()
        key = journal.row_key(values, key_names)
        key = tuple(key) if isinstance(key, list) else key
        where = f"table {table.name}, row {_key_text(key)}"
        seq = values["seq"]
        if seq is None:
            problems.append(Problem("inserted", f"{where}: no log entry wrote it"))
            continue
        if values["_entry_seq"] is None:
            problems.append(
                Problem("inserted", f"{where}: names entry {seq}, which is not in the journal", seq)
            )
            continue
        if listing_of[0] != seq:
            try:
                items = journal.parse_listing(values["_entry_rows"])
            except (ValueError, orjson.JSONDecodeError):
                items = []
            listing_of = (seq, {(t, k): d for t, k, d in items})
        expected = listing_of[1].get((table.name, key))
        if expected is None:
            problems.append(
                Problem("inserted", f"{where}: entry {seq} did not write it (inserted)", seq)
            )
            continue
        if values["salt"] is None:
            problems.append(
                Problem("changed", f"{where} (written by entry {seq}): its salt is gone", seq)
            )
            continue
        erased = erasures is not None and values["_erasure"] is not None
        if erased:
            # An erased row is written again by its erasure entry: checked like any row
            # (its content NULL), so an erasure undone shows as an edit or as a row
            # older than the erasure entry.
            n_erased += 1
        if covered.check is not None and not erased:
            wrong = covered.check.test(values)
            if wrong is not None:
                problems.append(Problem(covered.check.kind, f"{where} (entry {seq}): {wrong}", seq))
        try:
            actual = journal.digest(values["salt"], covered.encoder(values))
        except (TypeError, ValueError):
            actual = ""
        if actual != expected:
            problems.append(
                Problem(
                    "changed",
                    f"{where}: differs from what entry {seq} wrote (edited since)",
                    seq,
                )
            )
    return problems, n, n_erased


# --- 6. the continued log -------------------------------------------------------------------


def _check_legacy(session: Session, key: LogKey | None) -> tuple[list[Problem], int | None]:
    """The earlier log this one continues: its leaves against its checkpoints and
    against the tree head the new log's first entry records."""
    first = session.execute(
        select(JournalEntry.seq, JournalEntry.data)
        .where(JournalEntry.kind == EventKind.LOG_CONTINUED.value)
        .order_by(JournalEntry.seq)
        .limit(1)
    ).one_or_none()
    has_leaves = session.scalar(select(LegacyLeaf.leaf_index).limit(1)) is not None
    if first is None:
        if has_leaves:
            lost = "an earlier log's leaves are kept, but no entry continues it"
            return [Problem("legacy", lost)], None
        return [], None
    seq, data = first
    try:
        head = orjson.loads(data)
        size, root = int(head["entries"]), bytes.fromhex(head["root"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return [Problem("legacy", f"entry {seq}: not a tree head of the earlier log", seq)], None
    stored = [
        checkpoint_of(r)
        for r in session.scalars(select(LegacyCheckpoint).order_by(LegacyCheckpoint.id))
    ]
    problems: list[Problem] = []
    for cp in stored:
        named = None if key is None else LogKey(name=cp.origin, public_key=key.public_key)
        problems += [
            Problem("legacy", f"earlier log: {p.message}", seq)
            for p in _check_note(cp, _label(cp), named)
        ]
    if stored and head.get("checkpoint") != stored[-1].signed_note:
        problems.append(
            Problem("legacy", f"entry {seq}: its checkpoint is not the earlier log's last", seq)
        )
    pending = sorted(stored, key=lambda cp: cp.tree_size)
    frontier = merkle.Frontier()
    leaves = select(LegacyLeaf.leaf_hash).order_by(LegacyLeaf.leaf_index)
    for (digest,) in stream_rows(session, leaves):
        frontier.append(bytes(digest))
        while pending and pending[0].tree_size == frontier.size:
            cp = pending.pop(0)
            if frontier.root() != cp.root_hash:
                problems.append(
                    Problem("legacy", f"earlier log: its leaves do not give {_label(cp)}", seq)
                )
    for cp in pending:
        problems.append(Problem("legacy", f"earlier log: {_label(cp)} covers missing leaves", seq))
    if frontier.size != size or frontier.root() != root:
        problems.append(
            Problem(
                "legacy",
                f"entry {seq}: the earlier log's {frontier.size} leaves do not give the tree "
                f"head it records ({size} entries)",
                seq,
            )
        )
    return problems, frontier.size


__all__ = ["Problem", "VerifyReport", "verify_log"]
