"""Dependencies shared by the routers: the context, a session per request, the caller.

A request's writes are committed before its response exists: the session a handler is
given is committed by the route (:class:`credence.api.routing.CommittingRoute`) as soon
as the handler has returned, in a worker thread, and only then is the response handed
to the server to send. Nothing here relies on when FastAPI runs a dependency's teardown
(since FastAPI 0.118 that is after the response has been sent): the teardown only
closes the session, rolling back whatever was not committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from credence.access.keys import authenticate
from credence.access.policy import Caller
from credence.context import Context

#: Where the request's session waits for its route to commit it (``request.state``).
SESSION_STATE = "credence_session"


async def get_context(request: Request) -> Context:
    # async: a plain attribute read needs no trip through the thread pool.
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(get_context)]


def get_session(request: Request, ctx: ContextDep) -> Iterator[Session]:
    """One transaction per request, committed by the route before the response exists
    (see the module doc); closed, and so rolled back if not committed, at the end."""
    with ctx.sessions() as session:
        setattr(request.state, SESSION_STATE, session)
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cr_…`")


def get_caller(
    ctx: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The authenticated caller; a missing, unknown, revoked or expired key is a 401.

    The key is read in the request's own transaction, on every request: a key revoked
    or issued by any process is refused or accepted by the very next request.
    """
    token = credentials.credentials if credentials is not None else None
    return authenticate(session, token, clock=ctx.clock)


CallerDep = Annotated[Caller, Depends(get_caller)]
