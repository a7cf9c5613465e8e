"""The transparency log's public pages: ``/log`` (the latest signed checkpoint and the
key that signs it) and ``/log/verify`` (the same checks, run in the visitor's browser by
``static/log-verify.js``).

Both read what ``/v1/log/checkpoint`` and ``/v1/log/public-key`` publish, through the
same functions: a checkpoint is signed now if entries were added since the latest one,
so the page, the API and the script show one checkpoint. Nothing personal is read: a
leaf hash and its proof are public; the entry's data is not shown here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from credence.context import Context
from credence.translog.checkpoints import Checkpoint, signed_now
from credence.translog.keys import LogKey, signer_from_settings
from credence.translog.tables import LogLeaf


class Render(Protocol):
    """The portal's page renderer (``pages._render``), handed in by ``pages.install`` so
    that this module does not import ``pages`` (which imports it)."""

    def __call__(
        self,
        request: Request,
        headers: Mapping[str, str],
        template: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse: ...


#: Largest entry number the API accepts (its sequence numbers are BIGINT).
MAX_SEQ = 2**63 - 1


def fingerprint(key: LogKey) -> str:
    """The key's fingerprint as the pages show it: SHA-256 of the raw 32-byte Ed25519
    public key (not of its base64, nor of the verifier key), in hex, in groups of four
    digits for reading aloud."""
    digest = hashlib.sha256(key.public_key).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _latest(request: Request) -> tuple[Checkpoint, LogKey, int | None]:
    """The checkpoint (signed now if entries were added), the key that signed it, and
    the sequence number of the newest entry it covers (None for an empty log)."""
    ctx: Context = request.app.state.ctx
    signer = signer_from_settings(ctx.settings)
    cp = signed_now(ctx.engine, ctx.sessions, signer=signer, at=ctx.clock.now())
    newest = None
    if cp.tree_size:
        with ctx.sessions() as session:
            newest = session.scalar(
                select(LogLeaf.seq).where(LogLeaf.leaf_index == cp.tree_size - 1)
            )
    return cp, signer.public, newest


def _key_values(key: LogKey) -> dict[str, Any]:
    return {
        "key_name": key.name,
        "key_id": key.key_id.hex(),
        "fingerprint": fingerprint(key),
        "public_key": base64.b64encode(key.public_key).decode(),
        "verifier_key": key.verifier_key,
    }


def _asked_seq(request: Request) -> tuple[int | None, str | None]:
    """``?seq=`` as an entry number; the text given when it is not one."""
    text = request.query_params.get("seq")
    if text is None or text == "":
        return None, None
    if text.isascii() and text.isdigit() and int(text) <= MAX_SEQ:
        return int(text), None
    return None, text


def routes(headers: Mapping[str, str], render: Render) -> list[Route]:
    """``/log`` and ``/log/verify``, rendered by ``render`` and answered with ``headers``
    (the pages' policy)."""

    def log_page(request: Request) -> HTMLResponse:
        cp, key, newest = _latest(request)
        return render(
            request, headers, "log.html", checkpoint=cp, newest=newest, **_key_values(key)
        )

    def verify_page(request: Request) -> HTMLResponse:
        cp, key, newest = _latest(request)
        seq, bad = _asked_seq(request)
        return render(
            request,
            headers,
            "log_verify.html",
            400 if bad is not None else 200,
            checkpoint=cp,
            seq=newest if seq is None else seq,
            bad_seq=bad,
            **_key_values(key),
        )

    return [
        Route("/log", log_page, methods=["GET"]),
        Route("/log/verify", verify_page, methods=["GET"]),
    ]
