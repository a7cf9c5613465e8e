"""Fixtures of the browser journeys: Debian's Chromium driven by Playwright, a live
``credence serve`` on a store built for them, and pages that may ask nothing of any host
but the server.

* ``live`` (one per test worker): the server and its world, :class:`tests.browser.helpers.Live`.
* ``browser``: one Chromium per worker, started when a browser test first needs it and
  closed when the worker moves on to other tests (Playwright's sync API marks the
  thread's asyncio loop as running, which other tests' ``asyncio.run`` would trip on).
* ``page``: a page in a fresh browser context, English unless parametrized
  (``@pytest.mark.parametrize("page", ["zh-CN"], indirect=True)``); ``page_in(lang)``
  opens more, each in a context of its own. Each context refuses every request to a
  host other than 127.0.0.1 and records it; the test fails if any page asked another
  host, logged a console error or warning (a refused Content-Security-Policy is one),
  or threw, except messages it allowed (``watch(page).allow(regex)``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from credence.clock import FixedClock
from credence.db import make_engine, session_factory
from credence.migrate import upgrade
from credence.rulebook import store
from credence.rulebook.loader import default_text
from credence.translog.checkpoints import checkpoint
from credence.translog.keys import load_signer
from tests.browser.helpers import Live, Watch, chromium_executable, watched
from tests.server import Server, keyed_world, own_records
from tests.world import rec, submit

HERE = Path(__file__).parent
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


# --- the live server ---------------------------------------------------------------------


def _later_edition() -> tuple[str, str, str]:
    """The default rulebook's version, and a later edition of it (its version and text):
    the same book with its first penalty 30 points heavier."""
    text = default_text()
    found = re.search(r'^version = "(\d+)\.(\d+)"', text, flags=re.MULTILINE)
    assert found, "the default rulebook's version is not <year>.<number>"
    year, number = found.groups()
    first, later = f"{year}.{number}", f"{year}.{int(number) + 1}"
    text = text.replace(found.group(0), f'version = "{later}"', 1)
    text, changed = re.subn(
        r"^points = -(\d+)",
        lambda m: f"points = -{int(m.group(1)) + 30}",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    assert changed, "the default rulebook has no penalty to change"
    return first, later, text


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``credence serve`` on a SQLite store (the store-level promises are tested on both
    stores elsewhere): the default rulebook and a later edition (in force), three people and a
    company with records, keys per role, a signed checkpoint of the log."""
    workdir = tmp_path_factory.mktemp("live")
    db_url = f"sqlite:///{workdir / 'credence.db'}"
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(days=1))
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        k = keyed_world(sessions, clock)
        world = k.world
        records = own_records(sessions, k, now)
        others = world.people[1], world.people[2]
        statuses = submit(
            sessions,
            world,
            "bank",
            now - timedelta(days=1),
            rec("b-1", others[0], "loan_repaid", now - timedelta(days=60)),
            rec("b-2", others[1], "loan_default", now - timedelta(days=90), decision_ref="HCB-9"),
        )
        assert set(statuses) == {"created"}, statuses
        first, later, text = _later_edition()
        with sessions.begin() as session:
            store.publish(session, text=text, at=now - timedelta(hours=1))
        signer, _ = load_signer(workdir / "log.key", name="credence.example/log")
        with sessions.begin() as session:
            checkpoint(session, signer=signer, at=now - timedelta(minutes=1))
    finally:
        engine.dispose()
    # A generous wait: on a busy machine the server takes its time to import.
    server = Server(db_url, workdir).start(timeout=120)
    try:
        yield Live(
            url=server.url,
            db_url=db_url,
            workdir=workdir,
            log_key_path=workdir / "log.key",
            editions=(first, later),
            subject_id=world.people[0].public_id,
            subject_key=k.keys["subject"],
            admin_key=k.keys["operator"],
            keys=dict(k.keys),
            records=records,
            other_subjects=tuple(p.public_id for p in others),
        )
    finally:
        server.stop()


# --- the browser -------------------------------------------------------------------------


class _Chromium:
    """One Playwright driver and Chromium for the worker, started on first use."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None:
            executable = chromium_executable()
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=executable)
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None


_CHROMIUM = _Chromium()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Close the browser, once the test's fixtures are torn down, when the next test of
    this worker is not a browser test."""
    yield
    if nextitem is None or HERE not in nextitem.path.parents:
        _CHROMIUM.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _CHROMIUM.close()


@pytest.fixture
def browser() -> Browser:
    """The worker's Chromium (Debian's, through its executable path)."""
    return _CHROMIUM.get()


def watch_page(w: Watch, page: Page) -> None:
    watched(page, w)


@pytest.fixture
def page_in(browser: Browser, live: Live) -> Iterator[Callable[[str], Page]]:
    """``page_in(lang)``: a page in a new context whose browser asks for ``lang``
    (``en``, ``zh-CN``) first; the test fails at teardown if any page was not clean."""
    opened: list[tuple[Watch, BrowserContext]] = []

    def open_page(lang: str = "en") -> Page:
        w = Watch()
        context = browser.new_context(
            base_url=live.url, locale=lang, viewport=VIEWPORT, service_workers="block"
        )
        context.route("**/*", w.route)
        # Pages the page opens (a new window, a printable view) are watched too.
        context.on("page", functools.partial(watch_page, w))
        opened.append((w, context))
        return watched(context.new_page(), w)

    yield open_page
    problems: list[str] = []
    for w, context in opened:
        problems += w.problems()
        context.close()
    assert not problems, "the pages were not clean:\n  " + "\n  ".join(problems)


@pytest.fixture
def page(request: pytest.FixtureRequest, page_in: Callable[[str], Page]) -> Page:
    """A page in a fresh context, in English or the language the test parametrizes."""
    return page_in(str(getattr(request, "param", "en")))
