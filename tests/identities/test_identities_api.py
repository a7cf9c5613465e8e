"""Probable duplicates and fictitious identities, through the API, on SQLite and PostgreSQL.

A second "Zhang Wei" (same name, birth date and region as an earlier one) or a second
"Acme" (same name, credit code one character or one swap away) is registered but
flagged for the identity authority, which confirms the two distinct, merges them (the
flagged subject read into the other's file, until the merge is undone), or voids the new
one as fictitious (no decision about it, the real person told). Each answer is given
once: a resend gets it again, another answer 409. Organisations may carry a founding
date. ``credence log verify`` passes after all of it and names an edited row.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence import journal
from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.identifiers import make_credit_code, make_resident_id
from credence.journal import JournalEntry
from credence.ledger import identities
from credence.ledger.tables import Subject
from credence.models import metadata
from credence.translog.verify import verify_log
from tests import tamper
from tests.client import Api, assert_envelope
from tests.due_process import journal_kinds
from tests.world import company_id

REGION = "110105"
BORN = date(1990, 5, 17)
ZHANG_WEI = "张伟 Zhang Wei"
TABLES = (
    "identity_flags",
    "identity_resolutions",
    "subject_aliases",
    "alias_ends",
    "identity_voids",
)


def person(sequence: int, born: date = BORN, region: str = REGION) -> str:
    return make_resident_id(region, born, sequence)


@pytest.fixture
def api(api: Api, sessions: sessionmaker[Session]) -> Api:
    """The API of ``tests.client``, with a key of the business registry ("business")."""
    with sessions.begin() as session:
        principal = create_principal(
            session,
            role=Role.SOURCE,
            name="business",
            clock=api.clock,
            source_id=api.world.sources["business_registry"].id,
        )
        api.keys["business"] = issue_key(session, principal=principal, clock=api.clock)
    return api


def register(api: Api, role: str = "registry", **body: Any) -> dict[str, Any]:
    body.setdefault("kind", "person")
    response = api.call("POST", "/v1/subjects", role, json=body)
    assert response.status_code == 201, response.text
    reply: dict[str, Any] = response.json()
    return reply


def twins(
    api: Api, name: str = ZHANG_WEI, sequences: tuple[int, int] = (12, 47)
) -> tuple[str, str, str]:
    """The real Zhang Wei, then a second one (same name, birth date and region, another
    sequence number): their ids and the second one's flag."""
    real = register(api, identifier=person(sequences[0]), name=name, region=REGION)
    assert real["flagged"] is False
    assert real["flags"] == []
    api.clock.advance(timedelta(days=1))
    second = register(api, identifier=person(sequences[1]), name=name, region=REGION)
    assert second["flagged"] is True
    [flag] = second["flags"]
    assert flag["probable_duplicate_of"] == real["subject_id"]
    assert flag["test"] == "same_name_birth_region"
    assert flag["status"] == "open"
    return real["subject_id"], second["subject_id"], flag["flag_id"]


def resolve(api: Api, flag: str, verb: str, role: str = "registry", reasons: str = "") -> Any:
    return api.call(
        "POST",
        f"/v1/identity-flags/{flag}/{verb}",
        role,
        json={"reasons": reasons or "Checked against the household register."},
    )


