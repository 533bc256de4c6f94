"""Ingest decisions as plain functions: which feeds to poll and how, what a poll means, and what
each downloaded page becomes (a new article, an update, a duplicate, a retry or a parked page).

Nothing here does I/O; the ingest flow feeds it what the fetcher, the extractor and the
warehouse returned, and writes back what it decides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from newsmon.config import IngestSettings
from newsmon.extract import ExtractionOutcome
from newsmon.feeds import FeedEntry, ParsedFeed
from newsmon.fingerprint import content_hash, nearest_duplicate, simhash
from newsmon.http import FetchResult, RequestRecord
from newsmon.urls import normalize_url

FEED_TEXT_NOTE = "the page gave no usable article text; the feed's own content was used"


@dataclass(frozen=True)
class FeedState:
    feed_url: str
    etag: str | None
    last_modified: str | None
    polls_since_full: int
    consecutive_failures: int


@dataclass(frozen=True)
class FeedPoll:
    """What one poll of one feed came to."""

    feed_url: str
    outcome: str  # ok | unchanged | warning | failed
    error: str | None
    conditional: bool
    etag: str | None
    last_modified: str | None
    title: str | None
    site_url: str | None
    entries: tuple[FeedEntry, ...]
    requests: tuple[RequestRecord, ...]
    unreachable: bool = False  # no answer at all (DNS or connection): the network may be down


UNREACHABLE_KINDS = frozenset({"dns", "connection"})


def conditional_headers(state: FeedState, full_fetch_every: int) -> dict[str, str]:
    """Validators for a conditional GET, or none when a full fetch is due.

    Some servers answer 304 for a feed that did change; every ``full_fetch_every`` polls the
    validators are left off so such a feed is read in full anyway.
    """
    if state.polls_since_full + 1 >= full_fetch_every:
        return {}
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def read_poll(
    state: FeedState, sent: dict[str, str], result: FetchResult, feed: ParsedFeed | None
) -> FeedPoll:
    """Interpret one feed response (and ``feed``, its parsed body, given for every ``result.ok``):
    unchanged, entries (perhaps with a warning), or an error."""

    def poll(outcome: str, error: str | None = None, **parsed) -> FeedPoll:
        return FeedPoll(
            feed_url=state.feed_url,
            outcome=outcome,
            error=error,
            conditional=bool(sent),
            etag=result.headers.get("etag") or (state.etag if outcome == "unchanged" else None),
            last_modified=result.headers.get("last-modified")
            or (state.last_modified if outcome == "unchanged" else None),
            title=parsed.get("title"),
            site_url=parsed.get("site_url"),
            entries=parsed.get("entries", ()),
            requests=result.requests,
            unreachable=result.error_kind in UNREACHABLE_KINDS,
        )

    if result.not_modified:
        return poll("unchanged")
    if not result.ok:
        return poll("failed", result.error or f"HTTP {result.status_code}")
    if feed is None:
        raise ValueError(f"{state.feed_url} answered {result.status_code} but was not parsed")
    if feed.error:
        return poll("failed", feed.error)
    return poll(
        "warning" if feed.warning else "ok",
        feed.warning,
        title=feed.title,
        site_url=feed.site_url,
        entries=feed.entries,
    )


def next_poll_after(failures: int, now: datetime, max_backoff_hours: float) -> datetime | None:
    """When a failing feed may be polled again: at once after one failure (it may be a blip),
    then after 1, 2, 4 ... hours, capped, so a dead feed costs little but still shows up."""
    if failures < 2:
        return None
    return now + timedelta(hours=min(2 ** (failures - 2), max_backoff_hours))


@dataclass(frozen=True)
class PendingEntry:
    """A feed entry whose page is still to be stored (new, edited, or failed before)."""

    feed_url: str
    entry_key: str
    url: str
    normalized_url: str
    title: str | None
    summary: str | None
    author: str | None
    published_at: datetime | None
    article_id: int | None  # set when an edited entry should update its article
    attempts: int


@dataclass(frozen=True)
class PageJob:
    """One page to download, standing for every pending entry that links to it."""

    url: str
    normalized_url: str
    entries: tuple[PendingEntry, ...]

    @property
    def article_id(self) -> int | None:
        return next((e.article_id for e in self.entries if e.article_id is not None), None)

    @property
    def attempts(self) -> int:
        return max(e.attempts for e in self.entries)

    def first(self, attribute: str) -> Any:
        """The first entry's value of ``attribute`` that is set: feeds differ in what they give."""
        return next((getattr(e, attribute) for e in self.entries if getattr(e, attribute)), None)


