"""Every endpoint × every kind of caller: who is let through, who is refused, and how.

The expected outcome of each call is written out below as a literal table (:data:`MATRIX`),
independently of :data:`credence.access.policy.POLICY`: a change of the policy, of a
router's checks or of authentication that is not matched by a change of this table fails
here. The table covers every route of the app; a route it does not name fails
:func:`test_the_matrix_covers_every_endpoint`, so no endpoint reaches the API untested.

Each call runs against its own copy of one prepared world (a template SQLite file copied
per test), so calls that change state (answer a dispute, revoke a key) do not depend on
the order the tests run in. The matrix is about authorisation, not storage: it runs on
SQLite only; the routers' storage paths run on both stores in ``test_api.py`` and
``test_disputes_api.py``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key, revoke_key
from credence.access.policy import Role
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.db import make_engine, session_factory
from credence.disputes import repair
from credence.disputes import service as disputes
from credence.identifiers import SubjectKind, make_resident_id
from credence.ledger import holds, identities, registry, suspension
from credence.ledger import service as ledger
from credence.ledger.lifting import PendingChange
from credence.ledger.schemas import SubjectIn
from credence.ledger.subject_file import record_entry_seqs
from credence.ledger.tables import Record
from credence.migrate import upgrade
from credence.settings import Settings
from credence.translog.keys import signer_from_settings
from credence.watch import alerts, anomalies
from tests.conftest import T0
from tests.due_process import record_id
from tests.world import World, build_world, person_id, rec, submit

CALLERS = (
    "none",  # no Authorization header
    "bad",  # a well-formed key that was never issued: cr_op_ + random
    "revoked",  # an operator's key, revoked
    "expired",  # an operator's key, expired
    "authority",  # a source that is an identity authority (the civil registry)
    "source",  # a plain source (the bank)
    "party",  # a relying party registered for air_travel
    "subject",  # the subject whose file "own" resources are on
    "reviewer",
    "operator",
)
"""Who calls; the columns of :data:`MATRIX`, in order."""

# Variants, where ownership applies:
#   own    the subject's own file / the bank's own record / a dispute or repair about both
#   other  another subject's file / the court's record / a dispute or repair about those
# and, for decisions, which service and subject the relying party asks about:
#   svc    a service the party is registered for, about a registered subject
#   othersvc  a service it is not registered for
#   nobody a registered service, about a national identifier nobody holds
# Codes: the exact status expected. 2xx: allowed, and designed to succeed. 401, 403:
# refused. 404: allowed to ask, but nothing of the caller's matches (a source retracting
# a record that is not its own is told "no such record of yours", not that it exists).
MATRIX = """
# endpoint                                variant    no  bad rvk exp aut src rp  sub rvw op
GET  /v1/health                           -          200 200 200 200 200 200 200 200 200 200
GET  /v1/rulebook                         -          200 200 200 200 200 200 200 200 200 200
GET  /v1/rulebook/versions                -          200 200 200 200 200 200 200 200 200 200
GET  /v1/rulebook/versions/{version}      -          200 200 200 200 200 200 200 200 200 200
GET  /v1/rulebook/versions/{version}/text -          200 200 200 200 200 200 200 200 200 200
GET  /v1/sources/status                   -          200 200 200 200 200 200 200 200 200 200
POST /v1/sources/{code}/suspension        -          401 401 401 401 403 403 403 403 403 201
POST /v1/sources/{code}/reinstatement     -          401 401 401 401 403 403 403 403 403 200
GET  /v1/sources/alerts                   -          401 401 401 401 403 403 403 403 403 200
POST /v1/sources/alerts/{alert_id}/acknowledgement - 401 401 401 401 403 403 403 403 403 200
POST /v1/sources/alerts/{alert_id}/closure -         401 401 401 401 403 403 403 403 403 200
GET  /v1/log/checkpoint                   -          200 401 401 401 200 200 200 200 200 200
GET  /v1/log/public-key                   -          200 401 401 401 200 200 200 200 200 200
GET  /v1/log/entries/{seq}                -          200 401 401 401 200 200 200 200 200 200
GET  /v1/log/proof/inclusion              -          200 401 401 401 200 200 200 200 200 200
GET  /v1/log/proof/consistency            -          200 401 401 401 200 200 200 200 200 200
POST /v1/subjects                         -          401 401 401 401 201 403 403 403 403 403
POST /v1/subjects/lookup                  -          401 401 401 401 200 200 200 403 403 200
GET  /v1/me                               -          401 401 401 401 403 403 403 200 403 403
GET  /v1/subjects/{subject_id}/score      own        401 401 401 401 403 403 403 200 403 200
GET  /v1/subjects/{subject_id}/score      other      401 401 401 401 403 403 403 403 403 200
GET  /v1/subjects/{subject_id}/file       own        401 401 401 401 403 403 403 200 200 200
GET  /v1/subjects/{subject_id}/file       other      401 401 401 401 403 403 403 403 200 200
POST /v1/records                          -          401 401 401 401 200 200 403 403 403 403
POST /v1/records/{record_id}/retraction   own        401 401 401 401 404 200 403 403 403 403
POST /v1/records/{record_id}/retraction   other      401 401 401 401 404 404 403 403 403 403
POST /v1/decisions                        svc        401 401 401 401 403 403 200 403 403 403
POST /v1/decisions                        othersvc   401 401 401 401 403 403 403 403 403 403
POST /v1/decisions                        nobody     401 401 401 401 403 403 404 403 403 403
POST /v1/disputes                         own        401 401 401 401 403 403 403 201 403 403
POST /v1/disputes                         other      401 401 401 401 403 403 403 403 403 403
GET  /v1/disputes                         -          401 401 401 401 200 200 403 200 200 403
GET  /v1/disputes/{dispute_id}            own        401 401 401 401 403 200 403 200 200 403
GET  /v1/disputes/{dispute_id}            other      401 401 401 401 403 403 403 403 200 403
POST /v1/disputes/{dispute_id}/answer     own        401 401 401 401 403 200 403 403 200 403
POST /v1/disputes/{dispute_id}/answer     other      401 401 401 401 403 403 403 403 200 403
POST /v1/records/{record_id}/statement    own        401 401 401 401 403 403 403 201 403 403
POST /v1/records/{record_id}/statement    other      401 401 401 401 403 403 403 403 403 403
POST /v1/repairs                          own        401 401 401 401 403 403 403 201 403 403
POST /v1/repairs                          other      401 401 401 401 403 403 403 403 403 403
GET  /v1/repairs                          -          401 401 401 401 403 403 403 200 200 403
GET  /v1/repairs/{repair_id}              own        401 401 401 401 403 403 403 200 200 403
GET  /v1/repairs/{repair_id}              other      401 401 401 401 403 403 403 403 200 403
POST /v1/repairs/{repair_id}/decision     own        401 401 401 401 403 403 403 403 200 403
POST /v1/repairs/{repair_id}/decision     other      401 401 401 401 403 403 403 403 200 403
GET  /v1/pending-changes                  -          401 401 401 401 403 403 403 403 200 403
POST /v1/pending-changes/{change_id}/confirmation - 401 401 401 401 403 403 403 403 200 403
POST /v1/pending-changes/{change_id}/refusal -       401 401 401 401 403 403 403 403 200 403
GET  /v1/holds                            -          401 401 401 401 403 403 403 403 200 403
POST /v1/holds/{hold_id}/release          -          401 401 401 401 403 403 403 403 200 403
POST /v1/holds/{hold_id}/rejection        -          401 401 401 401 403 403 403 403 200 403
GET  /v1/backfill-runs                    -          401 401 401 401 403 403 403 403 403 200
POST /v1/backfill-runs                    -          401 401 401 401 403 403 403 403 403 201
GET  /v1/identity-flags                   -          401 401 401 401 200 403 403 403 403 403
GET  /v1/identity-flags/{flag_id}         -          401 401 401 401 200 403 403 403 403 403
POST /v1/identity-flags/{flag_id}/distinct -         401 401 401 401 200 403 403 403 403 403
POST /v1/identity-flags/{flag_id}/merge   -          401 401 401 401 200 403 403 403 403 403
POST /v1/identity-flags/{flag_id}/void    -          401 401 401 401 200 403 403 403 403 403
POST /v1/aliases/{alias_id}/end           -          401 401 401 401 200 403 403 403 403 403
POST /v1/keys                             -          401 401 401 401 403 403 403 403 403 201
POST /v1/keys/{prefix}/revocation         -          401 401 401 401 403 403 403 403 403 200
POST /v1/keys/{prefix}/rotation           -          401 401 401 401 403 403 403 403 403 200
"""

Endpoint = tuple[str, str]
"""(method, path template), as the app declares it."""


def _parse(table: str) -> dict[tuple[Endpoint, str], dict[str, int]]:
    cells: dict[tuple[Endpoint, str], dict[str, int]] = {}
    for line in table.strip().splitlines():
        if line.startswith("#"):
            continue
        method, path, variant, *codes = line.split()
        assert len(codes) == len(CALLERS), line
        key = ((method, path), variant)
        assert key not in cells, f"row repeated: {line}"
        cells[key] = dict(zip(CALLERS, map(int, codes), strict=True))
    return cells


EXPECTED = _parse(MATRIX)

KNOWN_BUGS: dict[tuple[Endpoint, str, str], str] = {}
"""Cells where the app is known to differ from :data:`MATRIX`. Strict: once fixed, the
cell's test fails until its entry here is removed."""

