"""The ingest flow's reads and writes. Rows go in as Arrow tables, one transaction per chunk of
feed polls or per batch of pages, so a crash loses at most the batch in hand and never what was
stored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from newsmon.config import FeedSettings
from newsmon.http import RequestRecord
from newsmon.ingest import (
    BatchOutcome,
    FeedPoll,
    FeedState,
    KnownArticles,
    PendingEntry,
    next_poll_after,
)
from newsmon.warehouse.db import transaction

TIMESTAMP = pa.timestamp("us", tz="UTC")

ADD_NEW_FEEDS = """
INSERT INTO feeds (feed_url, name, added_at)
SELECT s.feed_url, s.name, ? FROM staged_feeds AS s
WHERE NOT EXISTS (SELECT 1 FROM feeds AS f WHERE f.feed_url = s.feed_url)
"""
RENAME_FEEDS = """
UPDATE feeds AS f SET name = s.name FROM staged_feeds AS s
WHERE f.feed_url = s.feed_url AND f.name IS DISTINCT FROM s.name
"""

FEED_STATES = """
SELECT feed_url, etag, last_modified, polls_since_full, consecutive_failures,
       next_poll_at IS NULL OR next_poll_at <= ? AS due
FROM feeds WHERE feed_url IN (SELECT unnest(?::VARCHAR[]))
"""

UPDATE_FEEDS_AFTER_POLLS = """
UPDATE feeds AS f SET
    last_polled_at = p.polled_at,
    last_outcome = p.outcome,
    last_error = p.error,
    -- A 304 or a failure says nothing new about the validators: keep the stored ones.
    etag = CASE WHEN p.keep_validators THEN f.etag ELSE p.etag END,
    last_modified = CASE WHEN p.keep_validators THEN f.last_modified ELSE p.last_modified END,
    polls_since_full = CASE WHEN p.failed THEN f.polls_since_full
                            WHEN p.conditional THEN f.polls_since_full + 1 ELSE 0 END,
    last_ok_at = CASE WHEN p.failed THEN f.last_ok_at ELSE p.polled_at END,
    consecutive_failures = p.failures,
    next_poll_at = p.next_poll_at,
    title = coalesce(p.title, f.title),
    site_url = coalesce(p.site_url, f.site_url)
FROM staged_polls AS p
WHERE f.feed_url = p.feed_url
"""

# An entry the outlet edited (new fingerprint) goes back to pending so its article is updated;
# one that is only seen again just has last_seen_at moved on.
UPDATE_SEEN_ENTRIES = """
UPDATE entries AS e SET
    last_seen_at = s.seen_at,
    status = CASE WHEN e.fingerprint <> s.fingerprint AND e.status IN ('stored', 'duplicate')
                  THEN 'pending' ELSE e.status END,
    attempts = CASE WHEN e.fingerprint <> s.fingerprint THEN 0 ELSE e.attempts END,
    retry_after = CASE WHEN e.fingerprint <> s.fingerprint THEN NULL ELSE e.retry_after END,
    title = s.title, summary = s.summary, author = s.author,
    published_at = coalesce(s.published_at, e.published_at),
    fingerprint = s.fingerprint
FROM staged_entries AS s
WHERE e.feed_url = s.feed_url AND e.entry_key = s.entry_key
"""
COUNT_EDITED_ENTRIES = """
SELECT count(*) FROM entries AS e JOIN staged_entries AS s USING (feed_url, entry_key)
WHERE e.fingerprint <> s.fingerprint AND e.status IN ('stored', 'duplicate')
"""

# A new entry whose link is already known (another feed, or a redirect seen before) is linked
# to that article at once, with no download.
INSERT_NEW_ENTRIES = """
INSERT INTO entries (feed_url, entry_key, url, normalized_url, title, summary, author,
                     published_at, fingerprint, status, article_id, first_seen_at,
                     last_seen_at, resolved_at)
SELECT s.feed_url, s.entry_key, s.url, s.normalized_url, s.title, s.summary, s.author,
       s.published_at, s.fingerprint,
       CASE WHEN k.article_id IS NULL THEN 'pending' ELSE 'duplicate' END,
       k.article_id, s.seen_at, s.seen_at,
       CASE WHEN k.article_id IS NULL THEN NULL ELSE s.seen_at END
