"""The public statistics page (``/statistics``): aggregate figures from the store as of
now, none of them about anyone in particular.

* **tiers**: how many subjects each tier holds, for each kind of subject (the tiers the
  store shows them in, :mod:`credence.tiers`);
* **decisions**: how many decisions each service gave, by outcome, over the last
  :data:`PERIOD_DAYS` days and over all time (the inquiries of :mod:`credence.decisions`),
  restriction and reward services apart (their outcomes differ);
* **disputes**: how many disputes about each source's records stand in each state
  (open, verified, corrected, deleted, lapsed unanswered), over all time.

Each figure is a table of counts with a total per line (a kind's tiers, a service's
outcomes, a source's disputes), protected by one rule, :func:`protect`:

1. a count about fewer than :data:`THRESHOLD` distinct subjects is withheld
   (:data:`SMALL`: "fewer than 10"), never shown as a number;
2. a line's total is shown only when none of its counts is withheld (then it is their
   sum), else withheld too (:data:`HIDDEN`), so no total minus the shown counts gives
   a withheld one;
3. where other published figures give the sum of some counts of a line (the sources'
   public status gives, per source, the disputes decided and those upheld:
   corrected, deleted or lapsed), those counts are a group: one withheld, the group's
   others are withheld too (:data:`HIDDEN`).

Only counts leave this module: no name, identifier or id of a subject is read into it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from credence.context import Context
from credence.decisions.tables import Inquiry
from credence.disputes.service import DisputeStatus
from credence.disputes.tables import Dispute, DisputeAnswer
from credence.identifiers import SubjectKind
from credence.ledger.tables import Source, Subject
from credence.portal import charts, i18n
from credence.portal.i18n import N_
from credence.portal.me import Render
from credence.rulebook import store
from credence.rulebook.model import Outcome, Rulebook, ServiceKind
from credence.tiers.tables import SubjectTier
from credence.watch.status import MIN_CASES

#: The fewest distinct subjects a published count may be about: the project's one
#: threshold for public figures (the same as the sources' public rates).
THRESHOLD = MIN_CASES
#: The recent period of the decisions' figures, in days up to now.
PERIOD_DAYS = 30
#: How long figures once worked out are served again (:class:`Latest`).
FRESH_FOR = timedelta(minutes=5)

#: The states of a dispute, in the order shown.
STATUSES: tuple[str, ...] = get_args(DisputeStatus)
#: The outcomes, in the order shown.
OUTCOMES: tuple[str, ...] = (Outcome.ALLOW, Outcome.REWARD, Outcome.DENY)
#: The outcomes each kind of service gives (a reward service never allows, a restriction
#: service never rewards): a line has a column for each, and for nothing it cannot give.
KIND_OUTCOMES: dict[str, tuple[str, ...]] = {
    ServiceKind.RESTRICTION: (Outcome.ALLOW, Outcome.DENY),
    ServiceKind.REWARD: (Outcome.REWARD, Outcome.DENY),
}

#: Dispute states whose sums the sources' public status publishes (credence.watch.status:
#: disputes decided, and upheld).
DISPUTE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("verified", "corrected", "deleted", "lapsed"),
    ("corrected", "deleted", "lapsed"),
)
#: Labels of the dispute states (interface strings).
STATUS_LABELS: dict[str, str] = {
    "open": N_("Open, awaiting an answer"),
    "verified": N_("Verified: the record stands"),
    "corrected": N_("Corrected"),
    "deleted": N_("Deleted"),
    "lapsed": N_("Unanswered by the deadline"),
}
#: Labels of the outcomes (interface strings).
OUTCOME_LABELS: dict[str, str] = {
    "allow": N_("Allowed"),
    "reward": N_("Rewarded"),
    "deny": N_("Denied"),
}
KIND_LABELS: dict[str, str] = {
    "person": N_("Persons"),
    "company": N_("Companies and other organisations"),
    "government": N_("Public bodies"),
}
SERVICE_KIND_LABELS: dict[str, str] = {
    "restriction": N_("Restriction services"),
    "reward": N_("Reward services"),
}

Counted = tuple[int, int]
"""A count and how many distinct subjects it is about."""

#: A count withheld because it is about fewer than :data:`THRESHOLD` subjects.
SMALL: Final = "small"
#: A count or total withheld so that no withheld count can be worked out (its size is
#: not told: it may be large).
HIDDEN: Final = "hidden"
Published = int | Literal["small", "hidden"]


def protect(
    cells: Sequence[Counted], total: Counted, groups: Sequence[Sequence[int]] = ()
) -> tuple[list[Published], Published]:
    """The counts of one line (each a count and its distinct subjects) and the line's
    total as published, by the rule of the module's docstring; ``groups``: indexes of
    counts whose sum is published elsewhere."""
    shown: list[Published] = [n if subjects >= THRESHOLD else SMALL for n, subjects in cells]
    for group in groups:
        if any(shown[i] == SMALL for i in group):
            for i in group:
                if shown[i] != SMALL:
                    shown[i] = HIDDEN
    published: Published
    if total[1] < THRESHOLD:
        published = SMALL
    elif any(not isinstance(n, int) for n in shown):
        published = HIDDEN
    else:
        published = total[0]
    return shown, published


@dataclass(frozen=True)
class Line:
    """One line of a table as published: its label, its counts and its total (each a
    number, :data:`SMALL` or :data:`HIDDEN`)."""

    key: str
    label: str
    counts: tuple[Published, ...]
    total: Published


@dataclass(frozen=True)
class Table:
    """Counts by line and column, as published (:func:`protect` applied to each line)."""

    columns: tuple[str, ...]
    lines: tuple[Line, ...]


def _table(
    columns: Sequence[str],
    lines: Iterable[tuple[str, str]],
    cells: dict[tuple[str, str], Counted],
    totals: dict[str, Counted],
    groups: Sequence[Sequence[str]] = (),
) -> Table:
    indexes = [[columns.index(c) for c in group if c in columns] for group in groups]
    out = []
    for key, label in lines:
        counts, total = protect(
            [cells.get((key, c), (0, 0)) for c in columns], totals.get(key, (0, 0)), indexes
        )
        out.append(Line(key, label, tuple(counts), total))
    return Table(tuple(columns), tuple(out))


# --- the figures ------------------------------------------------------------------------


def tiers(session: Session, book: Rulebook, now: datetime) -> Table:
    """Subjects by kind (lines) and the tier the store shows them in (columns: the
    tiers of ``book``, then any other tier still stored)."""
    rows = session.execute(
        select(Subject.kind, SubjectTier.tier, func.count())
        .join(Subject, Subject.id == SubjectTier.subject_id)
        .where(SubjectTier.since <= now)
        .group_by(Subject.kind, SubjectTier.tier)
    ).all()
    columns = [t.code for t in book.tiers]
    columns += sorted({tier for _, tier, _ in rows} - set(columns))
    cells: dict[tuple[str, str], Counted] = {}
    totals: dict[str, Counted] = {}
    for kind, tier, n in rows:
        # One row per subject: the count is of distinct subjects.
        cells[kind, tier] = (n, n)
        t = totals.get(kind, (0, 0))
        totals[kind] = (t[0] + n, t[1] + n)
    kinds = [k.value for k in SubjectKind]
    kinds += sorted(set(totals) - set(kinds))
    return _table(columns, ((k, k) for k in kinds), cells, totals)


def _service_kinds(
    session: Session, book: Rulebook, codes: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """Each service's kind and name: from ``book`` (the edition in force), else from
    the newest edition that has it."""
    found = {s.code: (s.kind.value, s.name) for s in book.services}
    missing = set(codes) - set(found)
    for version, _, _ in reversed(store.history(session)):
        if not missing:
            break
        older = store.by_version(session, version).rulebook
        for s in older.services:
            if s.code in missing:
                found[s.code] = (s.kind.value, s.name)
                missing.discard(s.code)
    for code in missing:  # a service no edition has: shown by its code
        found[code] = ("restriction", code)
    return found


def decisions(
    session: Session, book: Rulebook, now: datetime, since: datetime
) -> tuple[dict[str, Table], dict[str, Table]]:
    """Decisions by service (lines) and outcome (columns) given by ``now``: those given
    after ``since``, and all of them; one table per kind of service for each. Read in
    one pass over the decisions for both periods (a grouped scan)."""
    recent = case((Inquiry.at > since, 1))
    recent_subject = case((Inquiry.at > since, Inquiry.subject_id))
    counts = (
        func.count(),
        func.count(Inquiry.subject_id.distinct()),
        func.count(recent),
        func.count(recent_subject.distinct()),
    )
    by_outcome = session.execute(
        select(Inquiry.service, Inquiry.outcome, *counts)
        .where(Inquiry.at <= now)
        .group_by(Inquiry.service, Inquiry.outcome)
    ).all()
    by_service = session.execute(
        select(Inquiry.service, *counts).where(Inquiry.at <= now).group_by(Inquiry.service)
    ).all()
    services = _service_kinds(session, book, {row[0] for row in by_service})
    order = [s.code for s in book.services]
    order += sorted(set(services) - set(order))
    tables = []
    # The counts after the keys: all time (count, subjects), then the recent period's.
    for first in (2, 0):
        cells: dict[tuple[str, str], Counted] = {
            (str(r[0]), str(r[1])): (int(r[2 + first]), int(r[3 + first])) for r in by_outcome
        }
        totals: dict[str, Counted] = {
            str(r[0]): (int(r[1 + first]), int(r[2 + first])) for r in by_service
        }
        out = {}
        for kind, outcomes in KIND_OUTCOMES.items():
            codes = [c for c in order if services[c][0] == kind]
            # An outcome stored that the kind does not give still gets its column, so
            # the counts of a line always add up to its total.
            seen = {o for (svc, o), (n, _) in cells.items() if svc in codes and n}
            columns = [o for o in OUTCOMES if o in outcomes or o in seen]
            columns += sorted(seen - set(columns))
            out[kind] = _table(columns, ((c, services[c][1]) for c in codes), cells, totals)
        tables.append(out)
    return tables[0], tables[1]


def disputes(session: Session, now: datetime) -> Table:
    """Disputes opened by ``now`` by the source whose record is disputed (lines) and
    where they stand at ``now`` (columns: open, verified, corrected, deleted, lapsed)."""
    status = case(
        (DisputeAnswer.answered_at <= now, DisputeAnswer.outcome),
        (Dispute.deadline <= now, "lapsed"),
        else_="open",
    ).label("status")
    opened = (
        select(Dispute.source_id, Dispute.subject_id, status)
        .outerjoin(DisputeAnswer, DisputeAnswer.dispute_id == Dispute.id)
        .where(Dispute.opened_at <= now)
        .subquery()
    )
    by_status = session.execute(
        select(
            opened.c.source_id,
            opened.c.status,
            func.count(),
            func.count(opened.c.subject_id.distinct()),
        ).group_by(opened.c.source_id, opened.c.status)
    ).all()
    by_source = session.execute(
        select(
            opened.c.source_id, func.count(), func.count(opened.c.subject_id.distinct())
        ).group_by(opened.c.source_id)
    ).all()
    sources = session.execute(
        select(Source.id, Source.name)
        .where(Source.created_at <= now)
        .order_by(Source.name, Source.id)
    ).all()
    cells = {(str(s), st): (n, d) for s, st, n, d in by_status}
    totals = {str(s): (n, d) for s, n, d in by_source}
    return _table(STATUSES, ((str(i), name) for i, name in sources), cells, totals, DISPUTE_GROUPS)


@dataclass(frozen=True)
class Statistics:
    """Every figure of the page, as of ``now``, and how to chart each in a locale."""

    now: datetime
    since: datetime
    tiers: Table
    recent: dict[str, Table]
    all_time: dict[str, Table]
    disputes: Table

    def tier_charts(self, locale: str) -> list[charts.Chart]:
        _ = i18n.translations(locale).gettext
        out = []
        for line in self.tiers.lines:
            kind = _(KIND_LABELS.get(line.key, line.key))
            out.append(
                charts.bar_chart(
                    _("Subjects by tier: %(kind)s") % {"kind": kind},
                    list(zip(self.tiers.columns, _values(line.counts, locale), strict=True)),
                    locale=locale,
                    label_header=_("Tier"),
                    value_header=_("Subjects"),
                    missing=_withheld(locale),
                    suppressed_below=THRESHOLD,
                    chart_id=f"tiers-{line.key}",
                    footer=(_("All tiers"), _values([line.total], locale)[0]),
                )
            )
        return out

    def decision_charts(self, locale: str, period: str) -> list[charts.Chart]:
        _ = i18n.translations(locale).gettext
        tables = self.recent if period == "recent" else self.all_time
        out = []
        for kind, table in tables.items():
            if not table.lines:
                continue
            title = (
                _("Decisions in the last %(days)s days: %(kind)s")
                if period == "recent"
                else _("Decisions of all time: %(kind)s")
            ) % {"days": i18n.number(PERIOD_DAYS, locale), "kind": _(SERVICE_KIND_LABELS[kind])}
            columns = [_(OUTCOME_LABELS.get(c, c)) for c in table.columns]
            out.append(
                charts.grouped_bar_chart(
                    title,
                    [(line.label, _values(line.counts, locale)) for line in table.lines],
                    series=columns,
                    locale=locale,
                    label_header=_("Service"),
                    missing=_withheld(locale),
                    suppressed_below=THRESHOLD,
                    chart_id=f"decisions-{period}-{kind}",
                    extra=[
                        (_("All outcomes"), _values([line.total for line in table.lines], locale))
                    ],
                )
            )
        return out

    def dispute_chart(self, locale: str) -> charts.Chart:
        _ = i18n.translations(locale).gettext
        table = self.disputes
        return charts.grouped_bar_chart(
            _("Disputes by source and where they stand"),
            [(line.label, _values(line.counts, locale)) for line in table.lines],
            series=[_(STATUS_LABELS[c]) for c in table.columns],
            locale=locale,
            label_header=_("Source"),
            missing=_withheld(locale),
            suppressed_below=THRESHOLD,
            chart_id="disputes",
            extra=[(_("All disputes"), _values([line.total for line in table.lines], locale))],
        )


def _values(counts: Iterable[Published], locale: str) -> list[charts.Value]:
    """Published counts as a chart's values: a small one is the chart's "fewer than
    10" (and a band below the threshold), a hidden one says only that it is not shown."""
    hidden = charts.Hidden(i18n.translations(locale).gettext(N_("not shown")))
    return [None if n == SMALL else hidden if n == HIDDEN else int(n) for n in counts]


