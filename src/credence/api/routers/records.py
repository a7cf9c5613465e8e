"""Records: batch submission with a status per record, and retraction."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response, status

from credence.access.policy import Action, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import OrjsonRoute
from credence.api.schemas import BatchOut, ChangeOut, RecordBatchIn, RetractIn, RetractionOut
from credence.errors import InvalidInput
from credence.ledger import lifting, registry
from credence.ledger import service as ledger
from credence.ledger.intake import Intake

# Batches of thousands of records: their JSON is parsed by orjson.
router = APIRouter(prefix="/v1/records", tags=["records"], route_class=OrjsonRoute)


@router.post(
    "",
    response_model=BatchOut,
    summary="Submit a batch of records (sources); each record gets its own status "
    "(created, duplicate, rejected, or held for a reviewer by the intake's checks)",
)
def submit(body: RecordBatchIn, caller: CallerDep, ctx: ContextDep, request: Request) -> Response:
    authorize(caller, Action.RECORD_SUBMIT, source_id=caller.source_id)
    limit = ctx.settings.max_batch_records
    if len(body.records) > limit:
        raise InvalidInput(
            f"a batch may carry at most {limit} records; this one has {len(body.records)}",
            code="batch_too_large",
        )
    records = ledger.parse_records(body.records)
    # Stored with the batches of other requests arriving meanwhile, in one transaction
    # (credence.ledger.intake), and answered once that transaction has committed.
    intake: Intake = request.app.state.intake
    results = intake.submit(caller.source_id, records, backfill_run=body.backfill_run)
    # The BatchOut JSON, written directly: validating thousands of results the service
    # has just built, to serialise them, would cost more than storing them.
    out = {
        "created": sum(r.status == "created" for r in results),
        "duplicates": sum(r.status == "duplicate" for r in results),
        "rejected": sum(r.status == "rejected" for r in results),
        "held": sum(r.status == "held" for r in results),
        "results": results,  # dataclasses: orjson writes them as objects
    }
    return Response(orjson.dumps(out), media_type="application/json")


@router.post(
    "/{record_id}/retraction",
    response_model=RetractionOut,
    summary="Retract one of your records; its effect ends now (a new ledger entry), or, for "
    "a record that restricts someone, once a reviewer confirms (202)",
    responses={
        202: {
            "model": RetractionOut,
            "description": "The record restricts someone: the retraction awaits a reviewer's "
            "confirmation (pending_change) and the record counts until then.",
        }
    },
)
def retract(
    record_id: str,
    body: RetractIn,
    caller: CallerDep,
    ctx: ContextDep,
    session: SessionDep,
    response: Response,
) -> RetractionOut:
    authorize(caller, Action.RECORD_RETRACT, source_id=caller.source_id)
    source = registry.submitting_source(session, caller.source_id)
    at = ctx.clock.now()
    done, created = ledger.retract_record(
        session,
        source=source,
        record_id=record_id,
        reason=body.reason,
        at=at,
        principal_id=caller.principal_id,
    )
    if isinstance(done, lifting.PendingChange):
        response.status_code = status.HTTP_202_ACCEPTED
        held = ChangeOut.of(lifting.get_change(session, done.public_id, at))
        return RetractionOut(
            record_id=record_id,
            status="pending_confirmation",
            retracted_at=None,
            created=created,
            pending_change=held,
        )
    return RetractionOut(
        record_id=record_id, status="retracted", retracted_at=done.received_at, created=created
    )
