"""Dependencies shared by the routers: the context, a session per request, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from credence.access.keys import KeyCache
from credence.access.policy import Caller
from credence.context import Context


async def get_context(request: Request) -> Context:
    # async: a plain attribute read needs no trip through the thread pool.
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, else rolled back.

    The commit happens before the response is sent, so nothing acknowledged is lost.
    """
    with ctx.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cr_…`")


async def get_caller(
    request: Request,
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The authenticated caller; a missing, unknown, revoked or expired key is a 401.

    Keys are cached briefly in the process (:class:`credence.access.keys.KeyCache`): a
    cached key costs no query, so this runs on the event loop rather than in a thread.
    """
    token = credentials.credentials if credentials is not None else None
    cache: KeyCache = request.app.state.key_cache
    return cache.authenticate(ctx.sessions, token, clock=ctx.clock)


CallerDep = Annotated[Caller, Depends(get_caller)]
