"""``/docs`` and ``/redoc`` work with no network: every asset they load is shipped in the
package and served by the app, and every response carries the security headers (a
Content-Security-Policy, nosniff, no referrer, no framing), including the answers of the
direct decision path, which runs outside FastAPI's middleware."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

import credence.api
from tests.client import Api

VENDOR = Path(credence.api.__file__).parent / "static" / "vendor"
DOC_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
JSON_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _Page(HTMLParser):
    """The URLs a page loads (src/href of script, link, img, ...) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self._script = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "spec-url", "data", "srcset", "poster"):
            if values.get(name):
                self.urls.append(str(values[name]))
        for value in values.values():
            if value and re.search(r"https?://", value):
                self.urls.append(value)
        if tag == "script" and not values.get("src"):
            self._in_script, self._script = True, ""

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script:
            self._in_script = False
            self.inline_scripts.append(self._script)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _assert_common(response: Any) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, name


@pytest.fixture
def backend() -> str:
    """The headers and the pages do not depend on the store: SQLite alone."""
    return "sqlite"


def test_doc_pages_load_nothing_from_another_host(api: Api) -> None:
    for path in DOC_PAGES:
        response = api.client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "fonts.googleapis" not in html
        assert "cdn.jsdelivr" not in html
        for url in _parse(html).urls:
            assert not urlsplit(url).netloc, f"{path} loads {url} from another host"
        # Nothing a script on the page names could be fetched from another host either:
        # Swagger UI shows a badge from an online validator unless told not to.
        for script in _parse(html).inline_scripts:
            assert not re.search(r"https?://", script), script


def test_every_asset_of_the_doc_pages_is_the_vendored_file(api: Api) -> None:
    assets = []
    for path in ("/docs", "/redoc"):
        page = _parse(api.client.get(path).text)
        assert any(u.endswith(".js") for u in page.urls), page.urls
        assets += [urljoin(path, u) for u in page.urls if u != "/openapi.json"]
    # The vendored files, and the app's one correction to Swagger UI's colours.
    assert "/static/docs.css" in assets
    for url in assets:
        assert url.startswith("/static/vendor/") or url == "/static/docs.css", url
        response = api.client.get(url)
        assert response.status_code == 200, url
        shipped = VENDOR.parent / url.removeprefix("/static/")
        assert response.content == shipped.read_bytes(), url
        allowed = CONTENT_TYPES[shipped.suffix]
        assert response.headers["content-type"].split(";")[0] in allowed, url
        _assert_common(response)
        assert response.headers["content-security-policy"] == JSON_POLICY


def test_the_vendored_files_match_the_lock() -> None:
    lock = (VENDOR / "SHA256SUMS").read_text().splitlines()
    assert lock
    for line in lock:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for folder in (p for p in VENDOR.iterdir() if p.is_dir()):
        assert (folder / "LICENSE").is_file(), folder
        assert (folder / "README.md").is_file(), folder


def test_doc_pages_allow_their_inline_scripts_by_hash_only(api: Api) -> None:
    for path in DOC_PAGES:
        _assert_page_policy(api.client.get(path))
    # Swagger UI needs no inline style; ReDoc writes its styles as it renders, and runs
    # its search in a worker.
    docs = _directives(api.client.get("/docs").headers["content-security-policy"])
    assert docs["style-src"] == ["'self'"]
    redoc = _directives(api.client.get("/redoc").headers["content-security-policy"])
    assert redoc["style-src"] == ["'self'", "'unsafe-inline'"]
    assert redoc["worker-src"] == ["blob:"]


def _assert_page_policy(response: Any) -> None:
    _assert_common(response)
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    hashes = {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _parse(response.text).inline_scripts
    }
    assert set(scripts) == {"'self'", *hashes}
    for directive, sources in policy.items():
        for source in sources:
            assert "://" not in source, directive
            assert source not in ("*", "https:", "http:"), directive


JSON_ANSWERS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/v1/health", {}, 200),
    ("GET", "/openapi.json", {}, 200),
    ("GET", "/no/such/page", {}, 404),
    ("GET", "/static/vendor/no-such-file.js", {}, 404),
    ("POST", "/v1/keys", {"headers": {"Authorization": "Bearer nope"}, "json": {}}, 401),
    ("POST", "/v1/decisions", {"json": {"service": 5}, "role": "airline"}, 422),
    ("POST", "/v1/decisions", {"content": b"{", "role": "airline"}, 422),
    ("POST", "/v1/decisions", {"json": {"service": "air_travel"}}, 401),
]


def test_json_answers_carry_the_strict_policy(api: Api) -> None:
    for method, path, kwargs, status in JSON_ANSWERS:
        response = api.call(method, path, **kwargs)
        assert response.status_code == status, (method, path)
        _assert_common(response)
        assert response.headers["content-security-policy"] == JSON_POLICY, (method, path)


def _app_must_not_answer(api: Api) -> None:
    """Make the application behind the direct decision path fail, so an answer can only
    come from the direct path itself."""

    async def refuse(*_: Any) -> None:
        raise AssertionError("the application answered, not the direct path")

    app: Any = api.client.app
    app._guarded = refuse
    app._application = refuse


def test_the_direct_decision_path_sends_the_same_headers(api: Api) -> None:
    body = {"subject_id": api.world.people[0].public_id, "service": "air_travel"}
    _app_must_not_answer(api)
    answered = api.call("POST", "/v1/decisions", "airline", json=body)
    refused = api.client.post(
        "/v1/decisions", json=body, headers={"Authorization": "Bearer not-a-key"}
    )
    for response, status in ((answered, 200), (refused, 401)):
        assert response.status_code == status
        _assert_common(response)
        assert response.headers["content-security-policy"] == JSON_POLICY
