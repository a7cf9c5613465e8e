"""Journeys through the transparency log's pages: a visitor reads the latest checkpoint
and the key's fingerprint at /log, lets the browser check the checkpoint's signature and
an entry's inclusion proof at /log/verify, sees every tampered input refused with its
own message and the restored inputs verified again, in English and in Chinese; the
browser's root is the one credence.translog computes from the same proof."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from credence.translog import merkle
from credence.translog.checkpoints import verify_checkpoint
from credence.translog.keys import parse_verifier_key
from tests.browser.helpers import Live, assert_accessible, assert_cjk_drawn, screenshot, watch

#: What each language's page says for a step that passed or was refused.
SAYS = {
    "en": {"ok": "Verified", "refused": "Refused", "title": "Transparency log"},
    "zh-CN": {"ok": "已核验", "refused": "已拒绝", "title": "透明日志"},
}
STEPS = ("key", "note", "signature", "inclusion")
TIMEOUT = 15_000


def verified(page: Page, lang: str) -> None:
    """Every step and the page's status say the check passed."""
    status = page.locator("#log-status")
    expect(status).to_have_attribute("data-state", "ok", timeout=TIMEOUT)
    expect(status).to_contain_text(SAYS[lang]["ok"])
    for step in STEPS:
        expect(page.locator(f"#step-{step}")).to_have_attribute("data-state", "ok")
    expect(page.locator("#step-signature")).to_contain_text(SAYS[lang]["ok"])
    expect(page.locator("#step-inclusion")).to_contain_text(SAYS[lang]["ok"])


def refused(page: Page, lang: str, step: str, says: str) -> None:
    """The page's status and ``step`` say the check was refused, the step with ``says``."""
    status = page.locator("#log-status")
    expect(status).to_have_attribute("data-state", "refused", timeout=TIMEOUT)
    expect(status).to_contain_text(SAYS[lang]["refused"])
    item = page.locator(f"#step-{step}")
    expect(item).to_have_attribute("data-state", "refused")
    expect(item).to_contain_text(says)


def check_again(page: Page) -> None:
    page.locator("#log-status").evaluate("e => { e.dataset.state = 'pending'; }")
    page.locator("#check").click()


def flip_hex(text: str, at: int = 0) -> str:
    """``text`` with its hex digit at ``at`` changed."""
    digit = "1" if text[at] == "0" else "0"
    return text[:at] + digit + text[at + 1 :]


def flip_signature(note: str) -> str:
    """The note with one base64 character of its signature (not of the key id) changed."""
    lines = note.split("\n")
    name_and_blob = lines[-2].rsplit(" ", 1)
    blob = name_and_blob[1]
    at = 40  # past the key id's 4 bytes (6 characters), before the padding
    swapped = "B" if blob[at] == "A" else "A"
    lines[-2] = f"{name_and_blob[0]} {blob[:at]}{swapped}{blob[at + 1 :]}"
    return "\n".join(lines)


def open_verify(page: Page) -> None:
    page.goto("/log")
    page.locator("main a[href='/log/verify']").first.click()
    expect(page).to_have_url(re.compile(r"/log/verify$"))


