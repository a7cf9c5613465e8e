"""The API against its own OpenAPI schema, fuzzed in-process with Schemathesis.

For each role, every operation gets generated requests (valid by the schema, with the
role's key), half of them naming resources that exist, so that handlers are reached and
not only the 404 paths. Each response must not be a server error and must conform to
the schema: a documented status code, a documented content type and a body matching the
documented model (every error is the envelope, declared app-wide). Without a key, every
endpoint that is not public must answer 401.

Bounded for ``make test``: a few examples per operation (``CREDENCE_FUZZ_EXAMPLES``,
default 20), no deadline, no shrinking beyond a failure, deterministic examples, SQLite
only, no Hypothesis database on disk (xdist workers share nothing).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.access.test_security_matrix import (
    EXPECTED,
    REQUESTS,
    Api,
    Ids,
    Template,
    build_template,
    open_api,
)

EXAMPLES = int(os.environ.get("CREDENCE_FUZZ_EXAMPLES", "20"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

AnyCase = Case[Any]
Operation = APIOperation[Any, Any, Any, Any]

PUBLIC = {
    ("GET", "/v1/health"),
    ("GET", "/v1/rulebook"),
    ("GET", "/v1/rulebook/versions"),
    ("GET", "/v1/rulebook/versions/{version}"),
    ("GET", "/v1/rulebook/versions/{version}/text"),
    ("GET", "/v1/sources/status"),
    ("GET", "/v1/log/checkpoint"),
    ("GET", "/v1/log/public-key"),
    ("GET", "/v1/log/entries/{seq}"),
    ("GET", "/v1/log/proof/inclusion"),
    ("GET", "/v1/log/proof/consistency"),
}
"""Endpoints anyone may call without a key (docs/roles.md, "Public"); every other needs one."""

ROLES = ("authority", "source", "party", "subject", "reviewer", "operator")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture
def api(template: Template, tmp_path: Path) -> Iterator[Api]:
    with open_api(template, tmp_path) as api:
        yield api


def tuples_as_arrays(node: Any) -> Any:
    """``node`` with each homogeneous tuple (``prefixItems`` of equal schemas, as pydantic
    writes ``tuple[float, float]``) spelled as an array of that item schema; the length
    stays bounded by ``minItems``/``maxItems``.

    Works around Schemathesis 4.x turning ``prefixItems`` into the Draft 4 list form of
    ``items`` for response validation and then refusing that form as an invalid
    OpenAPI 3.1 Schema Object. The app's schema is valid 3.1; the rewrite loses nothing
    for tuples whose members share one schema (the only kind the API has).
    """
    if isinstance(node, list):
        return [tuples_as_arrays(item) for item in node]
    if not isinstance(node, dict):
        return node
    members = node.get("prefixItems")
    if isinstance(members, list) and members and "items" not in node:
        assert all(m == members[0] for m in members), f"a tuple of mixed members: {node}"
        node = {**{k: v for k, v in node.items() if k != "prefixItems"}, "items": members[0]}
    return {key: tuples_as_arrays(value) for key, value in node.items()}


@pytest.fixture(scope="module")
def schema(template: Template, tmp_path_factory: pytest.TempPathFactory) -> OpenApiSchema:
    """The schema the app serves at /openapi.json; each call names the app it goes to."""
    with open_api(template, tmp_path_factory.mktemp("schema")) as api:
        served = api.client.get("/openapi.json")
        assert served.status_code == 200
        return schemathesis.openapi.from_dict(tuples_as_arrays(served.json()))


def known(ids: Ids) -> dict[str, list[Any]]:
    """Path parameter values that name something in the template world."""
    return {
        "version": [ids.version],
        "subject_id": [ids.me, ids.other],
        "record_id": [ids.free_own, ids.free_other, ids.court_other],
        "dispute_id": [ids.dispute_own, ids.dispute_other],
        "repair_id": [ids.repair_own, ids.repair_other],
        "seq": [ids.seq, 1],
        "prefix": [ids.spare_key],
        "change_id": [ids.change],
        "hold_id": [ids.hold],
        "flag_id": [ids.flag],
        "alias_id": [ids.alias],
        "code": ["bank", "traffic_police"],
        "alert_id": [ids.alert],
    }


def cases(operation: Operation, ids: Ids) -> st.SearchStrategy[AnyCase]:
    """Generated cases; where the path names resources, half name ones that exist."""
    generated: st.SearchStrategy[AnyCase] = operation.as_strategy()
    names = re.findall(r"{(\w+)}", operation.path)
    if not names:
        return generated
    values = known(ids)
    existing = st.fixed_dictionaries({n: st.sampled_from(values[n]) for n in names}).flatmap(
        lambda path: operation.as_strategy(path_parameters=path)
    )
    return st.one_of(generated, existing)


def fuzz(schema: OpenApiSchema, ids: Ids, run: Callable[[AnyCase], None]) -> None:
    """Run ``run`` on generated cases of every operation; fail with every failure found."""
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=cases(operation, ids))
        def check(case: AnyCase) -> None:
            run(case)

        try:
            check()
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}:\n{failure}")
    assert operations == len({endpoint for endpoint, _ in EXPECTED})
    assert not failures, "\n\n".join(failures)


def body(response: Response) -> Any:
    return json.loads(response.content)


def is_envelope(response: Response) -> bool:
    payload = body(response)
    return (
        isinstance(payload, dict)
        and set(payload) == {"error"}
        and set(payload["error"]) == {"code", "message", "details"}
    )


@pytest.mark.parametrize("role", ROLES)
def test_fuzz_with_a_key(role: str, schema: OpenApiSchema, api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.keys[role]}"}

    def run(case: AnyCase) -> None:
        response = case.call(headers=headers, app=api.app)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if response.status_code >= 400:
            assert is_envelope(response), response.content

    fuzz(schema, api.ids, run)


def test_fuzz_without_a_key(schema: OpenApiSchema, api: Api) -> None:
    def run(case: AnyCase) -> None:
        # The schema declares bearer auth, so generated cases may carry a made-up key.
        case.headers.pop("Authorization", None)
        response = case.call(app=api.app)
        case.validate_response(response, checks=CHECKS)
        if (case.method.upper(), case.operation.path) in PUBLIC:
            assert response.status_code not in (401, 403), response.content
        else:
            assert response.status_code == 401, response.content
            assert body(response)["error"]["code"] == "unauthenticated"
            assert response.headers.get("www-authenticate") == ["Bearer"]
        if response.status_code >= 400:
            assert is_envelope(response), response.content

    fuzz(schema, api.ids, run)


DESIGNED = [
    pytest.param(
        endpoint, variant, caller, status, id=f"{endpoint[0]} {endpoint[1]} [{variant}] {caller}"
    )
    for (endpoint, variant), row in EXPECTED.items()
    for caller, status in row.items()
    if 200 <= status < 300 and caller in ROLES
]
"""Every call of the security matrix that succeeds, with the caller's key."""


