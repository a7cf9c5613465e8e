"""A subject's own file in the browser, under ``/me/``: the score over time, every
record with what it weighs today and when it stops counting, what a record's end would
change, who looked and why, the notifications, the actions (dispute, statement,
repair) followed to their outcome, and the whole file to download or print.

Only the signed-in subject's file is ever read: every page starts from the session's
subject, and a record is found among that subject's own records (anything else is the
same 404 as a record that does not exist). URLs carry a record's opaque id at most,
never a subject's id, identifier or name.

Nothing is worked out twice. The score and each as-of point are the API's
(:func:`credence.scoring.online.score_subject`); what a record's end would change is the
same pure :func:`credence.scoring.online.compute` run on the same records read for
today's score, that one left out; the actions call the services the API calls
(:mod:`credence.disputes.service`, :mod:`credence.disputes.repair`) after the same
checks of the same request bodies (:mod:`credence.disputes.schemas`); the download is
the API's own ``GET /v1/subjects/{id}/file``, which the API hands the portal
(``app.state.file_document``). Every page read is logged in the access log as the
subject reading their own file, as the API logs it.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from credence.access.policy import Action, Caller, authorize
from credence.audit import service as audit
from credence.context import Context
from credence.disputes import repair as repairs
from credence.disputes import service as disputes
from credence.disputes.repair import RepairView
from credence.disputes.schemas import DisputeIn, RepairIn, StatementIn
from credence.disputes.service import DisputeView
from credence.errors import CredenceError, Forbidden, NotFound
from credence.ledger import freshness
from credence.ledger.freshness import Outage
from credence.ledger.subject_file import RecordView, subject_records
from credence.ledger.tables import Record, Subject
from credence.notifications.service import for_subject
from credence.portal import charts, me
from credence.portal import session as portal_session
from credence.portal.charts import Chart
from credence.portal.forms import FormProblem, read_form
from credence.portal.i18n import N_
from credence.rulebook import store
from credence.rulebook.model import RecordType
from credence.rulebook.store import Edition
from credence.scoring.online import Contribution, Score, compute, score_subject

_Body = TypeVar("_Body", DisputeIn, StatementIn, RepairIn)

#: How many months back the score's chart goes (one point a month, and today).
MONTHS = 12


class Render(Protocol):
    """The portal's page renderer (``credence.portal.pages._render``)."""

    def __call__(
        self,
        request: Request,
        headers: Mapping[str, str],
        template: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse: ...


#: The API's whole file of a subject as JSON bytes, as ``GET /v1/subjects/{id}/file``
#: answers it (the read logged, as every read is): handed over by the API, a layer up.
FileDocument = Callable[[Session, Context, Caller, str], bytes]


# --- view models -----------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """The score as of one instant (a point of the chart)."""

    at: datetime
    total: float
    tier: str


@dataclass(frozen=True)
class Today:
    """Today's score, and what it was computed from (to leave one record out)."""

    edition: Edition
    records: list[RecordView]
    outages: Mapping[int, Outage]
    score: Score


@dataclass(frozen=True)
class Entry:
    """One record on the file, as the subject reads it."""

    contribution: Contribution
    record_type: RecordType | None
    #: When it stops counting at the end of its retention (its source's outage, if
    #: any, pushes it later), for a record that counts; None otherwise.
    stops_at: datetime | None
    disputes: list[DisputeView]
    repairs: list[RepairView]

    @property
    def record(self) -> RecordView:
        return self.contribution.record

    @property
    def open_dispute(self) -> DisputeView | None:
        return next((d for d in self.disputes if d.status == "open"), None)

    @property
    def pending_repair(self) -> RepairView | None:
        return next((r for r in self.repairs if r.status == "pending"), None)

    @property
    def counting(self) -> bool:
        return self.contribution.status == "counting"

    @property
    def negative(self) -> bool:
        return self.record_type is not None and self.record_type.negative


@dataclass(frozen=True)
class WhatIf:
    """The score as of now with one record left out: what its repair (or its end at
    the end of its retention) would make of it."""

    total: float
    tier: str
    change: float


def months_back(at: datetime, months: int) -> datetime:
    """``at``, ``months`` calendar months earlier (the day kept, or the month's last)."""
    index = at.year * 12 + at.month - 1 - months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def score_chart(
    points: Sequence[Point], scale: tuple[float, float]
) -> Callable[[str, str, str, str], Chart]:
    """The chart of ``points`` on the rulebook's ``scale`` (its lowest and highest
    score), drawn in the page's locale with its words: for the template, which knows
    the locale and translates the titles."""

    def draw(locale: str, title: str, x_header: str, y_header: str) -> Chart:
        return charts.line_chart(
            title,
            [(p.at, round(p.total, 1)) for p in points],
            locale=locale,
            x_header=x_header,
            y_header=y_header,
            y_range=scale,
            chart_id="score-history",
        )

    return draw


def today(session: Session, subject: Subject, at: datetime) -> Today:
    """The score as of ``at``: what :func:`score_subject` reads and computes, kept."""
    edition = store.in_force(session, at)
    records = subject_records(session, subject.id, at=at)
    outages = freshness.outages(session, at)
    return Today(edition, records, outages, compute(records, edition, at, outages=outages))


def history(session: Session, subject: Subject, at: datetime) -> list[Point]:
    """The score on the same day of each of the last :data:`MONTHS` months (those since
    the subject was registered) and now, oldest first, each as the API scores it as of
    that instant."""
    points = []
    for k in range(MONTHS, -1, -1):
        when = months_back(at, k) if k else at
        if when < subject.registered_at:
            continue
        score = score_subject(session, subject, store.in_force(session, when), when)
        points.append(Point(when, score.total, score.tier))
    return points


def entries(session: Session, subject: Subject, now: Today, at: datetime) -> list[Entry]:
    """Every record on the file as of ``at``, largest effect first, with its disputes
    and repair applications."""
    book = now.edition.rulebook
    by_record_d: dict[str, list[DisputeView]] = {}
    for d in disputes.list_disputes(session, at=at, status="all", subject_id=subject.id):
        by_record_d.setdefault(d.record_id, []).append(d)
    by_record_r: dict[str, list[RepairView]] = {}
    for r in repairs.list_repairs(session, status="all", subject_id=subject.id):
        by_record_r.setdefault(r.record_id, []).append(r)
    out = []
    for c in now.score.contributions:
        rt = book.record_type(c.record.record_type)
        stops = None
        if rt is not None and c.status == "counting":
            stops = c.record.occurred_at + timedelta(days=rt.retention_days + c.frozen_days)
        out.append(
            Entry(
                contribution=c,
                record_type=rt,
                stops_at=stops,
                disputes=by_record_d.get(c.record.record_id, []),
                repairs=by_record_r.get(c.record.record_id, []),
            )
        )
    return out


def what_if(now: Today, record_id: str) -> WhatIf:
    """Today's score without record ``record_id``."""
    others = [r for r in now.records if r.record_id != record_id]
    without = compute(others, now.edition, now.score.as_of, outages=now.outages)
    return WhatIf(without.total, without.tier, without.total - now.score.total)


def repair_from(session: Session, entry: Entry, now: Today) -> datetime | None:
    """When the subject may apply to repair the record (:func:`repairs.possible_from`),
    for a negative record that counts; None for any other."""
    if entry.record_type is None or not entry.negative or not entry.counting:
        return None
    row = session.scalar(select(Record).where(Record.public_id == entry.record.record_id))
    if row is None:
        return None
    return repairs.possible_from(row, entry.record_type, now.edition.rulebook)


# --- labels ----------------------------------------------------------------------------

#: What a record's status (:class:`credence.scoring.online.Contribution`) says.
RECORD_STATUS: dict[str, str] = {
    "counting": N_("Counts"),
    "expired": N_("No longer counts: its retention period ended"),
    "not_in_rulebook": N_("Does not count: the rulebook in force has no such type"),
    "not_yet_received": N_("Not received yet"),
    "held": N_("Held for review at intake: does not count unless released"),
    "rejected": N_("Rejected on review: does not count"),
    "retracted": N_("Retracted by its source"),
    "deleted": N_("Deleted after your dispute"),
    "corrected": N_("Replaced by a corrected record after your dispute"),
    "unverifiable": N_("Stopped counting: your dispute was not answered in time"),
    "repaired": N_("Repaired: stopped counting"),
    "voided": N_("Stopped counting: the identity it was reported under was voided"),
}

#: Where a dispute stands.
DISPUTE_STATUS: dict[str, str] = {
    "open": N_("Open: awaiting the source's answer"),
    "verified": N_("Answered: the source verified the record"),
    "corrected": N_("Answered: the source corrected the record"),
    "deleted": N_("Answered: the source deleted the record"),
    "lapsed": N_("Lapsed: no answer in time, the record stopped counting"),
}

#: Where a repair application stands.
REPAIR_STATUS: dict[str, str] = {
    "pending": N_("Awaiting a reviewer's decision"),
    "approved": N_("Approved: the record stopped counting"),
    "refused": N_("Refused"),
}

#: Who read the file, by the reader's role.
ROLES: dict[str, str] = {
    "subject": N_("You"),
    "source": N_("A source"),
    "relying_party": N_("A relying party"),
    "reviewer": N_("A reviewer of Credence"),
    "operator": N_("An operator of Credence"),
}

#: What a notification is about, by its kind (others show their code).
NOTICE_KINDS: dict[str, str] = {
    "dispute_opened": N_("Dispute opened"),
    "dispute_answered": N_("Dispute answered"),
    "dispute_lapsed": N_("Dispute lapsed"),
    "repair_applied": N_("Repair applied for"),
    "repair_decided": N_("Repair decided"),
    "statement_added": N_("Statement added"),
    "restriction_warning": N_("Restriction warning"),
    "warning_cleared": N_("Warning lifted"),
    "adverse_decision": N_("Request denied"),
    "tier_changed": N_("Tier changed"),
    "records_held": N_("Records held for review"),
    "record_corrected": N_("Record corrected"),
    "retraction": N_("Record retracted"),
}

#: What was read, as the access log says it (others are shown as logged, in English).
READ_WHAT: dict[str, str] = {
    "file": N_("the whole file"),
    "score and explanation": N_("the score and its explanation"),
    "score and explanation (portal)": N_("the score, on the portal"),
    "file in the portal: score": N_("the score over time, on the portal"),
    "file in the portal: records": N_("every record, on the portal"),
    "file in the portal: a record": N_("a record, on the portal"),
    "file in the portal: who looked and notifications": N_(
        "who looked and notifications, on the portal"
    ),
    "file in the portal: printable file": N_("the printable file, on the portal"),
}

#: The labels the pages of the file read.
MY_LABELS = {
    "record_status": RECORD_STATUS,
    "dispute_status": DISPUTE_STATUS,
    "repair_status": REPAIR_STATUS,
    "roles": ROLES,
    "notice_kinds": NOTICE_KINDS,
    "read_what": READ_WHAT,
}


# --- problems --------------------------------------------------------------------------

#: What a refused action says, by its code (the services' codes, and the page's own).
PROBLEMS: dict[str, str] = {
    "not_a_subject": N_("Only the person or organisation a file is about can read it here."),
    "not_a_form": N_("Send the form from the page."),
    "invalid_encoding": N_("The form was not sent as UTF-8 text."),
    "repeated_field": N_("A field of the form was sent twice."),
    "invalid_character": N_(
        "The text holds control characters, which cannot be stored. Remove them and send it again."
    ),
    "unknown_record": N_("There is no such record on your file."),
    "reason_required": N_("Say what is wrong with the record."),
    "dispute_already_open": N_(
        "A dispute of this record is already open; its answer is due by %(deadline)s."
    ),
    "repeat_dispute": N_(
        "Your earlier dispute of this record was answered: its source verified it. A new "
        "dispute of the same record needs new information the source has not seen; you "
        "may also add a statement."
    ),
    "record_not_in_effect": N_(
        "This record no longer counts: there is nothing left to dispute or repair."
    ),
    "record_expired": N_(
        "This record stopped counting at the end of its retention period: there is "
        "nothing to repair."
    ),
    "statement_empty": N_("The statement is empty."),
    "statement_too_long": N_("A statement has at most %(max)s characters."),
    "commitment_required": N_("State how you corrected the behaviour and that it will not recur."),
    "repair_not_applicable": N_(
        "This record does not lower your score: only negative records are repaired."
    ),
    "repair_too_early": N_("You may apply to repair this record from %(date)s."),
    "repair_pending": N_("Your application to repair this record awaits a decision."),
    "too_long": N_("%(field)s: at most %(max)s characters."),
    "required": N_("%(field)s: this field is required."),
}

#: The fields of the forms, as a problem names them.
FIELDS: dict[str, str] = {
    "reason": N_("What is wrong with the record"),
    "new_information": N_("New information"),
    "text": N_("Your statement"),
    "commitment": N_("How you corrected it"),
}


class Problem(Exception):
    """A refused request: its status, the code of :data:`PROBLEMS`, the values the
    message names, and the service's own words when no code of the page fits."""

    def __init__(
        self, status: int, code: str, values: Mapping[str, Any], message: str | None = None
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.values = values
        self.message = message

    @classmethod
    def of(cls, error: CredenceError) -> Problem:
        details = error.details if isinstance(error.details, dict) else {}
        values: dict[str, Any] = {}
        if "deadline" in details:
            values["deadline"] = datetime.fromisoformat(details["deadline"])
        if "possible_from" in details:
            values["date"] = datetime.fromisoformat(details["possible_from"])
        if error.code == "statement_too_long":
            values["max"] = disputes.MAX_STATEMENT
        known = error.code in PROBLEMS
        return cls(error.status, error.code, values, None if known else error.message)

    @classmethod
    def invalid(cls, error: ValidationError) -> Problem:
        """The first problem pydantic found in a form's fields."""
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field == "record_id":  # from the URL: no record has such an id
            return cls(404, "unknown_record", {})
        if first["type"] == "string_too_long":
            code, values = "too_long", {"max": first["ctx"]["max_length"]}
        else:
            code, values = "required", {}
        return cls(422, code, {"field": FIELDS.get(field, field), **values})


# --- the routes ------------------------------------------------------------------------

NO_STORE = me.NO_STORE

# /me (credence.portal.me) links to the parts of the file, after the score.
me.SECTIONS.append(me.Section("me_parts.html", lambda session, who, at: {}))


def routes(headers: Mapping[str, str], render: Render) -> list[Route]:
    """The pages of ``/me/``, answered with ``headers`` (the pages' policy) and never
    kept by a cache."""
    page_headers = {**headers, **NO_STORE}

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(request, page_headers, template, status, MY=MY_LABELS, **values)

    def problem(request: Request, found: Problem, record_id: str | None = None) -> HTMLResponse:
        return page(
            request,
            "me_problem.html",
            found.status,
            problem=found,
            message=PROBLEMS.get(found.code),
            record_id=record_id,
        )

    def signed_in(request: Request) -> Caller:
        """The signed-in subject's caller (else the sign-in page, :mod:`.session`)."""
        caller = portal_session.require_signed_in(request).caller
        if caller.subject_id is None:
            raise Problem(403, "not_a_subject", {})
        return caller

    def reading(
        request: Request, what: str, build: Callable[[Session, Subject, datetime], dict[str, Any]]
    ) -> Response:
        """A page of the file: the signed-in subject's, logged as their read."""
        ctx: Context = request.app.state.ctx
        try:
            caller = signed_in(request)
            with ctx.sessions.begin() as session:
                subject = session.get_one(Subject, caller.subject_id)
                authorize(caller, Action.FILE_READ, subject_id=subject.id)
                at = ctx.clock.now()
                values = build(session, subject, at)
                audit.log_read(
                    session,
                    caller=caller,
                    subject_id=subject.id,
                    action=Action.FILE_READ.value,
                    what=f"file in the portal: {what}",
                    purpose=audit.OWN_FILE,
                    at=at,
                )
        except Problem as found:
            return problem(request, found)
        except (NotFound, Forbidden) as error:
            return problem(request, Problem.of(error))
        return page(request, values.pop("template"), at=at, **values)

    def score_page(request: Request) -> Response:
        def build(session: Session, subject: Subject, at: datetime) -> dict[str, Any]:
            now = today(session, subject, at)
            return {
                "template": "me_score.html",
                "score": now.score,
                "book": now.edition.rulebook,
                "chart": score_chart(
                    history(session, subject, at), (now.score.minimum, now.score.maximum)
                ),
            }

        return reading(request, "score", build)

    def records_page(request: Request) -> Response:
        def build(session: Session, subject: Subject, at: datetime) -> dict[str, Any]:
            now = today(session, subject, at)
            return {
                "template": "me_records.html",
                "score": now.score,
                "entries": entries(session, subject, now, at),
            }

        return reading(request, "records", build)

    def record_page(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]

        def build(session: Session, subject: Subject, at: datetime) -> dict[str, Any]:
            now = today(session, subject, at)
            found = [
                e for e in entries(session, subject, now, at) if e.record.record_id == record_id
            ]
            if not found:
                raise Problem(404, "unknown_record", {})
            entry = found[0]
            return {
                "template": "me_record.html",
                "score": now.score,
                "book": now.edition.rulebook,
                "entry": entry,
                "what_if": what_if(now, record_id) if entry.counting else None,
                "repair_from": repair_from(session, entry, now),
                "done": request.query_params.get("done"),
                "max_statement": disputes.MAX_STATEMENT,
            }

        return reading(request, "a record", build)

    def activity_page(request: Request) -> Response:
        def build(session: Session, subject: Subject, at: datetime) -> dict[str, Any]:
            return {
                "template": "me_activity.html",
                "book": store.in_force(session, at).rulebook,
                "accesses": audit.accesses(session, subject.id),
                "notifications": for_subject(session, subject.id),
                "disputes": disputes.list_disputes(
                    session, at=at, status="all", subject_id=subject.id
                ),
                "repairs": repairs.list_repairs(session, status="all", subject_id=subject.id),
            }

        return reading(request, "who looked and notifications", build)

    def print_page(request: Request) -> Response:
        def build(session: Session, subject: Subject, at: datetime) -> dict[str, Any]:
            now = today(session, subject, at)
            return {
                "template": "me_print.html",
                "subject": subject,
                "score": now.score,
                "book": now.edition.rulebook,
                "points_over_time": history(session, subject, at),
                "entries": entries(session, subject, now, at),
                "accesses": audit.accesses(session, subject.id),
                "notifications": for_subject(session, subject.id),
            }

        return reading(request, "printable file", build)

    def download(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        document: FileDocument = request.app.state.file_document
        try:
            caller = signed_in(request)
            with ctx.sessions.begin() as session:
                subject = session.get_one(Subject, caller.subject_id)
                body = document(session, ctx, caller, subject.public_id)
                day = ctx.clock.now().date().isoformat()
        except Problem as found:
            return problem(request, found)
        except CredenceError as error:
            return problem(request, Problem.of(error))
        return Response(
            body,
            media_type="application/json",
            headers={
                **headers,
                **NO_STORE,
                "Content-Disposition": f'attachment; filename="credence-file-{day}.json"',
            },
        )

    def act(request: Request, fields: dict[str, str], record_id: str, kind: str) -> Response:
        """Dispute, statement or repair of ``record_id``, by the signed-in subject."""
        ctx: Context = request.app.state.ctx
        try:
            caller = signed_in(request)
            with ctx.sessions.begin() as session:
                subject = session.get_one(Subject, caller.subject_id)
                authorize(caller, Action.DISPUTE_OPEN, subject_id=subject.id)
                at = ctx.clock.now()
                book = store.in_force(session, at).rulebook
                if kind == "dispute":
                    body = _valid(
                        lambda: DisputeIn(
                            record_id=record_id,
                            reason=fields.get("reason", ""),
                            new_information=fields.get("new_information") or None,
                        )
                    )
                    disputes.open_dispute(
                        session,
                        subject=subject,
                        record_id=body.record_id,
                        reason=body.reason,
                        new_information=body.new_information,
                        rulebook=book,
                        at=at,
                    )
                elif kind == "statement":
                    said = _valid(lambda: StatementIn(text=fields.get("text", "")))
                    disputes.add_statement(
                        session, subject=subject, record_id=record_id, text=said.text, at=at
                    )
                else:
                    applied = _valid(
                        lambda: RepairIn(
                            record_id=record_id, commitment=fields.get("commitment", "")
                        )
                    )
                    repairs.apply_for_repair(
                        session,
                        subject=subject,
                        record_id=applied.record_id,
                        commitment=applied.commitment,
                        rulebook=book,
                        at=at,
                    )
        except Problem as found:
            return problem(request, found, record_id)
        except CredenceError as error:
            return problem(request, Problem.of(error), record_id)
        return RedirectResponse(
            f"/me/records/{record_id}?done={kind}#outcome", status_code=303, headers=NO_STORE
        )

    def action(kind: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            record_id: str = request.path_params["record_id"]
            try:
                fields = await read_form(request)
            except FormProblem as bad:
                return problem(request, Problem(400, bad.code, {}), record_id)
            # Before anything else: a form from elsewhere changes nothing (a 403 page).
            portal_session.require_csrf(request, fields)
            response: Response = await run_in_threadpool(act, request, fields, record_id, kind)
            return response

        return endpoint

    return [
        Route("/me/score", score_page, methods=["GET"]),
        Route("/me/records", records_page, methods=["GET"]),
        Route("/me/records/{record_id}", record_page, methods=["GET"]),
        Route("/me/records/{record_id}/dispute", action("dispute"), methods=["POST"]),
        Route("/me/records/{record_id}/statement", action("statement"), methods=["POST"]),
        Route("/me/records/{record_id}/repair", action("repair"), methods=["POST"]),
        Route("/me/activity", activity_page, methods=["GET"]),
        Route("/me/print", print_page, methods=["GET"]),
        Route("/me/file.json", download, methods=["GET"]),
    ]


def _valid(build: Callable[[], _Body]) -> _Body:
    """A request body built from a form, checked as the API checks it."""
    try:
        return build()
    except ValidationError as error:
        raise Problem.invalid(error) from None
