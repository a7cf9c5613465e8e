"""Signing in to the portal and out of it: ``/me/sign-in`` and ``/me/sign-out``.

Who a visitor is comes from an :class:`IdentityProvider`: anything with
``authenticate(session, form, ctx=...)`` that returns the :class:`SubjectIdentity` the
form proves, or a :class:`Refusal`. The one shipped, :class:`SubjectKeyProvider`, takes
a subject's API key typed into a password field and posted (never in a URL); an
OpenID Connect provider can replace it (docs/web.md, "Signing in", says how).

A sign-in is refused alike whatever was wrong with the key (unknown, revoked, expired,
not a subject's): the page does not tell whether a key exists. Refused sign-ins are
counted per client address and overall (:class:`SignInLimits`, the API's rate limits);
over a limit the page answers 429 saying when to try again, and checks no key. Nothing
typed is logged or echoed.

:func:`install` mounts the pages (and ``/me``, :mod:`.me`) and the answers to
:class:`~.session.SignInRequired` (a redirect to the sign-in page saying why) and
:class:`~.session.CsrfRefused` (a 403 page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from credence.access.keys import authenticate, hash_key
from credence.access.policy import Role
from credence.access.tables import ApiKey
from credence.context import Context
from credence.errors import Unauthenticated
from credence.portal import me
from credence.portal import session as sessions
from credence.portal.forms import FormProblem, read_form
from credence.portal.me import Render
from credence.portal.session import (
    CsrfRefused,
    Ended,
    SignInRequired,
    SubjectIdentity,
    require_csrf,
)

SIGN_IN = "/me/sign-in"
SIGN_OUT = "/me/sign-out"


class Refusal(StrEnum):
    """Why a sign-in was refused, as far as the visitor may know."""

    #: Nothing was typed (not counted against the limits: it guesses nothing).
    MISSING = "missing"
    #: What was typed proves no one (the same whatever was wrong).
    REFUSED = "refused"


class IdentityProvider(Protocol):
    """Proves who a visitor is from what the sign-in form posted."""

    def authenticate(
        self, session: Session, form: Mapping[str, str], *, ctx: Context
    ) -> SubjectIdentity | Refusal: ...


class SubjectKeyProvider:
    """Signs a subject in with their API key (field ``key``), checked as the API checks
    it: a revoked, expired or unknown key, or another role's, is refused alike."""

    def authenticate(
        self, session: Session, form: Mapping[str, str], *, ctx: Context
    ) -> SubjectIdentity | Refusal:
        key = form.get("key", "").strip()
        if not key:
            return Refusal.MISSING
        try:
            caller = authenticate(session, key, clock=ctx.clock)
        except Unauthenticated:
            return Refusal.REFUSED
        if (
            caller.role is not Role.SUBJECT
            or caller.subject_id is None
            or caller.principal_id is None
        ):
            return Refusal.REFUSED
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))
        assert key_id is not None  # the key was just authenticated
        return SubjectIdentity(
            principal_id=caller.principal_id, key_id=key_id, subject_id=caller.subject_id
        )


