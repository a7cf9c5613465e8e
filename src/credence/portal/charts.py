"""Charts for the portal's pages: SVG drawn on the server, each with its data table.

One module for every chart the portal (and later reports) draws. A chart is a
:class:`Chart`: the SVG (``svg``, markup ready to put in a page) and the same figures as
a table (``columns`` and ``rows``, each cell a value and its text in the reader's
locale), which ``templates/_charts.html``'s ``chart`` macro renders below the drawing:
the table is the chart's text alternative, and the only place its exact figures are.

What every drawing keeps to:

* no script and no ``style`` attribute or element (the portal's policy refuses inline
  styles): colours and sizes are SVG presentation attributes, layout classes are styled
  in ``static/portal.css``;
* ``role="img"`` named by its ``<title>`` (``aria-labelledby``);
* colours from a colour-blind-safe palette (Okabe and Ito's, darkened where needed),
  each at least 4.5:1 against white, and series told apart by marker and dash too,
  never by colour alone;
* a value that is withheld (``None``: suppressed, or unknown) is never drawn as a
  number: a bar shows a hatched band up to ``suppressed_below`` (if given) and the
  ``missing`` text, a line breaks; its table cell says ``missing``;
* every text (labels, titles) is escaped, characters XML does not allow (NUL and other
  controls) become U+FFFD, and each label is a bidirectional isolate, so a right-to-left
  mark in one label cannot reorder what follows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import count

from babel.dates import format_date
from markupsafe import Markup, escape

from credence.portal import i18n

#: Series colours: Okabe-Ito blue, vermillion (darkened), bluish green (darkened),
#: reddish purple (darkened); each at least 4.5:1 on white.
PALETTE: tuple[str, ...] = ("#0072B2", "#B35900", "#007A5E", "#A8478A")
#: Dash patterns and marker shapes paired with the colours (no meaning by colour alone).
DASHES: tuple[str | None, ...] = (None, "6 3", "2 3", "8 3 2 3")
MARKERS: tuple[str, ...] = ("circle", "square", "diamond", "triangle")
INK = "#1b1f24"
MUTED = "#4a525c"
GRID = "#c9cfd6"
BACKGROUND = "#ffffff"

#: Characters XML 1.0 does not allow, and lone surrogates.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
#: First strong isolate ... pop directional isolate.
_FSI, _PDI = "\u2068", "\u2069"
#: The longest label drawn in full (the table always has it whole).
MAX_LABEL = 32

_ids = count(1)

X = datetime | date | str


def clean(text: str) -> str:
    """``text`` with every character XML cannot hold (NUL, other controls) replaced by
    U+FFFD, so a page stays well-formed whatever a name holds."""
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class Cell:
    """One figure: its value (None when withheld) and its text in the reader's locale."""

    value: float | None
    text: str

    @property
    def withheld(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Hidden:
    """A value withheld for another reason than its being small (its size is not
    bounded by ``suppressed_below``): drawn and tabled as ``text`` only, never a band."""

    text: str


Value = float | Hidden | None
"""A bar's value: a number, withheld as small (None: the chart's ``missing`` text and a
band up to ``suppressed_below``), or :class:`Hidden`."""


@dataclass(frozen=True)
class Row:
    """A row of a chart's table: its header (a label, a date) and one cell per column."""

    label: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Chart:
    """A drawing and its data table. ``columns`` are the table's column headers, the
    first the rows' header column."""

    id: str
    title: str
    svg: Markup
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    #: Rows shown in the table only, below the others (totals).
    footer: tuple[Row, ...] = ()

    def value(self, label: str, column: int = 0) -> float | None:
        """The value of the row ``label`` in data column ``column`` (tests, reports)."""
        for row in self.rows:
            if row.label == label:
                return row.cells[column].value
        raise KeyError(label)


@dataclass(frozen=True)
class Series:
    """A named line of a line chart: its points (x, y), y None where unknown."""

    name: str
    points: Sequence[tuple[X, float | None]]


# --- text -------------------------------------------------------------------------


def _fmt(value: float, locale: str) -> str:
    return i18n.number(value, locale)


def _text_x(x: X, locale: str) -> str:
    if isinstance(x, datetime):
        x = (x if x.tzinfo else x.replace(tzinfo=UTC)).astimezone(UTC).date()
    if isinstance(x, date):
        return str(format_date(x, "medium", locale=locale))
    return clean(x)


def _label(text: str) -> Markup:
    """A label as SVG text: cleaned, shortened, escaped, isolated."""
    text = clean(text)
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return escape(_FSI + text + _PDI)


def _width(text: str, size: float) -> float:
    """Rough width of ``text`` drawn at ``size`` px: wide (CJK) characters count whole."""
    return sum(size if ord(c) > 0x2E80 else size * 0.58 for c in text)


def _num(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _attrs(**values: object) -> str:
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(str(v))}"'
        for k, v in values.items()
        if v is not None
    )


