"""The transparency log's pages (/log, /log/verify): the checkpoint and the key as
credence.translog computes them, in both languages, under the portal's strict policy;
and the proof the verification page checks, checked here in Python the same way."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from credence.api.security_headers import PORTAL_POLICY
from credence.portal import log as log_pages
from credence.translog import merkle
from credence.translog.checkpoints import verify_checkpoint
from credence.translog.keys import parse_verifier_key
from tests.client import Api
from tests.portal.page import Page

PAGES = ["/log", "/log/verify"]
SCRIPT = Path(log_pages.__file__).parent / "static" / "log-verify.js"


def published(api: Api) -> tuple[dict[str, Any], dict[str, str]]:
    checkpoint = api.get("/v1/log/checkpoint").json()
    key = api.get("/v1/log/public-key").json()
    return checkpoint, key


def test_the_log_page_shows_the_checkpoint_and_the_keys_fingerprint(api: Api) -> None:
    checkpoint, key = published(api)
    raw = base64.b64decode(key["public_key"])
    digest = hashlib.sha256(raw).hexdigest()
    fingerprint = " ".join(digest[i : i + 4] for i in range(0, 64, 4))
    for lang, tag in (("en", "en"), ("zh-CN", "zh-CN")):
        response = api.get("/log", params={"lang": lang})
        assert response.status_code == 200, response.text
        page = Page.parse(response.text)
        assert page.lang == tag
        # The note exactly as published: its newlines and the em dash kept.
        assert f'id="signed-note" lang="en">{checkpoint["signed_note"]}</pre>' in response.text
        assert checkpoint["root_hash"] in page.text
        assert checkpoint["origin"] in page.text
        assert key["key_id"] in page.text
        assert key["verifier_key"] in page.text
        assert fingerprint in page.text
        assert "credence log verify --public-key" in page.text
        assert "credence log prove --seq N" in page.text
        assert "/log/verify" in page.urls
    # The fingerprint is of the raw key, as the page says; the key verifies the note.
    verifier = parse_verifier_key(key["verifier_key"])
    assert log_pages.fingerprint(verifier) == fingerprint
    origin, size, root = verify_checkpoint(str(checkpoint["signed_note"]), verifier)
    assert (origin, size, root.hex()) == (
        checkpoint["origin"],
        checkpoint["tree_size"],
        checkpoint["root_hash"],
    )
    assert size > 0


def test_the_pages_speak_chinese(api: Api) -> None:
    log = Page.parse(api.get("/log", params={"lang": "zh-CN"}).text).words
    assert "透明日志" in log
    assert "指纹" in log
    assert "The latest checkpoint" not in log
    verify = Page.parse(api.get("/log/verify", params={"lang": "zh-CN"}).text).words
    assert "在浏览器中核验日志" in verify
    assert "Fetch and check" not in verify
    # The script's messages are in the page, translated, each with its placeholders.
    assert "已核验" in verify


def test_the_verify_page_runs_its_script_from_a_file_and_explains_itself_without(
    api: Api,
) -> None:
    checkpoint, _ = published(api)
    for path in PAGES:
        for lang in ("en", "zh-CN"):
            response = api.get(path, params={"lang": lang})
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-security-policy"] == PORTAL_POLICY
            assert "script-src 'self'" in PORTAL_POLICY
            assert "connect-src 'self'" in PORTAL_POLICY
            page = Page.parse(response.text)
            assert page.inline == [], (path, lang, page.inline)
    html = api.get("/log/verify", params={"lang": "en"}).text
    page = Page.parse(html)
    assert "/assets/log-verify.js" in page.urls
    # Without JavaScript: the page says what it needs and shows the command line.
    assert "needs JavaScript" in page.words
    assert "credence log prove --seq" in page.words
    assert re.search(r'<div id="log-verify" hidden>', html)
    # The entry filled in is the newest the checkpoint covers.
    seq = re.search(r'id="seq" name="seq"[^>]* value="(\d+)"', html)
    assert seq is not None
    last = api.get(
        "/v1/log/proof/inclusion",
        params={"seq": seq.group(1), "tree_size": checkpoint["tree_size"]},
    ).json()
    assert last["leaf_index"] == checkpoint["tree_size"] - 1
    # The script and its stylesheet are served, as JavaScript and CSS.
    script = api.get("/assets/log-verify.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.text == SCRIPT.read_text(encoding="utf-8")
    assert api.get("/assets/log.css").status_code == 200


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "9" * 30, "１２"])
def test_a_number_that_is_not_an_entry_number_gets_a_400_page(api: Api, text: str) -> None:
    response = api.get("/log/verify", params={"seq": text, "lang": "en"})
    assert response.status_code == 400
    page = Page.parse(response.text)
    assert "is not an entry number" in page.words
    assert text in page.text  # shown as text, never as markup
    assert page.inline == []


def test_a_typed_entry_number_is_filled_in(api: Api) -> None:
    html = api.get("/log/verify", params={"seq": "3"}).text
    assert re.search(r'id="seq" name="seq"[^>]* value="3"', html)


def test_the_proof_the_page_checks_gives_the_checkpoints_root_in_python(api: Api) -> None:
    """The reference for the browser's check: every entry's published proof, folded by
    RFC 9162's algorithm (credence.translog.merkle) and by its literal recursion
    (credence.translog.reference), gives the signed root; a changed hash does not."""
    checkpoint, key = published(api)
    verifier = parse_verifier_key(key["verifier_key"])
    _, size, root = verify_checkpoint(str(checkpoint["signed_note"]), verifier)
    leaves: list[bytes] = []
    seq = 0
    while len(leaves) < size and seq <= 2 * size:
        proof = api.get("/v1/log/proof/inclusion", params={"seq": seq, "tree_size": size})
        seq += 1
        if proof.status_code == 404:  # a sequence number that is no leaf
            continue
        body = proof.json()
        assert body["leaf_index"] == len(leaves)
        path = [bytes.fromhex(h) for h in body["proof"]]
        leaf = bytes.fromhex(body["leaf_hash"])
        assert body["root_hash"] == root.hex()
        assert merkle.verify_inclusion(leaf, body["leaf_index"], size, path, root)
        tampered = [*path[:-1], bytes([path[-1][0] ^ 1]) + path[-1][1:]] if path else path
        if path:
            assert not merkle.verify_inclusion(leaf, body["leaf_index"], size, tampered, root)
        leaves.append(leaf)
    assert len(leaves) == size
    assert merkle.root(leaves) == root
