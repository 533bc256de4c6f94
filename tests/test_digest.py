"""The weekly digest end to end: a real warehouse file, a real SMTP server on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from typer.testing import CliRunner

from newsmon.cli import app
from newsmon.config import load_config
from newsmon.digest.charts import make_charts
from newsmon.digest.mail import build_message
from newsmon.digest.render import render
from newsmon.digest.report import gather
from newsmon.digest.weeks import IsoWeek
from newsmon.warehouse.db import open_reader, open_writer

WEEK = "2026-W47"  # Monday 16 to Sunday 22 November 2026
HOSTILE_TITLE = '<script>alert("pwned")</script> Kim & Moon <b>meet</b>'
RECIPIENTS = ["analyst@example.org", "desk@example.org"]

CONFIG = """
timezone = "Europe/London"

[warehouse]
path = "warehouse/newsmon.duckdb"

[email]
host = "127.0.0.1"
port = {port}
security = "none"
from = "newsmon@example.org"
to = {to}
subject_prefix = "[newsmon]"

[[topics]]
id = "dprk"
name = "US-North Korea diplomacy"
target = "Summit diplomacy between the United States and North Korea"

[[topics]]
id = "tariffs"
name = "Trade tariffs"
target = "Tariffs between the US and its trading partners"
"""


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it received and can refuse the first attempts."""

    refuse_first: int = 0
    refusal: str = "451 4.3.0 Try again later"
    attempts: int = 0
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.attempts <= self.refuse_first:
            return self.refusal
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


# (id, title, url, site, published, simhash, topic, topic conf., stance, stance conf.);
# topic None: no prediction from the current model.
# fmt: off
ARTICLES = [
    # One story, three outlets: one item in the digest.
    (1, "Trump and Kim agree to meet in Hanoi for second summit",
     "https://nknews.example/hanoi-summit", "NK News", at(17, 9), 0x0F0F0F0F0F0F0F0F,
     "dprk", 0.97, "favor", 0.81),
    (2, "Kim and Trump to hold second summit in Hanoi, officials say",
     "https://wire.example/kim-trump-hanoi", "Wire", at(17, 15), 0x1234,
     "dprk", 0.93, "neutral", 0.66),
    (3, "Hanoi summit: Trump and Kim agree to meet again",
     "https://daily.example/hanoi", "Daily", at(18, 8), 0xFFFF0000,
     "dprk", 0.91, "against", 0.72),
    (4, HOSTILE_TITLE, "javascript:alert(1)", "Evil <i>Outlet</i>", at(19), 0xAAAA,
     "dprk", 0.41, None, None),
    (5, "Sanctions relief remains the sticking point in nuclear talks",
     "https://daily.example/sanctions", "Daily", at(20), 0xBBBB0000BBBB,
     "dprk", 0.88, "against", 0.58),
    (6, "Steel tariffs raised to 40 percent on imports from Europe",
     "https://wire.example/steel", "Wire", at(18), 0xC0FFEE,
     "tariffs", 0.95, "against", 0.9),
    (7, "Football results from the weekend", "https://sport.example/results", "Sport",
     at(22), 0x5A5A5A5A5A5A5A5A, "none", 0.99, None, None),
    (8, "Unclassified piece on weather", "https://wx.example/rain", None, at(21), 0xE0E0,
     None, None, None, None),
    # The week before: two on the topic, for the changes.
    (20, "Pyongyang test-fires missile ahead of talks", "https://nknews.example/missile",
     "NK News", at(10), 0x1111, "dprk", 0.9, "against", 0.8),
    (21, "Envoys meet in Stockholm", "https://wire.example/stockholm", "Wire", at(11), 0x2222,
     "dprk", 0.9, "favor", 0.7),
]
# fmt: on
LEDE_TEXT = (
    "Skip to content\nTrump and Kim agree to meet in Hanoi for second summit\n"
    "U.S. President Donald Trump and North Korean leader Kim Jong Un will meet in Hanoi later "
    "this month, officials in both capitals said on Tuesday. It will be their second summit in "
    "less than a year. Analysts were cautious about what the meeting could achieve."
)


