"""``credence sources``: register a source, declare its cadences, list the registered
ones, show their status (freshness, volume, record in public, suspension), suspend and
reinstate one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.watch.status import Rate

app = typer.Typer(
    help="Register sources, declare their cadences, list them and show their status.",
    no_args_is_help=True,
)

CadenceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--cadence",
        help="TYPE=DAYS[+GRACE]: the source reports TYPE at least every DAYS days, late by "
        "at most GRACE more (repeat for each type it reports regularly).",
    ),
]


@app.command("add")
def sources_add(
    code: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    kind: Annotated[str, typer.Option(help="bank, court, tax_office, registry, …")],
    types: Annotated[str, typer.Option(help="Comma-separated record types it may submit.")] = "",
    identity_authority: Annotated[
        str | None, typer.Option(help="'person' (civil registry) or 'organisation'.")
    ] = None,
    cadence: CadenceOption = None,
    db: DbOption = None,
) -> None:
    """Register a source, the record types it may submit and the cadence of those it
    reports regularly."""
    from credence.audit.service import log_operator_action
    from credence.ledger import registry
    from credence.ledger.freshness import parse_cadence
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        registry.register_source(
            session,
            code=code,
            name=name,
            kind=kind,
            record_types=[t.strip() for t in types.split(",") if t.strip()],
            rulebook=store.in_force(session, now).rulebook,
            at=now,
            identity_authority_for=identity_authority,
            cadences=[parse_cadence(c) for c in cadence or ()],
        )
        log_operator_action(session, action="source_registered", what=f"source {code}", at=now)
    terminal.console().print(f"source {code} registered")


def _kind(row: Mapping[str, Any]) -> str:
    registers = row["identity_authority_for"]
    return f"{row['kind']} (registers {registers}s)" if registers else str(row["kind"])


COLUMNS = (
    Column("code", is_id=True),
    Column("name"),
    Column("kind", render=_kind),
    Column("identity_authority_for", shown=False),
    Column("record_types", "record types"),
    Column("created_at", shown=False),
)


@app.command("list")
def sources_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every registered source, by code, with the record types it may submit."""
    from credence.ledger.sources import list_sources

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        rows = [
            {
                "code": s.code,
                "name": s.name,
                "kind": s.kind,
                "identity_authority_for": s.identity_authority_for,
                "record_types": list(s.record_types),
                "created_at": s.created_at,
            }
            for s in list_sources(session)
        ]
    terminal.show(rows, COLUMNS, as_json=as_json, title="Sources")


@app.command("cadence")
def sources_cadence(
    code: str,
    cadence: Annotated[
        list[str],
        typer.Argument(
            help="TYPE=DAYS[+GRACE] for each type declared anew: at least one report every "
            "DAYS days, late by at most GRACE more."
        ),
    ],
    db: DbOption = None,
) -> None:
    """Declare a source's cadence anew for some of its record types, in force from now
    (a journal entry; the declarations it replaces stay, for status as of the past)."""
    from credence.audit.service import log_operator_action
    from credence.ledger import freshness, registry

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        rows = freshness.declare(
            session,
            source=registry.source_by_code(session, code),
            cadences=[freshness.parse_cadence(c) for c in cadence],
            at=now,
        )
        log_operator_action(
            session, action="source_cadence_declared", what=f"source {code}", at=now
        )
    declared = ", ".join(
        f"{r.record_type} every {r.cadence_days} d + {r.grace_days} d grace" for r in rows
    )
    terminal.console().print(Text(terminal.visible(f"source {code}: {declared}")))


