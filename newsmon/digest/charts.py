"""The digest's charts as PNG bytes, each with alt text that states what it shows.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
Colours are from the Okabe-Ito palette, which stays distinguishable with colour blindness.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import make_msgid

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from newsmon.digest.report import UNCLASSIFIED, DigestReport, TopicReport, stance_order

# Drawn at 1.5 times the width the mail shows them (584 px): sharp on dense screens, and each
# chart costs less to draw than at 2x.
WIDTH_INCHES = 6.0
DPI = 150
TOPIC_COLOURS = ("#0072B2", "#E69F00", "#CC79A7", "#009E73", "#56B4E9", "#D55E00", "#F0E442")
UNCLASSIFIED_COLOUR = "#BBBBBB"
STANCE_COLOURS = {"favor": "#009E73", "against": "#D55E00", "neutral": "#8C8C8C", None: "#D9D9D9"}
OTHER_STANCE_COLOURS = ("#0072B2", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LEGEND_FONT_SIZE = 7
# Legend labels are wrapped at this many characters: at 7 pt a line of even the widest letters
# is narrower than the figure, so a legend in one column always fits.
LEGEND_WRAP = 40
# Fixed margins, as fractions of the plot's height (without the legend) and the figure's width.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT = 0.08, 0.11, 0.09, 0.03


@dataclass(frozen=True)
class Chart:
    name: str  # file-name-safe, unique within a digest
    cid: str  # Content-ID without angle brackets; the HTML refers to it as cid:...
    title: str
    alt: str
    png: bytes


def stance_colours(stances: Sequence[str | None]) -> dict[str | None, str]:
    """A colour for every stance label, stable for the usual ones."""
    others = iter(OTHER_STANCE_COLOURS * 4)
    return {s: STANCE_COLOURS[s] if s in STANCE_COLOURS else next(others) for s in stances}


def stance_label(stance: str | None) -> str:
    return "unknown" if stance is None else stance


def _figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    figure.set_facecolor("white")
    return figure


def _legend_below(figure: Figure, axes: Axes) -> None:
    """The legend under the plot, in as many columns as fit; the figure grows to hold it.

    Below the plot a legend has the figure's whole width, so a long topic name is wrapped,
    never cut off at the edge. The margins are set from the legend's measured size rather than
    by a layout engine: the charts are the digest's largest cost, and constrained layout
    measures every label again.
    """
    handles, labels = axes.get_legend_handles_labels()
    labels = [textwrap.fill(label, LEGEND_WRAP) for label in labels]
    renderer = FigureCanvasAgg(figure).get_renderer()
    usable = figure.bbox.width * (1 - 2 * MARGIN_RIGHT)
    for columns in range(len(labels), 0, -1):
        legend = figure.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 0),
            ncols=columns,
            fontsize=LEGEND_FONT_SIZE,
            frameon=False,
        )
        extent = legend.get_window_extent(renderer)
        if extent.width <= usable or columns == 1:
            break
        legend.remove()
    plot_height = figure.get_figheight()
    legend_height = extent.y1 / figure.dpi
    height = plot_height + legend_height
    figure.set_figheight(height)
    figure.subplots_adjust(
        left=MARGIN_LEFT,
        right=1 - MARGIN_RIGHT,
        top=1 - MARGIN_TOP * plot_height / height,
        bottom=(MARGIN_BOTTOM * plot_height + legend_height) / height,
    )


def _finish(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _style(axes: Axes) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(labelsize=8, length=0)
    axes.grid(axis="y", color="#E5E5E5", linewidth=0.8)
    axes.set_axisbelow(True)


def _chart(name: str, title: str, alt: str, figure: Figure) -> Chart:
    return Chart(
        name, make_msgid(idstring=name, domain="newsmon.digest")[1:-1], title, alt, _finish(figure)
    )


def daily_chart(report: DigestReport) -> Chart | None:
    """Stacked bars: articles per day of the week, by topic, and those not yet classified.

    None when the week has no such article (only off-topic ones): empty axes say nothing.
    """
    # A topic keeps its colour (its place in the config) even when another has no articles.
    colours = {name: TOPIC_COLOURS[i % len(TOPIC_COLOURS)] for i, name in enumerate(report.daily)}
    colours[UNCLASSIFIED] = UNCLASSIFIED_COLOUR
    series = {name: counts for name, counts in report.daily.items() if any(counts)}
    if not series:
        return None
    figure = _figure(2.6)
    axes = figure.add_subplot()
    bottom = [0] * 7
    for name, counts in series.items():
        colour = colours[name]
        axes.bar(DAY_NAMES, counts, bottom=bottom, color=colour, label=name, width=0.7)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _style(axes)
    # Counts of articles: whole numbers on the axis, never 0.2, 0.4...
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("articles", fontsize=8)
    _legend_below(figure, axes)
    days = ", ".join(f"{day} {n}" for day, n in zip(DAY_NAMES, bottom, strict=True))
    busiest = max(range(7), key=lambda i: bottom[i])
    alt = (
        f"Bar chart of articles per day in {report.week}, on configured topics and not yet "
        f"classified: {days}. Busiest day: {DAY_NAMES[busiest]}."
    )
    alt += " By topic: " + "; ".join(f"{n} {sum(c)}" for n, c in series.items()) + "."
    return _chart("daily", "Articles per day", alt, figure)


def stance_chart(topic: TopicReport, index: int) -> Chart | None:
    """100% stacked bars: each week's stance shares for one topic over the last weeks.

    None when no article over those weeks was classified on the topic: nothing to draw.
    """
    stances = stance_order(s for _, counts in topic.weekly_stances for s in counts)
    colours = stance_colours(stances)
    labels = [f"W{week.week:02d}" for week, _ in topic.weekly_stances]
    totals = [sum(counts.values()) for _, counts in topic.weekly_stances]
    if not any(totals):
        return None
    figure = _figure(2.3)
    axes = figure.add_subplot()
    bottom = [0.0] * len(labels)
    for stance in stances:
        shares = [
            100 * counts.get(stance, 0) / total if total else 0.0
            for (_, counts), total in zip(topic.weekly_stances, totals, strict=True)
        ]
        axes.bar(
            labels,
            shares,
            bottom=bottom,
            color=colours[stance],
            width=0.7,
            label=stance_label(stance),
        )
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    for position, total in enumerate(totals):
        axes.annotate(
            f"n={total}",
            (position, 100),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=6,
            color="#555555",
        )
    _style(axes)
    axes.set_ylim(0, 108)
    axes.set_ylabel("% of articles", fontsize=8)
    _legend_below(figure, axes)

    def describe(counts: dict[str | None, int], total: int) -> str:
        if not total:
            return "no articles"
        return ", ".join(
            f"{stance_label(s)} {100 * counts.get(s, 0) / total:.0f}%" for s in stances
        )

    (first_week, first), (last_week, last) = topic.weekly_stances[0], topic.weekly_stances[-1]
    alt = (
        f"Stacked bar chart of the stance share of articles on {topic.name}, week by week from "
        f"{first_week} to {last_week}. {last_week}: {describe(last, totals[-1])}. "
        f"{first_week}: {describe(first, totals[0])}."
    )
    return _chart(f"stance-{index}", f"Stance share per week: {topic.name}", alt, figure)


def make_charts(report: DigestReport) -> dict[str, Chart]:
    """The digest's charts by name: 'daily', and 'stance-<n>' per topic (n from 0).

    A chart with no data is left out; the templates say so in words where it would be.
    """
    charts = [daily_chart(report)]
    charts += [stance_chart(topic, i) for i, topic in enumerate(report.topics)]
    return {chart.name: chart for chart in charts if chart is not None}
