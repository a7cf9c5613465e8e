"""What the browser journeys share: the live server's world (:class:`Live`), what a page
asked for and said (:class:`Watch`), the accessibility check (axe-core), screenshots and
the check that Chinese text is drawn with a CJK font.

The fixtures that hand these out are in ``conftest.py``; docs/web.md ("Browser tests")
says how to run the tests and what they check.
"""

from __future__ import annotations

import functools
import json
import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Route

ROOT = Path(__file__).resolve().parents[2]
#: Where screenshots go: ``test-output/screenshots/<lang>/<name>.png`` (git-ignored).
OUTPUT = ROOT / "test-output"
#: The vendored accessibility engine (tests only; see its README).
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
#: The axe-core rule tags every page must pass.
AXE_TAGS = ("wcag2a", "wcag2aa")
#: What the browser tests need from Debian, and the script that installs it.
PACKAGES = "chromium fonts-noto-cjk"
INSTALL_HINT = (
    f"install the Debian packages `{PACKAGES}` "
    f"(scripts/ensure-browser.sh does it: `bash scripts/ensure-browser.sh`)"
)
#: The only host a page may ask anything of: the live server on the loopback.
LOOPBACK = "127.0.0.1"
#: The font families that count as drawing Chinese (fonts-noto-cjk).
CJK_FONTS = re.compile(r"Noto (Sans|Serif) CJK", re.IGNORECASE)


def chromium_executable() -> str:
    """Debian's chromium (``CREDENCE_CHROMIUM`` names another); fails, never skips, when
    it is missing: the browser tests are part of ``make test``."""
    path = os.environ.get("CREDENCE_CHROMIUM", "/usr/bin/chromium")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the browser tests need Chromium at {path} (CREDENCE_CHROMIUM names another): "
            f"{INSTALL_HINT}",
            pytrace=False,
        )
    return path


# --- the live server's world -------------------------------------------------------------


