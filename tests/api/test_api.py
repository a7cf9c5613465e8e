"""The HTTP API end to end: flows, the error envelope, authorisation, hostile input."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest

from credence.translog.merkle import leaf_hash, verify_inclusion
from tests.client import Api, assert_envelope
from tests.world import person_id


def test_error_envelope_is_one_shape(api: Api) -> None:
    assert_envelope(api.call("GET", "/v1/nowhere"), 404, "not_found")
    assert_envelope(api.call("GET", "/v1/me"), 401, "unauthenticated")
    assert_envelope(api.client.get("/v1/me", headers={"Authorization": "Bearer cr_nope"}), 401)
    assert_envelope(
        api.call(
            "POST",
            "/v1/records",
            "bank",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        ),
        400,
        "malformed_json",
    )
    assert_envelope(api.call("POST", "/v1/records", "bank", json={"records": []}), 422)
    assert_envelope(api.call("DELETE", "/v1/rulebook"), 405, "method_not_allowed")
    big = {"records": [{"source_ref": "x" * 100}] * 5000}
    assert_envelope(api.call("POST", "/v1/records", "bank", json=big), 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"quantity": NaN}]}',  # the standard library's json takes NaN
        b'{"records": [{"quantity": 1' + b"0" * 40 + b"}]}",  # beyond 64 bits
        b'{"records": ["\\ud800"]}',  # a lone surrogate
        b'{"records": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # deeper than orjson goes
        b"\xff\xfe not utf-8",
    ],
)
def test_record_batches_are_parsed_strictly_and_refused_with_a_4xx(api: Api, body: bytes) -> None:
    # The records endpoints parse JSON with orjson (credence.api.routing): what it cannot
    # take is refused as malformed (4xx, the error envelope), a number it reads but the
    # schema refuses rejects its record; never a 500, and nothing is stored.
    response = api.call(
        "POST", "/v1/records", "bank", content=body, headers={"Content-Type": "application/json"}
    )
    if response.status_code == 200:
        answer = response.json()
        assert answer["created"] == 0
        assert answer["rejected"] == len(answer["results"]) == 1
    else:
        assert 400 <= response.status_code < 500, response.text
        assert_envelope(response, response.status_code)


def test_rulebook_is_public_and_every_edition_readable(api: Api) -> None:
    current = api.client.get("/v1/rulebook").json()
    assert current["version"] == api.world.edition.version
    assert "air_travel" in {s["code"] for s in current["rulebook"]["services"]}
    assert "judgment_enforcement" in current["purposes"]
    # Every type's domain and statute, and the catalogues they come from, are public.
    for rt in current["rulebook"]["record_types"]:
        domain = current["domains"][rt["domain"]]
        assert rt["statute"] in domain["statutes"]
        assert current["statutes"][rt["statute"]]["title_zh"]
    versions = api.client.get("/v1/rulebook/versions").json()
    assert [v["version"] for v in versions] == [current["version"]]
    text = api.client.get(f"/v1/rulebook/versions/{current['version']}/text").text
    assert hashlib.sha256(text.encode()).hexdigest() == current["content_hash"]
    assert_envelope(api.client.get("/v1/rulebook/versions/0.0"), 404)


def test_register_submit_score_decide_and_see_it_on_the_file(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ident = person_id(42)
    reg = api.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": ident, "name": "Li Test"},
    )
    assert reg.status_code == 201, reg.text
    subject_id = reg.json()["subject_id"]
    again = api.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": ident, "name": "Li Test"},
    )
    assert again.status_code == 200
    assert again.json()["subject_id"] == subject_id
    assert_envelope(
        api.call(
            "POST",
            "/v1/subjects",
            "bank",
            json={"kind": "person", "identifier": person_id(43), "name": "X"},
        ),
        403,
    )
    found = api.call("POST", "/v1/subjects/lookup", "airline", json={"identifier": ident})
    assert found.json()["subject_id"] == subject_id

    day = (api.clock.now() - timedelta(days=20)).isoformat()
    batch = api.call(
        "POST",
        "/v1/records",
        "court",
        json={
            "records": [
                {
                    "source_ref": "J-1",
                    "identifier": ident,
                    "record_type": "judgment_default",
                    "occurred_at": day,
                    "decision_ref": "(2026)Zhi-7",
                },
                {
                    "source_ref": "J-2",
                    "identifier": ident,
                    "record_type": "judgment_default",
                    "occurred_at": day,
                },
                {
                    "source_ref": "J-3",
                    "identifier": ident,
                    "record_type": "political_view",
                    "occurred_at": day,
                },
                {
                    "source_ref": "J-1",
                    "identifier": ident,
                    "record_type": "judgment_default",
                    "occurred_at": day,
                    "decision_ref": "(2026)Zhi-7",
                },
                "not an object",
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert [r["status"] for r in body["results"]] == [
        "created",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
    ]
    assert body["results"][1]["error"]["code"] == "decision_reference_required"
    assert body["results"][1]["error"]["status"] == 422
    assert body["results"][2]["error"]["code"] == "unknown_record_type"
    assert (body["created"], body["duplicates"], body["rejected"]) == (1, 1, 3)

    decision = api.call(
        "POST", "/v1/decisions", "airline", json={"identifier": ident, "service": "air_travel"}
    )
    assert decision.status_code == 200, decision.text
    d = decision.json()
    assert d["outcome"] == "deny"
    assert 1 <= len(d["reasons"]) <= 4
    assert "(2026)Zhi-7" in d["reasons"][0]
    assert d["how_to_dispute"]
    assert d["rulebook_version"] == api.world.edition.version
    assert_envelope(
        api.call(
            "POST",
            "/v1/decisions",
            "airline",
            json={"subject_id": subject_id, "service": "loan_rate_discount"},
        ),
        403,
        "service_not_registered",
    )

    assert_envelope(
        api.call("GET", f"/v1/subjects/{subject_id}/file", "operator"), 422, "purpose_required"
    )
    operator_view = api.call(
        "GET", f"/v1/subjects/{subject_id}/file", "operator", params={"purpose": "dispute_handling"}
    ).json()
    assert [i["service"] for i in operator_view["inquiries"]] == ["air_travel", "lookup"]
    assert operator_view["inquiries"][0]["asked_by"] == "Sky Airlines"
    record_id = operator_view["score"]["contributions"][0]["record_id"]
    assert operator_view["score"]["sub_scores"]["judicial"] < 0

    retract = api.call(
        "POST",
        f"/v1/records/{record_id}/retraction",
        "court",
        json={"reason": "entered against the wrong person"},
    )
    # The judgment restricts: its retraction waits for a reviewer's confirmation.
    assert retract.status_code == 202
    assert retract.json()["created"] is True
    change = retract.json()["pending_change"]["change_id"]
    confirmed = api.call(
        "POST",
        f"/v1/pending-changes/{change}/confirmation",
        "reviewer",
        json={"reasons": "the court's own register shows the error"},
    )
    assert confirmed.status_code == 200, confirmed.text
    after = api.call(
        "POST", "/v1/decisions", "airline", json={"subject_id": subject_id, "service": "air_travel"}
    ).json()
    assert after["outcome"] == "allow"
    assert_envelope(
        api.call(
            "POST", f"/v1/records/{record_id}/retraction", "bank", json={"reason": "not mine"}
        ),
        404,
    )

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ident not in logged


def test_roles_see_only_what_they_may(api: Api) -> None:
    own = api.world.people[0].public_id
    other = api.world.people[1].public_id
    assert api.call("GET", f"/v1/subjects/{own}/file", "subject").status_code == 200
    assert api.call("GET", f"/v1/subjects/{own}/score", "subject").status_code == 200
    assert api.call("GET", "/v1/me", "subject").json()["subject_id"] == own
    assert_envelope(api.call("GET", f"/v1/subjects/{other}/file", "subject"), 403)
    assert_envelope(api.call("GET", f"/v1/subjects/{other}/score", "subject"), 403)
    for role in ("airline", "bank"):
        assert_envelope(api.call("GET", f"/v1/subjects/{own}/score", role), 403)
        assert_envelope(api.call("GET", f"/v1/subjects/{own}/file", role), 403)
    assert_envelope(api.call("POST", "/v1/records", "airline", json={"records": [{}]}), 403)
    assert_envelope(
        api.call(
            "POST", "/v1/decisions", "bank", json={"subject_id": own, "service": "air_travel"}
        ),
        403,
    )
    assert (
        api.call(
            "GET", f"/v1/subjects/{own}/score", "operator", params={"purpose": "audit"}
        ).status_code
        == 200
    )
    looked = api.call("GET", f"/v1/subjects/{own}/file", "subject").json()["accessed_by"]
    assert [(a["role"], a["action"], a["purpose"]) for a in looked][:2] == [
        ("subject", "file_read", "own file"),
        ("operator", "score_read", "audit"),
    ]


def test_past_scores_are_reproduced(api: Api) -> None:
    own = api.world.people[0].public_id
    then = api.clock.now()
    day = (then - timedelta(days=3)).isoformat()
    api.call(
        "POST",
        "/v1/records",
        "bank",
        json={
            "records": [
                {
                    "source_ref": "L1",
                    "subject_id": own,
                    "record_type": "loan_default",
                    "occurred_at": day,
                    "decision_ref": "REG-1",
                }
            ]
        },
    )
    before = api.call("GET", f"/v1/subjects/{own}/score", "subject").json()
    api.clock.advance(timedelta(days=40))
    api.call(
        "POST",
        "/v1/records",
        "bank",
        json={
            "records": [
                {
                    "source_ref": "L2",
                    "subject_id": own,
                    "record_type": "loan_repaid",
                    "occurred_at": api.clock.now().isoformat(),
                }
            ]
        },
    )
    as_of = api.call(
        "GET", f"/v1/subjects/{own}/score", "subject", params={"as_of": then.isoformat()}
    ).json()
    assert as_of["total"] == before["total"]
    assert as_of["sub_scores"] == before["sub_scores"]
    assert_envelope(
        api.call(
            "GET", f"/v1/subjects/{own}/score", "subject", params={"as_of": "2999-01-01T00:00:00Z"}
        ),
        422,
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b"null",
        b'{"records": null}',
        b'{"records": [null, 1, "x", [], {"occurred_at": "yesterday"}]}',
        b'{"records": [{"source_ref": "\\u0000", "subject_id": 5, "record_type": 1e309}]}',
        b'{"records": [{"source_ref": "a", "subject_id": "s", "record_type": "t", '
        b'"occurred_at": "2020-01-01", "quantity": -1}]}',
        b"[" * 5000 + b"]" * 5000,
        b'{"records": [{"source_ref": "a", "identifier": "' + b"9" * 39 + b'", '
        b'"record_type": "loan_repaid", "occurred_at": "2020-01-01T00:00:00"}]}',
    ],
)
def test_hostile_input_never_causes_a_500(api: Api, payload: bytes) -> None:
    for path, role in (
        ("/v1/records", "bank"),
        ("/v1/decisions", "airline"),
        ("/v1/subjects", "registry"),
        ("/v1/subjects/lookup", "airline"),
    ):
        response = api.call(
            "POST", path, role, content=payload, headers={"Content-Type": "application/json"}
        )
        assert response.status_code < 500, (path, response.text)


def test_a_subject_proves_a_record_on_their_file_is_in_the_signed_log(api: Api) -> None:
    own = api.world.people[0].public_id
    api.call(
        "POST",
        "/v1/records",
        "bank",
        json={
            "records": [
                {
                    "source_ref": "P1",
                    "subject_id": own,
                    "record_type": "loan_repaid",
                    "occurred_at": api.clock.now().isoformat(),
                }
            ]
        },
    )
    file = api.call("GET", f"/v1/subjects/{own}/file", "subject").json()
    record_id = file["score"]["contributions"][0]["record_id"]
    seq = file["log_entries"][record_id]
    checkpoint = api.client.get("/v1/log/checkpoint").json()
    entry = api.call("GET", f"/v1/log/entries/{seq}", "subject").json()
    assert entry["entry"]["data"]["record"] == record_id
    leaf = entry["entry"]["leaf_data"].encode()
    assert leaf_hash(leaf).hex() == entry["leaf_hash"]
    proof = api.client.get(
        "/v1/log/proof/inclusion", params={"seq": seq, "tree_size": checkpoint["tree_size"]}
    ).json()
    assert proof["root_hash"] == checkpoint["root_hash"]
    assert verify_inclusion(
        leaf_hash(leaf),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(checkpoint["root_hash"]),
    )
    # Another subject's entry data is not for everyone.
    other = api.call("GET", f"/v1/log/entries/{seq}", "airline").json()
    assert other["entry"] is None


def test_a_resend_with_other_content_is_a_409_for_that_record(api: Api) -> None:
    own = api.world.people[0].public_id
    first = {
        "source_ref": "C1",
        "subject_id": own,
        "record_type": "loan_repaid",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    assert api.call("POST", "/v1/records", "bank", json={"records": [first]}).status_code == 200
    again = api.call("POST", "/v1/records", "bank", json={"records": [first]}).json()
    assert again["results"][0]["status"] == "duplicate"
    changed = {**first, "occurred_at": "2026-01-02T00:00:00Z"}
    result = api.call("POST", "/v1/records", "bank", json={"records": [changed]}).json()
    error = result["results"][0]["error"]
    assert (error["code"], error["status"]) == ("source_ref_conflict", 409)
