"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from assets shipped in the package, so
they work with no network, each page under its own Content-Security-Policy.

The assets are vendored unchanged from their npm packages under ``static/vendor/``
(``scripts/vendor-assets.sh`` fetches them at the pinned versions and checks them against
the lock ``static/vendor/SHA256SUMS``) and served at ``/static/``. The pages are FastAPI's
own, pointed at those files and built once, so the hash of their inline scripts, which
their policy allows, is computed once from the very HTML that is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from credence.api.security_headers import page_policy

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"

#: The vendored packages, by folder (name-version); scripts/vendor-assets.sh pins the same.
SWAGGER_UI = "swagger-ui-dist-5.36.0"
REDOC = "redoc-2.5.4"

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def _asset(package: str, name: str) -> str:
    return f"{STATIC_URL}/vendor/{package}/{name}"


def _page(
    built: HTMLResponse,
    *,
    inline_styles: bool = False,
    workers: tuple[str, ...] = (),
    stylesheet: str | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint serving the page ``built``, with the policy made for that very HTML.

    FastAPI's pages leave out the language; the pages are in English (and screen readers
    and axe-core's ``html-has-lang`` need to know it). ``stylesheet`` is loaded last."""
    html = bytes(built.body).decode().replace("<html>", '<html lang="en">', 1)
    if stylesheet is not None:
        link = f'<link rel="stylesheet" href="{stylesheet}">\n'
        html = html.replace("</head>", link + "</head>", 1)
    policy = page_policy(html, inline_styles=inline_styles, workers=workers)
    headers = {"Content-Security-Policy": policy}

    async def page(_: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    return page


def install(app: FastAPI) -> None:
    """Serve the vendored assets and the two documentation pages on ``app`` (created
    with ``docs_url=None, redoc_url=None``, so that FastAPI's, which load from a CDN,
    are not there)."""
    assert app.openapi_url is not None
    favicon = _asset(SWAGGER_UI, "favicon-32x32.png")
    swagger = _page(
        get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=_asset(SWAGGER_UI, "swagger-ui-bundle.js"),
            swagger_css_url=_asset(SWAGGER_UI, "swagger-ui.css"),
            swagger_favicon_url=favicon,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # Swagger UI would otherwise show a badge fetched from an online validator.
            swagger_ui_parameters={"validatorUrl": None},
        ),
        # Swagger UI's colours, where its text falls below WCAG 2 AA's contrast.
        stylesheet=f"{STATIC_URL}/docs.css",
    )
    oauth2_redirect = _page(get_swagger_ui_oauth2_redirect_html())
    redoc = _page(
        get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=_asset(REDOC, "redoc.standalone.js"),
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        ),
        # ReDoc writes its styles into <style> elements as it renders (styled-components),
        # and runs its search in a worker made from a blob.
        inline_styles=True,
        workers=("blob:",),
    )

    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.add_route(DOCS_URL, swagger, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
