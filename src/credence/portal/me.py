"""``/me``: a signed-in person's own file, starting with their score, tier and
categories, and the sign-out button.

The score is the API's (``GET /v1/subjects/{id}/score``): the edition in force,
:func:`credence.scoring.online.score_subject`, authorised by the same policy and
written to the access log as the person's own read. More of the file comes as
sections: a :class:`Section` appended to :data:`SECTIONS` is included in the page, in
order, with the values its ``values`` function returns (read in the page's
transaction, as of the page's instant, for the signed-in person).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from credence.access.policy import Action, authorize
from credence.audit import service as audit
from credence.context import Context
from credence.ledger import registry
from credence.portal.session import SignedIn, require_signed_in
from credence.rulebook import store
from credence.scoring.online import score_subject

PATH = "/me"

#: A signed-in person's pages are never kept by a cache.
NO_STORE = {"Cache-Control": "no-store"}


class Render(Protocol):
    """How a page is rendered in the reader's language (``pages._render``)."""

    def __call__(
        self,
        request: Request,
        headers: Mapping[str, str],
        template: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse: ...


@dataclass(frozen=True)
class Section:
    """A part of ``/me``: ``template`` is included with ``values(session, who, at)``
    as ``section``."""

    template: str
    values: Callable[[Session, SignedIn, datetime], Mapping[str, Any]]


#: The sections of ``/me`` after the score, in order.
SECTIONS: list[Section] = []


def routes(headers: Mapping[str, str], render: Render) -> list[Route]:
    """``/me``, answered with ``headers``."""
    headers = {**headers, **NO_STORE}

    def your_file(request: Request) -> HTMLResponse:
        who = require_signed_in(request)
        ctx: Context = request.app.state.ctx
        at = ctx.clock.now()
        with ctx.sessions.begin() as session:
            authorize(who.caller, Action.SCORE_READ, subject_id=who.subject_id)
            subject = registry.get_subject(session, public_id=who.public_id)
            audit.log_read(
                session,
                caller=who.caller,
                subject_id=who.subject_id,
                action=Action.SCORE_READ.value,
                what="score and explanation (portal)",
                purpose=audit.declared_purpose(who.caller, who.subject_id, None),
                at=at,
            )
            score = score_subject(session, subject, store.in_force(session, at), at)
            sections = [(s.template, s.values(session, who, at)) for s in SECTIONS]
        return render(request, headers, "me.html", who=who, score=score, sections=sections, at=at)

    return [Route(PATH, your_file, methods=["GET"])]