def test_a_visitor_checks_the_log_and_sees_tampering_refused(page: Page, live: Live) -> None:
    key = live.api("GET", "/v1/log/public-key").json()
    page.goto("/log")
    expect(page.locator("h1")).to_have_text("Transparency log")
    digest = hashlib.sha256(base64.b64decode(key["public_key"])).hexdigest()
    grouped = " ".join(digest[i : i + 4] for i in range(0, 64, 4))
    expect(page.locator("#fingerprint")).to_have_text(grouped)
    expect(page.locator("#key-id")).to_have_text(key["key_id"])
    expect(page.locator("#signed-note")).to_contain_text("\u2014 credence.example/log ")
    assert_accessible(page)
    screenshot(page, "log")

    open_verify(page)
    verified(page, "en")
    # The browser computed the fingerprint and key id the /log page shows.
    expect(page.locator("#step-key")).to_contain_text(grouped)
    expect(page.locator("#step-key")).to_contain_text(key["key_id"])
    assert_accessible(page)
    screenshot(page, "log-verify")

    note = page.locator("#note").input_value()
    proof = page.locator("#proof").input_value()
    assert proof, "the newest entry's proof has hashes"

    # A proof hash changed: the recomputed root is not the signed one.
    page.locator("#proof").fill(flip_hex(proof))
    check_again(page)
    refused(page, "en", "inclusion", "not the checkpoint's root")
    expect(page.locator("#step-signature")).to_have_attribute("data-state", "ok")
    assert_accessible(page)
    # Put back: verified again.
    page.locator("#proof").fill(proof)
    check_again(page)
    verified(page, "en")

    # The signature changed: refused, and the proof still leads to the root.
    page.locator("#note").fill(flip_signature(note))
    check_again(page)
    refused(page, "en", "signature", "does not match")
    expect(page.locator("#step-inclusion")).to_have_attribute("data-state", "ok")
    page.locator("#note").fill(note)
    check_again(page)
    verified(page, "en")


def next_size(note: str) -> str:
    """The note with its tree size one larger."""
    return re.sub(r"\n(\d+)\n", lambda m: f"\n{int(m[1]) + 1}\n", note, count=1)


def other_root(note: str) -> str:
    """The note with the first base64 character of its root changed."""
    swap = {"A": "B"}
    return re.sub(r"\n(\d+)\n(.)", lambda m: f"\n{m[1]}\n{swap.get(m[2], 'A')}", note, count=1)


