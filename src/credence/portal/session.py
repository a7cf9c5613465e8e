"""Who is signed in to the portal: server-side sessions, their cookie, and CSRF tokens.

The interface for pages that show or change a signed-in person's file:

* :func:`signed_in` ``(request) -> SignedIn | None``: who is signed in, checked now
  (sync: call it from a sync handler or through ``run_in_threadpool``). A
  :class:`SignedIn` gives the subject's internal id (``subject_id``, for the store;
  never shown), their opaque public id (``public_id``, the one a page or URL may
  carry), the API :class:`~credence.access.policy.Caller` the session speaks as (for
  :func:`~credence.access.policy.authorize` and the access log), the session's row id,
  its absolute end and the page's locale.
* :func:`require_signed_in` ``(request) -> SignedIn``: the same, or it raises
  :class:`SignInRequired`, which the app answers with a redirect (303) to
  ``/me/sign-in``, saying why the session ended if it did (revoked key, expired key,
  idle, too old, signed out), in the reader's language.
* In every template, ``{{ csrf_field() }}`` inside each ``<form method="post">``: a
  hidden field with the request's CSRF token. In every POST handler, before anything
  else, :func:`require_csrf` ``(request, form)`` with the form's fields (read with
  :func:`credence.portal.forms.read_form`): a missing or wrong token raises
  :class:`CsrfRefused`, which the app answers with a 403 page; nothing is changed.
  (:func:`csrf_ok` ``(request, token) -> bool`` is the same check, for a handler that
  answers the refusal itself.)

Sessions (table ``portal_sessions``, :mod:`credence.access.sessions`): the cookie
``credence_session`` carries a random token of 256 bits; only its SHA-256 is stored.
A session ends, and is never used again, when its person signs out, when the key it
came from is revoked or expires (checked on every request, so the next request after a
revocation is already refused), after ``session_idle_minutes`` unused, or
``session_max_hours`` after its sign-in. Signing in always starts a new session with a
new token (a token planted before the sign-in is worth nothing after it). The cookies
are HttpOnly, SameSite=Strict, Path=/, and Secure when the setting ``cookie_secure``
says so.

CSRF: a form's token is an HMAC keyed by the session's token (signed in) or, before a
sign-in, by a random value in the cookie ``credence_form``, set with the first page
that shows a form. Another site can neither read these cookies nor make the browser
send them (SameSite=Strict), so it cannot forge the field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context as TemplateContext
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from credence.access.keys import authenticate_direct
from credence.access.policy import Caller
from credence.access.sessions import PortalSession
from credence.access.tables import ApiKey, Principal
from credence.context import Context
from credence.db import Direct
from credence.errors import Unauthenticated
from credence.ledger.tables import Subject
from credence.portal import i18n

#: The cookie of a signed-in session (its token).
SESSION_COOKIE = "credence_session"
#: The cookie that binds a form's CSRF token before any sign-in.
FORM_COOKIE = "credence_form"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf"

_RESOLVED = "credence_signed_in"
_MINTED = "credence_form_minted"


class Ended(StrEnum):
    """Why a session ended (``portal_sessions.ended_why``)."""

    SIGNED_OUT = "signed_out"
    REVOKED = "revoked"
    KEY_EXPIRED = "key_expired"
    IDLE = "idle"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SubjectIdentity:
    """Whom a sign-in proved the visitor to be: a subject's principal, and the key that
    proved it (the session is re-checked against that key on every request)."""

    principal_id: int
    key_id: int
    subject_id: int


@dataclass(frozen=True)
class SignedIn:
    """The person signed in to this request: see the module doc."""

    subject_id: int
    public_id: str
    caller: Caller
    session_id: int
    expires_at: datetime
    locale: str


class SignInRequired(Exception):
    """The page needs a signed-in person and there is none; ``ended`` says why the
    session this request came with ended, if it did."""

    def __init__(self, ended: Ended | None = None) -> None:
        super().__init__(ended.value if ended else "not signed in")
        self.ended = ended


class CsrfRefused(Exception):
    """A POST without the CSRF token of its page, or with a wrong one."""


def hash_token(token: str) -> str:
    """The stored form of a session token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def locale_of(request: Request) -> str:
    """The page's locale, as every portal page chooses it (:func:`i18n.choose`)."""
    return i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )


# --- sessions ------------------------------------------------------------------------------


def start(session: Session, identity: SubjectIdentity, *, ctx: Context) -> str:
    """Open a session for ``identity`` now; returns its token (for the cookie only)."""
    now = ctx.clock.now()
    token = secrets.token_urlsafe(32)
    session.add(
        PortalSession(
            token_hash=hash_token(token),
            principal_id=identity.principal_id,
            key_id=identity.key_id,
            created_at=now,
            last_seen=now,
            expires_at=now + timedelta(hours=ctx.settings.session_max_hours),
        )
    )
    session.flush()
    return token


def end(session: Session, token: str | None, why: Ended, *, now: datetime) -> None:
    """End the session of ``token``, if it is still open."""
    if not token:
        return
    row = session.scalar(select(PortalSession).where(PortalSession.token_hash == hash_token(token)))
    if row is not None and row.ended_at is None:
        row.ended_at, row.ended_why = now, why.value