@dataclass
class Live:
    """A ``credence serve`` process on the loopback, on a store built for the journeys.

    * ``editions``: the published rulebook editions, oldest first (the last in force);
    * ``subject_key``: a key of the role ``subject`` for ``subject_id`` (the opaque
      public id of the first person), whose file holds ``records["own"]`` (a recent
      ``loan_default``, negative, with a decision reference: disputable) and
      ``records["old"]`` (an older ``credit_card_default``);
    * ``admin_key``: an operator's key, which may issue and revoke keys;
    * ``keys``: a key per role (``bank``, ``court``, ``registry``, ``party``,
      ``subject``, ``operator``, ``reviewer``), as :func:`tests.server.keyed_world`;
    * at least one signed checkpoint of the transparency log, signed with the key at
      ``log_key_path`` (the server's).

    Shared by every test of a worker: a test that revokes a key revokes one it issued
    (:meth:`issue_subject_key`), never ``subject_key``.
    """

    url: str
    db_url: str
    workdir: Path
    log_key_path: Path
    editions: tuple[str, ...]
    subject_id: str
    subject_key: str
    admin_key: str
    keys: dict[str, str]
    records: dict[str, str]
    other_subjects: tuple[str, ...] = ()

    def api(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        """A call to the live server's API, with ``key`` (default: the admin's)."""
        headers = {"Authorization": f"Bearer {key or self.admin_key}", **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def issue_subject_key(self, subject_id: str | None = None, name: str = "journey") -> str:
        """A new subject key (for ``subject_id``, default the live subject's)."""
        body = {"role": "subject", "name": name, "subject_id": subject_id or self.subject_id}
        response = self.api("POST", "/v1/keys", json=body)
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def revoke(self, key: str) -> None:
        """Revoke ``key`` now, as an operator would."""
        response = self.api("POST", f"/v1/keys/{key[:12]}/revocation")
        assert response.status_code == 200, response.text


# --- what a page asked for and said ------------------------------------------------------


@dataclass
class Watch:
    """Everything the pages of one browser context asked for from another host (refused),
    and every console error or warning, uncaught exception and Content-Security-Policy
    violation they reported. The ``page`` fixtures fail a test whose pages left any,
    except messages a test expects (:meth:`allow`)."""

    foreign: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console messages matching ``pattern`` (a regular expression)."""
        self.allowed.append(re.compile(pattern))

    def route(self, route: Route, request: Request) -> None:
        host = urlsplit(request.url).hostname
        if host == LOOPBACK:
            route.continue_()
            return
        self.foreign.append(request.url)
        route.abort("blockedbyclient")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"[{message.type}] {message.text} ({message.location})")

    def on_error(self, error: Exception) -> None:
        self.errors.append(str(error))

    def problems(self) -> list[str]:
        unexpected = [m for m in self.console if not any(p.search(m) for p in self.allowed)]
        return (
            [f"asked another host: {url}" for url in self.foreign]
            + [f"console: {m}" for m in unexpected]
            + [f"uncaught: {e}" for e in self.errors]
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the pages were not clean:\n  " + "\n  ".join(problems)


_WATCHES: weakref.WeakKeyDictionary[Page, Watch] = weakref.WeakKeyDictionary()


def watch(page: Page) -> Watch:
    """The :class:`Watch` of the context ``page`` belongs to."""
    return _WATCHES[page]


def watched(page: Page, w: Watch) -> Page:
    """``page``, its console and uncaught errors recorded in ``w`` (once)."""
    if page in _WATCHES:
        return page
    _WATCHES[page] = w
    page.on("console", w.on_console)
    page.on("pageerror", w.on_error)
    return page


# --- checks ------------------------------------------------------------------------------


@functools.cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8") + "\n;true"


def assert_accessible(page: Page, *, known: Mapping[str, str] | None = None) -> None:
    """axe-core finds no violation of the WCAG 2 A and AA rules on the page as it is.

    ``known`` names rules not run on this page, each with the reason (only for markup
    Credence does not write, such as a vendored tool's; docs/web.md lists them).
    axe is evaluated through the DevTools protocol (``page.evaluate``), which the page's
    Content-Security-Policy does not govern: the pages refuse inline scripts."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    result = page.evaluate(
        """async ([tags, off]) => {
            const rules = Object.fromEntries(off.map(id => [id, {enabled: false}]));
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: tags}, rules, resultTypes: ['violations'],
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary})),
            }));
        }""",
        [list(AXE_TAGS), sorted(known or {})],
    )
    if result:
        lines = [f"axe-core: {len(result)} violation(s) on {page.url}"]
        for v in result:
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']}")
            for node in v["nodes"]:
                summary = " ".join(str(node["summary"] or "").split())
                lines.append(f"    {json.dumps(node['target'])}: {summary}")
        pytest.fail("\n".join(lines), pytrace=False)


def page_lang(page: Page) -> str:
    """The language the page says it is in (``<html lang>``), ``und`` if none."""
    lang = page.evaluate("document.documentElement.lang")
    return str(lang or "und")


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A PNG of the whole page (or, with ``full_page=False``, of what the window shows)
    at ``test-output/screenshots/<lang>/<name>.png``, ``<lang>`` being the page's own
    ``<html lang>``."""
    path = OUTPUT / "screenshots" / page_lang(page) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path


def fonts_drawing(page: Page, selector: str) -> dict[str, int]:
    """The fonts Chromium drew the text of the first element matching ``selector`` and
    its descendants with, and how many glyphs each (from the DevTools protocol: what was
    drawn, not what the stylesheet asked for)."""
    cdp = page.context.new_cdp_session(page)
    drawn: dict[str, int] = {}
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        top = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        assert top, f"no {selector} on {page.url}"
        inside = cdp.send("DOM.querySelectorAll", {"nodeId": top, "selector": "*"})["nodeIds"]
        for node in [top, *inside]:
            fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            for f in fonts:
                drawn[str(f["familyName"])] = drawn.get(str(f["familyName"]), 0) + f["glyphCount"]
    finally:
        cdp.detach()
    return drawn


def assert_cjk_drawn(page: Page, selector: str = "h1") -> None:
    """The Chinese text of ``selector`` is drawn with a Noto CJK font, not as boxes."""
    text = page.locator(selector).first.inner_text()
    assert re.search(r"[\u4e00-\u9fff]", text), f"no Chinese in {selector}: {text!r}"
    fonts = fonts_drawing(page, selector)
    assert any(CJK_FONTS.search(f) and n > 0 for f, n in fonts.items()), (
        f"the Chinese of {selector} ({text!r}) is not drawn with a CJK font but with {fonts}: "
        f"{INSTALL_HINT}"
    )


def visit(page: Page, name: str, lang: str) -> None:
    """The page as it stands: in ``lang``, accessible, kept as a screenshot."""
    assert page_lang(page) == lang
    assert_accessible(page)
    screenshot(page, name)