def file_of(api: Api, subject: str) -> dict[str, Any]:
    response = api.call(
        "GET", f"/v1/subjects/{subject}/file", "operator", params={"purpose": "audit"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def entries(sessions: sessionmaker[Session], kind: str) -> list[dict[str, Any]]:
    with sessions() as session:
        found = session.scalars(
            select(JournalEntry.data).where(JournalEntry.kind == kind).order_by(JournalEntry.seq)
        )
        return [json.loads(d) for d in found]


def internal_id(sessions: sessionmaker[Session], public_id: str) -> int:
    with sessions() as session:
        return session.scalars(select(Subject.id).where(Subject.public_id == public_id)).one()


def may_fly(api: Api, subject: str) -> Any:
    return api.call(
        "POST", "/v1/decisions", "airline", json={"subject_id": subject, "service": "air_travel"}
    )


# --- flagged at registration ---------------------------------------------------------------


def test_a_second_zhang_wei_is_registered_but_flagged(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    real, second, flag = twins(api)
    # A resend of the flagged registration says so again.
    again = api.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": person(47), "name": ZHANG_WEI, "region": REGION},
    )
    assert again.status_code == 200, again.text
    assert again.json()["flagged"] is True
    assert again.json()["flags"][0]["flag_id"] == flag
    # Another name, or another birth date, or another region: not flagged.
    assert register(api, identifier=person(48), name="张伟民", region=REGION)["flagged"] is False
    other_day = person(49, born=BORN + timedelta(days=1))
    assert register(api, identifier=other_day, name=ZHANG_WEI, region=REGION)["flagged"] is False
    elsewhere = person(50, region="310101")
    assert register(api, identifier=elsewhere, name=ZHANG_WEI, region="310101")["flagged"] is False
    # The entry names the two subjects and the test, nothing else.
    [data] = entries(sessions, "identity_flagged")
    assert data == {
        "flag": flag,
        "subject": second,
        "other": real,
        "test": "same_name_birth_region",
    }
    # The identity authority's queue has it; both files show it.
    queue = api.call("GET", "/v1/identity-flags", "registry")
    assert queue.status_code == 200, queue.text
    [listed] = queue.json()
    assert (listed["flag_id"], listed["subject_id"], listed["other_subject_id"]) == (
        flag,
        second,
        real,
    )
    assert listed["subject_name"] == listed["other_name"] == ZHANG_WEI
    [note] = file_of(api, second)["identities"]
    assert (note["role"], note["other_subject_id"], note["status"]) == ("flagged", real, "open")
    [note] = file_of(api, real)["identities"]
    assert (note["role"], note["other_subject_id"]) == ("resembled", second)


def test_an_identifier_one_digit_or_one_swap_away_with_the_same_name_is_flagged(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    # Persons: the sequence number swapped (123 -> 132), the regions registered differ.
    first = register(api, identifier=person(123), name="Li Na", region=REGION)
    swapped = register(api, identifier=person(132), name="Li Na", region="310101")
    assert swapped["flags"][0]["probable_duplicate_of"] == first["subject_id"]
    assert swapped["flags"][0]["test"] == "near_identifier"
    # One digit away in the birth date (1990-05-17 -> 1990-05-27): another birth date.
    digit = register(
        api, identifier=person(123, born=date(1990, 5, 27)), name="Li Na", region="440106"
    )
    assert [f["probable_duplicate_of"] for f in digit["flags"]] == [first["subject_id"]]
    # The same identifier body with another name: nothing.
    assert register(api, identifier=person(124), name="Li Nan", region=REGION)["flagged"] is False
    # Two digits away: nothing.
    assert register(api, identifier=person(145), name="Li Na", region="120101")["flagged"] is False
    # Organisations: the world's "Acme" is company_id(1), serial ...01; ...10 is a swap.
    acme = register(
        api, "business", kind="company", identifier=company_id(10), name="Acme", region="371082"
    )
    assert acme["flags"] == [
        {
            "flag_id": acme["flags"][0]["flag_id"],
            "probable_duplicate_of": api.world.company.public_id,
            "test": "near_identifier",
            "status": "open",
        }
    ]
    # The civil registry does not see it; the business registry does.
    persons = api.call("GET", "/v1/identity-flags", "registry").json()
    assert acme["flags"][0]["flag_id"] not in [f["flag_id"] for f in persons]
    organisations = api.call("GET", "/v1/identity-flags", "business").json()
    assert [f["flag_id"] for f in organisations] == [acme["flags"][0]["flag_id"]]
    assert (
        sorted(d["test"] for d in entries(sessions, "identity_flagged")) == ["near_identifier"] * 3
    )


def test_an_organisations_founding_date(api: Api, sessions: sessionmaker[Session]) -> None:
    founded = date(2001, 3, 14)
    first = register(
        api,
        "business",
        kind="company",
        identifier=make_credit_code("9", "1", "110105", "MA0000017"),
        name="Beijing Shanshui Trading Co.",
        region="110105",
        founded_on=founded.isoformat(),
    )
    assert first["flagged"] is False
    with sessions() as session:
        row = session.scalars(select(Subject).where(Subject.public_id == first["subject_id"])).one()
        assert row.founded_on == founded
        assert identities.founded_instant(row.founded_on) == (
            # The day begins in China at 16:00 UTC the day before.
            int((date(2001, 3, 13) - date(1970, 1, 1)).days * 86_400 + 16 * 3600) * 1_000_000
        )
    # Same name, founding date and region, an unrelated code: flagged.
    second = register(
        api,
        "business",
        kind="company",
        identifier=make_credit_code("9", "1", "110105", "MA0000999"),
        name="Beijing Shanshui Trading Co.",
        region="110105",
        founded_on=founded.isoformat(),
    )
    assert second["flags"][0]["test"] == "same_name_birth_region"
    # Refused for a person, in the future (a date in China), or before 1900.
    body = {"kind": "person", "identifier": person(400), "name": "Wang Fang"}
    for founded_on, code in (
        ("2001-03-14", "founded_on_for_person"),
        ("1899-12-31", "founded_on_for_person"),
    ):
        refused = api.call(
            "POST", "/v1/subjects", "registry", json=body | {"founded_on": founded_on}
        )
        assert_envelope(refused, 422, code)
    tomorrow_in_china = (api.clock.now() + timedelta(hours=8)).date() + timedelta(days=1)
    company = {
        "kind": "company",
        "identifier": make_credit_code("9", "1", "110105", "MA0000555"),
        "name": "Future Co.",
    }
    for founded_on, code in (
        (tomorrow_in_china.isoformat(), "founded_on_in_future"),
        ("1899-12-31", "founded_on_out_of_range"),
    ):
        refused = api.call(
            "POST", "/v1/subjects", "business", json=company | {"founded_on": founded_on}
        )
        error = assert_envelope(refused, 422, code)
        assert founded_on not in error["message"]
    today_in_china = (api.clock.now() + timedelta(hours=8)).date()
    accepted = api.call(
        "POST",
        "/v1/subjects",
        "business",
        json=company | {"founded_on": today_in_china.isoformat()},
    )
    assert accepted.status_code == 201, accepted.text
    with sessions() as session:
        assert verify_log(session).ok


# --- what the identity authority finds --------------------------------------------------------


def test_confirmed_distinct(api: Api, sessions: sessionmaker[Session]) -> None:
    real, second, flag = twins(api)
    # Only the identity authority for persons answers.
    for role in ("bank", "business", "subject", "operator", "reviewer", "airline"):
        assert resolve(api, flag, "distinct", role).status_code == 403
    assert_envelope(resolve(api, flag, "distinct", "business"), 403, "not_identity_authority")
    assert_envelope(resolve(api, "idf_nosuchflag", "distinct"), 404, "unknown_flag")
    answered = resolve(api, flag, "distinct", reasons="Twins: two birth certificates.")
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "distinct"
    assert body["reasons"] == "Twins: two birth certificates."
    # A resend gets the same answer; another answer is refused, naming the first.
    api.clock.advance(timedelta(hours=1))
    again = resolve(api, flag, "distinct", reasons="Sent twice.")
    assert again.status_code == 200, again.text
    assert again.json() == body
    for verb in ("merge", "void"):
        refused = assert_envelope(resolve(api, flag, verb), 409, "flag_resolved")
        assert refused["details"] == {"flag_id": flag, "outcome": "distinct"}
    assert api.call("GET", "/v1/identity-flags", "registry").json() == []
    resolved = api.call("GET", "/v1/identity-flags", "registry", params={"status": "resolved"})
    assert [f["flag_id"] for f in resolved.json()] == [flag]
    for subject in (real, second):
        [note] = file_of(api, subject)["identities"]
        assert note["status"] == "distinct"
        assert note["reasons"] == "Twins: two birth certificates."
        kinds = [n["kind"] for n in file_of(api, subject)["notifications"]]
        assert kinds.count("identity_confirmed_distinct") == 1
    [data] = entries(sessions, "identity_confirmed_distinct")
    assert data["flag"] == flag
    assert (data["subject"], data["other"]) == (second, real)
    assert "Twins" not in json.dumps(data)
    assert len(data["reason_sha256"]) == 64
    assert may_fly(api, second).status_code == 200


def test_merged_then_unmerged(api: Api, sessions: sessionmaker[Session]) -> None:
    real, second, flag = twins(api)
    before = api.clock.now()
    api.clock.advance(timedelta(hours=1))
    merged_at = api.clock.now()
    merged = resolve(api, flag, "merge", reasons="One person, registered twice.")
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["status"] == "merged"
    alias = body["alias_id"]
    assert alias.startswith("als_")
    assert resolve(api, flag, "merge").json() == body  # a resend
    assert_envelope(resolve(api, flag, "void"), 409, "flag_resolved")
    real_id, second_id = internal_id(sessions, real), internal_id(sessions, second)
    with sessions() as session:
        assert identities.aliases_at(session, merged_at) == {second_id: real_id}
        assert identities.aliases_at(session, before) == {}
    [note] = file_of(api, second)["identities"]
    assert (note["status"], note["read_into"], note["alias_id"]) == ("merged", real, alias)
    [note] = file_of(api, real)["identities"]
    assert (note["role"], note["status"], note["read_into"]) == ("resembled", "merged", real)
    for subject in (real, second):
        kinds = [n["kind"] for n in file_of(api, subject)["notifications"]]
        assert "subjects_merged" in kinds

    # Only the identity authority undoes it.
    for role in ("bank", "business", "subject", "operator"):
        assert (
            api.call("POST", f"/v1/aliases/{alias}/end", role, json={"reasons": "x"}).status_code
            == 403
        )
    api.clock.advance(timedelta(days=2))
    ended_at = api.clock.now()
    ended = api.call(
        "POST", f"/v1/aliases/{alias}/end", "registry", json={"reasons": "Not the same after all."}
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "unmerged"
    assert ended.json()["unmerge_reasons"] == "Not the same after all."
    again = api.call("POST", f"/v1/aliases/{alias}/end", "registry", json={"reasons": "again"})
    assert again.status_code == 200, again.text
    assert again.json() == ended.json()
    assert_envelope(
        api.call("POST", "/v1/aliases/als_nosuchalias/end", "registry", json={"reasons": "x"}),
        404,
        "unknown_alias",
    )
    with sessions() as session:
        assert identities.aliases_at(session, ended_at) == {}
        assert identities.aliases_at(session, ended_at - timedelta(microseconds=1)) == {
            second_id: real_id
        }
        rows = session.execute(identities.alias_rows()).all()
    assert [tuple(r) for r in rows] == [(second_id, real_id, merged_at, ended_at)]
    for subject in (real, second):
        [note] = file_of(api, subject)["identities"]
        assert note["status"] == "unmerged"
        kinds = [n["kind"] for n in file_of(api, subject)["notifications"]]
        assert "subjects_unmerged" in kinds
    # A merge answers the flag for good: it cannot be answered again after the unmerge.
    assert_envelope(resolve(api, flag, "distinct"), 409, "flag_resolved")
    counted = journal_kinds(sessions)
    assert counted["subjects_merged"] == counted["subjects_unmerged"] == 1
    [data] = entries(sessions, "subjects_unmerged")
    assert (data["alias"], data["alias_subject"], data["into"]) == (alias, second, real)


def test_voided_then_no_decision(api: Api, sessions: sessionmaker[Session]) -> None:
    real, second, flag = twins(api)
    assert may_fly(api, second).status_code == 200
    voided = resolve(api, flag, "void", reasons="No such person in the household register.")
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert resolve(api, flag, "void").json() == voided.json()
    assert_envelope(resolve(api, flag, "merge"), 409, "flag_resolved")
    # No decision about the voided identity, on any path; the message names nobody.
    refused = assert_envelope(may_fly(api, second), 409, "identity_voided")
    assert second not in json.dumps(refused)
    # The real Zhang Wei may still fly, and was told.
    allowed = may_fly(api, real)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["outcome"] == "allow"
    assert "identity_voided" in [n["kind"] for n in file_of(api, real)["notifications"]]
    [note] = file_of(api, second)["identities"]
    assert note["status"] == "voided"
    second_id = internal_id(sessions, second)
    with sessions() as session:
        assert identities.voided_among(session, [second_id, internal_id(sessions, real)]) == {
            second_id
        }
    # A third registration resembling the voided one is flagged, and cannot be merged
    # into it.
    third = register(api, identifier=person(48), name=ZHANG_WEI, region=REGION)
    into_voided = next(f for f in third["flags"] if f["probable_duplicate_of"] == second)
    assert_envelope(resolve(api, into_voided["flag_id"], "merge"), 409, "identity_voided")
    [data] = entries(sessions, "identity_voided")
    assert (data["subject"], data["other"]) == (second, real)


def test_a_chain_of_aliases_or_a_merged_subject_voided_is_refused(api: Api) -> None:
    real, second, flag = twins(api)
    third = register(api, identifier=person(48), name=ZHANG_WEI, region=REGION)
    flags = {f["probable_duplicate_of"]: f["flag_id"] for f in third["flags"]}
    assert set(flags) == {real, second}
    assert resolve(api, flag, "merge").status_code == 200
    # The third cannot be read into the second, which is read into the first.
    assert_envelope(resolve(api, flags[second], "merge"), 409, "alias_chain")
    # It can be read into the first; then it cannot be voided until unmerged.
    merged = resolve(api, flags[real], "merge")
    assert merged.status_code == 200, merged.text
    assert_envelope(resolve(api, flags[second], "void"), 409, "subject_merged")
    end = api.call(
        "POST", f"/v1/aliases/{merged.json()['alias_id']}/end", "registry", json={"reasons": "no"}
    )
    assert end.status_code == 200, end.text
    assert resolve(api, flags[second], "void").status_code == 200


# --- hostile bytes, and the log -----------------------------------------------------------------


#: Hostile values, each with the answer it must get: kept exactly (``None``), or refused
#: with this error code naming the field (``invalid_request``: too long, or blank).
HOSTILE: list[tuple[str, str | None]] = [
    ("张伟\u202e'; DROP TABLE subjects; --", None),
    ("line one\nline two\r\n\t\x1b[31mred", None),
    ("\x00", "invalid_character"),
    ("x" * 20_000, "invalid_request"),
    ("   ", "invalid_request"),
]


def _refused(response: Any, code: str, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if code == "invalid_request":
        assert [d["field"] for d in error["details"]] == [field], error


def test_hostile_names_and_reasons_get_a_4xx_or_are_kept_exactly(api: Api) -> None:
    for n, (name, refused) in enumerate(HOSTILE):
        body = {"kind": "person", "identifier": person(600 + n), "name": name}
        response = api.call("POST", "/v1/subjects", "registry", json=body)
        if refused is not None:
            _refused(response, refused, "name")
            continue
        assert response.status_code == 201, response.text
        subject = response.json()["subject_id"]
        assert file_of(api, subject)["name"] == name.strip()
        # The same again resembles it: flagged, name kept exactly.
        twin = api.call(
            "POST", "/v1/subjects", "registry", json=body | {"identifier": person(700 + n)}
        )
        assert twin.status_code == 201, twin.text
        [flag] = twin.json()["flags"]
        assert flag["probable_duplicate_of"] == subject
        assert file_of(api, twin.json()["subject_id"])["name"] == name.strip()
    for n, (reasons, refused) in enumerate(HOSTILE):
        _, second, flag = twins(api, name=f"Twin {n}", sequences=(800 + n, 850 + n))
        response = resolve(api, flag, "distinct", reasons=reasons)
        if refused is not None:
            _refused(response, refused, "reasons")
            continue
        assert response.status_code == 200, response.text
        assert response.json()["reasons"] == reasons.strip()
        [note] = file_of(api, second)["identities"]
        assert note["reasons"] == reasons.strip()
    for path in (f"/v1/identity-flags/{'x' * 20_000}/void", "/v1/aliases/%E5%BC%A0/end"):
        response = api.call("POST", path, "registry", json={"reasons": "x"})
        assert 400 <= response.status_code < 500, response.text


# --- the log ------------------------------------------------------------------------------------


def test_verify_passes_after_all_of_it_and_names_an_edited_row(
    api: Api, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    real, _, flag = twins(api)
    assert resolve(api, flag, "merge").status_code == 200
    alias = resolve(api, flag, "merge").json()["alias_id"]
    assert (
        api.call(
            "POST", f"/v1/aliases/{alias}/end", "registry", json={"reasons": "undone"}
        ).status_code
        == 200
    )
    third = register(api, identifier=person(48), name=ZHANG_WEI, region=REGION)
    voiding = next(f["flag_id"] for f in third["flags"] if f["probable_duplicate_of"] == real)
    assert resolve(api, voiding, "void").status_code == 200
    fourth = register(api, identifier=person(49), name=ZHANG_WEI, region=REGION)
    assert resolve(api, fourth["flags"][0]["flag_id"], "distinct").status_code == 200
    register(
        api,
        "business",
        kind="company",
        identifier=make_credit_code("9", "1", "110105", "MA0000017"),
        name="Shanshui",
        founded_on="2001-03-14",
    )
    with sessions() as session:
        report = verify_log(session)
        assert report.ok, [p.message for p in report.problems]

    # An attacker edits each column of a row of each table (the subject's founding date
    # among them), its salt and its entry, deletes the row, forges a copy: verify names
    # the table, the row and the entry each time, and passes again once it is undone.
    def messages() -> list[str]:
        with sessions() as session:
            return [p.message for p in verify_log(session).problems]

    plans = []
    with engine.connect() as conn:
        for name in (*TABLES, "subjects"):
            table = metadata.tables[name]
            row = tamper.Raw(
                conn.execute(text(f"SELECT * FROM {name} ORDER BY id DESC LIMIT 1"))
                .mappings()
                .one()
            )
            if name == "subjects":
                assert row["founded_on"] is not None
            seqs = conn.scalars(
                select(JournalEntry.seq).where(JournalEntry.seq != row["seq"]).limit(2)
            ).all()
            covered = journal.registration(name)
            assert isinstance(covered, journal.Covered)
            plans.append(
                tamper.column_tampers(conn, table, covered, row, list(seqs))
                + tamper.row_tampers(conn, table, row)
            )
    missed, made = tamper.run(engine, messages, plans)
    assert missed == []
    assert made > 60
