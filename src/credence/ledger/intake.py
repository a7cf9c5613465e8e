"""Group commit for record batches submitted at the same time (HTTP ingestion).

Each batch is checked and stored exactly as :func:`credence.ledger.service.submit_records`
stores it, and its submitter gets its own results. Batches that arrive while a group is
being written queue up and go together into the next transaction: one commit serves
them all, and the index pages they share are written out once (on SQLite, to the WAL;
on PostgreSQL one flush to disk instead of one per batch).

* **Order.** Batches are stored in the order they arrived; a later batch in a group
  sees the earlier ones (a source_ref sent twice is a duplicate the second time).
* **Durable before the answer.** :meth:`Intake.submit` returns only after the commit
  that holds its batch.
* **One batch's failure is its own.** If a group's transaction fails as a whole, each of
  its batches is written again in a transaction of its own.

There is no thread of its own: the first submitter to find nobody writing leads (writes
the group that holds its batch, then hands the lead to the oldest waiting submitter);
the others wait for their batch to be written, or for the lead.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock
from credence.db import write_lock
from credence.errors import CredenceError, Forbidden, NotFound
from credence.ledger import backfill, registry, turns
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn, RecordResult
from credence.rulebook import store

#: A group stops growing at this many records (a bound on one transaction's size).
MAX_GROUP_RECORDS = 20_000
#: How many times a batch is written when PostgreSQL ends it to break a deadlock over
#: intake's turns (see credence.ledger.turns) before the error is its answer.
DEADLOCK_ATTEMPTS = 3


@dataclass(eq=False)
class _Batch:
    source_id: int | None
    records: Sequence[RecordIn | CredenceError]
    #: The approved backfill run the batch is delivered under, if any.
    backfill_run: str | None = None
    #: Set when the batch is written (results or error) or its submitter is to lead.
    wake: threading.Event = field(default_factory=threading.Event)
    written: bool = False
    results: list[RecordResult] | None = None
    error: BaseException | None = None


class Intake:
    """Where a process's record batches are stored, in groups (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        max_group_records: int = MAX_GROUP_RECORDS,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.max_group_records = max_group_records
        self._mutex = threading.Lock()
        self._queue: deque[_Batch] = deque()
        self._leading = False
        self._connection: Connection | None = None
        #: Transactions committed and batches written (for tests and benchmarks).
        self.groups = 0
        self.batches = 0

    def submit(
        self,
        source_id: int | None,
        records: Sequence[RecordIn | CredenceError],
        backfill_run: str | None = None,
    ) -> list[RecordResult]:
        """Store one source's batch (delivered under the approved ``backfill_run``, if
        given); its results once the transaction holding it has committed. Raises what
        storing it raised (:class:`Forbidden` when ``source_id`` names no source or the
        run is another source's, :class:`NotFound` for an unknown run)."""
        batch = _Batch(source_id, records, backfill_run)
        with self._mutex:
            self._queue.append(batch)
            lead = not self._leading
            self._leading = True
        if not lead:
            batch.wake.wait()
        if not batch.written:  # this submitter leads: its batch is first in the queue
            self._lead()
        if batch.error is not None:
            raise batch.error
        assert batch.results is not None
        return batch.results

    def close(self) -> None:
        """Give the intake's connection back (a later batch opens another). For the end
        of the process's life (the API calls it at shutdown): on stores without a write
        lock (PostgreSQL) it does not wait for a group being written."""
        with write_lock(self.engine):
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def pending(self) -> int:
        """Batches waiting to be written."""
        with self._mutex:
            return len(self._queue)

    def _lead(self) -> None:
        group: list[_Batch] = []
        try:
            # The lock first: what queues up while another writer holds it joins this group.
            with write_lock(self.engine):
                with self._mutex:
                    size = 0
                    while self._queue and (
                        not group or size + len(self._queue[0].records) <= self.max_group_records
                    ):
                        group.append(self._queue.popleft())
                        size += len(group[-1].records)
                self._write(group)
        finally:
            for batch in group:
                batch.written = True
                batch.wake.set()
            with self._mutex:
                if self._queue:
                    self._queue[0].wake.set()  # the oldest waiting submitter leads next
                else:
                    self._leading = False

    def _write(self, group: list[_Batch], attempts: int = DEADLOCK_ATTEMPTS) -> None:
        try:
            self._store(group)
        except Exception as exc:
            if len(group) > 1:
                for batch in group:  # each on its own: one batch's failure is its own
                    self._write([batch])
            elif turns.is_deadlock(exc) and attempts > 1:
                self._write(group, attempts - 1)  # it waited on another writer's turns
            else:
                group[0].error = exc

    def _store(self, group: list[_Batch]) -> None:
        outcomes: list[tuple[list[RecordResult] | None, BaseException | None]] = []
        # One connection for every group, kept between groups (no pool checkout per
        # group; on SQLite its page cache is not left behind by another connection's
        # writes). Under bench.online the gain was within the noise; it costs nothing.
        connection = self._connection
        if connection is None:
            connection = self._connection = self.engine.connect()
        try:
            self._store_on(connection, group, outcomes)
        except Exception:
            connection.invalidate()  # it may be broken: the next group gets another
            self._connection = None
            raise
        # Committed: only now does any batch of the group get its answer.
        for batch, (results, error) in zip(group, outcomes, strict=True):
            batch.results, batch.error = results, error
        self.groups += 1
        self.batches += len(group)

    def _store_on(
        self,
        connection: Connection,
        group: list[_Batch],
        outcomes: list[tuple[list[RecordResult] | None, BaseException | None]],
    ) -> None:
        with Session(bind=connection) as session, session.begin():
            # Every source's turn at once, in order, before anything is read (see
            # credence.ledger.turns); the instant is taken once they are this group's.
            turns.take_sources(session, {b.source_id for b in group if b.source_id is not None})
            at = self.clock.now()
            rulebook = store.in_force(session, at).rulebook
            for batch in group:
                try:
                    source = registry.submitting_source(session, batch.source_id)
                except Forbidden as refused:
                    outcomes.append((None, refused))
                    continue
                scope = None
                if batch.backfill_run is not None:
                    try:  # the run is looked up before anything is written
                        scope = backfill.scope(session, batch.backfill_run, source.id)
                    except (Forbidden, NotFound) as refused:
                        outcomes.append((None, refused))
                        continue
                stored = ledger.submit_records(
                    session,
                    source=source,
                    records=batch.records,
                    rulebook=rulebook,
                    at=at,
                    backfill=scope,
                )
                outcomes.append((stored, None))