CASES = [
    pytest.param(
        endpoint,
        variant,
        caller,
        id=f"{endpoint[0]} {endpoint[1]} [{variant}] {caller}",
        marks=[pytest.mark.xfail(strict=True, reason=bug)]
        if (bug := KNOWN_BUGS.get((endpoint, variant, caller)))
        else [],
    )
    for (endpoint, variant), row in EXPECTED.items()
    for caller in row
]


def allowed(status: int) -> bool:
    """A call was let through: whatever it answered, it was not refused for who called."""
    return status not in (401, 403)


# --- the world every call runs in ----------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """Public ids of what the calls address."""

    version: str
    me: str  # the subject key's own file
    other: str  # another subject
    free_own: str  # the bank's negative record on my file: no dispute, no repair
    free_other: str  # the bank's negative record on the other subject's file
    court_other: str  # the court's record on the other subject's file
    dispute_own: str  # open: my dispute of the bank's record
    dispute_other: str  # open: the other subject's dispute of the court's record
    repair_own: str  # pending: my repair application
    repair_other: str  # pending: the other subject's repair application
    spare_key: str  # prefix of a reviewer's key, to revoke or rotate
    change: str  # pending: the court's retraction of a judgment default on my file
    seq: int  # the log entry of free_own
    hold: str  # held: the bank's loan repayment on my file
    flag: str  # open: a second "Twin" flagged as a probable duplicate of the first
    alias: str  # a third "Twin" merged into the first
    alert: int  # open: an alert about the bank's volume


