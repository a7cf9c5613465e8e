"""The portal's charts (credence.portal.charts): well-formed SVG with no script or inline
style, named for assistive technology, bars to scale, withheld values never drawn as
numbers, hostile labels escaped, and each chart's table rendered by the macro."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup

from credence.portal import charts
from credence.portal.charts import Chart, Series
from credence.portal.pages import environment
from tests.portal.page import Page

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script> & \u202eevil\u200f \x00 \"q' ]]>"


def parse(chart: Chart) -> ET.Element:
    assert isinstance(chart.svg, Markup)
    return ET.fromstring(str(chart.svg))  # noqa: S314 (the module's own output)


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if "bar" in (e.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def sample_charts() -> list[Chart]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        charts.bar_chart(
            "Subjects by tier",
            [("A", 120), ("B", None), ("C", 0), (HOSTILE, 7)],
            locale="en",
            label_header="Tier",
            value_header="Subjects",
            missing="fewer than 10",
            suppressed_below=10,
        ),
        charts.grouped_bar_chart(
            "Decisions",
            [("svc", [12, None]), ("other", [3, 40])],
            series=["Allow", "Deny"],
            locale="zh_CN",
            label_header="Service",
            missing="少于10",
        ),
        charts.line_chart(
            "Score over time",
            [(start + timedelta(days=30 * i), 500.0 + 10 * i) for i in range(6)],
            locale="en",
            x_header="Date",
            y_header="Score",
        ),
        charts.multi_line_chart(
            "By category",
            [
                Series("one", [("a", 1.0), ("b", None), ("c", 3.0)]),
                Series(HOSTILE, [("a", -2.0), ("b", 5.0), ("c", 0.0)]),
            ],
            locale="zh_CN",
            x_header="When",
        ),
    ]


@pytest.mark.parametrize("index", range(4))
def test_every_chart_is_well_formed_svg_without_script_or_inline_style(index: int) -> None:
    chart = sample_charts()[index]
    root = parse(chart)
    assert root.tag == f"{SVG}svg"
    for element in root.iter():
        tag = element.tag.removeprefix(SVG)
        assert tag not in {"script", "style", "foreignObject", "a", "image"}, tag
        for name in element.attrib:
            assert name != "style", f"style attribute on <{tag}>"
            assert not name.startswith("on"), f"{name} on <{tag}>"
            assert "href" not in name, f"{name} on <{tag}>"


@pytest.mark.parametrize("index", range(4))
def test_every_chart_is_an_image_named_by_its_title(index: int) -> None:
    chart = sample_charts()[index]
    root = parse(chart)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert root.get("aria-labelledby") == title.get("id") == f"{chart.id}-title"
    assert title.text == chart.title


def test_chart_ids_are_unique_unless_given_and_must_be_safe() -> None:
    ids = {c.id for c in sample_charts() + sample_charts()}
    assert len(ids) == 8
    given = charts.bar_chart(
        "t", [("a", 1)], locale="en", label_header="l", value_header="v", chart_id="tiers"
    )
    assert given.id == "tiers"
    with pytest.raises(ValueError, match="chart id"):
        charts.bar_chart(
            "t", [("a", 1)], locale="en", label_header="l", value_header="v", chart_id='x" onload="'
        )


def test_bars_are_proportional_to_their_values() -> None:
    values = [40.0, 10.0, 25.0, 3.0]
    chart = charts.bar_chart(
        "t", [(str(v), v) for v in values], locale="en", label_header="l", value_header="v"
    )
    widths = [float(e.get("width") or "nan") for e in bars(parse(chart))]
    assert len(widths) == 4
    for value, width in zip(values, widths, strict=True):
        assert width / widths[0] == pytest.approx(value / values[0], rel=0.01)
    # No bar is negative.
    with pytest.raises(ValueError, match="0 or more"):
        charts.bar_chart("t", [("a", -1)], locale="en", label_header="l", value_header="v")


def test_a_withheld_value_is_a_hatched_band_and_words_never_a_number() -> None:
    chart = charts.bar_chart(
        "t",
        [("shown", 123), ("hidden", None)],
        locale="en",
        label_header="l",
        value_header="v",
        missing="fewer than 10",
        suppressed_below=10,
    )
    root = parse(chart)
    drawn = bars(root)
    withheld = [e for e in drawn if "withheld" in (e.get("class") or "")]
    assert len(withheld) == 1
    assert withheld[0].get("data-value") is None
    assert (withheld[0].get("fill") or "").startswith(f"url(#{chart.id}-hatch")
    assert root.find(f".//{SVG}pattern[@id='{chart.id}-hatch']") is not None
    assert "fewer than 10" in texts(root)
    # The only numbers drawn are the scale's ticks and the shown value.
    assert chart.value("hidden") is None
    assert chart.rows[1].cells[0].text == "fewer than 10"
    assert chart.rows[1].cells[0].withheld


def test_numbers_and_dates_are_in_the_readers_locale() -> None:
    en = charts.bar_chart("t", [("a", 12345)], locale="en", label_header="l", value_header="v")
    assert en.rows[0].cells[0].text == "12,345"
    assert "12,345" in texts(parse(en))
    zh = charts.line_chart(
        "t",
        [(datetime(2026, 6, 1, tzinfo=UTC), 1.5), (datetime(2026, 7, 1, tzinfo=UTC), 2.0)],
        locale="zh_CN",
        x_header="x",
        y_header="y",
    )
    assert zh.rows[0].label == "2026年6月1日"
    assert zh.rows[0].cells[0].text == "1.5"


def test_hostile_labels_are_escaped_cleaned_and_isolated() -> None:
    chart = sample_charts()[0]
    root = parse(chart)  # NUL and ]]> would make this fail if they went through
    svg = str(chart.svg)
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    assert "\x00" not in svg
    drawn = [t for t in texts(root) if "script" in t]
    assert len(drawn) == 1
    # Shortened to fit, and wrapped in an isolate so its RTL override ends with it.
    assert drawn[0].startswith("\u2068<script>alert(1)")
    assert drawn[0].endswith("\u2069")
    # The table keeps the whole label, NUL replaced.
    assert chart.rows[3].label == HOSTILE.replace("\x00", "\ufffd")
    legend = parse(sample_charts()[3])
    assert any(t.startswith("\u2068<script>") for t in texts(legend))


def test_a_line_breaks_where_a_value_is_unknown() -> None:
    chart = charts.line_chart(
        "t",
        [("a", 1.0), ("b", 2.0), ("c", None), ("d", 4.0), ("e", 5.0)],
        locale="en",
        x_header="x",
        y_header="y",
    )
    lines = list(parse(chart).iter(f"{SVG}polyline"))
    assert [len((line.get("points") or "").split()) for line in lines] == [2, 2]
    assert chart.rows[2].cells[0].text == "—"
    with pytest.raises(ValueError, match="xs"):
        charts.multi_line_chart(
            "t", [Series("a", [("x", 1.0)]), Series("b", [("y", 1.0)])], locale="en", x_header="x"
        )


def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_the_palette_has_contrast_against_the_background() -> None:
    background = _luminance(charts.BACKGROUND)
    for colour in (*charts.PALETTE, charts.INK, charts.MUTED):
        ratio = (background + 0.05) / (_luminance(colour) + 0.05)
        # WCAG 2.1 1.4.11 asks 3:1 of graphics; the palette keeps 4.5:1 (text too).
        assert ratio >= 4.5, (colour, ratio)


def test_the_macro_renders_the_drawing_and_its_table() -> None:
    chart = sample_charts()[1]
    template = environment("zh_CN").from_string(
        '{% from "_charts.html" import chart %}{{ chart(c) }}'
    )
    html = template.render(c=chart)
    page = Page.parse(html)
    assert page.inline == []
    assert chart.id in page.ids
    assert "<caption>Decisions</caption>" in html
    assert html.count('<th scope="col"') == 3
    assert html.count('<th scope="row"><bdi>') == 2
    assert '<td class="num withheld">少于10</td>' in html
    hostile = sample_charts()[0]
    html = template.render(c=hostile)
    assert "<script>" not in html.replace(str(hostile.svg), "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in html


def test_extra_columns_and_a_footer_are_in_the_table_not_the_drawing() -> None:
    chart = charts.grouped_bar_chart(
        "t",
        [("a", [12, 30]), ("b", [None, None])],
        series=["x", "y"],
        locale="en",
        label_header="l",
        missing="fewer than 10",
        extra=[("Total", [42, 15])],
        footer=("All", [20, 45, 65]),
    )
    assert chart.columns == ("l", "x", "y", "Total")
    assert [c.text for c in chart.rows[1].cells] == ["fewer than 10", "fewer than 10", "15"]
    assert len(bars(parse(chart))) == 2
    assert "42" not in texts(parse(chart))
    html = environment("en").from_string('{% from "_charts.html" import chart %}{{ chart(c) }}')
    rendered = html.render(c=chart)
    assert "<tfoot>" in rendered
    assert '<td class="num">65</td>' in rendered
    with pytest.raises(ValueError, match="footer"):
        charts.grouped_bar_chart(
            "t", [("a", [1])], series=["v"], locale="en", label_header="l", footer=("All", [])
        )


def test_a_hidden_value_is_words_only_with_no_band() -> None:
    chart = charts.bar_chart(
        "t",
        [("small", None), ("hidden", charts.Hidden("not shown")), ("shown", 40)],
        locale="en",
        label_header="l",
        value_header="v",
        missing="fewer than 10",
        suppressed_below=10,
    )
    root = parse(chart)
    # Only the small one has a band (it is below 10); the hidden one may be any size.
    assert len([e for e in bars(root) if "withheld" in (e.get("class") or "")]) == 1
    assert "not shown" in texts(root)
    assert [r.cells[0].text for r in chart.rows] == ["fewer than 10", "not shown", "40"]
    assert chart.value("hidden") is None


def test_the_scale_of_counts_has_whole_ticks() -> None:
    chart = charts.bar_chart(
        "t", [("a", 10), ("b", None)], locale="en", label_header="l", value_header="v"
    )
    ticks = [t for t in texts(parse(chart)) if t.replace(".", "").isdigit()]
    assert ticks
    assert all("." not in t for t in ticks), ticks


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_the_time_axis_labels_never_overlap(locale: str) -> None:
    """A year of monthly points and today (the file's score over time): the last label
    is always drawn, so a label before it that it would overlap gives way."""
    today = datetime(2026, 12, 7, tzinfo=UTC)
    months = [datetime(2025 + (11 + i) // 12, (11 + i) % 12 + 1, 7, tzinfo=UTC) for i in range(12)]
    chart = charts.line_chart(
        "Score", [(m, 1000.0) for m in [*months, today]], locale=locale, x_header="Date",
        y_header="Score", y_range=(300, 1300),
    )  # fmt: skip
    labels = list(parse(chart).iter(f"{SVG}text"))
    axis = max(float(e.get("y", 0)) for e in labels)
    extents = []
    for e in (e for e in labels if float(e.get("y", 0)) == axis):
        text, x = "".join(e.itertext()), float(e.get("x", 0))
        w = charts._width(text, 13.0)
        start = {"start": x, "end": x - w}.get(e.get("text-anchor", ""), x - w / 2)
        extents.append((start, start + w, text))
    extents.sort()
    assert len(extents) >= 3, extents
    assert extents[-1][2].replace("\u2068", "").replace("\u2069", "") == chart.rows[-1].label
    for (_, end, a), (start, _, b) in itertools.pairwise(extents):
        assert start >= end + 8, (a, b)
