"""The digest's queries, and the digests table (a week is mailed once unless forced).

Every article query is bounded by a date range. An article's digest date is its publication
date, but never later than when newsmon first saw it (a page that claims a future date is
wrong), so `first_seen_at >= $from` holds for every article in the range: that bound on a
stored column lets DuckDB skip the row groups of older articles by their min/max zone maps
instead of scanning years of history for one week.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

# Articles dated in [$from, $to), with their current prediction (NULLs when unclassified) and
# the outlet named as article_topics names it (the configured name, else the title of the feed
# that listed the article first, else the site's own name from the page), else the host of its
# URL. Only the range's articles have their first entry looked up.
_ARTICLES_IN_RANGE = r"""
WITH dated AS (
    SELECT *
    FROM (
        SELECT
            a.article_id,
            a.title,
            a.canonical_url AS url,
            a.text,
            a.simhash,
            a.site,
            least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at) AS dated_at,
            p.model_version IS NOT NULL AS classified,
            p.topic,
            p.topic_confidence,
            p.stance,
            p.stance_confidence
        FROM articles AS a
        LEFT JOIN current_predictions AS p ON p.article_id = a.article_id
        WHERE a.first_seen_at >= $from
    )
    WHERE dated_at >= $from AND dated_at < $to
),
first_entry AS (
    SELECT article_id, arg_min(feed_url, first_seen_at) AS feed_url
    FROM entries
    WHERE article_id IN (SELECT article_id FROM dated)
    GROUP BY article_id
),
in_range AS (
    SELECT
        d.*,
        coalesce(
            f.name,
            f.title,
            nullif(trim(d.site), ''),
            regexp_extract(d.url, '^[A-Za-z]+://(?:www\.)?([^/:?#]+)', 1)
        ) AS outlet
    FROM dated AS d
    LEFT JOIN first_entry AS e ON e.article_id = d.article_id
    LEFT JOIN feeds AS f ON f.feed_url = e.feed_url
)
"""

# Counts per local week, topic and stance over the chart's weeks: the header's totals, each
# topic's count and stance split, their changes, and the stance chart all come from this.
WEEKLY_COUNTS = (
    _ARTICLES_IN_RANGE
    + """
SELECT
    CAST(date_trunc('week', timezone($zone, dated_at)) AS DATE) AS week_start,
    classified,
    topic,
    stance,
    count(*) AS articles
FROM in_range
GROUP BY ALL
"""
)

# Articles per local day and topic in the week, for the daily chart.
DAILY_COUNTS = (
    _ARTICLES_IN_RANGE
    + """
SELECT CAST(timezone($zone, dated_at) AS DATE) AS day, classified, topic, count(*) AS articles
FROM in_range
GROUP BY ALL
"""
)

# What story grouping reads of each article: the opening of its text, not the whole (it can be
# large).
_STORY_COLUMNS = """
SELECT
    article_id, title, url, outlet, dated_at, simhash, topic, topic_confidence, stance,
    stance_confidence, left(text, $text_chars) AS opening
FROM in_range
"""

# The week's articles on configured topics.
TOPIC_ARTICLES = (
    _ARTICLES_IN_RANGE
    + _STORY_COLUMNS
    + """
WHERE classified AND list_contains($topics, topic)
ORDER BY dated_at, article_id
"""
)

# The week's other articles: no prediction from the current model yet, or on none of the
# configured topics ('none', or a topic id no longer configured). Those not yet classified come
# first, and at most $pool are read: in a large week the off-topic ones run to thousands, and
# the digest lists only the top few stories among them.
OTHER_ARTICLES = (
    _ARTICLES_IN_RANGE
    + _STORY_COLUMNS
    + """
