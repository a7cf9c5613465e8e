"""The public statistics page (/statistics), through HTTP on SQLite and PostgreSQL:
counts of a built world, each cell about fewer than 10 distinct subjects withheld (9
withheld, 10 shown), totals that never give a withheld count away, hostile names
escaped, nothing about anyone, and no inline script or style."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from itertools import count

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.decisions.tables import Inquiry
from credence.disputes import service as disputes
from credence.disputes.service import Answerer
from credence.ledger import registry
from credence.portal import statistics
from credence.portal.statistics import HIDDEN, SMALL, protect
from credence.tiers.service import update_tiers
from tests.client import Api
from tests.due_process import record_id
from tests.portal.page import Page
from tests.world import World, build_world, rec, submit, tier_for

DAY = timedelta(days=1)
HOSTILE = "Evil <script>alert(1)</script> & \u202eKcab\x07 Bank"
NAMES = [f"Resident Name {i:02d}" for i in range(30)]
FEWER = "fewer than 10"
NOT_SHOWN = "not shown"


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock, people=30, names=NAMES)


@dataclass
class Tables(HTMLParser):
    """Every chart's table on a page: figure id -> rows (header cell, then data cells),
    the footer's rows last."""

    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    _figure: str | None = None
    _row: list[str] | None = None
    _cell: list[str] | None = None

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "figure" and "chart" in (values.get("class") or ""):
            self._figure = values["id"]
            assert self._figure is not None
            self.tables[self._figure] = []
        elif tag == "tr" and self._figure:
            self._row = []
        elif tag in {"td", "th"} and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._figure and self._row is not None:
            self.tables[self._figure].append(self._row)
            self._row = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    @classmethod
    def of(cls, html: str) -> dict[str, list[list[str]]]:
        parser = cls()
        parser.feed(html)
        return parser.tables


def row(table: list[list[str]], label: str) -> list[str]:
    found = [r[1:] for r in table if r[0] == label]
    assert len(found) == 1, (label, table)
    return found[0]


def populate(sessions: sessionmaker[Session], world: World, now: datetime) -> None:
    """Tiers, decisions and disputes of the world's 30 people, as of ``now``."""
    book = world.edition.rulebook
    people = world.people
    # Tiers: 10 in A, 9 in B, 7 in C, 4 without a tier; the company none.
    totals = [1000.0] * 10 + [900.0] * 9 + [700.0] * 7
    assert [tier_for(book, t) for t in (1000.0, 900.0, 700.0)] == ["A", "B", "C"]
    with sessions.begin() as session:
        update_tiers(
            session,
            book,
            now - DAY,
            [(p.id, t, (0, 0, 0)) for p, t in zip(people, totals, strict=False)],
        )
    # Decisions (the inquiries each stores).
    recent, old = now - 2 * DAY, now - 100 * DAY
    numbers = count()

    def asked(service: str, outcome: str, who: list[int], at: datetime, times: int = 1) -> None:
        with sessions.begin() as session:
            for _ in range(times):
                for i in who:
                    session.add(
                        Inquiry(
                            public_id=f"inq_test_{next(numbers)}",
                            subject_id=people[i].id,
                            service=service,
                            purpose="test",
                            outcome=outcome,
                            score=1000.0,
                            rulebook_version=book.version,
                            reasons="[]",
                            at=at,
                        )
                    )

    asked("air_travel", "allow", list(range(12)), recent)
    asked("air_travel", "deny", [12, 13, 14], recent)
    asked("air_travel", "allow", list(range(20)), old)
    asked("loan_rate_discount", "reward", list(range(10)), recent, times=2)
    asked("loan_rate_discount", "deny", list(range(10, 20)), recent)
    # 18 decisions, but about 9 people: withheld.
    asked("star_rated_hotel", "allow", list(range(9)), recent, times=2)
    # Disputes: the bank's 22 records disputed, 10 left open, 11 verified, 1 deleted;
    # two of a source with a hostile name, open.
    with sessions.begin() as session:
        hostile = registry.register_source(
            session,
            code="hostile",
            name=HOSTILE,
            kind="bank",
            record_types=["loan_default"],
            rulebook=book,
            at=now - 200 * DAY,
        )
        session.expunge(hostile)
    world.sources["hostile"] = hostile
    reported = now - 20 * DAY
    for i in range(22):
        ref = f"B-{i}"
        done = submit(
            sessions,
            world,
            "bank",
            reported,
            rec(ref, people[i], "loan_default", reported - DAY, decision_ref=ref),
        )
        assert done == ["created"], done
    for i in range(2):
        ref = f"H-{i}"
        done = submit(
            sessions,
            world,
            "hostile",
            reported,
            rec(ref, people[i], "loan_default", reported - DAY, decision_ref=ref),
        )
        assert done == ["created"], done
    opened = now - 5 * DAY
    ids = []
    with sessions.begin() as session:
        for prefix, i in [("B", i) for i in range(22)] + [("H", i) for i in range(2)]:
            ids.append(
                disputes.open_dispute(
                    session,
                    subject=session.merge(people[i]),
                    record_id=record_id(sessions, f"{prefix}-{i}"),
                    reason="Not mine",
                    new_information=None,
                    rulebook=book,
                    at=opened,
                ).dispute_id
            )
    with sessions.begin() as session:
        for n, dispute in enumerate(ids[10:22]):
            disputes.answer_dispute(
                session,
                dispute_id=dispute,
                outcome="deleted" if n == 11 else "verified",
                explanation="Checked.",
                by=Answerer(kind="source", name="bank"),
                rulebook=book,
                at=opened + DAY,
            )