@dataclass(frozen=True)
class Template:
    """A prepared world in an SQLite file; each test works on a copy."""

    db: Path
    log_key: Path
    keys: dict[str, str]
    ids: Ids


def _principals(
    sessions: sessionmaker[Session], clock: FixedClock, world_sources: dict[str, int], me: int
) -> dict[str, str]:
    """A key per caller of :data:`CALLERS` (none for ``none``), and a spare one."""
    keys: dict[str, str] = {"bad": "cr_op_" + secrets.token_urlsafe(32)}
    with sessions.begin() as session:
        party = create_relying_party(
            session, code="air", name="Sky Airlines", services=["air_travel"], clock=clock
        )
        links: dict[str, tuple[Role, dict[str, int]]] = {
            "authority": (Role.SOURCE, {"source_id": world_sources["civil_registry"]}),
            "source": (Role.SOURCE, {"source_id": world_sources["bank"]}),
            "party": (Role.RELYING_PARTY, {"party_id": party.id}),
            "subject": (Role.SUBJECT, {"subject_id": me}),
            "reviewer": (Role.REVIEWER, {}),
            "operator": (Role.OPERATOR, {}),
            "revoked": (Role.OPERATOR, {}),
            "spare": (Role.REVIEWER, {}),
        }
        for name, (role, link) in links.items():
            principal = create_principal(session, role=role, name=name, clock=clock, **link)
            keys[name] = issue_key(session, principal=principal, clock=clock)
        revoke_key(session, prefix=keys["revoked"][:12], clock=clock)
        earlier = FixedClock(T0 - timedelta(days=2))
        holder = create_principal(session, role=Role.OPERATOR, name="expired", clock=earlier)
        keys["expired"] = issue_key(
            session, principal=holder, clock=earlier, expires_at=T0 - timedelta(days=1)
        )
    return keys


