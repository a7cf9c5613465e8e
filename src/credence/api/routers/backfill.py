"""Approved backfill runs: how a source loads its history without tripping intake's
volume limits.

An operator approves a run for one source with its scope (the period its records
occurred in, the number it may exempt); the source then names the run's id as
``backfill_run`` when it delivers (``POST /v1/records`` or ``credence import
--backfill-run``). Records of the batch inside the scope are exempt from the burst and
new-identity limits; plausibility always applies (:mod:`credence.ledger.backfill`).
Approving and listing runs is ``backfill_approve`` in the policy table (operators).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from credence.access.policy import Action, authorize
from credence.api.deps import CallerDep, ContextDep, SessionDep
from credence.api.routing import CommittingRoute
from credence.api.schemas import BackfillRunIn, BackfillRunOut
from credence.audit.service import log_operator_action
from credence.ledger import backfill, registry

router = APIRouter(prefix="/v1/backfill-runs", tags=["backfill"], route_class=CommittingRoute)


@router.post(
    "",
    response_model=BackfillRunOut,
    status_code=status.HTTP_201_CREATED,
    summary="Approve a backfill run for a source, with its scope (operators)",
)
def approve(
    body: BackfillRunIn, caller: CallerDep, ctx: ContextDep, session: SessionDep
) -> BackfillRunOut:
    authorize(caller, Action.BACKFILL_APPROVE)
    at = ctx.clock.now()
    source = registry.source_by_code(session, body.source)
    run = backfill.approve(
        session,
        source=source,
        occurred_from=body.occurred_from,
        occurred_until=body.occurred_until,
        expected_records=body.expected_records,
        principal_id=caller.principal_id,
        at=at,
    )
    log_operator_action(
        session,
        action="backfill_approved",
        what=f"backfill run {run.public_id} of source {source.code}",
        at=at,
        caller=caller,
    )
    return BackfillRunOut(
        run_id=run.public_id,
        source=source.code,
        occurred_from=run.occurred_from,
        occurred_until=run.occurred_until,
        expected_records=run.expected_records,
        exempted=0,
        approved_at=run.approved_at,
    )


@router.get(
    "",
    response_model=list[BackfillRunOut],
    summary="Approved backfill runs, oldest first, with what each has exempted (operators)",
)
def list_runs(caller: CallerDep, session: SessionDep) -> list[BackfillRunOut]:
    authorize(caller, Action.BACKFILL_APPROVE)
    return [BackfillRunOut.model_validate(v) for v in backfill.list_runs(session)]