WHERE NOT classified OR NOT list_contains($topics, topic)
ORDER BY classified, dated_at, article_id
LIMIT $pool
"""
)

# The start of chosen articles' texts, for the top stories' ledes. The bound on first_seen_at
# skips old row groups, as above.
ARTICLE_TEXTS = """
SELECT article_id, left(text, $text_chars)
FROM articles
WHERE first_seen_at >= $from AND list_contains($ids, article_id)
"""

# Every feed fetched in the week, with how many of its attempts failed (no response, or an
# HTTP error) and the last failure's reason; the digest lists those that failed.
FEED_FETCHES = """
SELECT
    l.url,
    coalesce(any_value(f.name), any_value(f.title)) AS name,
    count(*) AS attempts,
    count(*) FILTER (WHERE l.error IS NOT NULL OR l.status_code >= 400) AS failures,
    arg_max(coalesce(l.error, 'HTTP ' || l.status_code), l.requested_at)
        FILTER (WHERE l.error IS NOT NULL OR l.status_code >= 400) AS last_error,
    arg_max(l.error IS NOT NULL OR coalesce(l.status_code >= 400, true), l.requested_at)
        AS last_attempt_failed
FROM fetch_log AS l
LEFT JOIN feeds AS f ON f.feed_url = l.url
WHERE l.kind = 'feed' AND l.requested_at >= $from AND l.requested_at < $to
GROUP BY l.url
ORDER BY failures DESC, l.url
"""

CURRENT_MODEL = """
SELECT model_version, trained_at, topic_macro_f1, stance_macro_f1, card
FROM model_versions
WHERE is_current
ORDER BY trained_at DESC
LIMIT 1
"""

# A week's digest, if it has one. A row of no articles is not one: earlier versions mailed and
# recorded empty weeks (a dead feed, say), which kept the week's real digest from being sent
# once its articles arrived. Rendering the week again updates that row, keeping its history.
DIGEST_RECORD = """
SELECT week, rendered_at, sent_at, recipients, send_count
FROM digests
WHERE week = ? AND article_count > 0
"""
_UPDATE_RENDER = """
UPDATE digests
SET run_id = ?, rendered_at = now(), article_count = ?, html_path = ?, text_path = ?, eml_path = ?
WHERE week = ?
"""
_INSERT_RENDER = """
INSERT INTO digests (run_id, rendered_at, article_count, html_path, text_path, eml_path, week)
SELECT ?, now(), ?, ?, ?, ?, ?
WHERE NOT EXISTS (SELECT 1 FROM digests WHERE week = ?)
"""
_RECORD_SENT = """
UPDATE digests
SET sent_at = now(), message_id = ?, recipients = ?::JSON, send_count = send_count + 1,
    last_error = NULL
WHERE week = ?
"""
_RECORD_SEND_FAILURE = "UPDATE digests SET last_error = ? WHERE week = ?"


@dataclass(frozen=True)
class DigestRecord:
    week: str
    rendered_at: datetime
    sent_at: datetime | None
    recipients: list[str]
    send_count: int


def digest_record(con: duckdb.DuckDBPyConnection, week: str) -> DigestRecord | None:
    row = con.execute(DIGEST_RECORD, [week]).fetchone()
    if row is None:
        return None
    week_, rendered_at, sent_at, recipients, send_count = row
    return DigestRecord(week_, rendered_at, sent_at, json.loads(recipients or "[]"), send_count)


def record_render(
    con: duckdb.DuckDBPyConnection,
    week: str,
    run_id: str | None,
    article_count: int,
    paths: Sequence[str],
) -> None:
    """Note the rendered files; a row that exists keeps its sending history."""
    html_path, text_path, eml_path = paths
    values = [run_id, article_count, html_path, text_path, eml_path, week]
    con.execute(_UPDATE_RENDER, values)
    con.execute(_INSERT_RENDER, [*values, week])


def record_sent(
    con: duckdb.DuckDBPyConnection, week: str, message_id: str, recipients: Sequence[str]
) -> None:
    con.execute(_RECORD_SENT, [message_id, json.dumps(list(recipients)), week])


def record_send_failure(con: duckdb.DuckDBPyConnection, week: str, error: str) -> None:
    con.execute(_RECORD_SEND_FAILURE, [error, week])
