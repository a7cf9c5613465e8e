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

from credence.access.keys import token_hash
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.errors import envelope
from credence.api.ratelimit import FAILURES, LOOKUPS, RateLimits, authorization, refuse
from credence.api.routing import CommittingRoute
from credence.api.schemas import DecisionIn, DecisionOut, decision_fields, decision_out
from credence.api.security_headers import JSON_HEADERS, secured
from credence.context import Context
from credence.db import (
    SQLITE_BUSY_MS,
    Direct,
    is_busy,
    release_write_lock,
    try_write_lock,
    write_lock,
)
from credence.decisions import service
from credence.decisions.direct import DirectDecider, Write, run_writes
from credence.errors import CredenceError

log = logging.getLogger("credence.api")

PATH = "/v1/decisions"

router = APIRouter(prefix=PATH, tags=["decisions"], route_class=CommittingRoute)


@router.post(
    "",
    response_model=DecisionOut,
    summary="Ask for a purpose-bound decision (relying parties); recorded on the subject's file",
)
def ask(body: DecisionIn, caller: CallerDep, ctx: ContextDep, session: SessionDep) -> DecisionOut:
    decision = service.ask(
        session,
        caller,
        subject_id=body.subject_id,
        identifier=body.identifier,
        service_code=body.service,
        at=ctx.clock.now(),
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
        self._decider = DirectDecider(ctx.clock)

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
                    await refuse(scope, receive, secured(send), wait, LOOKUPS)
                    return
            elif wait > 0:
                await refuse(scope, receive, secured(send), wait, FAILURES)
                return
        try:
            content = await self._answer(request, token)
        except CredenceError as exc:
            if exc.status == 401 and limits is not None:
                limits.failed_auth(scope, header or authorization(scope) or b"")
            await envelope(exc.status, exc.code, exc.message, exc.details)(
                scope, receive, secured(send)
            )
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
                    *JSON_HEADERS,
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
                decision = self._decider.decide(
                    direct,
                    subject_id=request.subject_id,
                    identifier=request.identifier,
                    service_code=request.service,
                    key_hash=token_hash(token),
                    writes=writes,
                )
                if decision is None:
                    return None
                return orjson.dumps(decision_fields(decision), option=orjson.OPT_UTC_Z)
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