class SignInLimits(Protocol):
    """The limits on refused sign-ins (:class:`credence.api.ratelimit.RateLimits`)."""

    def sign_in_wait(self, scope: Scope) -> float: ...

    def sign_in_refused(self, scope: Scope) -> None: ...


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _secure(request: Request) -> bool:
    return _ctx(request).settings.cookie_secure


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def routes(
    headers: Mapping[str, str],
    render: Render,
    limits: SignInLimits | None,
    provider: IdentityProvider,
) -> list[Route]:
    """The sign-in and sign-out pages, answered with ``headers``."""
    headers = {**headers, **me.NO_STORE}

    def form_page(
        request: Request, status: int = 200, *, problem: str | None = None, **values: Any
    ) -> HTMLResponse:
        shown = request.query_params.get("ended")
        ended = Ended(shown) if shown in set(Ended) else None
        return render(
            request, headers, "signin.html", status, problem=problem, ended=ended, **values
        )

    def show(request: Request) -> Response:
        if sessions.signed_in(request) is not None:
            return _see_other(me.PATH)
        # An ended session's cookie, if any, stays until the sign-in replaces it: the
        # form's CSRF token is bound to it.
        return form_page(request)

    async def sign_in(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormProblem:
            return form_page(request, 400, problem="unreadable")
        require_csrf(request, form)
        wait = limits.sign_in_wait(request.scope) if limits is not None else 0.0
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            response = form_page(
                request,
                429,
                problem="too_many",
                seconds=seconds,
                retry_at=_ctx(request).clock.now() + timedelta(seconds=seconds),
            )
            response.headers["Retry-After"] = str(seconds)
            return response
        outcome = await run_in_threadpool(_sign_in, request, form, provider)
        if isinstance(outcome, Refusal):
            if outcome is Refusal.REFUSED and limits is not None:
                limits.sign_in_refused(request.scope)
            status = 400 if outcome is Refusal.MISSING else 403
            return form_page(request, status, problem=outcome.value)
        signed_in = _see_other(me.PATH)
        sessions.set_session_cookie(signed_in, outcome, secure=_secure(request))
        return signed_in

    async def sign_out(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormProblem:
            return form_page(request, 400, problem="unreadable")
        require_csrf(request, form)
        await run_in_threadpool(_sign_out, request)
        response = _see_other(f"{SIGN_IN}?ended={Ended.SIGNED_OUT.value}")
        sessions.clear_session_cookie(response, secure=_secure(request))
        return response

    return [
        Route(SIGN_IN, show, methods=["GET"]),
        Route(SIGN_IN, sign_in, methods=["POST"]),
        Route(SIGN_OUT, sign_out, methods=["POST"]),
    ]


def _sign_in(
    request: Request, form: Mapping[str, str], provider: IdentityProvider
) -> str | Refusal:
    """Check the form with ``provider``; on success end the session the visitor came
    with, if any, and open a new one (a new token: nothing planted before survives).
    Returns the new session's token, or why the sign-in was refused."""
    ctx = _ctx(request)
    with ctx.sessions.begin() as session:
        identity = provider.authenticate(session, form, ctx=ctx)
        if isinstance(identity, Refusal):
            return identity
        sessions.end(
            session,
            request.cookies.get(sessions.SESSION_COOKIE),
            Ended.SIGNED_OUT,
            now=ctx.clock.now(),
        )
        return sessions.start(session, identity, ctx=ctx)


def _sign_out(request: Request) -> None:
    ctx = _ctx(request)
    with ctx.sessions.begin() as session:
        sessions.end(
            session,
            request.cookies.get(sessions.SESSION_COOKIE),
            Ended.SIGNED_OUT,
            now=ctx.clock.now(),
        )


def install(
    app: FastAPI,
    *,
    headers: Mapping[str, str],
    render: Render,
    limits: SignInLimits | None,
    provider: IdentityProvider | None = None,
) -> None:
    """Mount the sign-in pages and ``/me`` on ``app``, and answer a page that needs a
    signed-in person (a redirect to sign in) and a refused CSRF token (403)."""
    app.router.routes.extend(
        routes(headers, render, limits, provider or SubjectKeyProvider())
        + me.routes(headers, render)
    )

    def sign_in_required(request: Request, exc: Exception) -> Response:
        why = exc.ended if isinstance(exc, SignInRequired) else None
        url = SIGN_IN if why is None else f"{SIGN_IN}?ended={why.value}"
        response = _see_other(url)
        if request.cookies.get(sessions.SESSION_COOKIE):
            sessions.clear_session_cookie(response, secure=_secure(request))
        return response

    def csrf_refused(request: Request, exc: Exception) -> Response:
        return render(request, headers, "refused.html", 403)

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
