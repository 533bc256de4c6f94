"""The report as HTML (Jinja2, CSS inlined for mail clients) and as plain text; files on disk.

Article titles, outlets and ledes come from the web: the HTML template autoescapes every value,
so a title such as "<script>" arrives as text. Nothing in the HTML runs script.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import css_inline
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from newsmon.digest.charts import Chart, stance_colours, stance_label
from newsmon.digest.report import CHART_WEEKS, Article, DigestReport, FeedFailure

# The labelling loop's command, shown beside the articles the model was least sure about.
LABEL_COMMAND = "newsmon label"
TEXT_WIDTH = 76
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str  # for mail: images as cid: references to the message's parts
    html_file: str  # for disk and browsers: images embedded as data: URIs, self-contained


@dataclass(frozen=True)
class DigestFiles:
    html: Path
    text: Path
    eml: Path

    def as_strings(self) -> list[str]:
        return [str(self.html), str(self.text), str(self.eml)]


def signed(number: float) -> str:
    """+3, −2 (a real minus sign), ±0."""
    if number == 0:
        return "±0"
    return f"+{number:g}" if number > 0 else f"−{abs(number):g}"


def change(count: int, previous: int) -> str:
    """'+12 (+34%)' against the week before; percentages only when there is a base."""
    if previous == 0:
        return "new" if count else "±0"
    return f"{signed(count - previous)} ({signed(round(100 * (count - previous) / previous))}%)"


def share_change(share: float, previous: float | None) -> str:
    """Change of a share in percentage points, or '–' when the week before had nothing."""
    if previous is None:
        return "–"
    return f"{signed(round(100 * (share - previous)))} pts"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}%"


def confidence(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_outlet(outlet: tuple[str, int]) -> str:
    return f"{outlet[0]} ({outlet[1]})"


def feed_list(feeds: Sequence[FeedFailure]) -> str:
    """'Name (failed/fetched), ...' for a one-line mention of feeds."""
    return ", ".join(f"{f.name or f.url} ({f.failures}/{f.attempts})" for f in feeds)


def short_day(moment: datetime | date) -> str:
    return f"{moment:%a} {moment.day} {moment:%b}"


def long_day(moment: date) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def web_link(url: str) -> str:
    """The URL when it is a web address; anything else (javascript:, data:) links nowhere."""
    return url if urlsplit(url).scheme.lower() in ("http", "https") else "#"


def number_word(number: int) -> str:
    """Small numbers in words, as in running text ('eight weeks'); digits from ten."""
    return NUMBER_WORDS[number] if 0 <= number < len(NUMBER_WORDS) else str(number)


def prediction(article: Article) -> str:
    """What the model made of an article outside the configured topics."""
    if not article.classified:
        return "not yet classified"
    if article.topic == "none":
        return "on no topic"
    return f"on topic {article.topic!r}, no longer configured"


def other_heading(report: DigestReport) -> str:
    """The heading of the section for articles on none of the topics: say what they are."""
    if report.unclassified and report.off_topic:
        return "Other coverage"
    return "Not yet classified" if report.unclassified else "On none of your topics"


def other_note(report: DigestReport) -> str:
    unclassified, off_topic = report.unclassified, report.off_topic
    if report.model is None:
        waiting = (
            "No model has been trained yet, so none of the week's "
            f"{plural(unclassified, 'article')} has a topic or stance: here are its top stories."
        )
    else:
        waiting = (
            f"{plural(unclassified, 'article')} {'has' if unclassified == 1 else 'have'} no "
            f"prediction from model {report.model.version} yet; they may be on your topics."
        )
    judged = (
        f"{plural(off_topic, 'article')} {'was' if off_topic == 1 else 'were'} judged to be on "
        "none of your topics."
    )
    if unclassified and off_topic:
        return f"{waiting} {judged} Stories not yet classified come first."
    return waiting if unclassified else judged


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("newsmon.digest", "templates"),
        # On for the HTML templates: every value is escaped unless marked safe.
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        signed=signed,
        change=change,
        share_change=share_change,
        percent=percent,
        confidence=confidence,
        short_day=short_day,
        long_day=long_day,
        stance=stance_label,
        plural=plural,
        format_outlet=format_outlet,
        feed_list=feed_list,
        web_link=web_link,
        prediction=prediction,
    )
    environment.globals.update(
        label_command=LABEL_COMMAND,
        stance_colours=stance_colours,
        chart_weeks=number_word(CHART_WEEKS),
        other_heading=other_heading,
        other_note=other_note,
    )
    return environment


ENVIRONMENT = _environment()


def subject(report: DigestReport, prefix: str) -> str:
    # Never 'no articles': a week with none is not rendered (newsmon.flows.digest).
    return f"{prefix} Weekly digest {report.week}: {report.total} articles".strip()


def render(
    report: DigestReport, charts: Mapping[str, Chart], subject_prefix: str
) -> RenderedDigest:
    """The digest's subject, text and both HTML forms."""
    context = {"report": report, "charts": charts, "width": TEXT_WIDTH}
    template = ENVIRONMENT.get_template("digest.html")
    mail_sources = {name: f"cid:{chart.cid}" for name, chart in charts.items()}
    file_sources = {
        name: "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii")
        for name, chart in charts.items()
    }
    return RenderedDigest(
        subject=subject(report, subject_prefix),
        text=ENVIRONMENT.get_template("digest.txt").render(context),
        html=css_inline.inline(template.render(context, sources=mail_sources)),
        html_file=css_inline.inline(template.render(context, sources=file_sources)),
    )


def save(directory: Path, week: str, rendered: RenderedDigest, eml: bytes) -> DigestFiles:
    """Write <week>.html, .txt and .eml; each is written whole, then renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    files = DigestFiles(
        directory / f"{week}.html", directory / f"{week}.txt", directory / f"{week}.eml"
    )
    contents: list[tuple[Path, bytes]] = [
        (files.html, rendered.html_file.encode("utf-8")),
        (files.text, rendered.text.encode("utf-8")),
        (files.eml, eml),
    ]
    for path, data in contents:
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return files