def test_the_figures_of_a_built_world(api: Api, sessions: sessionmaker[Session]) -> None:
    now = api.clock.now()
    populate(sessions, api.world, now)
    # One decision asked through the API: counted with the stored ones.
    asked = api.call(
        "POST",
        "/v1/decisions",
        "airline",
        json={"subject_id": api.world.people[29].public_id, "service": "air_travel"},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["outcome"] == "allow"

    response = api.client.get("/statistics", params={"lang": "en"})
    assert response.status_code == 200, response.text
    tables = Tables.of(response.text)

    # Tiers: 10 shown, 9 and 7 withheld, the total withheld beside them; no company.
    persons = tables["tiers-person"]
    assert persons[0] == ["Tier", "Subjects"]
    assert row(persons, "A") == ["10"]
    assert row(persons, "B") == [FEWER]
    assert row(persons, "C") == [FEWER]
    assert row(persons, "AAA") == [FEWER]
    assert row(persons, "All tiers") == [NOT_SHOWN]
    assert row(tables["tiers-company"], "All tiers") == [FEWER]

    # Decisions in the last 30 days: 12 + 1 allowed; 3 denied withheld.
    recent = tables["decisions-recent-restriction"]
    assert recent[0] == ["Service", "Allowed", "Denied", "All outcomes"]
    assert row(recent, "Air travel") == ["13", FEWER, NOT_SHOWN]
    # 18 decisions about 9 people: withheld (the threshold counts people, not decisions).
    assert row(recent, "Star-rated hotels") == [FEWER, FEWER, FEWER]
    reward = tables["decisions-recent-reward"]
    assert reward[0] == ["Service", "Rewarded", "Denied", "All outcomes"]
    assert row(reward, "Loan rate discount") == ["20", "10", "30"]
    # All time: the 20 older ones too.
    assert row(tables["decisions-all-restriction"], "Air travel") == ["33", FEWER, NOT_SHOWN]

    # Disputes: 10 open shown; 11 verified hidden beside the one deleted (the sources'
    # public status gives their sum); the hostile source's two withheld.
    bank = row(tables["disputes"], "Bank")
    assert tables["disputes"][0][1:] == [
        "Open, awaiting an answer",
        "Verified: the record stands",
        "Corrected",
        "Deleted",
        "Unanswered by the deadline",
        "All disputes",
    ]
    assert bank == ["10", NOT_SHOWN, FEWER, FEWER, FEWER, NOT_SHOWN]
    assert row(tables["disputes"], HOSTILE.replace("\x07", "\ufffd")) == [FEWER] * 6

    # Nothing about anyone: no name, identifier or id of a subject.
    for person in api.world.people:
        for value in (person.name, person.identifier, person.public_id):
            assert value not in response.text


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_page_is_safe_and_in_the_readers_language(
    api: Api, sessions: sessionmaker[Session], lang: str
) -> None:
    populate(sessions, api.world, api.clock.now())
    response = api.client.get("/statistics", params={"lang": lang})
    assert response.status_code == 200
    page = Page.parse(response.text)
    assert page.lang == lang
    assert page.inline == []
    assert "content-security-policy" in response.headers
    # The hostile name: escaped in the drawing and the table, never markup.
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in response.text
    assert "\x07" not in response.text
    if lang == "zh-CN":
        assert "少于10" in page.words
        assert "fewer than" not in page.words
        assert "2026年" in page.words


def test_counts_are_withheld_below_ten_distinct_subjects() -> None:
    assert statistics.THRESHOLD == 10
    # 10 distinct subjects shown, 9 withheld, whatever the count of decisions.
    shown, total = protect([(10, 10), (40, 9)], (50, 19))
    assert shown == [10, SMALL]
    assert total == HIDDEN
    shown, total = protect([(10, 10), (12, 10)], (22, 20))
    assert (shown, total) == ([10, 12], 22)
    assert protect([(5, 5)], (5, 5)) == ([SMALL], SMALL)


def test_no_total_gives_a_withheld_count_away() -> None:
    # A lone withheld count: the total is withheld, else total - shown = the count.
    shown, total = protect([(100, 100), (3, 3), (50, 50)], (153, 153))
    assert shown == [100, SMALL, 50]
    assert total == HIDDEN
    # Counts whose sum is public elsewhere: one withheld hides the group's others.
    shown, total = protect(
        [(10, 10), (30, 30), (3, 3), (20, 20)], (63, 63), groups=[(1, 2), (0, 3)]
    )
    assert shown == [10, HIDDEN, SMALL, 20]
    assert total == HIDDEN
    # Property: with the total shown, nothing is withheld (so nothing to work out).
    for cells in ([(1, 1), (20, 20)], [(20, 20)], [(0, 0), (0, 0)], [(11, 11), (12, 12)]):
        counts, total = protect(cells, (sum(c for c, _ in cells), sum(s for _, s in cells)))
        if isinstance(total, int):
            assert all(isinstance(c, int) for c in counts)


def test_figures_are_worked_out_again_once_five_minutes_old(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """A burst of visitors costs one computation: the figures are served again for
    five minutes by the server's clock, then worked out afresh."""
    populate(sessions, api.world, api.clock.now())

    def air_travel() -> list[str]:
        html = api.client.get("/statistics", params={"lang": "en"}).text
        return row(Tables.of(html)["decisions-recent-restriction"], "Air travel")

    assert air_travel() == ["12", FEWER, NOT_SHOWN]
    body = {"subject_id": api.world.people[29].public_id, "service": "air_travel"}
    assert api.call("POST", "/v1/decisions", "airline", json=body).status_code == 200
    api.clock.advance(statistics.FRESH_FOR - timedelta(microseconds=1))
    assert air_travel() == ["12", FEWER, NOT_SHOWN]
    api.clock.advance(timedelta(microseconds=1))
    assert air_travel() == ["13", FEWER, NOT_SHOWN]