@dataclass(frozen=True)
class _Resolved:
    who: SignedIn | None
    ended: Ended | None


def _resolve(request: Request) -> _Resolved:
    """The request's session, checked now (once per request)."""
    cached: _Resolved | None = getattr(request.state, _RESOLVED, None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    resolved = _Resolved(None, None)
    if token:
        ctx = _ctx(request)
        with ctx.sessions.begin() as session:
            resolved = _check(session, token, ctx, locale_of(request))
    setattr(request.state, _RESOLVED, resolved)
    return resolved


def _check(session: Session, token: str, ctx: Context, locale: str) -> _Resolved:
    found = session.execute(
        select(PortalSession, ApiKey.key_hash, Subject.public_id)
        .join(ApiKey, ApiKey.id == PortalSession.key_id)
        .join(Principal, Principal.id == PortalSession.principal_id)
        .join(Subject, Subject.id == Principal.subject_id)
        .where(PortalSession.token_hash == hash_token(token))
    ).first()
    if found is None:
        return _Resolved(None, None)
    row, key_hash, public_id = found
    if row.ended_at is not None:
        return _Resolved(None, Ended(row.ended_why) if row.ended_why else None)
    now = ctx.clock.now()
    why: Ended | None = None
    try:
        # The API's own rule for a key (revoked, expired), read in this transaction.
        caller = authenticate_direct(Direct.within(session), key_hash, clock=ctx.clock)
    except Unauthenticated as refused:
        details: Any = refused.details or {}
        why = Ended.REVOKED if details.get("reason") == "revoked" else Ended.KEY_EXPIRED
    else:
        if now >= row.expires_at:
            why = Ended.EXPIRED
        elif now >= row.last_seen + timedelta(minutes=ctx.settings.session_idle_minutes):
            why = Ended.IDLE
    if why is not None:
        row.ended_at, row.ended_why = now, why.value
        return _Resolved(None, why)
    row.last_seen = now
    assert caller.subject_id is not None  # a session is opened for a subject only
    return _Resolved(
        SignedIn(
            subject_id=caller.subject_id,
            public_id=public_id,
            caller=caller,
            session_id=row.id,
            expires_at=row.expires_at,
            locale=locale,
        ),
        None,
    )


def signed_in(request: Request) -> SignedIn | None:
    """Who is signed in to ``request``, checked now; None if nobody is."""
    return _resolve(request).who


def require_signed_in(request: Request) -> SignedIn:
    """Who is signed in to ``request``; :class:`SignInRequired` if nobody is."""
    resolved = _resolve(request)
    if resolved.who is None:
        raise SignInRequired(resolved.ended)
    return resolved.who


def ended(request: Request) -> Ended | None:
    """Why the session this request came with ended, if it did (checked now)."""
    return _resolve(request).ended


# --- cookies -------------------------------------------------------------------------------


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    """The session's cookie: only for this site, never readable by a script."""
    response.set_cookie(
        SESSION_COOKIE, token, path="/", httponly=True, samesite="strict", secure=secure
    )
    response.delete_cookie(FORM_COOKIE, path="/", httponly=True, samesite="strict", secure=secure)


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure
    )


# --- CSRF ----------------------------------------------------------------------------------


def _token_for(binding: str) -> str:
    return hmac.new(binding.encode("utf-8"), b"credence-csrf", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The CSRF token of the forms on the page answering ``request`` (a value for the
    form cookie is drawn when the visitor has neither cookie; :func:`remember_form`
    sets it)."""
    binding = request.cookies.get(SESSION_COOKIE) or request.cookies.get(FORM_COOKIE)
    if not binding:
        binding = getattr(request.state, _MINTED, None)
        if binding is None:
            binding = secrets.token_urlsafe(32)
            setattr(request.state, _MINTED, binding)
    return _token_for(binding)


def remember_form(request: Request, response: Response) -> None:
    """Set the form cookie drawn by :func:`csrf_token` for this page, if one was."""
    minted: str | None = getattr(request.state, _MINTED, None)
    if minted is not None:
        response.set_cookie(
            FORM_COOKIE,
            minted,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_ctx(request).settings.cookie_secure,
        )


class FormToken:
    """A page's CSRF token, drawn only if a template asks for it (``csrf_field()``)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return csrf_token(self.request)


@pass_context
def csrf_field(context: TemplateContext) -> Markup:
    """``{{ csrf_field() }}``: the hidden field of the page's CSRF token."""
    token = str(context["csrf_token"])
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(token))


def csrf_ok(request: Request, sent: str | None) -> bool:
    """Whether ``sent`` is the CSRF token of the page that posted ``request``."""
    binding = request.cookies.get(SESSION_COOKIE) or request.cookies.get(FORM_COOKIE)
    return bool(binding and sent and hmac.compare_digest(sent, _token_for(binding)))


def require_csrf(request: Request, form: Mapping[str, str]) -> None:
    """Refuse (:class:`CsrfRefused`) a POST whose form lacks its page's CSRF token."""
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        raise CsrfRefused()
