"""``credence demo``: a synthetic city, scored, with one key per role to try the API."""

from __future__ import annotations

import shlex
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.context import Context
from credence.decisions.service import active_records
from credence.errors import Conflict, InvalidInput
from credence.lab.city import build_city
from credence.ledger import freshness
from credence.ledger.tables import Record, Source, Subject
from credence.migrate import reset as reset_schema
from credence.migrate import upgrade
from credence.rulebook import store
from credence.scoring.online import score_subject
from credence.tiers.rescore import rescore
from credence.translog.checkpoints import current_checkpoint
from credence.translog.keys import signer_from_settings
from credence.watch.alerts import scan as scan_sources

#: Relying parties of the demo city and the services each may ask about.
DEMO_PARTIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("sky_airlines", "Sky Airlines", ("air_travel",)),
    ("national_railway", "National Railway Ticketing", ("high_speed_rail",)),
    ("harbour_hotels", "Harbour Hotels Group", ("star_rated_hotel",)),
    ("city_property_exchange", "City Property Exchange", ("luxury_property",)),
    ("city_bank_lending", "City Bank Lending", ("loan_rate_discount", "deposit_free_rental")),
    (
        "procurement_office",
        "Municipal Procurement Office",
        ("public_procurement_bid", "public_body_new_contracts"),
    ),
    ("city_services", "City Services Centre", ("fast_track_permits", "community_perks")),
)


