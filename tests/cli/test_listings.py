"""``sources list``, ``parties list``, ``keys list`` and ``rulebook history``: a table for
people, ``--json`` for programs; a key is shown once when issued, with its prefix and
expiry, and never again (neither it nor its hash is in any listing)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_relying_party, hash_key
from credence.clock import FixedClock
from tests.cli.conftest import Invoke
from tests.world import SOURCES, build_world


def ok(result: object) -> str:
    output = str(getattr(result, "output", ""))
    assert getattr(result, "exit_code", None) == 0, output
    return output


def issue(cli: Invoke, *args: str) -> dict[str, str]:
    """Issue a key with ``--json``; its key, prefix and expiry."""
    issued: dict[str, str] = json.loads(ok(cli("keys", "create", *args, "--json")))
    return issued


def test_sources_list_shows_every_source_and_its_record_types(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    build_world(sessions, clock)
    table = ok(cli("sources", "list"))
    for code in SOURCES:
        assert code in table
    assert "loan_default" in table
    listed = {s["code"]: s for s in json.loads(ok(cli("sources", "list", "--json")))}
    assert set(listed) == set(SOURCES)
    for code, (authority, types) in SOURCES.items():
        assert listed[code]["identity_authority_for"] == authority
        assert listed[code]["record_types"] == sorted(types)
    assert listed["bank"]["created_at"].startswith("20")


def test_parties_list_shows_each_party_and_its_services(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    build_world(sessions, clock)
    ok(cli("parties", "add", "sky", "--name", "Sky Airlines", "--services", "air_travel"))
    with sessions.begin() as session:
        create_relying_party(
            session,
            code="lender",
            name="City Lending",
            services=["loan_rate_discount", "deposit_free_rental"],
            clock=clock,
        )
    table = ok(cli("parties", "list"))
    assert "Sky Airlines" in table
    assert "air_travel" in table
    listed = json.loads(ok(cli("parties", "list", "--json")))
    assert [(p["code"], p["services"]) for p in listed] == [
        ("lender", ["deposit_free_rental", "loan_rate_discount"]),
        ("sky", ["air_travel"]),
    ]


def test_keys_create_prints_the_key_once_with_its_prefix_and_expiry(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    build_world(sessions, clock)
    created = cli(
        "keys", "create", "--role", "source", "--name", "Bank IT", "--source", "bank",
        "--expires-days", "10",
    )  # fmt: skip
    out = ok(created)
    key = re.search(r"^(cr_src_\S+)$", out, re.M)
    prefix = re.search(r"^prefix\s+(\S+)\s+\(credence keys revoke (\S+)\)$", out, re.M)
    assert key is not None, out
    assert prefix is not None, out
    assert prefix.group(1) == prefix.group(2) == key.group(1)[:12]
    expires = clock.now() + timedelta(days=10)
    assert re.search(rf"^expires\s+{expires:%Y-%m-%d %H:%M} UTC$", out, re.M), out
    assert "shown this once" in out
    # Alone on stdout, so that KEY=$(credence keys create …) captures it.
    assert created.stdout == key.group(1) + "\n"
    # The prefix is what revoke takes.
    ok(cli("keys", "revoke", prefix.group(1)))
    issued = issue(cli, "--role", "operator", "--name", "Ops")
    assert issued["prefix"] == issued["key"][:12]
    assert issued["expires_at"] is None


def test_keys_list_shows_prefix_role_holder_expiry_and_status_never_the_key(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    build_world(sessions, clock)
    ok(cli("parties", "add", "sky", "--name", "Sky Airlines", "--services", "air_travel"))
    source = issue(cli, "--role", "source", "--name", "Bank IT", "--source", "bank")
    party = issue(cli, "--role", "relying_party", "--name", "Sky desk", "--party", "sky")
    brief = issue(cli, "--role", "operator", "--name", "Night ops", "--expires-days", "1")
    revoked = issue(cli, "--role", "reviewer", "--name", "Reviewer R")
    ok(cli("keys", "revoke", revoked["prefix"]))
    clock.advance(timedelta(days=2))  # the operator's key has expired
    keys = [source, party, brief, revoked]

    table = ok(cli("keys", "list"))
    as_json = ok(cli("keys", "list", "--json"))
    for shown in (table, as_json):
        for issued in keys:
            assert issued["key"] not in shown
            assert issued["key"][12:] not in shown
            assert hash_key(issued["key"]) not in shown
    rows = {r["prefix"]: r for r in json.loads(as_json)}
    assert list(rows) == [k["prefix"] for k in keys]
    assert rows[source["prefix"]] | {"created_at": None} == {
        "prefix": source["prefix"],
        "role": "source",
        "holder": "Bank IT",
        "speaks_for": "bank",
        "created_at": None,
        "expires_at": None,
        "revoked_at": None,
        "status": "active",
    }
    assert rows[party["prefix"]]["speaks_for"] == "sky"
    assert rows[brief["prefix"]]["status"] == "expired"
    assert rows[brief["prefix"]]["expires_at"] == brief["expires_at"]
    assert rows[revoked["prefix"]]["status"] == "revoked"
    for issued in keys:  # each prefix whole, on one line of the table
        assert any(issued["prefix"] in line for line in table.splitlines())
    for word in ("Bank IT", "Sky desk", "expired", "revoked", "active"):
        assert word in table

    active = json.loads(ok(cli("keys", "list", "--active", "--json")))
    assert [r["prefix"] for r in active] == [source["prefix"], party["prefix"]]
    sources = json.loads(ok(cli("keys", "list", "--role", "source", "--json")))
    assert [r["prefix"] for r in sources] == [source["prefix"]]


def test_rulebook_history_lists_editions_with_whole_hashes(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = build_world(sessions, clock)
    digest = world.edition.content_hash
    table = ok(cli("rulebook", "history"))
    assert any(digest in line for line in table.splitlines()), table
    listed = json.loads(ok(cli("rulebook", "history", "--json")))
    assert [(e["version"], e["content_hash"]) for e in listed] == [
        (world.edition.rulebook.version, digest)
    ]


def test_keys_list_never_names_a_subject_who_holds_a_key(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = build_world(sessions, clock)
    person = world.people[0]
    issue(cli, "--role", "subject", "--name", person.name, "--subject", person.public_id)
    issue(cli, "--role", "operator", "--name", "Night operator")
    table = ok(cli("keys", "list"))
    listed = json.loads(ok(cli("keys", "list", "--json")))
    assert person.name not in table
    assert person.name not in json.dumps(listed)
    assert {k["holder"] for k in listed} == {"(subject)", "Night operator"}


def test_listings_show_control_characters_instead_of_sending_them_to_the_terminal(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    build_world(sessions, clock)
    hostile = "ops\x1b[2J\x1b[31m\x07\u202eevil\nline"
    issue(cli, "--role", "operator", "--name", hostile)
    table = ok(cli("keys", "list"))
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in table
    assert "ops\\x1b[2J" in table  # shown as its escape
    listed = json.loads(ok(cli("keys", "list", "--json")))
    assert hostile in {k["holder"] for k in listed}  # --json keeps the value, escaped by JSON
