"""The digest's pieces on their own: weeks, story grouping, ledes, send errors, the password."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsmon.config import EmailSettings
from newsmon.digest.mail import SendError, send_message, smtp_password
from newsmon.digest.render import change, share_change, web_link
from newsmon.digest.stories import StoryCandidate, group_stories, lede
from newsmon.digest.weeks import IsoWeek

LONDON, AUCKLAND = ZoneInfo("Europe/London"), ZoneInfo("Pacific/Auckland")


def test_last_complete_week_follows_the_configured_zone() -> None:
    # Sunday 22 November 23:30 in London is already Monday 23 November in Auckland.
    now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert str(IsoWeek.last_complete(LONDON, now)) == "2026-W46"
    assert str(IsoWeek.last_complete(AUCKLAND, now)) == "2026-W47"


def test_week_bounds_are_local_midnights_and_span_years() -> None:
    week = IsoWeek.parse("2026-W01")
    assert week.monday.isoformat() == "2025-12-29"
    assert week.start(LONDON) == datetime(2025, 12, 29, tzinfo=LONDON)
    assert week.end(LONDON) - week.start(LONDON) == timedelta(days=7)
    assert str(week.previous()) == "2025-W52"
    # The week of the autumn clock change is 169 hours long in London.
    autumn = IsoWeek.parse("2026-W43")
    assert (autumn.end(LONDON) - autumn.start(LONDON).astimezone(UTC)).total_seconds() == 169 * 3600


@pytest.mark.parametrize("text", ["2026-47", "2026-W54", "2025-W53", "W47", ""])
def test_malformed_or_impossible_weeks_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO week"):
        IsoWeek.parse(text)


def candidate(title: str, opening: str = "", simhash: int | None = None, hours: float = 0):
    return StoryCandidate(title, opening, simhash, datetime(2026, 11, 17, tzinfo=UTC)
                          + timedelta(hours=hours))  # fmt: skip


def test_grouping_joins_reworded_coverage_and_wire_copies_only() -> None:
    candidates = [
        candidate("Trump and Kim agree to meet in Hanoi for second summit"),
        candidate("Kim and Trump to hold second summit in Hanoi"),
        candidate("Hanoi summit: Trump and Kim agree to meet again", hours=30),
        candidate("Floods close schools across the north"),
        # The same wire text under another headline: simhashes one bit apart.
        candidate("Schools shut as rivers burst their banks", simhash=0b1011),
        candidate("Rain disrupts travel", simhash=0b1010),
        # The same headline a week later is a different story.
        candidate("Trump and Kim agree to meet in Hanoi for second summit", hours=24 * 6),
    ]
    assert sorted(group_stories(candidates, near_duplicate_bits=3)) == [[0, 1, 2], [3], [4, 5], [6]]
    assert sorted(group_stories(candidates, near_duplicate_bits=0)) == [
        [0, 1, 2], [3], [4], [5], [6]
    ]  # fmt: skip


def test_lede_skips_leftovers_and_keeps_abbreviations_whole() -> None:
    text = (
        "Skip to content\n"
        "Talks resume\n"
        "Talks resume\n"
        "U.S. envoy Stephen Biegun met Mr. Kim's counterpart in Stockholm on Saturday, the "
        "first meeting in months. Both sides called it useful. A third sentence is too much.\n"
    )
    assert lede(text, "Talks resume") == (
        "U.S. envoy Stephen Biegun met Mr. Kim's counterpart in Stockholm on Saturday, the "
        "first meeting in months. Both sides called it useful."
    )
    assert lede("Too short.\nAlso short.", "x") == ""
    long_sentence = "word " * 200
    assert len(lede(long_sentence.strip() + ".")) <= 320


def test_changes_read_naturally() -> None:
    assert change(12, 10) == "+2 (+20%)"
    assert change(5, 10) == "−5 (−50%)"
    assert change(3, 0) == "new"
    assert share_change(0.5, 0.25) == "+25 pts"
    assert share_change(0.5, None) == "–"
    assert web_link("javascript:alert(1)") == "#" and web_link("https://a.example/") != "#"


def test_password_comes_from_the_environment_and_missing_one_is_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = EmailSettings(username="me", password_env="DIGEST_TEST_PASSWORD")
    monkeypatch.setenv("DIGEST_TEST_PASSWORD", "hunter2")
    assert smtp_password(settings) == "hunter2"
    monkeypatch.delenv("DIGEST_TEST_PASSWORD")
    assert smtp_password(settings) is None
    with pytest.raises(SendError, match=r"no password was found: set \$DIGEST_TEST_PASSWORD") as e:
        send_message(settings, None, None)  # type: ignore[arg-type]
    assert not e.value.transient


def test_send_errors_say_whether_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (smtplib.SMTPDataError(451, b"try later"), True),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), False),
    ]
    settings = EmailSettings(host="mail.example", security="none", to=["a@x"])
    for error, transient in failures:

        def refuse(*args: object, error: Exception = error, **kwargs: object) -> None:
            raise error

        monkeypatch.setattr(smtplib, "SMTP", refuse)
        with pytest.raises(SendError, match=r"mail\.example:587 \(none\)") as caught:
            send_message(settings, None, None)  # type: ignore[arg-type]
        assert caught.value.transient is transient, error