def build_template(directory: Path) -> Template:
    """The world (:func:`populate`) in an SQLite file, with the log's signing key."""
    db = directory / "template.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        clock = FixedClock(T0)
        keys, ids = populate(sessions, clock, build_world(sessions, clock))
        log_key = directory / "log.key"
        signer_from_settings(Settings(db_url=str(engine.url), log_key_path=str(log_key)))
    finally:
        engine.dispose()
    return Template(db=db, log_key=log_key, keys=keys, ids=ids)


def populate(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> tuple[dict[str, str], Ids]:
    """What every call runs in, on ``world``: a key per caller, records on two files, an
    open dispute and a pending repair on each; the keys and the public ids."""
    me, other = world.people[0], world.people[1]
    keys = _principals(sessions, clock, {c: s.id for c, s in world.sources.items()}, me.id)
    occurred = T0 - timedelta(days=100)
    loans = [("OWN-FREE", me), ("OWN-D", me), ("OWN-R", me)]
    loans += [("OTHER-FREE", other), ("OTHER-R", other)]
    for ref, subject in loans:
        record = rec(ref, subject, "loan_default", occurred, decision_ref=f"REG-{ref}")
        assert submit(sessions, world, "bank", occurred, record) == ["created"], ref
    judgment = rec("OTHER-C", other, "judgment_default", occurred, decision_ref="(2026)Zhi-1")
    assert submit(sessions, world, "court", occurred, judgment) == ["created"]
    rulebook = world.edition.rulebook
    with sessions.begin() as session:
        opened = {
            who: disputes.open_dispute(
                session,
                subject=session.merge(subject),
                record_id=record_id(sessions, ref),
                reason="not my loan",
                new_information=None,
                rulebook=rulebook,
                at=T0,
            ).dispute_id
            for who, subject, ref in (("own", me, "OWN-D"), ("other", other, "OTHER-C"))
        }
        applied = {
            who: repair.apply_for_repair(
                session,
                subject=session.merge(subject),
                record_id=record_id(sessions, ref),
                commitment="Repaid in full.",
                rulebook=rulebook,
                at=T0,
            ).repair_id
            for who, subject, ref in (("own", me, "OWN-R"), ("other", other, "OTHER-R"))
        }
    listed = rec("OWN-J", me, "judgment_default", occurred, decision_ref="(2026)Zhi-2")
    assert submit(sessions, world, "court", occurred, listed) == ["created"]
    with sessions.begin() as session:
        held, _ = ledger.retract_record(
            session,
            source=session.merge(world.sources["court"]),
            record_id=record_id(sessions, "OWN-J"),
            reason="entered against the wrong person",
            at=T0,
        )
        assert isinstance(held, PendingChange)
        change = held.public_id
    repaid = rec("OWN-H", me, "loan_repaid", occurred)
    assert submit(sessions, world, "bank", occurred, repaid) == ["created"]
    with sessions.begin() as session:
        [hold] = holds.place(
            session,
            [
                holds.ToHold(
                    session.scalars(select(Record.id).where(Record.source_ref == "OWN-H")).one(),
                    me.id,
                    world.sources["bank"].id,
                    holds.BURST,
                )
            ],
            at=T0,
        )
    with sessions.begin() as session:
        civil = session.merge(world.sources["civil_registry"])
        twins = [
            registry.register_subject(
                session,
                source=civil,
                data=SubjectIn(
                    kind=SubjectKind.PERSON,
                    identifier=make_resident_id("110105", date(1985, 5, 5), n),
                    name="Twin Matrix",
                    region="110105",
                ),
                at=T0,
            )[0]
            for n in (1, 40, 70)
        ]
        [flag] = identities.flags_of(session, twins[1].id)
        third = identities.flags_of(session, twins[2].id)
        merged, _ = identities.resolve_flag(
            session,
            flag_id=next(f.flag_id for f in third if f.other == twins[0].id),
            outcome=identities.MERGED,
            authority=civil,
            principal_id=None,
            reason="one person",
            at=T0,
        )
        assert merged.alias_id is not None
        # The traffic police suspended (no caller of the matrix is it): an operator
        # reinstates it.
        suspension.suspend(
            session,
            source=session.merge(world.sources["traffic_police"]),
            reason="data_quality_investigation",
            principal_id=None,
            at=T0,
        )
        # An open alert about the bank's volume of the day before.
        bank_id = world.sources["bank"].id
        finding = anomalies.Finding(bank_id, "volume", anomalies.day_of(T0) - 1, 9, 2, 0, 22)
        alert = alerts.raise_alert(session, finding, at=T0)
        assert alert is not None
    free_own = record_id(sessions, "OWN-FREE")
    with sessions() as session:
        seq = record_entry_seqs(session, me.id)[free_own]
    ids = Ids(
        version=world.edition.version,
        me=me.public_id,
        other=other.public_id,
        free_own=free_own,
        free_other=record_id(sessions, "OTHER-FREE"),
        court_other=record_id(sessions, "OTHER-C"),
        dispute_own=opened["own"],
        dispute_other=opened["other"],
        repair_own=applied["own"],
        repair_other=applied["other"],
        spare_key=keys.pop("spare")[:12],
        change=change,
        seq=seq,
        hold=hold.public_id,
        flag=flag.flag_id,
        alias=merged.alias_id,
        alert=alert.id,
    )
    return keys, ids


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Built once per module and xdist worker, under that worker's own temp directory."""
    return build_template(tmp_path_factory.mktemp("matrix"))


@dataclass
class Api:
    """The app on a fresh copy of the template world."""

    client: TestClient
    app: FastAPI
    keys: dict[str, str]
    ids: Ids

    def call(self, caller: str, method: str, url: str, **kw: Any) -> httpx.Response:
        key = self.keys.get(caller)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response: httpx.Response = self.client.request(method, url, headers=headers, **kw)
        return response


@contextmanager
def open_api(template: Template, directory: Path) -> Iterator[Api]:
    """The app on a copy of ``template``'s database in ``directory``, with its keys."""
    db = directory / "credence.db"
    shutil.copyfile(template.db, db)
    engine = make_engine(f"sqlite:///{db}")
    settings = Settings(db_url=str(engine.url), log_key_path=str(template.log_key))
    ctx = Context(
        settings=settings, engine=engine, sessions=session_factory(engine), clock=FixedClock(T0)
    )
    app = create_app(ctx)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, app, template.keys, template.ids)
    finally:
        engine.dispose()


