"""The public pages: what Credence is, the rulebook in force, every edition, and what
changed between two editions. No sign-in; nothing personal is read or shown.

Each page is rendered from a template in the reader's language (:mod:`.i18n`) and sent
with the policy the API gives :func:`install`: no inline script or style exists on
them, and every link stays on the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from credence import wording
from credence.context import Context
from credence.errors import NotFound
from credence.portal import i18n, log, myfile, signin, statistics
from credence.portal import session as signed
from credence.portal.i18n import N_
from credence.rulebook import store
from credence.rulebook.diff import diff
from credence.rulebook.purposes import PURPOSES

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/assets"

#: Labels of the codes the rulebook's model fixes (interface strings, translated).
LABELS: dict[str, str] = {
    # categories
    "government_affairs": N_("Government affairs"),
    "commercial": N_("Commercial"),
    "social": N_("Social"),
    "judicial": N_("Judicial"),
    # severities
    "minor": N_("Minor"),
    "general": N_("General"),
    "serious": N_("Serious"),
    # evidence
    "court_judgment": N_("Court judgment"),
    "enforcement_order": N_("Enforcement order"),
    "administrative_penalty": N_("Administrative penalty"),
    "default_registration": N_("Default registration"),
    "source_attestation": N_("Attestation by the source"),
    "certificate": N_("Certificate"),
    # subject kinds
    "person": N_("Persons"),
    "company": N_("Companies and other organisations"),
    "government": N_("Public bodies"),
    # service kinds and outcomes
    "restriction": N_("Restriction"),
    "reward": N_("Reward"),
    "allow": N_("Allow"),
    "deny": N_("Deny"),
    # what a diff names
    "rulebook": N_("Rulebook"),
    "scale": N_("Scale"),
    "dispute": N_("Disputes"),
    "positive_caps": N_("Caps on positive points"),
    "category": N_("Category"),
    "severity_class": N_("Severity class"),
    "tier": N_("Tier"),
    "record_type": N_("Record type"),
    "service": N_("Service"),
    "added": N_("Added"),
    "removed": N_("Removed"),
    "changed": N_("Changed"),
}

#: What a service does while a source it reads is in outage, in plain words.
OUTAGE = {
    "open": N_("Decides on the records held and states what is missing."),
    "closed": N_("Grants no reward until the category's data is complete again."),
}


@cache
def environment(locale: str) -> Environment:
    """The templates, translated into ``locale``, with its formatting filters."""
    env = Environment(
        loader=PackageLoader("credence.portal", "templates"),
        autoescape=select_autoescape(default=True),
        # A missing label or value fails the page (and its test) instead of vanishing.
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["datetime"] = lambda value: i18n.date_time(value, locale)
    env.filters["number"] = lambda value: i18n.number(value, locale)
    env.filters["signed"] = lambda value: i18n.signed(value, locale)
    env.filters["value"] = lambda value: i18n.value(value, locale)
    env.filters["coded"] = lambda message, book=None: wording.render(
        message["code"], message["params"], locale, book.zh if book is not None else None
    )
    env.globals["LABELS"] = LABELS
    env.globals["OUTAGE"] = OUTAGE
    env.globals["PURPOSES"] = PURPOSES
    env.globals["csrf_field"] = signed.csrf_field
    return env


def _switch(request: Request, locale: str) -> list[dict[str, Any]]:
    """The language switch: this page with ``?lang=`` set, for each locale."""
    links = []
    for other in i18n.LOCALES:
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        query["lang"] = i18n.TAGS[other]
        links.append(
            {
                "href": f"{request.url.path}?{urlencode(query)}",
                "tag": i18n.TAGS[other],
                "label": i18n.NAMES[other],
                "current": other == locale,
            }
        )
    return links


def _render(
    request: Request,
    headers: Mapping[str, str],
    template: str,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    query = request.query_params.get("lang")
    locale = i18n.choose(
        query, request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
    )
    html = (
        environment(locale)
        .get_template(template)
        .render(
            lang_tag=i18n.TAGS[locale],
            locale=locale,
            switch=_switch(request, locale),
            path=request.url.path,
            csrf_token=signed.FormToken(request),
            **values,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=dict(headers))
    signed.remember_form(request, response)
    if i18n.locale_of(query) is not None:
        response.set_cookie(
            i18n.COOKIE,
            i18n.TAGS[locale],
            max_age=365 * 86400,
            path="/",
            httponly=True,
            samesite="strict",
        )
    return response


def _session(request: Request) -> Session:
    ctx: Context = request.app.state.ctx
    return ctx.sessions()


def _editions(session: Session) -> list[dict[str, Any]]:
    """Every published edition, newest first, each with the one before it."""
    rows = store.history(session)
    out = [
        {
            "version": v,
            "content_hash": h,
            "published_at": at,
            "previous": rows[i - 1][0] if i else None,
        }
        for i, (v, h, at) in enumerate(rows)
    ]
    return out[::-1]


def routes(headers: Mapping[str, str]) -> list[Route]:
    """The pages, each answered with ``headers`` (the pages' security policy). Plain
    routes, like ``/docs``: pages, not operations of the API (``/openapi.json`` lists
    none of them)."""

    def not_found(request: Request, version: str) -> HTMLResponse:
        return _render(request, headers, "error.html", 404, problem="no_edition", version=version)

    def home(request: Request) -> HTMLResponse:
        return _render(request, headers, "home.html")

    def rulebook(request: Request) -> HTMLResponse:
        ctx: Context = request.app.state.ctx
        with _session(request) as session:
            edition = store.in_force(session, ctx.clock.now())
        return _render(request, headers, "rulebook.html", edition=edition, in_force=True)

    def editions(request: Request) -> HTMLResponse:
        with _session(request) as session:
            listed = _editions(session)
        return _render(request, headers, "editions.html", editions=listed)

    def edition(request: Request) -> HTMLResponse:
        ctx: Context = request.app.state.ctx
        version: str = request.path_params["version"]
        with _session(request) as session:
            try:
                found = store.by_version(session, version)
            except NotFound:
                return not_found(request, version)
            current = store.in_force(session, ctx.clock.now()).version
        return _render(
            request, headers, "rulebook.html", edition=found, in_force=found.version == current
        )

    def changes(request: Request) -> HTMLResponse:
        old, new = request.query_params.get("from"), request.query_params.get("to")
        if not old or not new:
            return _render(
                request,
                headers,
                "error.html",
                400,
                problem="missing_versions",
            )
        with _session(request) as session:
            editions = {}
            for version in (old, new):
                try:
                    editions[version] = store.by_version(session, version)
                except NotFound:
                    return not_found(request, version)
            a, b = editions[old], editions[new]
        return _render(
            request,
            headers,
            "diff.html",
            old=a,
            new=b,
            changes=diff(a.rulebook, b.rulebook),
        )

    return [
        Route("/", home, methods=["GET"]),
        Route("/rulebook", rulebook, methods=["GET"]),
        Route("/rulebook/editions", editions, methods=["GET"]),
        Route("/rulebook/editions/{version}", edition, methods=["GET"]),
        Route("/rulebook/diff", changes, methods=["GET"]),
    ]


def install(
    app: FastAPI, *, headers: Mapping[str, str], limits: signin.SignInLimits | None = None
) -> None:
    """Serve the pages and their assets on ``app``, the pages with ``headers``;
    ``limits`` counts refused sign-ins."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="portal-assets")
    app.router.routes.extend(routes(headers))
    signin.install(app, headers=headers, render=_render, limits=limits)
    app.router.routes.extend(myfile.routes(headers, _render))
    app.router.routes.extend(log.routes(headers, _render))
    app.router.routes.extend(statistics.routes(headers, _render))