@app.command("suspend")
def sources_suspend(
    code: str,
    reason: Annotated[
        str,
        typer.Option(
            help="Why, from the catalogue: suspected_bribery, data_quality_investigation, "
            "legal_order (with --reference) or source_request."
        ),
    ],
    reference: Annotated[
        str | None, typer.Option(help="A legal order's reference (legal_order only).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Suspend a source: its records received from now on are held for review, until a
    reviewer releases or rejects each (a journal entry). A source already suspended
    keeps the suspension in force."""
    from credence.audit.service import log_operator_action
    from credence.ledger import registry, suspension

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        found, new = suspension.suspend(
            session,
            source=registry.source_by_code(session, code),
            reason=reason,
            reference=reference,
            principal_id=None,
            at=now,
        )
        if new:
            log_operator_action(session, action="source_suspended", what=f"source {code}", at=now)
    state = "suspended" if new else "already suspended"
    terminal.console().print(
        Text(
            terminal.visible(
                f"source {code}: {state} since {terminal.cell(found.suspended_at)} UTC "
                f"({found.reason}: {found.explanation})"
            )
        )
    )


@app.command("reinstate")
def sources_reinstate(code: str, db: DbOption = None) -> None:
    """Reinstate a suspended source: its records received from now on count as usual;
    those held during the suspension stay held for a reviewer (a journal entry)."""
    from credence.audit.service import log_operator_action
    from credence.ledger import registry, suspension

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        found = suspension.reinstate(
            session, source=registry.source_by_code(session, code), principal_id=None, at=now
        )
        log_operator_action(session, action="source_reinstated", what=f"source {code}", at=now)
    assert found.reinstated_at is not None
    terminal.console().print(
        Text(
            terminal.visible(
                f"source {code}: reinstated at {terminal.cell(found.reinstated_at)} UTC; "
                "records held during the suspension stay held for a reviewer"
            )
        )
    )


AtOption = Annotated[
    datetime | None,
    typer.Option("--at", "--as-of", help="Status as of this instant (ISO 8601, UTC); default now."),
]


def _when(value: datetime | None) -> str:
    return terminal.cell(value) if value is not None else "never"


def _outage(row: Mapping[str, Any]) -> str:
    since = row["outage_since"]
    return f"since {terminal.cell(since)}" if since is not None else "no"


def _rate(rate: Rate) -> str:
    if rate.value is None:
        return f"— ({rate.suppressed})"
    return f"{100 * rate.value:.1f} % of {rate.cases:,}"


def _per_day(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _cadence(row: Mapping[str, Any]) -> str:
    if row["cadence_days"] is None:
        return "not declared"
    return f"{row['cadence_days']} d + {row['grace_days']} d grace"


def _suspended(row: Mapping[str, Any]) -> str:
    found = row["suspension"]
    if found is None:
        return "-"
    reference = f" {found['reference']}" if found["reference"] else ""
    return f"since {_when(found['since'])} ({found['reason']}{reference})"


# The columns a source and each of its record types share.
_LAST_REPORT = Column("last_report", "last report", render=lambda r: _when(r["last_report"]))
_OUTAGE = Column("outage_since", "outage", render=_outage)
_PER_DAY = Column(
    "records_per_day",
    "records/day",
    justify="right",
    render=lambda r: _per_day(r["records_per_day"]),
)

SOURCE_COLUMNS = (
    Column("code", "source", is_id=True),
    Column("name"),
    _LAST_REPORT,
    _OUTAGE,
    Column("suspension", "suspended", render=_suspended),
    _PER_DAY,
    Column("retraction_rate", "retractions", render=lambda r: _rate(r["retraction_rate"])),
    Column("disputes_upheld", "disputes upheld", render=lambda r: _rate(r["disputes_upheld"])),
)
TYPE_COLUMNS = (
    Column("source", is_id=True),
    Column("record_type", "record type", is_id=True),
    _LAST_REPORT,
    Column("cadence_days", "cadence", render=_cadence),
    _OUTAGE,
    _PER_DAY,
)


@app.command("status")
def sources_status(db: DbOption = None, at: AtOption = None, as_json: JsonOption = False) -> None:
    """Every source's freshness (last report, cadence, outage), volume and record in
    public (retractions, disputes upheld; suppressed below 10 cases), as of an instant."""
    from dataclasses import asdict

    from credence.api.routers.sources import SourcesStatusOut
    from credence.watch.status import status

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        found = status(session, terminal.instant(ctx, at), now=ctx.clock.now())
    if as_json:
        typer.echo(SourcesStatusOut.model_validate(found).model_dump_json(indent=2))
        return
    out = terminal.console()
    sources = [
        {**asdict(s), "retraction_rate": s.retraction_rate, "disputes_upheld": s.disputes_upheld}
        for s in found.sources
    ]
    title = (
        f"Sources as of {terminal.cell(found.at)} UTC "
        f"(volume over the {found.window_days} days before)"
    )
    terminal.show(sources, SOURCE_COLUMNS, title=title, out=out)
    types = [{**asdict(t), "source": s.code} for s in found.sources for t in s.types]
    terminal.show(types, TYPE_COLUMNS, title="By record type", out=out)


# --- anomalies: the scan and the queue of alerts -------------------------------------------


@app.command("scan")
def sources_scan(
    through: Annotated[
        datetime | None,
        typer.Option(help="Judge the whole days up to this instant (ISO 8601, UTC); default now."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Judge every whole day not scanned yet with the anomaly detectors (README, 'Source
    anomalies') and raise an alert for each finding (a journal entry each). Idempotent:
    days already scanned are not judged again, and no alert is raised twice. Cron it
    daily."""
    from credence.watch import alerts

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        found = alerts.scan(session, through=now if through is None else through, at=now)
    if found.first_day is None or found.last_day is None:
        terminal.console().print("no whole day left to scan")
        return
    by = ", ".join(f"{n} {d}" for d, n in sorted(alerts.raised(found.raised).items()))
    terminal.console().print(
        f"scanned {found.first_day:%Y-%m-%d} to {found.last_day:%Y-%m-%d}: "
        f"{len(found.raised)} alert(s) raised" + (f" ({by})" if by else "")
    )


alerts_app = typer.Typer(
    help="The queue of source alerts: list them (no command), acknowledge or close one.",
    invoke_without_command=True,
)
app.add_typer(alerts_app, name="alerts")


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:,.3g}"


ALERT_COLUMNS = (
    Column("id", is_id=True),
    Column("source", is_id=True),
    Column("detector"),
    Column("day", render=lambda r: f"{r['day']:%Y-%m-%d}"),
    Column("value", justify="right", render=lambda r: _figure(r["value"])),
    Column("median", justify="right", render=lambda r: _figure(r["median"])),
    Column("mad", "MAD", justify="right", render=lambda r: _figure(r["mad"])),
    Column("threshold", justify="right", render=lambda r: _figure(r["threshold"])),
    Column("state"),
    Column("raised_at", shown=False),
    Column("acknowledged_at", shown=False),
    Column("acknowledged_note", "acknowledged"),
    Column("closed_at", shown=False),
    Column("closed_note", "closed"),
)

NoteOption = Annotated[
    str, typer.Option(help="What was found or done (required, at most 500 characters).")
]


@alerts_app.callback()
def sources_alerts(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help="Only alerts in this state: open, acknowledged, closed.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only alerts about this source.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The source alerts, newest day first: what fired, on which day, with its figures
    (value, median, MAD, threshold) and its state."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from credence.watch import alerts

    context = terminal.open_context(db)
    with terminal.errors(), context.sessions() as session:
        rows = [asdict(a) for a in alerts.listing(session, state=state, source=source)]
    terminal.show(rows, ALERT_COLUMNS, as_json=as_json, title="Source alerts")


def _decide(step: str, alert_id: int, note: str, db: str | None) -> None:
    from credence.audit.service import log_operator_action
    from credence.watch import alerts

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    act = alerts.acknowledge if step == "acknowledged" else alerts.close
    with terminal.errors(), ctx.sessions.begin() as session:
        found = act(session, alert_id=alert_id, note=note, principal_id=None, at=now)
        log_operator_action(
            session, action=f"source_alert_{step}", what=f"source alert {alert_id}", at=now
        )
    terminal.console().print(
        Text(
            terminal.visible(
                f"alert {found.id} ({found.source}, {found.detector}, {found.day:%Y-%m-%d}) {step}"
            )
        )
    )


@alerts_app.command("ack")
def sources_alerts_ack(alert_id: int, note: NoteOption, db: DbOption = None) -> None:
    """Acknowledge an open alert, with a note (a journal entry)."""
    _decide("acknowledged", alert_id, note, db)


@alerts_app.command("close")
def sources_alerts_close(alert_id: int, note: NoteOption, db: DbOption = None) -> None:
    """Close an alert, open or acknowledged, with a note (a journal entry); a closed
    alert is refused (alert_closed)."""
    _decide("closed", alert_id, note, db)