@pytest.fixture
def api(template: Template, tmp_path: Path) -> Iterator[Api]:
    with open_api(template, tmp_path) as api:
        yield api


# --- one request per endpoint and variant --------------------------------------------------


@dataclass(frozen=True)
class Call:
    """What a request carries besides the caller's key: path parameters, body, query."""

    path: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    params: dict[str, Any] | None = None

    def url(self, endpoint: Endpoint) -> str:
        return endpoint[1].format(**self.path)


def _mine(variant: str, own: Any, other: Any) -> Any:
    assert variant in ("own", "other"), variant
    return own if variant == "own" else other


def _decision(ids: Ids, variant: str) -> Call:
    body = {
        "svc": {"service": "air_travel", "subject_id": ids.me},
        "othersvc": {"service": "loan_rate_discount", "subject_id": ids.me},
        "nobody": {"service": "air_travel", "identifier": person_id(77)},
    }[variant]
    return Call(json=body)


def _free(ids: Ids, variant: str) -> str:
    """A record with no dispute or repair: on my file (own) or the other subject's."""
    return str(_mine(variant, ids.free_own, ids.free_other))


_PURPOSE = {"purpose": "audit"}
_NEW_RECORD = {
    "source_ref": "MATRIX-1",
    "record_type": "loan_repaid",
    "occurred_at": (T0 - timedelta(days=1)).isoformat(),
}