#: A changed input: its field, the change, the step that refuses it and what it says.
TAMPERED: dict[str, tuple[str, Callable[[str], str], str, str]] = {
    "leaf-hash": ("#leaf-hash", lambda v: flip_hex(v, 63), "inclusion", "not the checkpoint's"),
    "leaf-index-beyond": ("#leaf-index", lambda v: str(int(v) + 1), "inclusion", "not in a tree"),
    "leaf-index-other": ("#leaf-index", lambda v: str(int(v) - 1), "inclusion", "Refused: "),
    "proof-longer": ("#proof", lambda v: v + "\n" + "00" * 32, "inclusion", "more hashes than"),
    "proof-shorter": ("#proof", lambda v: v.rsplit("\n", 1)[0], "inclusion", "fewer hashes"),
    "proof-not-hex": ("#proof", lambda v: "xyz\n" + v, "inclusion", "proof hash 1 is not 64"),
    # The tree size or the root in the note: the signature no longer matches.
    "tree-size": ("#note", next_size, "signature", "does not match"),
    "root": ("#note", other_root, "signature", "does not match"),
    "key-name-in-signature": (
        "#note",
        lambda v: v.replace("\u2014 credence.example/log", "\u2014 other.example/log"),
        "signature",
        "no signature line by credence.example/log",
    ),
    "no-final-newline": ("#note", lambda v: v.rstrip("\n"), "note", "ends with a newline"),
    "no-blank-line": ("#note", lambda v: v.replace("\n\n", "\n"), "note", "no blank line"),
    "another-key": (
        "#public-key",
        lambda v: base64.b64encode(bytes(32)).decode(),
        "signature",
        "no signature line by",
    ),
    "key-not-32-bytes": ("#public-key", lambda v: v[:-4], "key", "not 32 bytes in base64"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_each_tampered_input_is_refused_with_its_own_message(page: Page, case: str) -> None:
    field, change, step, says = TAMPERED[case]
    page.goto("/log/verify")
    verified(page, "en")
    before = page.locator(field).input_value()
    page.locator(field).fill(change(before))
    check_again(page)
    refused(page, "en", step, says)
    page.locator("#restore").click()
    verified(page, "en")
    assert page.locator(field).input_value() == before


def test_the_browsers_root_is_the_one_python_computes(page: Page, live: Live) -> None:
    """The reference check: the inputs the page verified, checked again by
    credence.translog (signature and RFC 9162 inclusion), give the root the browser
    computed and showed."""
    page.goto("/log/verify")
    verified(page, "en")
    key = parse_verifier_key(live.api("GET", "/v1/log/public-key").json()["verifier_key"])
    note = page.locator("#note").input_value()
    origin, size, root = verify_checkpoint(note, key)  # the exact text the browser read
    index = int(page.locator("#leaf-index").input_value())
    leaf = bytes.fromhex(page.locator("#leaf-hash").input_value())
    path = [bytes.fromhex(h) for h in page.locator("#proof").input_value().split("\n")]
    assert merkle.verify_inclusion(leaf, index, size, path, root)
    assert page.locator("#step-inclusion").get_attribute("data-root") == root.hex()
    assert index == size - 1  # the newest entry by default
    # A changed hash fails in Python as in the browser.
    bad = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
    assert not merkle.verify_inclusion(leaf, index, size, bad, root)
    assert origin == key.name


def test_another_entry_is_fetched_by_its_number(page: Page, live: Live) -> None:
    first = live.api("GET", "/v1/log/proof/inclusion", params={"seq": 1}).json()
    page.goto("/log/verify")
    verified(page, "en")
    page.locator("#seq").fill("1")
    page.locator("#fetch").click()
    expect(page.locator("#leaf-index")).to_have_value(str(first["leaf_index"]), timeout=TIMEOUT)
    verified(page, "en")
    expect(page.locator("#leaf-hash")).to_have_value(first["leaf_hash"])
    # Not a number: said before anything is fetched.
    page.locator("#seq").fill("one")
    page.locator("#fetch").click()
    expect(page.locator("#log-status")).to_have_text(
        "An entry number is a whole number, 0 or more."
    )
    # No such entry: the API's 404, said in words.
    watch(page).allow(r"404")
    page.locator("#seq").fill("999999999")
    page.locator("#fetch").click()
    expect(page.locator("#log-status")).to_contain_text("The log has no entry 999999999")


@pytest.mark.parametrize("page", ["zh-CN"], indirect=True)
def test_the_same_journey_in_chinese(page: Page) -> None:
    page.goto("/log")
    expect(page.locator("h1")).to_have_text(SAYS["zh-CN"]["title"])
    assert_cjk_drawn(page, "h1")
    assert_accessible(page)
    screenshot(page, "log")
    open_verify(page)
    verified(page, "zh-CN")
    assert_accessible(page)
    screenshot(page, "log-verify")
    proof = page.locator("#proof").input_value()
    page.locator("#proof").fill(flip_hex(proof))
    check_again(page)
    refused(page, "zh-CN", "inclusion", "而不是检查点的根哈希")
    page.locator("#proof").fill(proof)
    check_again(page)
    verified(page, "zh-CN")
    note = page.locator("#note").input_value()
    page.locator("#note").fill(flip_signature(note))
    check_again(page)
    refused(page, "zh-CN", "signature", "签名不匹配")
    assert_accessible(page)
    screenshot(page, "log-verify-refused")
    page.locator("#note").fill(note)
    check_again(page)
    verified(page, "zh-CN")


@pytest.fixture
def page_without_js(browser: Browser, live: Live) -> Iterator[Page]:
    """A page whose browser runs no script at all."""
    context = browser.new_context(base_url=live.url, locale="en", java_script_enabled=False)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_without_javascript_the_page_says_what_it_needs(page_without_js: Page) -> None:
    page = page_without_js
    page.goto("/log/verify")
    nojs = page.locator("#log-nojs")
    expect(nojs).to_be_visible()
    expect(nojs).to_contain_text("needs JavaScript")
    expect(nojs).to_contain_text("credence log prove --seq")
    expect(page.locator("#log-verify")).to_be_hidden()


def test_when_the_script_cannot_load_the_page_still_explains(page: Page) -> None:
    """The same state, where axe can run: the script's request refused."""
    watch(page).allow(r"log-verify\.js|ERR_FAILED|Failed to load resource")
    page.route("**/assets/log-verify.js", lambda route: route.abort())
    page.goto("/log/verify")
    expect(page.locator("#log-nojs")).to_be_visible()
    expect(page.locator("#log-verify")).to_be_hidden()
    assert_accessible(page)
    screenshot(page, "log-verify-no-script")