def build_warehouse(database: Path) -> None:
    """A warehouse with the rows ingest and the classifier would have written."""
    with open_writer(database) as con:
        for (
            article_id,
            title,
            url,
            site,
            published,
            simhash,
            topic,
            topic_conf,
            stance,
            stance_conf,
        ) in ARTICLES:
            text = LEDE_TEXT if article_id == 1 else f"{title}. " * 5
            con.execute(
                "INSERT INTO articles (article_id, canonical_url, title, published_at, "
                "first_seen_at, fetched_at, site, text, word_count, content_hash, simhash, "
                "extraction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 100, ?, ?, 'trafilatura')",
                [
                    article_id,
                    url,
                    title,
                    published,
                    published,
                    published,
                    site,
                    text,
                    f"hash{article_id}",
                    simhash,
                ],
            )
            if topic is not None:
                con.execute(
                    "INSERT INTO predictions (article_id, model_version, predicted_at, topic, "
                    "topic_confidence, stance, stance_confidence) VALUES (?, 'm2', ?, ?, ?, ?, ?)",
                    [article_id, published, topic, topic_conf, stance, stance_conf],
                )
        # A prediction by a retired model does not count: article 8 stays unclassified.
        con.execute(
            "INSERT INTO predictions (article_id, model_version, predicted_at, topic, topic_confidence) "
            "VALUES (8, 'm1', now(), 'dprk', 0.9)"
        )
        con.execute(
            "INSERT INTO model_versions (model_version, trained_at, is_current, artifact_path, "
            "artifact_sha256, topic_macro_f1, stance_macro_f1, card) VALUES "
            "('m1', '2026-10-01', false, 'models/m1', 'x', 0.5, 0.4, '{}'), "
            "('m2', '2026-11-10 09:00+00', true, 'models/m2', 'y', 0.812, 0.643, '{}')"
        )
        con.execute(
            "INSERT INTO feeds (feed_url, name, added_at) VALUES "
            "('https://ok.example/feed', 'Good Feed', now()), "
            "('https://bad.example/feed', 'Flaky Feed', now())"
        )
        con.execute(
            "INSERT INTO fetch_log (requested_at, kind, url, status_code, error) VALUES "
            "('2026-11-16 10:00+00', 'feed', 'https://ok.example/feed', 200, NULL), "
            "('2026-11-16 10:00+00', 'feed', 'https://bad.example/feed', 503, NULL), "
            "('2026-11-18 10:00+00', 'feed', 'https://bad.example/feed', NULL, 'timed out'), "
            "('2026-11-19 10:00+00', 'feed', 'https://bad.example/feed', 200, NULL), "
            # Outside the week: not reported.
            "('2026-11-09 10:00+00', 'feed', 'https://ok.example/feed', 500, NULL)"
        )


@pytest.fixture
def project(tmp_path: Path, write_config, smtp) -> tuple[Path, Recorder]:
    recorder, port = smtp
    path = write_config(CONFIG.format(port=port, to='["' + '", "'.join(RECIPIENTS) + '"]'))
    build_warehouse(load_config(path).warehouse_path)
    return path, recorder