# Each request is built so that a caller who may make it succeeds (2xx): the bodies are
# valid and the resources they name exist and are in the state the action needs.
REQUESTS: dict[Endpoint, Callable[[Ids, str], Call]] = {
    ("GET", "/v1/health"): lambda ids, v: Call(),
    ("GET", "/v1/rulebook"): lambda ids, v: Call(),
    ("GET", "/v1/rulebook/versions"): lambda ids, v: Call(),
    ("GET", "/v1/rulebook/versions/{version}"): lambda ids, v: Call({"version": ids.version}),
    ("GET", "/v1/rulebook/versions/{version}/text"): lambda ids, v: Call({"version": ids.version}),
    ("GET", "/v1/sources/status"): lambda ids, v: Call(),
    ("POST", "/v1/sources/{code}/suspension"): lambda ids, v: Call(
        {"code": "bank"}, json={"reason": "suspected_bribery"}
    ),
    ("POST", "/v1/sources/{code}/reinstatement"): lambda ids, v: Call({"code": "traffic_police"}),
    ("GET", "/v1/sources/alerts"): lambda ids, v: Call(),
    ("POST", "/v1/sources/alerts/{alert_id}/acknowledgement"): lambda ids, v: Call(
        {"alert_id": ids.alert}, json={"note": "seen"}
    ),
    ("POST", "/v1/sources/alerts/{alert_id}/closure"): lambda ids, v: Call(
        {"alert_id": ids.alert}, json={"note": "explained"}
    ),
    ("GET", "/v1/log/checkpoint"): lambda ids, v: Call(),
    ("GET", "/v1/log/public-key"): lambda ids, v: Call(),
    ("GET", "/v1/log/entries/{seq}"): lambda ids, v: Call({"seq": ids.seq}),
    ("GET", "/v1/log/proof/inclusion"): lambda ids, v: Call(params={"seq": ids.seq}),
    ("GET", "/v1/log/proof/consistency"): lambda ids, v: Call(params={"first": 1}),
    ("POST", "/v1/subjects"): lambda ids, v: Call(
        json={"kind": "person", "identifier": person_id(50), "name": "New Person"}
    ),
    ("POST", "/v1/subjects/lookup"): lambda ids, v: Call(json={"identifier": person_id(1)}),
    ("GET", "/v1/me"): lambda ids, v: Call(),
    ("GET", "/v1/subjects/{subject_id}/score"): lambda ids, v: Call(
        {"subject_id": _mine(v, ids.me, ids.other)}, params=_PURPOSE
    ),
    ("GET", "/v1/subjects/{subject_id}/file"): lambda ids, v: Call(
        {"subject_id": _mine(v, ids.me, ids.other)}, params=_PURPOSE
    ),
    ("POST", "/v1/records"): lambda ids, v: Call(
        json={"records": [{**_NEW_RECORD, "subject_id": ids.me}]}
    ),
    ("POST", "/v1/records/{record_id}/retraction"): lambda ids, v: Call(
        {"record_id": _mine(v, ids.free_own, ids.court_other)},
        json={"reason": "entered against the wrong person"},
    ),
    ("POST", "/v1/decisions"): _decision,
    ("POST", "/v1/disputes"): lambda ids, v: Call(
        json={"record_id": _free(ids, v), "reason": "never had this loan"}
    ),
    ("GET", "/v1/disputes"): lambda ids, v: Call(),
    ("GET", "/v1/disputes/{dispute_id}"): lambda ids, v: Call(
        {"dispute_id": _mine(v, ids.dispute_own, ids.dispute_other)}
    ),
    ("POST", "/v1/disputes/{dispute_id}/answer"): lambda ids, v: Call(
        {"dispute_id": _mine(v, ids.dispute_own, ids.dispute_other)},
        json={"outcome": "verified", "explanation": "checked against the signed loan file"},
    ),
    ("POST", "/v1/records/{record_id}/statement"): lambda ids, v: Call(
        {"record_id": _free(ids, v)}, json={"text": "I repaid this loan in full."}
    ),
    ("POST", "/v1/repairs"): lambda ids, v: Call(
        json={"record_id": _free(ids, v), "commitment": "Repaid in full."}
    ),
    ("GET", "/v1/repairs"): lambda ids, v: Call(),
    ("GET", "/v1/repairs/{repair_id}"): lambda ids, v: Call(
        {"repair_id": _mine(v, ids.repair_own, ids.repair_other)}
    ),
    ("POST", "/v1/repairs/{repair_id}/decision"): lambda ids, v: Call(
        {"repair_id": _mine(v, ids.repair_own, ids.repair_other)},
        json={"approve": True, "reasons": "repaid, and the bank confirms it"},
    ),
    ("GET", "/v1/pending-changes"): lambda ids, v: Call(),
    ("POST", "/v1/pending-changes/{change_id}/confirmation"): lambda ids, v: Call(
        {"change_id": ids.change}, json={"reasons": "the appeal judgment quashes it"}
    ),
    ("POST", "/v1/pending-changes/{change_id}/refusal"): lambda ids, v: Call(
        {"change_id": ids.change}, json={"reasons": "the enforcement order stands"}
    ),
    ("GET", "/v1/holds"): lambda ids, v: Call(),
    ("POST", "/v1/holds/{hold_id}/release"): lambda ids, v: Call(
        {"hold_id": ids.hold}, json={"reasons": "the bank's statements show the repayment"}
    ),
    ("POST", "/v1/holds/{hold_id}/rejection"): lambda ids, v: Call(
        {"hold_id": ids.hold}, json={"reasons": "a refinancing, not a repayment"}
    ),
    ("GET", "/v1/backfill-runs"): lambda ids, v: Call(),
    ("POST", "/v1/backfill-runs"): lambda ids, v: Call(
        json={
            "source": "bank",
            "occurred_from": "2019-01-01T00:00:00Z",
            "occurred_until": "2026-01-01T00:00:00Z",
            "expected_records": 1000,
        }
    ),
    ("GET", "/v1/identity-flags"): lambda ids, v: Call(),
    ("GET", "/v1/identity-flags/{flag_id}"): lambda ids, v: Call({"flag_id": ids.flag}),
    ("POST", "/v1/identity-flags/{flag_id}/distinct"): lambda ids, v: Call(
        {"flag_id": ids.flag}, json={"reasons": "twins"}
    ),
    ("POST", "/v1/identity-flags/{flag_id}/merge"): lambda ids, v: Call(
        {"flag_id": ids.flag}, json={"reasons": "one person"}
    ),
    ("POST", "/v1/identity-flags/{flag_id}/void"): lambda ids, v: Call(
        {"flag_id": ids.flag}, json={"reasons": "fictitious"}
    ),
    ("POST", "/v1/aliases/{alias_id}/end"): lambda ids, v: Call(
        {"alias_id": ids.alias}, json={"reasons": "two persons"}
    ),
    ("POST", "/v1/keys"): lambda ids, v: Call(json={"role": "reviewer", "name": "a new reviewer"}),
    ("POST", "/v1/keys/{prefix}/revocation"): lambda ids, v: Call({"prefix": ids.spare_key}),
    ("POST", "/v1/keys/{prefix}/rotation"): lambda ids, v: Call({"prefix": ids.spare_key}, {}),
}