def page_jobs(pending: Sequence[PendingEntry]) -> list[PageJob]:
    """Group entries by normalised URL, so a story in two feeds is downloaded once."""
    groups: dict[str, list[PendingEntry]] = {}
    for entry in pending:
        groups.setdefault(entry.normalized_url, []).append(entry)
    return [PageJob(group[0].url, url, tuple(group)) for url, group in groups.items()]


def host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


class DownloadLoad:
    """Pages out for download and not yet downloaded, by host, and what may go out next.

    A page goes out only when its host has a connection slot to spare (fewer of its pages out
    than ``per_host``) and the run has one overall, so a host that is slow to answer keeps only
    its own pages waiting while the other hosts' pages go on.
    """

    def __init__(self, concurrency: int, per_host: int) -> None:
        self._concurrency = concurrency
        self._per_host = per_host
        self._out: dict[str, int] = {}

    def _busy(self) -> int:
        return sum(min(count, self._per_host) for count in self._out.values())

    def pick(self, urls: Iterator[str] | Sequence[str], size: int) -> list[str]:
        """Up to ``size`` of ``urls``, in order, whose hosts have room now (none if the run's
        connections are all in use)."""
        if self._busy() >= self._concurrency:
            return []
        picked: list[str] = []
        for url in urls:
            if self._out.get(host_of(url), 0) < self._per_host:
                picked.append(url)
                if len(picked) == size:
                    break
        return picked

    def add(self, urls: Sequence[str]) -> None:
        for url in urls:
            host = host_of(url)
            self._out[host] = self._out.get(host, 0) + 1

    def done(self, url: str) -> None:
        """Count url's download as ended."""
        host = host_of(url)
        left = self._out[host] - 1
        if left:
            self._out[host] = left
        else:
            del self._out[host]


@dataclass(frozen=True)
class ArticleRecord:
    article_id: int
    canonical_url: str
    title: str | None
    author: str | None
    published_at: datetime | None
    site: str | None
    language: str | None
    description: str | None
    text: str
    word_count: int
    content_hash: str
    simhash: int | None
    extraction: str
    extraction_note: str | None


@dataclass(frozen=True)
class EntryUpdate:
    feed_url: str
    entry_key: str
    status: str  # pending | stored | duplicate | parked
    article_id: int | None
    final_url: str | None
    attempts: int
    last_error: str | None
    retry_after: datetime | None


@dataclass
class KnownArticles:
    """What the warehouse already holds, as the keys a new page is matched against."""

    by_url: dict[str, int] = field(default_factory=dict)
    by_hash: dict[str, int] = field(default_factory=dict)
    simhash_ids: list[int] = field(default_factory=list)
    simhashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    def match(self, article: ArticleRecord, settings: IngestSettings) -> int | None:
        """The id of the stored article this one duplicates, or None."""
        if article.canonical_url in self.by_url:
            return self.by_url[article.canonical_url]
        if article.content_hash in self.by_hash:
            return self.by_hash[article.content_hash]
        long_enough = article.word_count >= settings.near_duplicate_min_words
        if article.simhash is not None and long_enough and len(self.simhashes):
            index = nearest_duplicate(article.simhash, self.simhashes,
                                      settings.near_duplicate_bits)
            if index is not None:
                return self.simhash_ids[index]
        return None

    def add(self, article: ArticleRecord) -> None:
        self.by_url[article.canonical_url] = article.article_id
        self.by_hash[article.content_hash] = article.article_id
        if article.simhash is not None:
            self.simhash_ids.append(article.article_id)
            self.simhashes = np.append(self.simhashes, np.uint64(article.simhash))


@dataclass
class BatchOutcome:
    new_articles: list[ArticleRecord] = field(default_factory=list)
    updated_articles: list[ArticleRecord] = field(default_factory=list)
    entry_updates: list[EntryUpdate] = field(default_factory=list)
    duplicates: int = 0
    failed: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)


