"""Reading one feed's bytes into entries: RSS 0.9x/1.0/2.0 and Atom, via feedparser.

feedparser gets the bytes and the response headers, never a URL: it has no timeout of its own,
and the headers carry what it needs to resolve relative links (Content-Location) and to honour
a declared charset (Content-Type).
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import feedparser
import lxml.etree
import lxml.html

from newsmon.credentials import redact_url
from newsmon.urls import normalize_url


@dataclass(frozen=True)
class FeedEntry:
    entry_key: str  # the GUID, else the normalised link: how the entry is known within its feed
    url: str
    normalized_url: str
    title: str | None
    summary: str | None  # the feed's own content or summary, as plain text
    author: str | None
    published_at: datetime | None
    fingerprint: str  # changes when the outlet edits the entry's title or text


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    site_url: str | None
    entries: tuple[FeedEntry, ...]
    warning: str | None  # readable but ill-formed, or entries had to be skipped
    error: str | None  # nothing usable: the poll failed


def html_to_text(markup: str | None) -> str | None:
    """Feed summaries are HTML fragments; the warehouse stores what a reader would see."""
    if not markup or not markup.strip():
        return None
    if "<" not in markup:
        return " ".join(markup.split())
    try:
        text = lxml.html.fromstring(markup).text_content()
    except (lxml.etree.ParserError, ValueError):
        return " ".join(markup.split())
    return " ".join(text.split()) or None


def _entry_text(entry: Mapping) -> str | None:
    # Full content (content:encoded, atom:content) beats the summary when the feed has both.
    contents = [c.get("value", "") for c in entry.get("content") or []]
    best = max(contents, key=len, default="")
    return html_to_text(best) if len(best) > len(entry.get("summary", "")) else html_to_text(
        entry.get("summary")
    )


def _entry_time(entry: Mapping) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError):
        return None


def fingerprint(title: str | None, summary: str | None) -> str:
    return hashlib.sha256(f"{title or ''}\x00{summary or ''}".encode()).hexdigest()


def _to_entry(raw: Mapping) -> FeedEntry | None:
    # A login written into an article link is not newsmon's to keep.
    link = redact_url((raw.get("link") or "").strip())
    if urlsplit(link).scheme not in ("http", "https"):
        return None
    normalized = normalize_url(link)
    title = html_to_text(raw.get("title"))
    summary = _entry_text(raw)
    guid = (raw.get("id") or "").strip()
    return FeedEntry(
        entry_key=guid or normalized,
        url=link,
        normalized_url=normalized,
        title=title,
        summary=summary,
        author=(raw.get("author") or "").strip() or None,
        published_at=_entry_time(raw),
        fingerprint=fingerprint(title, summary),
    )


def parse_feed(content: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Entries of one feed response. Never raises on bad input: the result carries the error."""
    if not content.strip():
        return ParsedFeed(None, None, (), None, "empty response: the server sent no feed")
    response_headers = {k.lower(): v for k, v in headers.items()}
    response_headers.setdefault("content-location", url)
    parsed = feedparser.parse(content, response_headers=response_headers)
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not parsed.get("version") and not parsed.entries:
        reason = f" ({problem})" if problem else ""
        return ParsedFeed(None, None, (), None, f"not an RSS or Atom feed{reason}")

    entries: dict[str, FeedEntry] = {}
    skipped = 0
    for raw in parsed.entries:
        entry = _to_entry(raw)
        if entry is None:
            skipped += 1
        else:
            entries.setdefault(entry.entry_key, entry)

    warnings = []
    if problem:
        warnings.append(f"ill-formed feed, read anyway: {problem}")
    if skipped:
        warnings.append(f"{skipped} entries without an http(s) link were skipped")
    if not parsed.entries:
        warnings.append("the feed lists no entries")
    feed = parsed.get("feed", {})
    return ParsedFeed(
        title=html_to_text(feed.get("title")),
        site_url=feed.get("link") or None,
        entries=tuple(entries.values()),
        warning="; ".join(warnings) or None,
        error=None,
    )
