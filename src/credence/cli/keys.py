"""``credence keys``: issue, list, rotate and revoke API keys.

A key is printed once, when it is issued, with its prefix (what ``revoke`` and
``rotate`` take) and its expiry; ``keys list`` shows prefixes, holders and validity,
never a key or its hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from credence.access.policy import Role
from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from credence.access.keys import KeyListing

app = typer.Typer(help="Issue, list, rotate and revoke API keys.", no_args_is_help=True)

PrefixArgument = Annotated[
    str, typer.Argument(help="The key's prefix (its first 12 characters; keys list shows it).")
]


def _when(at: datetime | None) -> str:
    return "never" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def print_issued(key: str, expires_at: datetime | None, *, as_json: bool) -> None:
    """A key just issued: the key alone on stdout (shown this once, so that
    ``KEY=$(credence keys create …)`` captures it), then its prefix and its expiry on
    stderr, for the person at the terminal."""
    from credence.access.keys import PREFIX_LEN

    prefix = key[:PREFIX_LEN]
    if as_json:
        terminal.show_object({"key": key, "prefix": prefix, "expires_at": expires_at})
        return
    terminal.console().print(key)
    notes = terminal.console(stderr=True)
    notes.print(
        Text.assemble(("prefix   ", "bold"), prefix, (f"  (credence keys revoke {prefix})", "dim"))
    )
    notes.print(Text.assemble(("expires  ", "bold"), _when(expires_at)))
    notes.print(Text("The key above is shown this once: only its hash is stored.", style="dim"))


def _expiry(now: datetime, days: int | None) -> datetime | None:
    return None if days is None else now + timedelta(days=days)


def _links(
    session: Session, source: str | None, party: str | None, subject: str | None
) -> dict[str, int | None]:
    from credence.access.keys import party_by_code
    from credence.ledger import registry

    return {
        "source_id": registry.source_by_code(session, source).id if source else None,
        "party_id": party_by_code(session, party).id if party else None,
        "subject_id": registry.get_subject(session, public_id=subject).id if subject else None,
    }


@app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="Role of the principal the key is for.")],
    name: Annotated[str, typer.Option(help="Who holds the key.")],
    source: Annotated[str | None, typer.Option(help="Source code (role source).")] = None,
    party: Annotated[str | None, typer.Option(help="Relying party code.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject id sub_… (role subject).")] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after N days (at least 1).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue an API key: shown once, with its prefix and expiry; stored only as a hash."""
    from credence.access.keys import create_principal, issue_key
    from credence.audit.service import log_operator_action

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    expires = _expiry(now, expires_days)
    with terminal.errors(), ctx.sessions.begin() as session:
        principal = create_principal(
            session,
            role=role,
            name=name,
            clock=ctx.clock,
            **_links(session, source, party, subject),
        )
        key = issue_key(session, principal=principal, clock=ctx.clock, expires_at=expires)
        log_operator_action(
            session, action="key_issued", what=f"{role.value} key {key[:12]}", at=now
        )
    print_issued(key, expires, as_json=as_json)


@app.command("revoke")
def keys_revoke(prefix: PrefixArgument, db: DbOption = None) -> None:
    """Revoke a key now: it is refused with 401 from then on."""
    from credence.access.keys import revoke_key
    from credence.audit.service import log_operator_action

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions.begin() as session:
        revoke_key(session, prefix=prefix, clock=ctx.clock)
        log_operator_action(session, action="key_revoked", what=f"key {prefix}", at=ctx.clock.now())
    terminal.console().print(f"key {prefix} revoked")


@app.command("rotate")
def keys_rotate(
    prefix: PrefixArgument,
    overlap_hours: Annotated[
        float, typer.Option(min=0, max=24 * 30, help="Keep the old key working this long.")
    ] = 0,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="New key expires after N days (at least 1).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a new key to the same holder and revoke the old one (after an overlap)."""
    from credence.access.keys import rotate_key
    from credence.audit.service import log_operator_action

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    expires = _expiry(now, expires_days)
    with terminal.errors(), ctx.sessions.begin() as session:
        key = rotate_key(
            session,
            prefix=prefix,
            clock=ctx.clock,
            expires_at=expires,
            overlap=timedelta(hours=overlap_hours),
        )
        log_operator_action(
            session, action="key_rotated", what=f"key {prefix} -> {key[:12]}", at=now
        )
    print_issued(key, expires, as_json=as_json)


COLUMNS = (
    Column("prefix", is_id=True),
    Column("role"),
    Column("holder"),
    Column("speaks_for", "for"),
    Column("created_at", shown=False),
    Column("expires_at", "expires", render=lambda row: _when(row["expires_at"])),
    Column("revoked_at", shown=False),
    Column("status"),
)


def _row(key: KeyListing, sources: dict[int, str], at: datetime) -> dict[str, Any]:
    speaks_for = key.party
    if key.source_id is not None:
        speaks_for = sources.get(key.source_id)
    return {
        "prefix": key.prefix,
        "role": key.role,
        "holder": key.holder,
        "speaks_for": speaks_for,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "status": key.status(at),
    }


@app.command("list")
def keys_list(
    db: DbOption = None,
    role: Annotated[Role | None, typer.Option(help="Only keys of this role.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only keys that work now.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Every key issued, oldest first: prefix, role, holder, expiry and status.

    The status is active, revoking (during a rotation's overlap), revoked or expired.
    Never the key itself nor its hash."""
    from credence.access.keys import list_keys
    from credence.ledger.sources import list_sources

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions() as session:
        sources = {s.id: s.code for s in list_sources(session)}
        rows = [_row(k, sources, now) for k in list_keys(session, role=role)]
    if active:
        rows = [r for r in rows if r["status"] in ("active", "revoking")]
    terminal.show(rows, COLUMNS, as_json=as_json, title="API keys")