FROM staged_entries AS s
LEFT JOIN (
    SELECT url, min(article_id) AS article_id FROM (
        SELECT canonical_url AS url, article_id FROM articles
        UNION ALL
        SELECT normalized_url, article_id FROM entries WHERE article_id IS NOT NULL
        UNION ALL
        SELECT final_url, article_id FROM entries WHERE article_id IS NOT NULL
    ) GROUP BY url
) AS k ON k.url = s.normalized_url
WHERE NOT EXISTS (
    SELECT 1 FROM entries AS e WHERE e.feed_url = s.feed_url AND e.entry_key = s.entry_key
)
-- At most so many new entries per feed and poll, newest first (undated ones by feed order).
QUALIFY row_number() OVER (
    PARTITION BY s.feed_url ORDER BY s.published_at DESC NULLS LAST, s.position
) <= ?
RETURNING status
"""
NEW_ENTRIES_OVER_CAP = """
SELECT s.feed_url, count(*) FROM staged_entries AS s
WHERE NOT EXISTS (
    SELECT 1 FROM entries AS e WHERE e.feed_url = s.feed_url AND e.entry_key = s.entry_key
)
GROUP BY s.feed_url HAVING count(*) > ?
"""

_DUE_PENDING_ENTRIES = """
SELECT feed_url, entry_key, url, normalized_url, title, summary, author, published_at,
       article_id, attempts
FROM entries
WHERE status = 'pending' AND (retry_after IS NULL OR retry_after <= ?)
"""
_OLDEST_FIRST = "ORDER BY first_seen_at, feed_url, entry_key\n"
PENDING_ENTRIES = _DUE_PENDING_ENTRIES + _OLDEST_FIRST
PENDING_ENTRIES_OF_FEEDS = (
    _DUE_PENDING_ENTRIES + "  AND feed_url IN (SELECT unnest(?::VARCHAR[]))\n" + _OLDEST_FIRST
)

KNOWN_BY_URL = """
SELECT url, min(article_id) FROM (
    SELECT canonical_url AS url, article_id FROM articles
    WHERE canonical_url IN (SELECT unnest(?::VARCHAR[]))
    UNION ALL
    SELECT final_url, article_id FROM entries
    WHERE article_id IS NOT NULL AND final_url IN (SELECT unnest(?::VARCHAR[]))
) GROUP BY url
"""
KNOWN_BY_HASH = """
SELECT content_hash, min(article_id) FROM articles
WHERE content_hash IN (SELECT unnest(?::VARCHAR[])) GROUP BY content_hash
"""
ALL_SIMHASHES = "SELECT article_id, simhash FROM articles WHERE simhash IS NOT NULL"
NEXT_ARTICLE_IDS = "SELECT nextval('article_id_seq') FROM range(?)"

INSERT_ARTICLES = """
INSERT INTO articles (article_id, canonical_url, title, author, published_at, first_seen_at,
                      fetched_at, site, language, description, text, word_count, content_hash,
                      simhash, extraction, extraction_note)
SELECT article_id, canonical_url, title, author, published_at, ?, ?, site, language,
       description, text, word_count, content_hash, simhash, extraction, extraction_note
FROM staged_articles
"""
# An update keeps first_seen_at: when newsmon first saw the story is what the digest counts.
UPDATE_ARTICLES = """
UPDATE articles AS a SET
    canonical_url = s.canonical_url, title = s.title, author = s.author,
    published_at = coalesce(s.published_at, a.published_at), fetched_at = ?, updated_at = ?,
    site = s.site, language = s.language, description = s.description, text = s.text,
    word_count = s.word_count, content_hash = s.content_hash, simhash = s.simhash,
    extraction = s.extraction, extraction_note = s.extraction_note
FROM staged_articles AS s
WHERE a.article_id = s.article_id
"""
UPDATE_ENTRIES = """
UPDATE entries AS e SET
    status = s.status, article_id = s.article_id, final_url = coalesce(s.final_url, e.final_url),
    attempts = s.attempts, last_error = s.last_error, retry_after = s.retry_after,
    resolved_at = CASE WHEN s.status = 'pending' THEN NULL ELSE ? END
FROM staged_entry_updates AS s
WHERE e.feed_url = s.feed_url AND e.entry_key = s.entry_key
"""
INSERT_FETCH_LOG = """
INSERT INTO fetch_log (run_id, requested_at, kind, url, final_url, status_code, bytes,
                       duration_ms, error)