def _withheld(locale: str) -> str:
    return i18n.translations(locale).gettext(N_("fewer than %(n)s")) % {
        "n": i18n.number(THRESHOLD, locale)
    }


def statistics(session: Session, now: datetime) -> Statistics:
    """Every figure of the page as of ``now``."""
    book = store.in_force(session, now).rulebook
    since = now - timedelta(days=PERIOD_DAYS)
    recent, all_time = decisions(session, book, now, since)
    return Statistics(
        now=now,
        since=since,
        tiers=tiers(session, book, now),
        recent=recent,
        all_time=all_time,
        disputes=disputes(session, now),
    )


class Latest:
    """The figures last worked out, served again while they are younger than
    :data:`FRESH_FOR` by the context's clock: the page is public and its figures are
    grouped scans of whole tables, so a burst of visitors costs the store one
    computation. While they are worked out again, other requests get the previous
    ones (only the very first computation is waited for). The page says the instant
    its figures are of."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: Statistics | None = None

    @staticmethod
    def _fresh(figures: Statistics | None, now: datetime) -> bool:
        return figures is not None and figures.now <= now < figures.now + FRESH_FOR

    def get(self, ctx: Context) -> Statistics:
        now = ctx.clock.now()
        figures = self._figures
        if figures is not None and self._fresh(figures, now):
            return figures
        if figures is not None and not self._lock.acquire(blocking=False):
            return figures  # being worked out again by another request
        if figures is None:
            self._lock.acquire()
        try:
            figures = self._figures
            if figures is None or not self._fresh(figures, now):
                with ctx.sessions() as session:
                    figures = self._figures = statistics(session, now)
            return figures
        finally:
            self._lock.release()


def routes(headers: Mapping[str, str], render: Render) -> list[Route]:
    """``GET /statistics``, rendered by ``render`` and answered with ``headers`` (the
    pages' policy)."""
    latest = Latest()

    def page(request: Request) -> HTMLResponse:
        ctx: Context = request.app.state.ctx
        return render(
            request,
            headers,
            "statistics.html",
            stats=latest.get(ctx),
            threshold=THRESHOLD,
            period_days=PERIOD_DAYS,
        )

    return [Route("/statistics", page, methods=["GET"])]