@dataclass(frozen=True)
class DemoKey:
    role: str
    holder: str
    key: str
    env: str


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`Conflict` (``port_in_use``) unless a server could listen on
    ``host:port`` now: bound the way uvicorn binds (``SO_REUSEADDR``), so a port left in
    TIME_WAIT counts as free and one something listens on does not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInput(
            f"cannot listen on {host!r}: {exc.strerror}", code="invalid_host"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise Conflict(
                f"cannot listen on {host}:{port} ({exc.strerror}): is another server running "
                "there? Choose another port with --port N (make demo PORT=N)",
                code="port_in_use",
            ) from None


def _has_data(ctx: Context) -> bool:
    if "subjects" not in inspect(ctx.engine).get_table_names():
        return False
    with ctx.sessions() as session:
        return (session.scalar(select(func.count(Subject.id))) or 0) > 0


def _pick_subjects(session: Session, ctx: Context) -> tuple[Subject, Subject]:
    """A person restricted from air travel (an active judgment default) and one who is not."""
    now = ctx.clock.now()
    edition = store.in_force(session, now)
    defaulters = session.scalars(
        select(Subject)
        .join(Record, Record.subject_id == Subject.id)
        .where(Subject.kind == "person", Record.record_type == "judgment_default")
        .order_by(Subject.id)
        .limit(50)
    ).all()
    restricted = None
    outages = freshness.outages(session, now)
    for subject in defaulters:
        score = score_subject(session, subject, edition, now, outages=outages)
        if active_records(score.contributions, ["judgment_default"], edition.rulebook):
            restricted = subject
            break
    clear = session.scalar(
        select(Subject)
        .where(Subject.kind == "person", ~Subject.id.in_([s.id for s in defaulters]))
        .order_by(Subject.id)
        .limit(1)
    )
    assert clear is not None
    return (restricted or clear), clear


def build_demo(
    ctx: Context,
    *,
    console: Console,
    persons: int,
    organisations: int,
    records: int,
    seed: int,
    reset: bool,
    env_file: Path,
    base_url: str,
) -> list[DemoKey]:
    """Create the schema and the city, score everyone, issue keys, print how to try it."""
    console.print(f"Portal (public pages, no sign-in): {base_url}/")
    # Where the demo subject's key will be, never who they are.
    console.print(
        f"Your file, as the demo subject: {base_url}/me/sign-in "
        f"(sign in with CREDENCE_SUBJECT_KEY from {env_file})",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    url = ctx.engine.url.render_as_string(hide_password=True)
    if _has_data(ctx):
        if not reset:
            raise Conflict(
                f"{url} already holds data; run the demo with --reset to wipe it",
                code="database_not_empty",
            )
        console.print(f"[yellow]wiping {url}[/yellow]")
        reset_schema(ctx.engine)
    else:
        upgrade(ctx.engine)
    now = ctx.clock.now()

    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        stats = build_city(
            ctx.sessions,
            persons=persons,
            organisations=organisations,
            records=records,
            seed=seed,
            now=now,
            progress=tick,
        )
        with ctx.sessions.begin() as session:
            task = bar.add_task("scoring everyone", total=None)
            summary = rescore(
                session,
                store.in_force(session, now),
                now,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
            ).summary

    with ctx.sessions.begin() as session:
        # The sources' days judged for anomalies, as the daily scan would have.
        scanned = scan_sources(session, through=now, at=now)
    with ctx.sessions.begin() as session:
        # Sign the first checkpoint now, so the first GET /v1/log/checkpoint is quick.
        checkpoint = current_checkpoint(session, signer=signer_from_settings(ctx.settings), at=now)
    with ctx.sessions.begin() as session:
        restricted, clear = _pick_subjects(session, ctx)
        keys = _issue_demo_keys(session, ctx, clear)
        by_type = Counter(
            dict(
                session.execute(
                    select(Record.record_type, func.count(Record.id)).group_by(Record.record_type)
                ).all()
            )
        )
        sources = session.scalar(select(func.count(func.distinct(Record.source_id)))) or 0

    console.rule("[bold]Credence demo city")
    n_subjects = summary.subjects
    console.print(
        f"{n_subjects:,} subjects ({persons:,} persons, {organisations:,} organisations), "
        f"{summary.records:,} records from {sources} sources over 5 years; built in "
        f"{stats.seconds:.1f} s, scored in {summary.seconds:.2f} s; transparency log "
        f"signed at {checkpoint.tree_size:,} entries"
    )
    console.print(
        f"Sources scanned for anomalies in {scanned.seconds:.1f} s: "
        f"{len(scanned.raised)} alert(s) raised (credence sources alerts)"
    )
    tiers = Table(
        "tier",
        "subjects",
        "share",
        title=f"Tier distribution (rulebook {summary.rulebook_version})",
    )
    for tier, n in summary.tiers.items():
        tiers.add_row(tier, f"{n:,}", f"{n / max(n_subjects, 1):.1%}")
    console.print(tiers)
    common = Table("record type", "records", title="Most frequent record types")
    for code, n in by_type.most_common(10):
        common.add_row(code, f"{n:,}")
    console.print(common)

    lines = [f"export CREDENCE_URL={base_url}"]
    lines += [f"export {k.env}={k.key}" for k in keys]
    lines += [
        f"export RESTRICTED_SUBJECT={restricted.public_id}",
        f"export CLEAR_SUBJECT={clear.public_id}",
        f"export CLEAR_IDENTIFIER={clear.identifier}",
    ]
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = Table(title=f"API keys (also written to {env_file})")
    table.add_column("role", overflow="fold")
    table.add_column("holder", overflow="fold")
    # A key is copied whole: it never wraps; the other columns fold first.
    table.add_column("key", no_wrap=True, min_width=max((len(k.key) for k in keys), default=3))
    for k in keys:
        table.add_row(k.role, k.holder, k.key)
    console.print(table)
    party_key = next(k for k in keys if k.role == Role.RELYING_PARTY.value)
    subject_key = next(k for k in keys if k.role == Role.SUBJECT.value)
    body = f'{{"subject_id": "{restricted.public_id}", "service": "air_travel"}}'
    decision = (
        f"curl -s -X POST {base_url}/v1/decisions -H 'Authorization: Bearer {party_key.key}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    own_file = (
        f"curl -s {base_url}/v1/subjects/{clear.public_id}/file "
        f"-H 'Authorization: Bearer {subject_key.key}'"
    )
    console.print("Try, as the airline (a decision with reasons):")
    console.print(f"  {decision}", soft_wrap=True)
    console.print("As the subject whose key is above (their own file):")
    console.print(f"  {own_file}", soft_wrap=True)
    console.print(f"Or: source {env_file} and follow README's examples.")
    return keys


def _issue_demo_keys(session: Session, ctx: Context, clear: Subject) -> list[DemoKey]:
    """One key per role; the subject key belongs to ``clear``."""
    now = ctx.clock.now()
    book = store.in_force(session, now).rulebook
    parties = {}
    for code, name, services in DEMO_PARTIES:
        known = [s for s in services if book.service(s) is not None]
        parties[code] = create_relying_party(
            session, code=code, name=name, services=known, clock=ctx.clock
        )
    bank = session.scalar(select(Source).where(Source.code == "city_bank"))
    registry = session.scalar(select(Source).where(Source.identity_authority_for == "person"))
    assert bank is not None
    assert registry is not None
    wanted = [
        (Role.OPERATOR, "Demo operator", {}, "CREDENCE_OPERATOR_KEY"),
        (Role.SOURCE, bank.name, {"source_id": bank.id}, "CREDENCE_SOURCE_KEY"),
        (Role.SOURCE, registry.name, {"source_id": registry.id}, "CREDENCE_REGISTRY_KEY"),
        (
            Role.RELYING_PARTY,
            parties["sky_airlines"].name,
            {"party_id": parties["sky_airlines"].id},
            "CREDENCE_PARTY_KEY",
        ),
        (
            Role.RELYING_PARTY,
            parties["city_bank_lending"].name,
            {"party_id": parties["city_bank_lending"].id},
            "CREDENCE_LENDER_KEY",
        ),
        (Role.SUBJECT, clear.name, {"subject_id": clear.id}, "CREDENCE_SUBJECT_KEY"),
        (Role.REVIEWER, "Demo dispute reviewer", {}, "CREDENCE_REVIEWER_KEY"),
    ]
    keys = []
    for role, holder, links, env in wanted:
        principal = create_principal(session, role=role, name=holder, clock=ctx.clock, **links)
        keys.append(
            DemoKey(
                role.value, holder, issue_key(session, principal=principal, clock=ctx.clock), env
            )
        )
    return keys