# --- the tests -----------------------------------------------------------------------------


def api_endpoints(app: FastAPI) -> set[Endpoint]:
    """Every (method, path) the app serves through an APIRoute.

    FastAPI >= 0.137 keeps an included router as one opaque entry of ``app.routes``;
    :func:`fastapi.routing.iter_route_contexts` expands it into its routes, with their
    full paths. Older versions list the routes themselves.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI < 0.137
        flat: list[Any] = list(app.routes)
    else:
        flat = list(iter_route_contexts(app.routes))
    found: set[Endpoint] = set()
    for route in flat:
        original = getattr(route, "original_route", route)
        if not isinstance(original, APIRoute):
            continue
        path = route.path_format
        found |= {(method, path) for method in route.methods or ()}
    return found


def test_the_matrix_covers_every_endpoint(api: Api) -> None:
    served = api_endpoints(api.app)
    assert len(served) >= 30, f"route listing went quiet: {sorted(served)}"
    covered = {endpoint for endpoint, _ in EXPECTED}
    missing = sorted(served - covered)
    assert not missing, f"endpoints with no row in MATRIX (add them): {missing}"
    stale = sorted(covered - served)
    assert not stale, f"MATRIX rows for endpoints the app no longer serves: {stale}"
    assert set(REQUESTS) == covered
    # What the app serves is what it documents: no hidden route, and the OpenAPI view
    # (which the Schemathesis tests fuzz) lists the same endpoints.
    documented = {
        (method.upper(), path)
        for path, operations in api.app.openapi()["paths"].items()
        for method in operations
    }
    assert served == documented


def assert_envelope(response: httpx.Response) -> None:
    """A refusal (any 4xx) in the one error envelope; a 401 says how to authenticate."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if response.status_code == 401:
        assert error["code"] == "unauthenticated"
        assert response.headers.get("WWW-Authenticate") == "Bearer"


