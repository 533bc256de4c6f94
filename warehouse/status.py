"""The queries behind `newsmon status`, run on the analyst copy (views from migration 004)."""

from __future__ import annotations

# Most recent first; `?` is how many.
LAST_RUNS = """
SELECT flow, status, started_at, duration_seconds, error_count, first_error
FROM run_history
ORDER BY started_at DESC
LIMIT ?
"""

# "Failing" is defined once, in the feed_health view.
FAILING_FEEDS = """
SELECT feed_url, name, consecutive_failures, last_error, last_ok_at
FROM feed_health
WHERE failing
ORDER BY consecutive_failures DESC, feed_url
"""

# Articles stored per local day since `$since`, counted by when newsmon first saw them (what
# tells whether ingest is working; publication dates lag and are sometimes missing).
ARTICLES_PER_DAY = """
SELECT CAST(timezone($zone, first_seen_at) AS DATE) AS day, count(*) AS articles
FROM articles
WHERE first_seen_at >= $since
GROUP BY day
ORDER BY day
"""

CURRENT_MODEL = """
SELECT model_version, trained_at, topic_macro_f1, stance_macro_f1
FROM model_versions
WHERE is_current
"""
