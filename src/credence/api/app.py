"""The FastAPI application: routers, the error envelope, the body limit, the security
headers and the documentation pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from credence import __version__
from credence.api import docs, errors
from credence.api.ratelimit import RateLimits
from credence.api.routers import (
    backfill,
    changes,
    decisions,
    disputes,
    holds,
    identities,
    keys,
    log,
    records,
    repairs,
    rulebook,
    sources,
    subjects,
)
from credence.api.schemas import ErrorEnvelope
from credence.api.security_headers import PORTAL_HEADERS, secured
from credence.context import Context
from credence.ledger.intake import Intake
from credence.portal import pages as portal
from credence.translog.checkpoints import CheckpointTimer
from credence.translog.keys import signer_from_settings

DESCRIPTION = """
Credence answers relying parties with purpose-bound decisions, explains every score to
the person it is about, and publishes every rule it applies.

Authenticate with `Authorization: Bearer <API key>`. National identifiers travel only in
request bodies, never in URLs. Every error has the shape
`{"error": {"code", "message", "details"}}`.
"""


class CredenceAPI(FastAPI):
    """FastAPI, with the direct decision path in front of everything else: a request it
    wants goes there first (see :mod:`credence.api.routers.decisions`), and on to the
    application as usual if it declines it. The rate limits
    (:mod:`credence.api.ratelimit`) guard both: the application through the limits'
    ASGI guard, the direct path by asking them itself (it knows, once it has read the
    request, whether it looks a subject up by identifier or failed to authenticate).
    Every response leaves with the security headers
    (:mod:`credence.api.security_headers`): the direct path's own answers carry them, and
    ``send`` is wrapped for everything else, including what the rate limits refuse."""

    direct: decisions.DirectDecisions | None = None
    limits: RateLimits | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if direct is not None and direct.wants(scope):
            await direct.handle(
                scope, receive, send, self._secured_guarded, self._secured_app, self.limits
            )
            return
        if scope["type"] == "http":
            send = secured(send)
        await self._guarded(scope, receive, send)

    async def _secured_guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, secured(send))

    async def _secured_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._application(scope, receive, secured(send))

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application behind the rate limits."""
        if self.limits is not None:
            await self.limits(scope, receive, send, self._application)
            return
        await self._application(scope, receive, send)

    async def _application(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # While the server runs, new journal entries are signed into a checkpoint at least
    # every ``checkpoint_every_seconds`` (off at 0).
    ctx: Context = app.state.ctx
    timer = CheckpointTimer(
        engine=ctx.engine,
        sessions=ctx.sessions,
        clock=ctx.clock,
        signer=lambda: signer_from_settings(ctx.settings),
        every=ctx.settings.checkpoint_every_seconds,
    )
    timer.start()
    try:
        yield
    finally:
        timer.stop()
        intake: Intake = app.state.intake
        intake.close()


def create_app(ctx: Context) -> FastAPI:
    """The API bound to one context (store, clock, settings)."""
    app = CredenceAPI(
        title="Credence",
        lifespan=_lifespan,
        version=__version__,
        description=DESCRIPTION,
        # Served by credence.api.docs from the package's own assets instead.
        docs_url=None,
        redoc_url=None,
        responses={
            400: {"model": ErrorEnvelope},
            401: {"model": ErrorEnvelope},
            403: {"model": ErrorEnvelope},
            404: {"model": ErrorEnvelope},
            409: {"model": ErrorEnvelope},
            413: {"model": ErrorEnvelope},
            422: {"model": ErrorEnvelope},
            429: {"model": ErrorEnvelope},
        },
    )
    app.state.ctx = ctx
    app.state.intake = Intake(ctx.engine, ctx.sessions, ctx.clock)
    errors.install(app)
    app.direct = decisions.DirectDecisions(ctx)
    app.limits = RateLimits(ctx.settings)
    app.add_middleware(errors.RequestGuard, limit=ctx.settings.max_body_bytes)

    @app.get("/v1/health", tags=["meta"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for module in (
        rulebook,
        sources,
        subjects,
        records,
        decisions,
        disputes,
        repairs,
        changes,
        holds,
        backfill,
        identities,
        log,
        keys,
    ):
        app.include_router(module.router)
    docs.install(app)
    # The public pages at / (credence.portal), under their own policy.
    portal.install(app, headers=PORTAL_HEADERS, limits=app.limits)
    # The portal's download of a subject's own file is the API's file, in JSON.
    app.state.file_document = subjects.file_document
    return app