SELECT ?, requested_at, kind, url, final_url, status_code, bytes, duration_ms, error
FROM staged_requests
"""

ARTICLE_SCHEMA = pa.schema([
    ("article_id", pa.int64()), ("canonical_url", pa.string()), ("title", pa.string()),
    ("author", pa.string()), ("published_at", TIMESTAMP), ("site", pa.string()),
    ("language", pa.string()), ("description", pa.string()), ("text", pa.string()),
    ("word_count", pa.int32()), ("content_hash", pa.string()), ("simhash", pa.uint64()),
    ("extraction", pa.string()), ("extraction_note", pa.string()),
])
ENTRY_SCHEMA = pa.schema([
    ("feed_url", pa.string()), ("entry_key", pa.string()), ("url", pa.string()),
    ("normalized_url", pa.string()), ("title", pa.string()), ("summary", pa.string()),
    ("author", pa.string()), ("published_at", TIMESTAMP), ("fingerprint", pa.string()),
    ("seen_at", TIMESTAMP), ("position", pa.int32()),
])
ENTRY_UPDATE_SCHEMA = pa.schema([
    ("feed_url", pa.string()), ("entry_key", pa.string()), ("status", pa.string()),
    ("article_id", pa.int64()), ("final_url", pa.string()), ("attempts", pa.int32()),
    ("last_error", pa.string()), ("retry_after", TIMESTAMP),
])
POLL_SCHEMA = pa.schema([
    ("feed_url", pa.string()), ("polled_at", TIMESTAMP), ("outcome", pa.string()),
    ("error", pa.string()), ("keep_validators", pa.bool_()), ("etag", pa.string()),
    ("last_modified", pa.string()), ("failed", pa.bool_()), ("conditional", pa.bool_()),
    ("failures", pa.int32()), ("next_poll_at", TIMESTAMP), ("title", pa.string()),
    ("site_url", pa.string()),
])
REQUEST_SCHEMA = pa.schema([
    ("kind", pa.string()), ("url", pa.string()), ("final_url", pa.string()),
    ("requested_at", TIMESTAMP), ("status_code", pa.int32()), ("bytes", pa.int64()),
    ("duration_ms", pa.float64()), ("error", pa.string()),
])


@contextmanager
def staged(
    con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[dict], schema: pa.Schema
) -> Iterator[None]:
    """Rows visible to SQL as the view ``name`` for the duration of the block."""
    con.register(name, pa.Table.from_pylist(list(rows), schema=schema))
    yield
    # Not in a finally: inside an aborted transaction unregister fails and would hide the real
    # error; a leftover view is harmless, as the next register of the name replaces it.
    con.unregister(name)


def register_feeds(con: duckdb.DuckDBPyConnection, feeds: Sequence[FeedSettings],
                   now: datetime) -> None:
    rows = [{"feed_url": f.url, "name": f.name} for f in feeds]
    schema = pa.schema([("feed_url", pa.string()), ("name", pa.string())])
    with transaction(con), staged(con, "staged_feeds", rows, schema):
        con.execute(ADD_NEW_FEEDS, [now])
        con.execute(RENAME_FEEDS)


def feed_states(con: duckdb.DuckDBPyConnection, urls: Sequence[str],
                now: datetime) -> tuple[list[FeedState], list[str]]:
    """(feeds due for a poll, feeds still backing off after failures), in config order."""
    rows = {r[0]: r for r in con.execute(FEED_STATES, [now, list(urls)]).fetchall()}
    due = [FeedState(*rows[u][:5]) for u in urls if rows[u][5]]
    waiting = [u for u in urls if not rows[u][5]]
    return due, waiting


def _row(record: object) -> dict:
    """A flat dataclass's fields as a dict. (dataclasses.asdict deep-copies every value,
    datetimes included, which took longer than the inserts themselves.)"""
    return {field.name: getattr(record, field.name) for field in fields(record)}


def _request_rows(kind: str, url: str, final_url: str | None,
                  requests: Sequence[RequestRecord]) -> list[dict]:
    return [{"kind": kind, "url": r.url or url, "final_url": final_url, **{
        k: v for k, v in _row(r).items() if k != "url"}} for r in requests]


@dataclass(frozen=True)
class PollCounts:
    new_entries: int
    linked_entries: int  # new entries whose link was already stored: duplicates, not fetched
    edited_entries: int
    capped: dict[str, str]  # feed URL -> what its poll left for later, for feeds over the cap


def _capped_note(new: int, cap: int) -> str:
    return f"took the newest {cap} of {new} new entries; the rest wait for later polls"


def _poll_row(poll: FeedPoll, state: FeedState, now: datetime, max_backoff_hours: float,
              capped_note: str | None) -> dict:
    unchanged = poll.outcome == "unchanged"
    failed = poll.outcome == "failed"
    failures = state.consecutive_failures + 1 if failed else 0
    row = {
        "feed_url": poll.feed_url, "polled_at": now, "outcome": poll.outcome,
        "error": poll.error, "keep_validators": unchanged or failed, "etag": poll.etag,
        "last_modified": poll.last_modified, "failed": failed,
        "conditional": poll.conditional, "failures": failures,
        "next_poll_at": next_poll_after(failures, now, max_backoff_hours),
        "title": poll.title, "site_url": poll.site_url,
    }
    if capped_note is not None:
        # Without validators the next poll is a full read, so the entries left now are seen
        # again even if the feed does not change.
        error = f"{poll.error}; {capped_note}" if poll.error else capped_note
        row |= {"outcome": "warning", "error": error, "etag": None, "last_modified": None}
    return row


def record_polls(con: duckdb.DuckDBPyConnection, polls: Sequence[FeedPoll],
                 states: Mapping[str, FeedState], run_id: str, now: datetime,
                 max_backoff_hours: float, max_new_entries: int) -> PollCounts:
    """Store a chunk of polls' outcomes and entries in one transaction; their summed counts.

    ``states`` holds each polled feed's state before the poll, by feed URL. Of each feed's new
    entries at most ``max_new_entries`` are taken, the newest.
    """
    entries, requests = [], []
    for poll in polls:
        entries += [{**_row(e), "feed_url": poll.feed_url, "seen_at": now, "position": position}
                    for position, e in enumerate(poll.entries)]
        requests += _request_rows("feed", poll.feed_url, None, poll.requests)
    capped: dict[str, str] = {}
    inserted: list[str] = []
    edited = 0
    with transaction(con):
        if entries:
            with staged(con, "staged_entries", entries, ENTRY_SCHEMA):
                over = con.execute(NEW_ENTRIES_OVER_CAP, [max_new_entries]).fetchall()
                capped = {url: _capped_note(new, max_new_entries) for url, new in over}
                edited = con.execute(COUNT_EDITED_ENTRIES).fetchall()[0][0]
                con.execute(UPDATE_SEEN_ENTRIES)
                inserted = [r[0] for r in con.execute(
                    INSERT_NEW_ENTRIES, [max_new_entries]).fetchall()]
        rows = [_poll_row(poll, states[poll.feed_url], now, max_backoff_hours,
                          capped.get(poll.feed_url)) for poll in polls]
        with staged(con, "staged_polls", rows, POLL_SCHEMA):
            con.execute(UPDATE_FEEDS_AFTER_POLLS)
        with staged(con, "staged_requests", requests, REQUEST_SCHEMA):
            con.execute(INSERT_FETCH_LOG, [run_id])
    return PollCounts(
        new_entries=inserted.count("pending"),
        linked_entries=inserted.count("duplicate"),
        edited_entries=edited,
        capped=capped,
    )


def pending_entries(con: duckdb.DuckDBPyConnection, now: datetime,
                    feed_urls: Sequence[str] | None = None) -> list[PendingEntry]:
    """Entries whose page is due to be fetched, oldest first: of every feed, or of ``feed_urls``."""
    if feed_urls is None:
        rows = con.execute(PENDING_ENTRIES, [now]).fetchall()
    else:
        rows = con.execute(PENDING_ENTRIES_OF_FEEDS, [now, list(feed_urls)]).fetchall()
    return [PendingEntry(*row) for row in rows]


def load_known(con: duckdb.DuckDBPyConnection) -> KnownArticles:
    """The simhash of every stored article, for near-duplicate checks over the whole run."""
    table = con.sql(ALL_SIMHASHES).to_arrow_table()
    return KnownArticles(
        simhash_ids=table.column("article_id").to_pylist(),
        simhashes=table.column("simhash").to_numpy().astype(np.uint64),
    )


def add_known(con: duckdb.DuckDBPyConnection, known: KnownArticles, urls: Sequence[str],
              hashes: Sequence[str]) -> None:
    """Look up a batch's URLs and text hashes among the stored articles."""
    known.by_url.update(con.execute(KNOWN_BY_URL, [list(urls), list(urls)]).fetchall())
    known.by_hash.update(con.execute(KNOWN_BY_HASH, [list(hashes)]).fetchall())


