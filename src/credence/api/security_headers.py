"""The security headers of every response, in one place (docs/web.md explains them).

Every answer carries :data:`COMMON` (no MIME sniffing, no referrer, no framing) and a
Content-Security-Policy. The API answers JSON, which loads nothing: :data:`JSON_POLICY`
allows nothing. The portal's pages load only the app's own files and run nothing inline:
:data:`PORTAL_POLICY`. A page that needs more sends its own policy, built here
(:func:`page_policy`), and :func:`secured` leaves it as it is.

:func:`secured` wraps the ASGI ``send`` of everything :class:`credence.api.app.CredenceAPI`
serves; the direct decision path, which answers before the application, puts
:data:`JSON_HEADERS` on its answers itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import Message, Send

#: JSON loads no script, style, image or frame, is never framed, posts no form.
JSON_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#: Credence's own pages (the portal): scripts, styles, images and requests from the app
#: only, and none of them inline: no inline script, no inline style, nothing from
#: another host, forms posted to the app, never framed.
PORTAL_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

#: The headers a portal page sets itself (the common ones are added by :func:`secured`).
PORTAL_HEADERS: dict[str, str] = {"Content-Security-Policy": PORTAL_POLICY}

CSP = b"content-security-policy"

COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)

#: The headers of a JSON answer, as raw ASGI header pairs.
JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((CSP, JSON_POLICY.encode()), *COMMON)

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def inline_script_hashes(html: str) -> list[str]:
    """The CSP sources (``'sha256-...'``) that allow exactly the inline scripts of
    ``html``: a changed byte in one of them and the browser refuses to run it."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    ]


def page_policy(html: str, *, inline_styles: bool = False, workers: Iterable[str] = ()) -> str:
    """The policy of an HTML page of the app: scripts from the app itself and the
    page's own inline scripts (by hash: no ``'unsafe-inline'``, no ``eval``); styles
    from the app, and inline ones where ``inline_styles`` (a tool that writes its styles
    at run time: ReDoc); images from the app and ``data:`` URLs; requests to the app
    only; ``workers`` (e.g. ``blob:``) where the page starts a worker."""
    scripts = " ".join(["'self'", *inline_script_hashes(html)])
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    directives = [
        "default-src 'none'",
        f"script-src {scripts}",
        f"style-src {styles}",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    if workers:
        directives.append("worker-src " + " ".join(workers))
    return "; ".join(directives)


def secured(send: Send) -> Send:
    """``send``, with the security headers added to the response's start: the common
    ones always, :data:`JSON_POLICY` unless the response set its own policy."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            names = {name.lower() for name, _ in headers}
            headers.extend(h for h in JSON_HEADERS if h[0] not in names)
            message = {**message, "headers": headers}
        await send(message)

    return send_secured
