"""The public rulebook: the edition in force and every edition ever published."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from credence.api.deps import ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import EditionOut, RulebookOut
from credence.rulebook import store
from credence.rulebook.domains import DOMAINS, STATUTES
from credence.rulebook.purposes import PURPOSES

router = APIRouter(prefix="/v1/rulebook", tags=["rulebook"], route_class=CommittingRoute)


def _out(edition: store.Edition) -> RulebookOut:
    book = edition.rulebook
    published = book.model_dump(mode="json")
    # A tier's description is generated from its threshold and conditions (an edition
    # published before that may carry free text: it is not shown).
    for tier in published["tiers"]:
        tier["description"] = book.tier_description(tier["code"])
    return RulebookOut(
        version=edition.version,
        content_hash=edition.content_hash,
        published_at=edition.published_at,
        rulebook=published,
        purposes={
            code: {**asdict(p), "categories": sorted(c.value for c in p.categories)}
            for code, p in PURPOSES.items()
        },
        domains={
            code: {
                **asdict(d),
                "subject_kinds": None
                if d.subject_kinds is None
                else sorted(k.value for k in d.subject_kinds),
            }
            for code, d in DOMAINS.items()
        },
        statutes={code: asdict(s) for code, s in STATUTES.items()},
    )


@router.get("", response_model=RulebookOut, summary="The rulebook in force (public)")
def current(ctx: ContextDep, session: SessionDep) -> RulebookOut:
    return _out(store.in_force(session, ctx.clock.now()))


@router.get("/versions", response_model=list[EditionOut], summary="Every published edition")
def versions(session: SessionDep) -> list[EditionOut]:
    return [
        EditionOut(version=v, content_hash=h, published_at=at)
        for v, h, at in store.history(session)
    ]


@router.get("/versions/{version}", response_model=RulebookOut, summary="One published edition")
def version(version: str, session: SessionDep) -> RulebookOut:
    return _out(store.by_version(session, version))


@router.get(
    "/versions/{version}/text",
    # Not response_class=PlainTextResponse: that would document text/plain, and for the
    # errors too, which are JSON like everywhere else.
    response_class=Response,
    responses={200: {"content": {"application/toml": {"schema": {"type": "string"}}}}},
    summary="One edition's file, byte for byte (its SHA-256 is the content hash)",
)
def version_text(version: str, session: SessionDep) -> PlainTextResponse:
    edition = store.by_version(session, version)
    return PlainTextResponse(edition.text, media_type="application/toml")