@pytest.mark.parametrize(("endpoint", "variant", "caller", "status"), DESIGNED)
def test_every_success_conforms_to_the_schema(
    schema: OpenApiSchema,
    api: Api,
    endpoint: tuple[str, str],
    variant: str,
    caller: str,
    status: int,
) -> None:
    """Generated requests rarely reach a full file, score or decision: the matrix's
    designed calls do, and their responses must match the documented models too."""
    method, path = endpoint
    request = REQUESTS[endpoint](api.ids, variant)
    extra: dict[str, Any] = {} if request.json is None else {"body": request.json}
    case = schema[path][method].Case(
        path_parameters=request.path, query=request.params or {}, **extra
    )
    headers = {"Authorization": f"Bearer {api.keys[caller]}"}
    response = case.call(headers=headers, app=api.app)
    assert response.status_code == status, response.content
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_registering_a_subject_again_is_a_documented_200(schema: OpenApiSchema, api: Api) -> None:
    endpoint = ("POST", "/v1/subjects")
    request = REQUESTS[endpoint](api.ids, "-")
    case = schema[endpoint[1]][endpoint[0]].Case(body=request.json)
    headers = {"Authorization": f"Bearer {api.keys['authority']}"}
    first = case.call(headers=headers, app=api.app)
    again = case.call(headers=headers, app=api.app)
    assert (first.status_code, again.status_code) == (201, 200)
    for response in (first, again):
        case.validate_response(response, checks=CHECKS, headers=headers)
    assert body(first)["subject_id"] == body(again)["subject_id"]