def _el(tag: str, body: str = "", **attrs: object) -> str:
    if body:
        return f"<{tag}{_attrs(**attrs)}>{body}</{tag}>"
    return f"<{tag}{_attrs(**attrs)}/>"


def _ticks(low: float, high: float, n: int = 4, *, whole: bool = False) -> list[float]:
    """Round tick values covering ``low``..``high`` (whole numbers only if ``whole``:
    counts)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / n
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = [m * magnitude for m in (1, 2, 2.5, 5, 10)]
    if whole:
        steps = [max(1, round(m)) for m in steps if m >= 1 and float(m).is_integer()] or [1]
    step = next((m for m in steps if m >= raw), steps[-1] * 2)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _svg(chart_id: str, title: str, width: float, height: float, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img"'
        f' aria-labelledby="{chart_id}-title" viewBox="0 0 {_num(width)} {_num(height)}"'
        f' width="{_num(width)}" height="{_num(height)}" font-size="13"'
        f' font-family="system-ui, sans-serif" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-title">{escape(clean(title))}</title>'
    )
    # Every text in ``body`` was escaped where it was made (_label, _el, escape).
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704


def _hatch(chart_id: str) -> str:
    return (
        f'<defs><pattern id="{chart_id}-hatch" patternUnits="userSpaceOnUse" width="6"'
        f' height="6" patternTransform="rotate(45)">'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{MUTED}" stroke-width="2"/>'
        f"</pattern></defs>"
    )


def _new_id(chart_id: str | None) -> str:
    if chart_id is None:
        return f"chart-{next(_ids)}"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", chart_id):
        raise ValueError(f"a chart id is a letter then letters, digits, - or _: {chart_id!r}")
    return chart_id


def _legend(names: Sequence[str], x: float, y: float) -> tuple[list[str], float]:
    """A legend, one entry a line, drawn from (x, y); returns the parts and its height."""
    parts = []
    for i, name in enumerate(names):
        cy = y + i * 20 + 10
        parts.append(_marker(i, x + 8, cy, line=True))
        parts.append(_el("text", _label(name), x=_num(x + 22), y=_num(cy + 4), fill=INK))
    return parts, len(names) * 20


def _marker(i: int, cx: float, cy: float, *, line: bool = False) -> str:
    colour = PALETTE[i % len(PALETTE)]
    shape = MARKERS[i % len(MARKERS)]
    out = ""
    if line:
        out += _el(
            "line",
            x1=_num(cx - 8),
            y1=_num(cy),
            x2=_num(cx + 8),
            y2=_num(cy),
            stroke=colour,
            stroke_width=2,
            stroke_dasharray=DASHES[i % len(DASHES)],
        )
    r = 4.0
    if shape == "circle":
        return out + _el("circle", cx=_num(cx), cy=_num(cy), r=_num(r), fill=colour)
    if shape == "square":
        return out + _el(
            "rect",
            x=_num(cx - r),
            y=_num(cy - r),
            width=_num(2 * r),
            height=_num(2 * r),
            fill=colour,
        )
    if shape == "diamond":
        corners = [(cx, cy - r - 1), (cx + r + 1, cy), (cx, cy + r + 1), (cx - r - 1, cy)]
    else:
        corners = [(cx, cy - r - 1), (cx + r + 1, cy + r), (cx - r - 1, cy + r)]
    d = "M" + "L".join(f"{_num(a)} {_num(b)}" for a, b in corners) + "Z"
    return out + _el("path", d=d, fill=colour)


# --- bars -------------------------------------------------------------------------


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, Value]],
    *,
    locale: str,
    label_header: str,
    value_header: str,
    missing: str = "—",
    suppressed_below: float | None = None,
    chart_id: str | None = None,
    footer: tuple[str, Value] | None = None,
) -> Chart:
    """Horizontal bars, one per row (label, value); a None value is withheld: a hatched
    band up to ``suppressed_below`` (if given) labelled ``missing``, never a number.
    ``footer``: a row (label, value) for the table only, such as a total."""
    return grouped_bar_chart(
        title,
        [(label, [value]) for label, value in rows],
        series=[value_header],
        locale=locale,
        label_header=label_header,
        missing=missing,
        suppressed_below=suppressed_below,
        chart_id=chart_id,
        footer=None if footer is None else (footer[0], [footer[1]]),
    )


def grouped_bar_chart(
    title: str,
    rows: Sequence[tuple[str, Sequence[Value]]],
    *,
    series: Sequence[str],
    locale: str,
    label_header: str,
    missing: str = "—",
    suppressed_below: float | None = None,
    chart_id: str | None = None,
    extra: Sequence[tuple[str, Sequence[Value]]] = (),
    footer: tuple[str, Sequence[Value]] | None = None,
) -> Chart:
    """Horizontal bars in groups: each row a label and one value per ``series`` (the
    table's columns, and the legend when there is more than one).

    For the table only (not drawn): ``extra`` columns (a header and one value per row,
    such as each row's total) after the series, and a ``footer`` row (a label and one
    value per series and extra column, such as the totals of the series)."""
    cid = _new_id(chart_id)
    for label, values in rows:
        if len(values) != len(series):
            raise ValueError(f"row {label!r} has {len(values)} values for {len(series)} series")
        if any(isinstance(v, int | float) and (v < 0 or not math.isfinite(v)) for v in values):
            raise ValueError(f"row {label!r}: bars are of finite values of 0 or more")
    for header, column in extra:
        if len(column) != len(rows):
            raise ValueError(f"column {header!r} has {len(column)} values for {len(rows)} rows")
    if footer is not None and len(footer[1]) != len(series) + len(extra):
        raise ValueError("the footer has a value per series and extra column")

    def as_cell(v: Value) -> Cell:
        if isinstance(v, Hidden):
            return Cell(None, v.text)
        return Cell(v, missing if v is None else _fmt(v, locale))

    table = tuple(Row(clean(label), tuple(as_cell(v) for v in values)) for label, values in rows)
    full = tuple(
        Row(row.label, row.cells + tuple(as_cell(column[i]) for _, column in extra))
        for i, row in enumerate(table)
    )
    foot = () if footer is None else (Row(clean(footer[0]), tuple(as_cell(v) for v in footer[1])),)
    known = [v for _, values in rows for v in values if isinstance(v, int | float)]
    top = max([*known, suppressed_below or 0, 1])
    ticks = _ticks(0, top, whole=all(float(v).is_integer() for v in known))
    top = ticks[-1]

    size = 13.0
    label_w = min(max([_width(clean(r.label)[:MAX_LABEL], size) for r in table] + [40]), 260)
    left = label_w + 16
    plot_w = 360.0
    hidden = [v.text for _, values in rows for v in values if isinstance(v, Hidden)]
    value_w = max([_width(t, size) for t in (missing, *hidden)] + [60]) + 16
    bar_h, gap = 16.0, 10.0
    group_h = bar_h * len(series) + gap
    top_pad = 24.0
    plot_h = group_h * max(len(table), 1)
    legend_h = 0.0
    legend: list[str] = []
    if len(series) > 1:
        legend, legend_h = _legend(series, left, top_pad + plot_h + 8)
    width = left + plot_w + value_w
    height = top_pad + plot_h + legend_h + 12

    def scale(v: float) -> float:
        return plot_w * v / top

    body = [_hatch(cid)]
    body.append(_el("rect", x=0, y=0, width=_num(width), height=_num(height), fill=BACKGROUND))
    for t in ticks:
        x = left + scale(t)
        body.append(
            _el(
                "line",
                x1=_num(x),
                y1=_num(top_pad - 4),
                x2=_num(x),
                y2=_num(top_pad + plot_h),
                stroke=GRID,
            )
        )
        body.append(
            _el(
                "text",
                escape(_fmt(t, locale)),
                x=_num(x),
                y=_num(top_pad - 8),
                fill=MUTED,
                text_anchor="middle",
            )
        )
    for g, row in enumerate(table):
        y0 = top_pad + g * group_h + gap / 2
        body.append(
            _el(
                "text",
                _label(row.label),
                x=_num(left - 8),
                y=_num(y0 + bar_h * len(series) / 2 + 4),
                fill=INK,
                text_anchor="end",
                class_="chart-label",
            )
        )
        for s, (cell, raw) in enumerate(zip(row.cells, rows[g][1], strict=True)):
            y = y0 + s * bar_h
            colour = PALETTE[s % len(PALETTE)]
            if cell.value is None:
                small = raw is None and suppressed_below
                w = scale(suppressed_below) if small and suppressed_below else 0.0
                if w:
                    body.append(
                        _el(
                            "rect",
                            x=_num(left),
                            y=_num(y + 1),
                            width=_num(w),
                            height=_num(bar_h - 2),
                            fill=f"url(#{cid}-hatch)",
                            stroke=MUTED,
                            stroke_dasharray="3 2",
                            class_="bar withheld",
                        )
                    )
                body.append(
                    _el(
                        "text",
                        escape(cell.text),
                        x=_num(left + w + 4),
                        y=_num(y + bar_h - 4),
                        fill=MUTED,
                        font_style="italic",
                    )
                )
                continue
            w = scale(cell.value)
            body.append(
                _el(
                    "rect",
                    x=_num(left),
                    y=_num(y + 1),
                    width=_num(w),
                    height=_num(bar_h - 2),
                    fill=colour,
                    class_="bar",
                    data_value=_num(cell.value),
                )
            )
            body.append(
                _el(
                    "text", escape(cell.text), x=_num(left + w + 4), y=_num(y + bar_h - 4), fill=INK
                )
            )
    body.append(
        _el(
            "line",
            x1=_num(left),
            y1=_num(top_pad - 4),
            x2=_num(left),
            y2=_num(top_pad + plot_h),
            stroke=INK,
        )
    )
    body.extend(legend)
    return Chart(
        cid,
        clean(title),
        _svg(cid, title, width, height, body),
        (clean(label_header), *map(clean, series), *(clean(h) for h, _ in extra)),
        full,
        foot,
    )


# --- lines ------------------------------------------------------------------------


def line_chart(
    title: str,
    points: Sequence[tuple[X, float | None]],
    *,
    locale: str,
    x_header: str,
    y_header: str,
    missing: str = "—",
    y_range: tuple[float, float] | None = None,
    chart_id: str | None = None,
) -> Chart:
    """A line through ``points`` (x: an instant, a date or a label; y None where
    unknown, which breaks the line). Instants and dates are placed by time, labels
    evenly; the table lists the points in order."""
    return multi_line_chart(
        title,
        [Series(y_header, points)],
        locale=locale,
        x_header=x_header,
        missing=missing,
        y_range=y_range,
        chart_id=chart_id,
    )


def _x_key(x: X) -> float | None:
    if isinstance(x, datetime):
        return (x if x.tzinfo else x.replace(tzinfo=UTC)).timestamp()
    if isinstance(x, date):
        return datetime(x.year, x.month, x.day, tzinfo=UTC).timestamp()
    return None


def multi_line_chart(
    title: str,
    series: Sequence[Series],
    *,
    locale: str,
    x_header: str,
    missing: str = "—",
    y_range: tuple[float, float] | None = None,
    chart_id: str | None = None,
) -> Chart:
    """Lines sharing one x axis: each series a name (a table column, a legend entry)
    and its points. Every series should have the same xs, in the same order; the table
    has a row per x of the first series."""
    cid = _new_id(chart_id)
    if not series:
        raise ValueError("a line chart needs at least one series")
    xs = [x for x, _ in series[0].points]
    for s in series:
        if [x for x, _ in s.points] != xs:
            raise ValueError(f"series {s.name!r} does not have the first series' xs")
        if any(y is not None and not math.isfinite(y) for _, y in s.points):
            raise ValueError(f"series {s.name!r}: values are finite")
    table = tuple(
        Row(
            _text_x(x, locale),
            tuple(
                Cell(y, missing if y is None else _fmt(y, locale))
                for y in (s.points[i][1] for s in series)
            ),
        )
        for i, x in enumerate(xs)
    )
    ys = [y for s in series for _, y in s.points if y is not None]
    low, high = y_range if y_range else (min([0.0, *ys]), max([1.0, *ys]))
    ticks = _ticks(low, high)
    low, high = (low, high) if y_range else (ticks[0], ticks[-1])

    keys = [_x_key(x) for x in xs]
    by_time = bool(xs) and all(k is not None for k in keys)
    size = 13.0
    left = max([_width(_fmt(t, locale), size) for t in ticks] + [20]) + 16
    plot_w, plot_h, top_pad = 480.0, 200.0, 16.0
    bottom = 40.0
    legend: list[str] = []
    legend_h = 0.0
    if len(series) > 1:
        legend, legend_h = _legend([s.name for s in series], left, top_pad + plot_h + bottom)
    width = left + plot_w + 24
    height = top_pad + plot_h + bottom + legend_h + 8

    def sx(i: int) -> float:
        if by_time:
            k = [key for key in keys if key is not None]
            span = (k[-1] - k[0]) if len(k) > 1 and k[-1] != k[0] else 1.0
            key = keys[i]
            assert key is not None
            return left + plot_w * (key - k[0]) / span if len(k) > 1 else left + plot_w / 2
        return left + (plot_w * i / (len(xs) - 1) if len(xs) > 1 else plot_w / 2)

    def sy(v: float) -> float:
        v = min(max(v, low), high)
        return top_pad + plot_h - plot_h * (v - low) / ((high - low) or 1)

    body = [_el("rect", x=0, y=0, width=_num(width), height=_num(height), fill=BACKGROUND)]
    for t in ticks:
        if not low <= t <= high:
            continue
        y = sy(t)
        body.append(
            _el("line", x1=_num(left), y1=_num(y), x2=_num(left + plot_w), y2=_num(y), stroke=GRID)
        )
        body.append(
            _el(
                "text",
                escape(_fmt(t, locale)),
                x=_num(left - 6),
                y=_num(y + 4),
                fill=MUTED,
                text_anchor="end",
            )
        )
    base = top_pad + plot_h
    body.append(
        _el("line", x1=_num(left), y1=_num(base), x2=_num(left + plot_w), y2=_num(base), stroke=INK)
    )
    body.append(
        _el("line", x1=_num(left), y1=_num(top_pad), x2=_num(left), y2=_num(base), stroke=INK)
    )
    # x labels: the first, the last, and up to four between, none overlapping another:
    # the last is always drawn, so one before it that it would overlap gives way.
    if xs:
        shown = sorted({0, len(xs) - 1, *range(0, len(xs), max(1, math.ceil(len(xs) / 5)))})
        placed: list[tuple[int, float, float, str]] = []  # (index, start, end, anchor)
        for i in shown:
            text = table[i].label
            x = sx(i)
            w = _width(text, size)
            anchor = (
                "start"
                if i == 0 and len(xs) > 1
                else "end"
                if i == len(xs) - 1 and len(xs) > 1
                else "middle"
            )
            start = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
            if i == len(xs) - 1:
                while len(placed) > 1 and start < placed[-1][2] + 8:
                    placed.pop()
            elif placed and start < placed[-1][2] + 8:
                continue
            placed.append((i, start, start + w, anchor))
        for i, _, _, anchor in placed:
            x, text = sx(i), table[i].label
            body.append(
                _el("line", x1=_num(x), y1=_num(base), x2=_num(x), y2=_num(base + 4), stroke=INK)
            )
            body.append(
                _el(
                    "text",
                    _label(text),
                    x=_num(x),
                    y=_num(base + 20),
                    fill=MUTED,
                    text_anchor=anchor,
                )
            )
    for n, s in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, (_, value) in enumerate(s.points):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((sx(i), sy(value)))
        for run in runs:
            if len(run) > 1:
                body.append(
                    _el(
                        "polyline",
                        points=" ".join(f"{_num(a)},{_num(b)}" for a, b in run),
                        fill="none",
                        stroke=colour,
                        stroke_width=2,
                        stroke_dasharray=DASHES[n % len(DASHES)],
                        class_="line",
                    )
                )
            for a, b in run:
                body.append(_marker(n, a, b))
    body.extend(legend)
    columns = (clean(x_header), *(clean(s.name) for s in series))
    return Chart(cid, clean(title), _svg(cid, title, width, height, body), columns, table)