def _parse_page_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _article(
    job: PageJob, result: FetchResult, extraction: ExtractionOutcome, article_id: int,
    min_words: int,
) -> ArticleRecord | str:
    """The article a fetched page makes, or the reason it makes none."""
    page = extraction.page
    text = page.text if page else ""
    method, note = "trafilatura", None
    feed_text = job.first("summary") or ""
    # The worker has counted the page's words already; the flow's process need not split it again.
    if (page.word_count if page else 0) < min_words and len(feed_text) > len(text):
        text, method, note = feed_text, "feed", FEED_TEXT_NOTE
    if not text:
        return "no text: the page had no extractable text and the feed gave none"
    final_url = normalize_url(result.final_url or job.url)
    return ArticleRecord(
        article_id=article_id,
        canonical_url=final_url,
        title=(page.title if page else None) or job.first("title"),
        author=(page.author if page else None) or job.first("author"),
        # The feed's timestamp is to the minute; a page's metadata date is often only a day.
        published_at=job.first("published_at")
        or _parse_page_date(page.published if page else None),
        site=(page.site if page else None) or urlsplit(final_url).hostname,
        language=page.language if page else None,
        description=page.description if page else None,
        text=text,
        word_count=page.word_count if method == "trafilatura" else len(text.split()),
        content_hash=page.content_hash if method == "trafilatura" else content_hash(text),
        simhash=page.simhash if method == "trafilatura" else simhash(text),
        extraction=method,
        extraction_note=note,
    )


def resolve_pages(
    jobs: Sequence[PageJob],
    fetched: Sequence[FetchResult],
    extracted: dict[str, ExtractionOutcome],
    known: KnownArticles,
    new_ids: Iterator[int],
    settings: IngestSettings,
    now: datetime,
) -> BatchOutcome:
    """Decide what each downloaded page becomes. ``extracted`` is keyed by normalised URL."""
    outcome = BatchOutcome()

    def settle(job: PageJob, status: str, article_id: int | None, final_url: str | None,
               error: str | None = None, retry_after: datetime | None = None,
               attempted: bool = True) -> None:
        attempts = job.attempts + (1 if attempted and status in ("pending", "parked") else 0)
        for index, entry in enumerate(job.entries):
            # Entries beyond the first that share a stored page are duplicates of it.
            entry_status = "duplicate" if status == "stored" and index else status
            outcome.entry_updates.append(EntryUpdate(
                entry.feed_url, entry.entry_key, entry_status, article_id, final_url,
                attempts, error, retry_after,
            ))
        if status == "stored":
            outcome.duplicates += len(job.entries) - 1
        elif status == "duplicate":
            outcome.duplicates += len(job.entries)

    def give_up_or_retry(job: PageJob, error: str, permanent: bool, final_url: str | None) -> None:
        outcome.errors.append(f"{job.url}: {error}")
        if permanent or job.attempts + 1 >= settings.max_page_attempts:
            outcome.parked += 1
            settle(job, "parked", job.article_id, final_url, error)
        else:
            outcome.failed += 1
            # Later runs retry it, spaced out so a flaky site is not hammered every hour.
            retry = now + timedelta(hours=2**job.attempts)
            settle(job, "pending", job.article_id, final_url, error, retry)

    for job, result in zip(jobs, fetched, strict=True):
        final_url = normalize_url(result.final_url) if result.final_url else None
        if result.error_kind == "host_skipped":
            # Never requested: it waits for the next run without using up an attempt.
            outcome.failed += 1
            settle(job, "pending", job.article_id, None, result.error, attempted=False)
            continue
        if not result.ok:
            give_up_or_retry(job, result.error or "download failed", result.permanent, final_url)
            continue
        extraction = extracted[job.normalized_url]
        if extraction.error:
            # A crash or timeout repeats on the same bytes: park at once. A pool that broke
            # under the page is no fault of the page: retry it.
            give_up_or_retry(job, extraction.error, not extraction.retryable, final_url)
            continue
        article_id = job.article_id
        article = _article(job, result, extraction, article_id or next(new_ids),
                           settings.min_article_words)
        if isinstance(article, str):
            give_up_or_retry(job, article, True, final_url)
            continue
        if article_id is not None:
            outcome.updated_articles.append(article)
            settle(job, "stored", article_id, final_url)
            continue
        duplicate_of = known.match(article, settings)
        if duplicate_of is not None:
            settle(job, "duplicate", duplicate_of, final_url)
            continue
        known.add(article)
        outcome.new_articles.append(article)
        settle(job, "stored", article.article_id, final_url)
    return outcome
