"""Hostile input gets a 4xx, never a 5xx: every endpoint of the API, over HTTP, on both
stores.

A real server (uvicorn, in a thread of the test process, on a free port of the loopback)
serves the app on a world like the security matrix's (:mod:`tests.access.test_security_matrix`:
records, disputes and repairs on two files, a key per role). The endpoints are read from
the app's routes, so a new endpoint is swept without a change here. Each is called by a
caller who may call it, with the matrix's valid request as the base (a skeleton for an
endpoint the matrix does not know), and one value at a time replaced by a hostile one:

* in every path parameter, every query parameter it declares (and one it does not), every
  property of its body schema and every string in its base body;
* strings: NUL characters, lone UTF-16 surrogates, and assorted unpleasant text;
* date-times (every field the schema declares as one, every string of the base body that
  is one): the first and last days of years 1 and 9999 with offsets up to ±23:59, naive
  and aware, numbers, impossible dates.

Every answer must be below 500 and in the error envelope if it is an error. A NUL or a
lone surrogate anywhere, and a date-time out of range, must get exactly 422 (on
PostgreSQL, which refuses NUL in text, as on SQLite, which would store it); a date-time
out of range names its field. Every endpoint that takes a body also gets a body that is
not UTF-8 (422 naming it) and a body over the limit sent without Content-Length (413).
No error is logged by the app or the server meanwhile.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.identifiers import guess_kind
from credence.settings import Settings
from credence.translog.keys import signer_from_settings
from tests.access.test_security_matrix import (
    CALLERS,
    EXPECTED,
    REQUESTS,
    Call,
    Endpoint,
    Ids,
    api_endpoints,
    populate,
)
from tests.api.test_races import new_person
from tests.conftest import T0
from tests.logscan import PersonalDataGuard, personal_data_guard
from tests.world import build_world, rec, submit

__all__ = ["personal_data_guard"]  # a fixture, used by name

#: Small enough that the over-the-limit bodies are quick to send.
MAX_BODY = 64 * 1024

# --- hostile values ------------------------------------------------------------------------

#: Strings that must be refused with 422 wherever they appear.
REFUSED_STRINGS = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\udc00\ud800"]
#: Strings that must not cause a 5xx (whatever else they get).
ODD_STRINGS = [
    "",
    "   ",
    "x" * 5000,
    "\U0001f600\u202e\u200b",
    "'; DROP TABLE subjects; --",
    "%00",
    "\\u0000",
    "../../etc/passwd",
    "\x01\x1f\x7f",
    "\ufffe\uffff",
]
#: Date-times out of range: each must be refused with 422 naming its field.
REFUSED_INSTANTS = [
    f"{day}{offset}"
    for day in ("0001-01-01T00:00:00", "9999-12-31T23:59:59.999999")
    for offset in ("", "Z", "+14:00", "-14:00", "+23:59", "-23:59")
] + ["1899-12-31T23:59:59Z", "9000-01-01T00:00:00Z", "1000-06-15T12:00:00+05:30"]
#: Date-times that must not cause a 5xx.
ODD_INSTANTS: list[Any] = [
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-05-31T23:00:00",  # naive: UTC
    "2026-05-31",
    "now",
    -62135596800,
    253402300799,
    1e20,
    -1e20,
    2**70,
]

# In a URL, a value is sent as these bytes (percent-encoded where needed).
REFUSED_IN_URL = ["%00", "a%00b"]
ODD_IN_URL = ["%ED%A0%80", "%FF%FE", "%C0%80", "x" * 2000, "..%2F..%2Fv1%2Fhealth", "%20"]

IN_URL = REFUSED_IN_URL + ODD_IN_URL
REFUSED_IN_QUERY = [quote(v, safe="") for v in REFUSED_INSTANTS]

#: A query parameter no endpoint declares.
UNDECLARED = "undeclared"

IN_BODY = REFUSED_STRINGS + ODD_STRINGS


# --- the world and the server --------------------------------------------------------------


def prepare(
    sessions: sessionmaker[Session], clock: FixedClock, guard: PersonalDataGuard
) -> tuple[dict[str, str], Ids]:
    """The security matrix's world (:func:`tests.access.test_security_matrix.build_template`),
    on this test's store, its subjects' names (new to each run) and identifiers
    protected by ``guard``."""
    rng = random.Random()
    people = [new_person(rng)[1] for _ in range(3)]  # "Ouyang <a given name>"
    company = new_person(rng)[1].split()[-1]
    world = build_world(sessions, clock, names=people, company_name=f"{company} Trading Co")
    guard.protect(*people, *(name.split()[-1] for name in people), company)
    guard.protect(*(subject.identifier for subject in [*world.people, world.company]))
    return populate(sessions, clock, world)


@dataclass
class Served:
    url: str
    app: FastAPI
    keys: dict[str, str]
    ids: Ids


@pytest.fixture
def served(
    personal_data_guard: PersonalDataGuard,
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> Iterator[Served]:
    """The app on this test's store, served by uvicorn on a free port (in this process:
    the guard, which starts first, sees the server's and the app's logs, and
    PostgreSQL's)."""
    clock = FixedClock(T0)
    keys, ids = prepare(sessions, clock, personal_data_guard)
    settings = Settings(
        db_url=str(engine.url),
        max_body_bytes=MAX_BODY,
        log_key_path=str(tmp_path / "log.key"),
        failed_auth_limit=0,  # the sweep is not about rate limits
        lookup_limit=0,
    )
    signer_from_settings(settings)
    app = create_app(Context(settings=settings, engine=engine, sessions=sessions, clock=clock))
    protect_requests(personal_data_guard, app, ids)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # log_config=None: the server's own loggers propagate, so the test sees their errors.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield Served(f"http://{host}:{port}", app, keys, ids)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def protect_requests(guard: PersonalDataGuard, app: FastAPI, ids: Ids) -> None:
    """Protect what the sweep's requests carry of people: every identifier in a base
    body (a subject to register, to look up, to decide on) and the name registered."""
    openapi = app.openapi()
    for endpoint in api_endpoints(app):
        call = base_call(openapi, endpoint, ids, caller_for(endpoint)[0])
        for at, value in leaves(call.json):
            identifier = isinstance(value, str) and guess_kind(value, today=T0.date()) is not None
            registered_name = endpoint == ("POST", "/v1/subjects") and at == ("name",)
            if identifier or registered_name:
                guard.protect(value)