@pytest.mark.parametrize(("endpoint", "variant", "caller"), CASES)
def test_who_may_call_what(api: Api, endpoint: Endpoint, variant: str, caller: str) -> None:
    method, _ = endpoint
    request = REQUESTS[endpoint](api.ids, variant)
    response = api.call(
        caller, method, request.url(endpoint), json=request.json, params=request.params
    )
    expected = EXPECTED[endpoint, variant][caller]
    status = response.status_code
    assert status < 500, f"server error: {response.text}"
    assert allowed(status) == allowed(expected), (
        f"{caller} {'should' if allowed(expected) else 'should NOT'} get through: "
        f"{status} {response.text}"
    )
    assert status == expected, response.text
    if status >= 400:
        assert_envelope(response)


# Who sees the data of a log entry about the subject (the others get its leaf hash only).
SEES_ENTRY_DATA = {"subject", "reviewer", "operator"}


def test_log_entry_data_only_for_those_who_may_read_the_file(api: Api) -> None:
    url = f"/v1/log/entries/{api.ids.seq}"
    for caller in ("none", "authority", "source", "party", "subject", "reviewer", "operator"):
        response = api.call(caller, "GET", url)
        assert response.status_code == 200, (caller, response.text)
        entry = response.json()["entry"]
        assert (entry is not None) == (caller in SEES_ENTRY_DATA), (caller, entry)
        assert response.json()["leaf_hash"]
