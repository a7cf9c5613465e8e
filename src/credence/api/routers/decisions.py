"""Decisions for relying parties: may subject S use service X?

Relying parties ask for decisions far more often than anything else is asked, so besides
the route (:func:`ask`, FastAPI's standard handling) there is a direct path,
:class:`DirectDecisions`, which :class:`credence.api.app.CredenceAPI` puts in front of
the whole application. A well-formed request (a small JSON body that validates as
:class:`DecisionIn`, a bearer key) is answered there without FastAPI's middleware,
routing and dependency machinery, the ORM, or SQLAlchemy's per-statement work: the key,
the subject, the relying party's registration, the edition in force and the subject's
records (of the service's categories only) are read with prepared statements on one
DBAPI connection, and :func:`decide_with` decides with
the same code as :func:`decide`. Everything else (a malformed body, a missing key, a
restriction with a warning period, any other path or method) goes on to the application
and :func:`ask`, so errors keep their one envelope and every decision its one
implementation; so does a request on which the direct path fails unexpectedly (nothing
of it has been written then).

Reads run on the event loop, one request at a time: they are short (SQLite work is
CPU-bound; a PostgreSQL round trip on the loopback is a fraction of the Python work),
and a read never waits for a writer (SQLite's WAL, PostgreSQL's snapshots). Writes (the
inquiry, a notification) are committed in groups by a writer thread before the answers
go out, so the loop never waits for a commit, or for a lock another request holds.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

import orjson
from fastapi import APIRouter
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credence.access.keys import authenticate_direct, token_hash
from credence.access.policy import Action, Caller, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.errors import envelope
from credence.api.ratelimit import FAILURES, LOOKUPS, RateLimits, authorization, refuse
from credence.api.routing import CommittingRoute
from credence.api.schemas import DecisionIn, DecisionOut, decision_fields, decision_out
from credence.clock import Clock
from credence.context import Context
from credence.db import (
    SQLITE_BUSY_MS,
    Direct,
    is_busy,
    release_write_lock,
    try_write_lock,
    write_lock,
)
from credence.decisions.service import (
    DirectStore,
    NeedsSession,
    NewestEdition,
    SubjectFile,
    Write,
    decide,
    decide_with,
    read_file,
    run_writes,
)
from credence.errors import CredenceError, InvalidInput, Unauthenticated
from credence.ledger import service as ledger
from credence.rulebook import store
from credence.scoring.online import category_types

log = logging.getLogger("credence.api")

PATH = "/v1/decisions"
_ONE_SUBJECT = "name the subject by exactly one of subject_id or identifier"

router = APIRouter(prefix=PATH, tags=["decisions"], route_class=CommittingRoute)


@router.post(
    "",
    response_model=DecisionOut,
    summary="Ask for a purpose-bound decision (relying parties); recorded on the subject's file",
)
def ask(body: DecisionIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> DecisionOut:
    # Authorise before the lookup: a caller who may not ask must not learn whether an
    # identifier is registered (403 either way, never 404 vs 403).
    authorize(caller, Action.DECISION_REQUEST)
    if (body.subject_id is None) == (body.identifier is None):
        raise InvalidInput(_ONE_SUBJECT)
    if body.subject_id is not None:
        subject = ledger.get_subject(session, body.subject_id)
    else:
        subject = ledger.find_subject(session, body.identifier or "")
    at = ctx.clock.now()
    decision = decide(
        session,
        subject=subject,
        service_code=body.service,
        edition=store.in_force(session, at),
        at=at,
        party_id=caller.party_id,
        principal_id=caller.principal_id,
    )
    return decision_out(decision)


class DirectDecisions:
    """The direct decision path (see above), in front of the whole application:
    :class:`credence.api.app.CredenceAPI` hands it every ``POST /v1/decisions``
    (:meth:`wants`); it answers the request or hands it on, unchanged, to the app."""

    #: Bodies larger than this are not read here (a decision request is ~100 bytes):
    #: the app reads them, under its body limit.
    MAX_BODY = 16 * 1024

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sqlite = ctx.engine.dialect.name == "sqlite"
        # The one reading connection of the direct path, used by one request at a time,
        # and the thread that commits the decisions' writes.
        self._connection: Direct | None = None
        self._lock = threading.Lock()
        self._writer = _Writer(ctx.engine)
        # SQLite: the writes waiting for the loop's next group commit.
        self._group: tuple[list[Write], asyncio.Future[None]] | None = None
        self._newest = NewestEdition()
        self._holders = Holders()

    @staticmethod
    def wants(scope: Scope) -> bool:
        return bool(scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH)

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: ASGIApp,
        checked_app: ASGIApp,
        limits: RateLimits | None,
    ) -> None:
        """Answer the request, or hand it to ``app`` (the application behind the rate
        limits) unchanged; or, once the rate limits were asked here, to ``checked_app``
        (the application alone), so that nothing is counted twice."""
        token = _bearer(scope, self.MAX_BODY)
        if token is None:
            await app(scope, receive, send)
            return
        chunks, complete = await _read_body(receive, self.MAX_BODY)
        if not complete:
            await app(scope, _replay(chunks, receive), send)  # too large, or a disconnect
            return
        try:
            request = DecisionIn.model_validate_json(b"".join(m.get("body", b"") for m in chunks))
        except ValidationError:
            # The router reports it, in its words.
            await app(scope, _replay(chunks, receive), send)
            return
        # The rate limits: nothing is computed while no authentication has failed and
        # the subject is named by its opaque id (the usual case).
        header = None
        if limits is not None and (limits.failing() or request.identifier is not None):
            header = authorization(scope)
            wait = limits.failed_auth_wait(scope, header)
            if wait == 0 and request.identifier is not None:
                wait = limits.lookup_wait(scope, header)
                if wait > 0:
                    await refuse(scope, receive, send, wait, LOOKUPS)
                    return
            elif wait > 0:
                await refuse(scope, receive, send, wait, FAILURES)
                return
        try:
            content = await self._answer(request, token)
        except CredenceError as exc:
            if exc.status == 401 and limits is not None:
                limits.failed_auth(scope, header or authorization(scope) or b"")
            await envelope(exc.status, exc.code, exc.message, exc.details)(scope, receive, send)
            return
        except Exception:
            # Nothing of this request was written (writes wait for the group commit,
            # which failed if it raised): the app can take it from the start.
            log.exception("direct decision path failed; handing the request to the router")
            content = None
        if content is None:
            await checked_app(scope, _replay(chunks, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, request: DecisionIn, token: str) -> bytes | None:
        writes: list[Write] = []
        content = self._on_connection(request, token, writes)
        if content is not None:
            await self._committed(writes)  # the inquiry is stored before the answer is sent
        return content

    def _on_connection(self, request: DecisionIn, token: str, writes: list[Write]) -> bytes | None:
        with self._lock:
            direct = self._direct()
            try:
                return _decide(
                    self.ctx,
                    direct,
                    request,
                    token_hash(token),
                    self._holders,
                    writes,
                    self._newest,
                )
            except CredenceError:
                raise
            except BaseException:
                self._drop(direct)
                raise

    def _direct(self) -> Direct:
        if self._connection is None:
            self._connection = Direct(self.ctx.engine)
            if not self.sqlite:
                # It only reads (the writer commits): one transaction per statement.
                self._connection.dbapi.autocommit = True
        return self._connection

    def _drop(self, direct: Direct) -> None:
        # Not a refusal: the connection may be broken; take a new one next time.
        self._connection = None
        direct.close(invalidate=True)

    async def _committed(self, writes: list[Write]) -> None:
        """Join the next group commit with ``writes``; return once it is committed.

        PostgreSQL: the writer thread commits whatever has queued up while it waited for
        the server's last commit (a commit waits for the log to reach the disk; the
        thread waits without the GIL). SQLite, where a commit is CPU work: decisions
        taken on the loop meanwhile are committed together by the loop, once it has run
        what is ready, in one transaction, if the store's write lock is free at that
        moment: the loop takes this process's write lock without waiting and its
        connection waits for no other (a busy timeout of 0). If another writer holds
        it, the group goes to the writer thread, which waits instead of the loop.
        (Measured: a writer thread for every group costs more CPU per decision than
        the commit it moves, handing the GIL back and forth.)
        """
        if not self.sqlite:
            await self._writer.submit(writes)
            return
        if self._group is None:
            loop = asyncio.get_running_loop()
            self._group = ([], loop.create_future())
            loop.call_soon(self._commit_group)
        self._group[0].extend(writes)
        # Shielded: a request given up on must not cancel the others' commit.
        await asyncio.shield(self._group[1])

    def _commit_group(self) -> None:
        assert self._group is not None
        writes, done = self._group
        self._group = None
        if try_write_lock(self.ctx.engine):
            try:
                if self._commit_on_loop(writes, done):
                    return
            finally:
                release_write_lock(self.ctx.engine)
        # Another writer holds the store: the writer thread waits for it, not the loop.
        handed = self._writer.submit(writes)
        handed.add_done_callback(lambda f: _settle([done], f.exception()))

    def _commit_on_loop(self, writes: list[Write], done: asyncio.Future[None]) -> bool:
        """Commit ``writes`` and settle ``done``; False, with nothing written, if another
        connection holds the store's write lock.

        The writes go on the connection the decisions read on: a commit made by another
        connection would make it drop its page cache, read again on the next decision.
        It waits for no other writer while the loop commits (a busy timeout of 0)."""
        with self._lock:
            direct = self._direct()
            try:
                direct.dbapi.execute("PRAGMA busy_timeout=0")
                try:
                    run_writes(direct, writes)
                    direct.commit()
                finally:
                    direct.dbapi.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            except BaseException as exc:
                if is_busy(exc):
                    direct.rollback()
                    return False
                self._drop(direct)
                done.set_exception(exc)
                return True
        done.set_result(None)
        return True


class _Writer:
    """The direct path's writer: a thread that commits decisions' writes in groups, on
    its own connection, so that the event loop never waits for a commit (nor, on
    SQLite, for another writer's lock).

    Requests queue their writes (the inquiry, a notification) and wait; the thread
    commits everything queued in one transaction (one ``executemany`` per table) and
    releases the waiting requests: an answer is sent only once its inquiry is
    committed. While the thread waits for one commit to reach the disk, the next group
    queues up, so each commit's wait is shared. The thread stops after
    :attr:`IDLE_SECONDS` without work and starts again when needed.
    """

    IDLE_SECONDS = 2.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, writes: list[Write]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((writes, loop, done))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="credence-decision-writer", daemon=True
                )
                self._thread.start()
        return done

    def _run(self) -> None:
        direct = Direct(self.engine)
        try:
            while True:
                try:
                    jobs = [self._queue.get(timeout=self.IDLE_SECONDS)]
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                while True:  # everything queued meanwhile joins the group
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                error: BaseException | None = None
                try:
                    with write_lock(self.engine):
                        run_writes(direct, [w for writes, _, _ in jobs for w in writes])
                        direct.commit()
                except BaseException as exc:
                    direct.close(invalidate=True)
                    direct = Direct(self.engine)
                    error = exc
                by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                for _, loop, done in jobs:
                    by_loop.setdefault(loop, []).append(done)
                for loop, futures in by_loop.items():
                    loop.call_soon_threadsafe(_settle, futures, error)
        finally:
            direct.close()


_Job = tuple[list[Write], asyncio.AbstractEventLoop, asyncio.Future[None]]


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():  # its request was given up on
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class Holders:
    """Who holds each key the direct path has seen: the principal (role, name, what it
    speaks for), which never changes for a key. Whether the key is still valid is never
    remembered: :func:`read_file` reads it with the decision's own statement, and any
    other path reads the key again (:func:`credence.access.keys.authenticate_direct`),
    so a revocation or expiry applies to the very next request."""

    #: Most keys remembered; emptied when full (keys are few in practice).
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._known: dict[str, Caller] = {}

    def get(self, direct: Direct, key_hash: str, *, clock: Clock) -> tuple[Caller, bool]:
        """The holder of the key, and whether its validity was read just now (else the
        caller must check it: see :func:`_decide`). 401 for an unknown or invalid key
        that is read now."""
        caller = self._known.get(key_hash)
        if caller is not None:
            return caller, False
        caller = authenticate_direct(direct, key_hash, clock=clock)
        if len(self._known) >= self.MAX_ENTRIES:
            self._known.clear()
        self._known[key_hash] = caller
        return caller, True


def _decide(
    ctx: Context,
    direct: Direct,
    request: DecisionIn,
    key_hash: str,
    holders: Holders,
    writes: list[Write] | None,
    newest: NewestEdition,
) -> bytes | None:
    """What :func:`ask` does, on a :class:`Direct` connection, leaving the writes in
    ``writes`` if given: the decision's JSON, or None when the service needs a session
    (a restriction with a warning period).

    Usually one statement reads everything (:func:`read_file`): the subject, their
    records of the service's categories under the newest edition (remembered in
    ``newest``), the relying party's registration, the newest edition's hash and
    whether the caller's key is valid now. If that shows another edition, or none is
    remembered, or the service is not in it, the decision reads step by step as
    :func:`ask` does, so every error comes in the same order. An invalid key is a 401
    before any other answer, as on the router: whenever the key's validity was not
    read with the file, the key is read in full (:func:`authenticate_direct`)."""
    caller, checked = holders.get(direct, key_hash, clock=ctx.clock)
    try:
        return _decide_as(ctx, direct, request, caller, key_hash, checked, writes, newest)
    except CredenceError as refused:
        if not checked and not isinstance(refused, Unauthenticated):
            authenticate_direct(direct, key_hash, clock=ctx.clock)
        raise


def _decide_as(
    ctx: Context,
    direct: Direct,
    request: DecisionIn,
    caller: Caller,
    key_hash: str,
    checked: bool,
    writes: list[Write] | None,
    newest: NewestEdition,
) -> bytes | None:
    authorize(caller, Action.DECISION_REQUEST)  # before the lookup: no existence oracle
    if (request.subject_id is None) == (request.identifier is None):
        raise InvalidInput(_ONE_SUBJECT)
    at = ctx.clock.now()
    file: SubjectFile | None = None
    known = newest.get(at)
    service = known.rulebook.service(request.service) if known is not None else None
    if known is not None and service is not None:
        file = read_file(
            direct,
            public_id=request.subject_id,
            identifier=request.identifier,
            service=request.service,
            record_types=category_types(known.rulebook, frozenset(service.categories)),
            party_id=caller.party_id,
            at=at,
            key_hash=key_hash,
        )
        if not file.key_valid:  # revoked or expired since: a 401 saying which
            authenticate_direct(direct, key_hash, clock=ctx.clock)
        if file.newest_edition != known.content_hash:
            file = None  # an edition was published since: read it
    if file is not None and known is not None:
        subject: ledger.SubjectKey = file.subject
        edition = known
    else:
        if not checked:
            authenticate_direct(direct, key_hash, clock=ctx.clock)
        subject = ledger.subject_ref(
            direct, public_id=request.subject_id, identifier=request.identifier
        )
        edition = store.in_force(direct, at)
        newest.learn(direct, edition, at)
    try:
        decision = decide_with(
            DirectStore(direct, writes, file),
            subject=subject,
            service_code=request.service,
            edition=edition,
            at=at,
            party_id=caller.party_id,
            principal_id=caller.principal_id,
        )
    except NeedsSession:
        return None
    return orjson.dumps(decision_fields(decision), option=orjson.OPT_UTC_Z)


def _bearer(scope: Scope, max_body: int) -> str | None:
    """The bearer key of a small JSON request, as ``HTTPBearer`` reads it; else None."""
    authorization = content_type = length = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"content-length" and length is None:
            length = value
    if content_type is None or not content_type.startswith("application/json"):
        return None
    if length is not None and (not length.isdigit() or int(length) > max_body):
        return None
    scheme, token = get_authorization_scheme_param(authorization)
    return token if scheme.lower() == "bearer" and token else None


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's messages, and whether they hold the whole body (at most ``limit``
    bytes; not a disconnect)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > limit:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands ``messages`` over again, then listens as before."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