# --- what each endpoint is sent ------------------------------------------------------------

#: Who calls an endpoint: the first of these the matrix lets through.
PREFERENCE = ("operator", "reviewer", "subject", "party", "source", "authority", "none")
assert set(PREFERENCE) <= set(CALLERS)


def caller_for(endpoint: Endpoint) -> tuple[str, str]:
    """(variant, caller): a caller the security matrix lets call ``endpoint``."""
    for (known, variant), row in EXPECTED.items():
        if known == endpoint:
            for caller in PREFERENCE:
                if 200 <= row[caller] < 300:
                    return variant, caller
    return "-", "operator"  # an endpoint the matrix does not know yet


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_instant(openapi: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = resolve(openapi, schema)
    if schema.get("format") == "date-time":
        return True
    return any(is_instant(openapi, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def looks_like_instant(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def skeleton(openapi: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A body with the required properties of ``schema`` (for an endpoint the matrix
    does not know)."""
    schema = resolve(openapi, schema)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: skeleton(openapi, schema["properties"][name])
            for name in schema.get("required", [])
        }
    return {"integer": 1, "number": 1, "boolean": True, "array": []}.get(str(kind), "x")


@dataclass(frozen=True)
class Target:
    """Where a hostile value goes: a path or query parameter, or a place in the body."""

    where: str  # "path", "query" or "body"
    at: tuple[str | int, ...]
    instant: bool

    @property
    def field(self) -> str:
        return str([p for p in self.at if isinstance(p, str)][-1])


def leaves(
    value: Any, at: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*at, i))
    else:
        yield at, value


def targets(openapi: dict[str, Any], endpoint: Endpoint, base: Any) -> list[Target]:
    method, path = endpoint
    operation = openapi["paths"][path][method.lower()]
    found: dict[tuple[str, tuple[str | int, ...]], bool] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] in ("path", "query"):
            instant = is_instant(openapi, parameter.get("schema", {}))
            found[parameter["in"], (parameter["name"],)] = instant
    found["query", (UNDECLARED,)] = False
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        schema = resolve(openapi, body["schema"])
        for name, prop in schema.get("properties", {}).items():
            found["body", (name,)] = is_instant(openapi, prop)
        for at, value in leaves(base):
            if at and isinstance(value, str):
                found.setdefault(("body", at), looks_like_instant(value))
                found["body", at] |= looks_like_instant(value)
    return [Target(where, at, instant) for (where, at), instant in found.items()]


def base_call(openapi: dict[str, Any], endpoint: Endpoint, ids: Ids, variant: str) -> Call:
    if endpoint in REQUESTS:
        return REQUESTS[endpoint](ids, variant)
    method, path = endpoint
    operation = openapi["paths"][path][method.lower()]
    params = {p["name"]: "x" for p in operation.get("parameters", []) if p["in"] == "path"}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return Call(params, skeleton(openapi, body["schema"]) if body is not None else None)


def placed(body: Any, at: tuple[str | int, ...], value: Any) -> Any:
    body = copy.deepcopy(body) if body is not None else {}
    holder = body
    for step in at[:-1]:
        holder = holder[step]
    holder[at[-1]] = value
    return body


@dataclass(frozen=True)
class Probe:
    """One request, and what it must get: exactly ``status``, or (None) anything < 500."""

    endpoint: Endpoint
    caller: str
    url: str
    body: bytes | None
    status: int | None
    what: str
    names: str | None = None  # a field the error message must name


def url_for(endpoint: Endpoint, path: dict[str, str], query: dict[str, str]) -> str:
    """The URL of ``endpoint`` with these path and query values, percent-encoded already:
    they are sent as they are."""
    url = endpoint[1].format(**path)
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def encoded(values: dict[str, Any] | None) -> dict[str, str]:
    return {k: quote(str(v), safe="") for k, v in (values or {}).items()}


def probes(app: FastAPI, served: Served) -> list[Probe]:
    """Every hostile request of the sweep but the over-the-limit bodies."""
    openapi = app.openapi()
    made: list[Probe] = []
    for endpoint in sorted(api_endpoints(app)):
        variant, caller = caller_for(endpoint)
        call = base_call(openapi, endpoint, served.ids, variant)
        path, query = encoded(call.path), encoded(call.params)
        body = json.dumps(call.json).encode() if call.json is not None else None
        for target in targets(openapi, endpoint, call.json):
            name = str(target.at[0])
            if target.where in ("path", "query"):
                # A parameter the endpoint does not declare is not read: anything goes.
                refused = REFUSED_IN_URL if name != UNDECLARED else []
                values = [(v, 422 if v in refused else None) for v in IN_URL]
                if target.instant:
                    values += [(v, 422) for v in REFUSED_IN_QUERY]
                    values += [(quote(str(v), safe=""), None) for v in ODD_INSTANTS]
                for value, status in values:
                    url = (
                        url_for(endpoint, {**path, name: value}, query)
                        if target.where == "path"
                        else url_for(endpoint, path, {**query, name: value})
                    )
                    names = name if target.instant and value in REFUSED_IN_QUERY else None
                    what = f"{target.where} {name}={value:.40}"
                    made.append(Probe(endpoint, caller, url, body, status, what, names))
                continue
            strings = [(v, 422 if v in REFUSED_STRINGS else None) for v in IN_BODY]
            if target.instant:
                strings += [(v, 422) for v in REFUSED_INSTANTS]
                strings += [(v, None) for v in ODD_INSTANTS]
            url = url_for(endpoint, path, query)
            for value, status in strings:
                content = json.dumps(placed(call.json, target.at, value)).encode()
                names = target.field if target.instant and value in REFUSED_INSTANTS else None
                what = f"body {target.at}={value!r:.40}"
                made.append(Probe(endpoint, caller, url, content, status, what, names))
        operation = openapi["paths"][endpoint[1]][endpoint[0].lower()]
        if "requestBody" in operation:
            url = url_for(endpoint, path, query)
            made.append(Probe(endpoint, caller, url, NOT_UTF8, 422, "a body not in UTF-8"))
    return made


NOT_UTF8 = b'{"name": "\xff\xfe\xfd", "text": "caf\xe9"}'


def send(client: httpx.Client, served: Served, probe: Probe, **extra: Any) -> httpx.Response:
    key = served.keys.get(probe.caller)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if probe.body is not None or "content" in extra:
        headers["Content-Type"] = "application/json"
    content = extra.pop("content", probe.body)
    return client.request(
        probe.endpoint[0], served.url + probe.url, headers=headers, content=content, **extra
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def outcome(response: httpx.Response) -> tuple[int, dict[str, Any] | None]:
    """The status and error of a response; for a batch of one record that was refused,
    those of the record (a batch is answered 200, with a status per record)."""
    if response.status_code >= 400:
        return response.status_code, error_of(response)
    json_ = response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if json_ and response.content else None
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        [result] = body["results"]
        if result["status"] == "rejected":
            error: dict[str, Any] = result["error"]
            return int(error["status"]), error
    return response.status_code, None


# --- the sweep -------------------------------------------------------------------------------


def test_every_endpoint_answers_hostile_input_with_a_4xx(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the handler's level: the loggers' stay where the guard set them (DEBUG).
    caplog.handler.setLevel(logging.WARNING)
    made = probes(served.app, served)
    assert {p.endpoint for p in made} == api_endpoints(served.app)
    # What must be refused goes first: the odd values that are taken may change the
    # world (answer a dispute, rotate a key) and send later requests elsewhere.
    made.sort(key=lambda p: p.status is None)
    failures: list[str] = []
    with httpx.Client(timeout=30) as client:
        for probe in made:
            where = f"{probe.endpoint[0]} {probe.endpoint[1]} [{probe.caller}] {probe.what}"
            try:
                response = send(client, served, probe)
            except httpx.TransportError as exc:  # the server dropped the connection
                failures.append(f"{where}: no answer ({exc!r})")
                continue
            status, error = outcome(response)
            if status >= 500 or status == 401 or (probe.status and status != probe.status):
                failures.append(f"{where}: {status} {response.text[:300]}")
                continue
            if error is not None:
                if probe.body == NOT_UTF8 and "not valid UTF-8" not in error["message"]:
                    failures.append(f"{where}: {error['message']}")
                if probe.names is not None and probe.names not in error["message"]:
                    failures.append(f"{where}: does not name the field: {error['message']}")
    assert not failures, f"{len(failures)} of {len(made)} probes:\n" + "\n".join(failures[:60])
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not logged, [(r.getMessage(), _traceback(r)) for r in logged][:5]


def _traceback(record: logging.LogRecord) -> str:
    if not record.exc_info or record.exc_info[1] is None:
        return ""
    return "".join(traceback.format_exception(record.exc_info[1]))[-1500:]


def test_a_body_over_the_limit_without_a_length_gets_413(served: Served) -> None:
    openapi = served.app.openapi()
    bodies = [
        endpoint
        for endpoint in sorted(api_endpoints(served.app))
        if "requestBody" in openapi["paths"][endpoint[1]][endpoint[0].lower()]
    ]
    assert len(bodies) >= 10

    def chunked() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"a" * 4096
        yield b'"}'

    with httpx.Client(timeout=30) as client:
        for endpoint in bodies:
            variant, caller = caller_for(endpoint)
            call = base_call(openapi, endpoint, served.ids, variant)
            url = url_for(endpoint, encoded(call.path), encoded(call.params))
            probe = Probe(endpoint, caller, url, None, 413, "over the limit, chunked")
            response = send(client, served, probe, content=chunked())
            assert "content-length" not in {k.lower() for k in response.request.headers}
            assert response.status_code == 413, (endpoint, response.text)
            assert error_of(response)["code"] == "payload_too_large"


def test_without_a_key_the_url_and_encoding_are_checked_and_then_who_calls(
    served: Served,
) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        # A public endpoint: a NUL in its URL is refused (PostgreSQL would fail on it).
        public = client.get("/v1/rulebook/versions/%00")
        assert public.status_code == 422, public.text
        assert error_of(public)["code"] == "invalid_character"
        # A body that is not UTF-8 is malformed, whoever sends it (as malformed JSON is).
        json_ = {"Content-Type": "application/json"}
        malformed = client.post("/v1/subjects", content=NOT_UTF8, headers=json_)
        assert malformed.status_code == 422, malformed.text
        assert error_of(malformed)["code"] == "invalid_encoding"
        # What a well-formed body says is read only for a caller with a key: without
        # one, an endpoint that needs a key answers 401 first.
        for text in ("a\x00b", "\ud800"):
            body = json.dumps({"kind": "person", "identifier": "x", "name": text}).encode()
            anonymous = client.post("/v1/subjects", content=body, headers=json_)
            assert anonymous.status_code == 401, anonymous.text
            keyed = client.post(
                "/v1/subjects",
                content=body,
                headers=json_ | {"Authorization": f"Bearer {served.keys['authority']}"},
            )
            assert keyed.status_code == 422, keyed.text
            assert error_of(keyed)["code"] == "invalid_character"


@pytest.mark.parametrize("field", ["subject_id", "record_type"])
def test_records_without_the_api_refuse_nul_too(
    sessions: sessionmaker[Session], field: str
) -> None:
    # A file import reaches the ledger without the API's request guard.
    clock = FixedClock(T0)
    world = build_world(sessions, clock)
    record = rec("NUL-1", world.people[0], "loan_repaid", T0 - timedelta(days=1))
    record[field] = f"{record[field]}\x00"
    assert submit(sessions, world, "bank", T0, record) == ["invalid_record"]