def parts(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


def test_gather_counts_the_week_and_the_one_before(project: tuple[Path, Recorder]) -> None:
    config = load_config(project[0])
    with open_reader(config.warehouse_path) as con:
        report = gather(con, config, IsoWeek.parse(WEEK))

    assert (report.total, report.previous_total) == (8, 2)
    assert (report.off_topic, report.unclassified) == (1, 1)
    dprk, tariffs = report.topics
    assert (dprk.count, dprk.previous_count, tariffs.count) == (5, 2, 1)
    shares = {row.stance: (row.count, row.previous_share) for row in dprk.stances}
    assert shares == {"favor": (1, 0.5), "against": (2, 0.5), "neutral": (1, 0.0), None: (1, 0.0)}
    assert [s.stance for s in dprk.stances][-1] is None  # unknown comes last
    # The three reports of the Hanoi summit are one story, listed first, led by the earliest.
    top = dprk.stories[0]
    assert [a.article_id for a in top.articles] == [1, 2, 3]
    assert top.outlets == ["NK News", "Wire", "Daily"]
    assert top.lede.startswith("U.S. President Donald Trump and North Korean leader")
    assert top.lede.endswith("second summit in less than a year.")
    assert len(dprk.stories) == 3
    assert dprk.outlets[0] == ("Daily", 2)
    assert dprk.needs_review[0].article_id == 4  # no stance and 0.41 topic confidence
    assert [(f.name, f.failures, f.attempts, f.still_failing) for f in report.feed_failures] == [
        ("Flaky Feed", 2, 3, False)
    ]
    assert report.feeds_fetched == 2
    assert report.model is not None and report.model.version == "m2"
    assert sum(report.daily["US-North Korea diplomacy"]) == 5
    assert report.daily["Unclassified"][5] == 1  # Saturday 21 November
    # The articles on none of the topics are still listed: not yet classified first.
    assert [s.lead.article_id for s in report.other_stories] == [8, 7]
    assert [s.classified for s in report.other_stories] == [False, True]


def test_flow_mails_once_then_only_with_force(
    project: tuple[Path, Recorder], prefect_harness: None
) -> None:
    from newsmon.flows.digest import digest_flow

    config_path, recorder = project
    config = load_config(config_path)
    outcome = digest_flow(config_path=str(config_path), week=WEEK)

    assert outcome.sent_to == RECIPIENTS
    assert len(recorder.received) == 1
    message = recorder.received[0]
    assert recorder.envelopes[0] == ("newsmon@example.org", RECIPIENTS)
    assert message["Subject"] == "[newsmon] Weekly digest 2026-W47: 8 articles"
    assert message["From"] == "newsmon@example.org"
    assert message["To"] == ", ".join(RECIPIENTS)
    # text first, then the HTML with its images in one multipart/related
    assert parts(message) == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "image/png",
        "image/png",
    ]
    text_part, related = message.get_payload()
    html_part, *images = related.get_payload()
    html = html_part.get_content()
    for image in images:
        assert image.get_content().startswith(b"\x89PNG")
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
    assert len(re.findall(r'<img [^>]*alt="[^"]{40,}"', html)) == 3
    # Article-supplied markup arrives as text; the hostile link goes nowhere.
    assert "<script" not in html and "<b>meet" not in html and "<i>Outlet" not in html
    assert "&lt;script&gt;alert(" in html
    assert "javascript:" not in html
    assert "<style" not in html and 'style="' in html  # CSS inlined for mail clients
    text = text_part.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert HOSTILE_TITLE in text  # plain text needs no escaping
    assert "Trump and Kim agree to meet in Hanoi for second summit" in text
    assert (
        "Also Wire, Tue 17 Nov, neutral (0.66):\n      https://wire.example/kim-trump-hanoi" in text
    )
    assert "Flaky Feed: failed 2 of 3 fetches, recovered" in text
    assert "Model m2, trained Tue 10 Nov: topic macro-F1 0.81, stance macro-F1 0.64." in text
    assert "newsmon label" in text
    # Articles outside the topics: the unclassified one first, then the off-topic one.
    assert "OTHER COVERAGE" in text and "Other coverage" in html
    weather, football = "Unclassified piece on weather", "Football results from the weekend"
    assert text.index(weather) < text.index(football)
    assert html.index(weather) < html.index(football)
    assert "wx.example · Sat 21 Nov · not yet classified" in text
    assert "Sport · Sun 22 Nov · on no topic" in text
    assert all(len(line) <= 76 or "://" in line for line in text.splitlines())

    folder = config.digests_path
    saved = email.message_from_bytes(
        (folder / f"{WEEK}.eml").read_bytes(), policy=email.policy.default
    )
    assert saved["Message-ID"] == message["Message-ID"] and parts(saved) == parts(message)
    saved_html = (folder / f"{WEEK}.html").read_text(encoding="utf-8")
    assert saved_html.count('src="data:image/png;base64,') == 3 and "cid:" not in saved_html
    assert (folder / f"{WEEK}.txt").read_text(encoding="utf-8") == text

    again = digest_flow(config_path=str(config_path), week=WEEK)
    assert len(recorder.received) == 1
    assert again.sent_to == [] and "already sent" in again.not_sent_because

    digest_flow(config_path=str(config_path), week=WEEK, force=True)
    assert len(recorder.received) == 2

    with open_reader(config.warehouse_path) as con:
        assert con.execute("SELECT send_count, last_error FROM digests").fetchall() == [(2, None)]
        runs = con.execute(
            "SELECT status, counts->>'sent' FROM runs WHERE flow = 'digest' ORDER BY started_at"
        ).fetchall()
    assert runs == [("completed", "1"), ("completed", "0"), ("completed", "1")]