def next_article_ids(con: duckdb.DuckDBPyConnection, count: int) -> list[int]:
    return [row[0] for row in con.execute(NEXT_ARTICLE_IDS, [count]).fetchall()]


def store_batch(con: duckdb.DuckDBPyConnection, outcome: BatchOutcome,
                requests: Sequence[dict], run_id: str, now: datetime) -> None:
    """A batch of pages' articles, entry states and fetch log, in one transaction."""
    with transaction(con):
        if outcome.new_articles:
            rows = [_row(a) for a in outcome.new_articles]
            with staged(con, "staged_articles", rows, ARTICLE_SCHEMA):
                con.execute(INSERT_ARTICLES, [now, now])
        if outcome.updated_articles:
            rows = [_row(a) for a in outcome.updated_articles]
            with staged(con, "staged_articles", rows, ARTICLE_SCHEMA):
                con.execute(UPDATE_ARTICLES, [now, now])
        if outcome.entry_updates:
            rows = [_row(u) for u in outcome.entry_updates]
            with staged(con, "staged_entry_updates", rows, ENTRY_UPDATE_SCHEMA):
                con.execute(UPDATE_ENTRIES, [now])
        if requests:
            with staged(con, "staged_requests", requests, REQUEST_SCHEMA):
                con.execute(INSERT_FETCH_LOG, [run_id])


def page_request_rows(url: str, final_url: str | None,
                      requests: Sequence[RequestRecord]) -> list[dict]:
    return _request_rows("page", url, final_url, requests)