def test_transient_refusals_are_retried(
    project: tuple[Path, Recorder], prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsmon.flows.digest as digest_module

    monkeypatch.setattr(digest_module, "SEND_RETRY_DELAYS_SECONDS", [0, 0, 0])
    config_path, recorder = project
    recorder.refuse_first = 2

    outcome = digest_module.digest_flow(config_path=str(config_path), week=WEEK)

    assert recorder.attempts == 3 and len(recorder.received) == 1
    assert outcome.sent_to == RECIPIENTS


def test_permanent_failure_is_reported_and_the_digest_kept(
    project: tuple[Path, Recorder], prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsmon.flows.digest as digest_module

    monkeypatch.setattr(digest_module, "SEND_RETRY_DELAYS_SECONDS", [0, 0, 0])
    config_path, recorder = project
    recorder.refuse_first, recorder.refusal = 99, "554 5.7.1 Message rejected as spam"

    result = CliRunner().invoke(app, ["--config", str(config_path), "digest", "--week", WEEK])

    assert result.exit_code == 1
    assert recorder.attempts == 1  # a 5xx reply will not change: no retry
    assert "digest 2026-W47 was not sent" in result.stderr
    assert "554" in result.stderr and "Message rejected as spam" in result.stderr
    config = load_config(config_path)
    for suffix in ("html", "txt", "eml"):
        assert (config.digests_path / f"{WEEK}.{suffix}").stat().st_size > 1000
    with open_reader(config.warehouse_path) as con:
        sent_at, error = con.execute("SELECT sent_at, last_error FROM digests").fetchone()
        status = con.execute("SELECT status FROM runs WHERE flow = 'digest'").fetchone()
    assert sent_at is None and "554" in error
    assert status == ("failed",)


def test_unreachable_server_is_retried_then_reported(
    tmp_path: Path, write_config, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsmon.flows.digest as digest_module

    monkeypatch.setattr(digest_module, "SEND_RETRY_DELAYS_SECONDS", [0, 0])
    monkeypatch.setenv("NEWSMON_SMTP_PASSWORD", "s3cret-Pa55")
    config_path = write_config(
        CONFIG.format(port=free_port(), to='["a@example.org"]').replace(
            'security = "none"', 'security = "none"\nusername = "newsmon"'
        )
    )
    build_warehouse(load_config(config_path).warehouse_path)
    attempts = []
    original = digest_module.send_message
    monkeypatch.setattr(
        digest_module, "send_message", lambda *a: attempts.append(1) or original(*a)
    )

    result = CliRunner().invoke(app, ["--config", str(config_path), "digest", "--week", WEEK])

    assert result.exit_code == 1
    assert len(attempts) == 3
    assert "ConnectionRefusedError" in result.stderr
    assert "s3cret-Pa55" not in result.output + result.stderr
    assert (tmp_path / "warehouse" / "digests" / f"{WEEK}.eml").exists()


def test_command_renders_without_sending_and_says_where(
    project: tuple[Path, Recorder], prefect_harness: None
) -> None:
    config_path, recorder = project

    result = CliRunner().invoke(
        app, ["--config", str(config_path), "digest", "--week", WEEK, "--no-send"]
    )

    assert result.exit_code == 0, result.output
    assert "Digest 2026-W47: 8 articles" in result.stdout
    assert "not sent (--no-send)" in result.stdout
    assert recorder.attempts == 0
    assert (config_path.parent / "warehouse" / "digests" / f"{WEEK}.html").exists()


def test_bad_week_is_refused_before_any_work(write_config) -> None:
    config_path = write_config(CONFIG.format(port=25, to="[]"))

    result = CliRunner().invoke(app, ["--config", str(config_path), "digest", "--week", "2026-47"])

    assert result.exit_code == 2
    assert "expected the form 2026-W47" in result.stderr
    assert not (config_path.parent / "warehouse").exists()


def insert_articles(
    database: Path, stories: list[tuple[str, str]], topic: str | None = None
) -> None:
    """Articles dated through the week, with a current model's prediction only if `topic`."""
    with open_writer(database) as con:
        for n, ((title, text), simhash) in enumerate(zip(stories, SIMHASHES, strict=True), start=1):
            published = at(16 + n % 7, 9 + n)
            con.execute(
                "INSERT INTO articles (article_id, canonical_url, title, published_at, "
                "first_seen_at, fetched_at, site, text, word_count, content_hash, simhash, "
                "extraction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 100, ?, ?, 'trafilatura')",
                [n, f"https://outlet{n}.example/{n}", title, published, published, published,
                 f"Outlet {n}", text, f"hash{n}", simhash],
            )  # fmt: skip
            if topic is not None:
                con.execute(
                    "INSERT INTO predictions (article_id, model_version, predicted_at, topic, "
                    "topic_confidence) VALUES (?, 'm2', ?, ?, 0.9)",
                    [n, published, topic],
                )
        if topic is not None:
            con.execute(
                "INSERT INTO model_versions (model_version, trained_at, is_current, "
                "artifact_path, artifact_sha256, topic_macro_f1, stance_macro_f1, card) VALUES "
                "('m2', '2026-11-10 09:00+00', true, 'models/m2', 'y', 0.8, 0.6, '{}')"
            )


# Four different stories, so four items: unrelated words, simhashes 32 bits or more apart.
STORIES = [
    (
        "Envoys arrive in Singapore for working-level talks",
        "Negotiators from Washington and Pyongyang landed in Singapore on Monday to prepare "
        "working-level talks on sanctions and inspections.",
    ),
    (
        "Harbour festival draws record crowds",
        "The annual harbour festival drew more than two hundred thousand visitors over the "
        "weekend, organisers said.",
    ),
    (
        "Late goal settles the league final",
        "A goal in the last minute of extra time settled the league final on Sunday, ending "
        "a season in which the champions lost only twice.",
    ),
    (
        "Storm closes mountain passes overnight",
        "Heavy snow and gales shut three alpine roads overnight, stranding lorries and "
        "cutting off villages until ploughs reached them at dawn.",
    ),
]
SIMHASHES = [0, 0x7FFFFFFF00000000, 0x00000000FFFFFFFF, 0x7FFFFFFFFFFFFFFF]
UNRELATED_TITLES = [title for title, _ in STORIES]


def render_week(config_path: Path):
    config = load_config(config_path)
    with open_reader(config.warehouse_path) as con:
        report = gather(con, config, IsoWeek.parse(WEEK))
    charts = make_charts(report)
    rendered = render(report, charts, "[newsmon]")
    message = build_message(config.email, rendered, charts)
    text = rendered.text
    return report, charts, rendered.html, text, message


def test_without_a_model_the_stories_are_listed_and_empty_charts_left_out(write_config) -> None:
    config_path = write_config(CONFIG.format(port=25, to="[]"))
    insert_articles(load_config(config_path).warehouse_path, STORIES)

    report, charts, html, text, message = render_week(config_path)

    assert (report.total, report.unclassified, report.model) == (4, 4, None)
    assert sorted(s.lead.title for s in report.other_stories) == sorted(UNRELATED_TITLES)
    # The daily chart has the unclassified articles; no topic has a stance to chart.
    assert list(charts) == ["daily"]
    assert parts(message).count("image/png") == 1 and html.count("<img ") == 1
    assert html.count("No classified articles on this topic in the last eight weeks yet.") == 2
    assert "Not yet classified</h2>" in html and "NOT YET CLASSIFIED" in text
    for title in UNRELATED_TITLES:
        assert title in html and title in text
    assert "organisers said." in html and "organisers said." in text  # the lede
    assert "https://outlet3.example/3" in html and "https://outlet3.example/3" in text
    assert "not yet classified ·" not in text  # the heading says so once, not every item
    assert "4 articles of the week are not classified yet" in text


def test_an_off_topic_week_lists_its_stories_and_draws_no_chart(write_config) -> None:
    config_path = write_config(CONFIG.format(port=25, to="[]"))
    insert_articles(load_config(config_path).warehouse_path, STORIES, topic="none")

    report, charts, html, text, message = render_week(config_path)

    assert (report.off_topic, report.unclassified) == (4, 0)
    assert charts == {} and "image/png" not in parts(message) and "<img " not in html
    assert "No article this week was on your topics or waiting to be classified." in html
    assert "On none of your topics</h2>" in html and "ON NONE OF YOUR TOPICS" in text
    assert "4 articles were judged to be on none of your topics." in text
    for title in UNRELATED_TITLES:
        assert title in html and title in text


def add_article(database: Path, article_id: int, published: datetime, **columns: object) -> None:
    """One more article on topic 'dprk' from the current model, as ingest and classify leave it."""
    url = columns.get("url", f"https://late.example/{article_id}")
    with open_writer(database) as con:
        con.execute(
            "INSERT INTO articles (article_id, canonical_url, title, published_at, "
            "first_seen_at, fetched_at, site, text, word_count, content_hash, simhash, "
            "extraction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 100, ?, ?, 'trafilatura')",
            [article_id, url, columns.get("title", f"Late story {article_id}"), published,
             published, published, columns.get("site"), "Envoys met again. " * 5,
             f"late{article_id}", article_id],
        )  # fmt: skip
        con.execute(
            "INSERT INTO predictions (article_id, model_version, predicted_at, topic, "
            "topic_confidence) VALUES (?, 'm2', ?, 'dprk', 0.9)",
            [article_id, published],
        )


def test_an_empty_week_is_not_mailed_nor_recorded_and_stays_due(
    project: tuple[Path, Recorder], prefect_harness: None
) -> None:
    from newsmon.digest.due import due_week
    from newsmon.flows.digest import digest_flow

    config_path, recorder = project
    config = load_config(config_path)
    during_w31 = datetime(2026, 7, 29, 12, tzinfo=UTC)  # the week after 2026-W30 (20-26 July)

    outcome = digest_flow(config_path=str(config_path), week="2026-W30")

    assert recorder.attempts == 0 and outcome.sent_to == [] and outcome.files is None
    assert outcome.not_sent_because.startswith("no articles dated in 2026-W30")
    assert not config.digests_path.exists() or not list(config.digests_path.iterdir())
    with open_reader(config.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM digests").fetchone() == (0,)
        runs = con.execute("SELECT status FROM runs WHERE flow = 'digest'").fetchall()
    assert runs == [("completed",)]
    assert due_week(config, during_w31) == "2026-W30"

    # The week's articles arrive late (a feed was down): the next run mails the digest.
    add_article(config.warehouse_path, 30, datetime(2026, 7, 22, 9, tzinfo=UTC))
    outcome = digest_flow(config_path=str(config_path), week="2026-W30")

    assert outcome.sent_to == RECIPIENTS and len(recorder.received) == 1
    assert recorder.received[0]["Subject"] == "[newsmon] Weekly digest 2026-W30: 1 articles"
    assert due_week(config, during_w31) is None


def test_an_empty_digest_sent_by_an_earlier_version_does_not_count_as_done(
    project: tuple[Path, Recorder], prefect_harness: None
) -> None:
    from newsmon.digest.due import due_week
    from newsmon.flows.digest import digest_flow

    config_path, recorder = project
    config = load_config(config_path)
    with open_writer(config.warehouse_path) as con:
        con.execute(
            "INSERT INTO digests (week, rendered_at, article_count, html_path, text_path, "
            "eml_path, sent_at, recipients, send_count) VALUES ('2026-W30', '2026-07-27', 0, "
            "'a.html', 'a.txt', 'a.eml', '2026-07-27', '[\"analyst@example.org\"]', 1)"
        )
    add_article(config.warehouse_path, 30, datetime(2026, 7, 22, 9, tzinfo=UTC))

    assert due_week(config, datetime(2026, 7, 29, 12, tzinfo=UTC)) == "2026-W30"
    outcome = digest_flow(config_path=str(config_path), week="2026-W30")

    assert outcome.sent_to == RECIPIENTS and len(recorder.received) == 1
    with open_reader(config.warehouse_path) as con:
        assert con.execute("SELECT article_count, send_count FROM digests").fetchall() == [(1, 2)]


def newsmon_process(config_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in its own process, on the test session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    return subprocess.run(
        [sys.executable, "-m", "newsmon", "--config", str(config_path), *arguments],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
    )  # fmt: skip


def test_run_with_a_dead_feed_and_no_articles_mails_nothing_and_says_why(
    tmp_path: Path, write_config, smtp: tuple[Recorder, int], prefect_harness: None
) -> None:
    recorder, port = smtp
    dead = free_port()  # nothing listens there
    config_path = write_config(
        CONFIG.format(port=port, to='["desk@example.org"]')
        + f'\n[fetch]\nallow_private_addresses = true\nretries = 0\n\n[[feeds]]\n'
        f'url = "http://127.0.0.1:{dead}/feed.xml"\n'
    )

    finished = newsmon_process(config_path, "run")

    assert finished.returncode == 1, finished.stderr  # no feed could be read
    week = IsoWeek.last_complete(load_config(config_path).zone, datetime.now(UTC))
    assert f"digest {week}: no articles dated in {week} yet" in finished.stdout
    assert recorder.attempts == 0
    with open_reader(load_config(config_path).warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM digests").fetchone() == (0,)


def test_a_week_not_ended_is_refused_unless_previewed(
    project: tuple[Path, Recorder], prefect_harness: None
) -> None:
    config_path, recorder = project
    config = load_config(config_path)
    current = IsoWeek.containing(datetime.now(UTC).astimezone(config.zone).date())
    future = IsoWeek.containing(current.monday + timedelta(weeks=3))

    refused = newsmon_process(config_path, "digest", "--week", str(future))
    assert refused.returncode == 2, refused.stdout
    assert f"{future} has not begun yet" in refused.stderr
    refused = newsmon_process(config_path, "digest", "--week", str(current), "--no-send")
    assert refused.returncode == 2, refused.stdout
    assert f"{current} has not ended yet" in refused.stderr and "--force" in refused.stderr
    refused = newsmon_process(config_path, "digest", "--week", str(future), "--no-send", "--force")
    assert refused.returncode == 2 and f"{future} has not begun yet" in refused.stderr

    # A preview of the week so far: saved beside the digests, neither mailed nor recorded.
    add_article(config.warehouse_path, 40, datetime.now(UTC) - timedelta(seconds=1))
    result = CliRunner().invoke(
        app, ["--config", str(config_path), "digest", "--week", str(current), "--no-send",
              "--force"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "preview" in result.stdout
    assert (config.digests_path / f"{current}-preview.html").exists()
    assert not (config.digests_path / f"{current}.html").exists()
    assert recorder.attempts == 0
    with open_reader(config.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM digests").fetchone() == (0,)


def test_outlets_are_named_as_in_article_topics(project: tuple[Path, Recorder]) -> None:
    config = load_config(project[0])
    feed = "http://127.0.0.1:8765/feed.xml"
    add_article(config.warehouse_path, 50, at(19), url="http://127.0.0.1:8765/a",
                site="127.0.0.1:8765", title="Loopback story")  # fmt: skip
    with open_writer(config.warehouse_path) as con:
        con.execute(
            "INSERT INTO feeds (feed_url, name, added_at) VALUES (?, 'Loopback Times', now())",
            [feed],
        )
        con.execute(
            "INSERT INTO entries (feed_url, entry_key, url, normalized_url, fingerprint, status, "
            "article_id, first_seen_at, last_seen_at) VALUES (?, 'a', 'http://127.0.0.1:8765/a', "
            "'http://127.0.0.1:8765/a', 'f', 'stored', 50, ?, ?)",
            [feed, at(19), at(19)],
        )
    with open_reader(config.warehouse_path) as con:
        report = gather(con, config, IsoWeek.parse(WEEK))
        named = dict(
            con.execute(
                "SELECT article_id, outlet FROM article_topics WHERE outlet IS NOT NULL"
            ).fetchall()
        )
    outlets = {
        a.article_id: a.outlet
        for topic in report.topics
        for story in [*topic.stories, *report.other_stories]
        for a in story.articles
    }
    assert outlets[50] == "Loopback Times"
    assert {i: o for i, o in outlets.items() if i in named} == {
        i: named[i] for i in outlets if i in named
    }
    assert outlets[8] == "wx.example"  # no feed, no site name: the host
    assert ("Loopback Times", 1) in report.topics[0].outlets


@pytest.mark.parametrize(
    "name", ["US-North Korea diplomacy", "Denuclearisation talks between Washington and "
             "Pyongyang, sanctions relief and the inter-Korean railway projects"],
)  # fmt: skip
def test_chart_legends_fit_in_the_figure(
    write_config, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    config_path = write_config(
        CONFIG.format(port=25, to="[]").replace('"US-North Korea diplomacy"', json.dumps(name))
    )
    insert_articles(load_config(config_path).warehouse_path, STORIES, topic="dprk")
    saved: list[Figure] = []
    original = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda figure, *a, **k: saved.append(figure) or original(figure, *a, **k)
    )

    _, charts, *_ = render_week(config_path)

    assert set(charts) == {"daily", "stance-0"} and len(saved) == 2
    for figure in saved:
        renderer = FigureCanvasAgg(figure).get_renderer()
        legends = [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]
        assert legends
        bounds = figure.bbox
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert bounds.x0 <= box.x0 and box.x1 <= bounds.x1, (name, box, bounds)
            assert bounds.y0 <= box.y0 and box.y1 <= bounds.y1, (name, box, bounds)


def test_a_topic_with_a_claim_shows_its_stance_source_and_score(project) -> None:
    config_path, _ = project
    config = load_config(config_path)
    claim = "Summit diplomacy with North Korea should continue"
    card = {
        "topic_claims": {"dprk": claim},
        "claims": {"predicts": ["agree", "disagree", "discuss", "unrelated"],
                   "held_out_bodies": {"n": 412, "macro_f1": 0.77, "fnc_score": 88.44}},
        "stance": {"predicts": [], "cannot": "no stance labels yet", "cross_validated": None},
    }
    with open_writer(config.warehouse_path) as con:
        con.execute("UPDATE model_versions SET card = ? WHERE is_current", [json.dumps(card)])

    report, _, html, text, _ = render_week(config_path)

    dprk = report.topics[0]
    assert dprk.claim == claim
    source = ("Stance toward the claim: the claim model (FNC-1 score 88.4 on 412 pairs of "
              "held-out bodies).")
    assert dprk.stance_source == source
    assert f"Claim: \u201c{claim}\u201d" in text
    assert source in " ".join(text.split())
    assert f"Claim: \u201c{claim}\u201d" in html and source in html
    # The tariffs topic has no claim: its stances would come from stance labels, of which the
    # model has none, and the digest says so.
    assert report.topics[1].claim is None
    assert report.topics[1].stance_source == "No stance yet: no stance labels yet."


def test_stance_source_says_both_when_labels_and_a_claim_model_exist() -> None:
    from newsmon.digest.report import stance_source

    card = {
        "topic_claims": {"t": "A claim"},
        "claims": {"predicts": ["agree", "disagree"], "held_out_bodies": None},
        "stance": {"predicts": ["favor", "against"], "cross_validated": {"macro_f1": 0.713}},
    }
    assert stance_source(card, "t") == (
        "Stance toward the claim: the claim model (not scored: too few bodies to hold some out) "
        "and the topic's stance labels (macro-F1 0.71, cross-validated), averaged.")
    assert stance_source(card, "other") == (
        "Stance toward the target: the stance labels (macro-F1 0.71, cross-validated).")
