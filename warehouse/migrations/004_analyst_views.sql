-- 004: views for analysts, described with example queries in warehouse/SCHEMA.md.
-- Days and weeks are cut in the session's TimeZone: `newsmon sql` sets it to the config's
-- `timezone`; in another client run SET TimeZone = 'Europe/London' (say) first.

-- One row per article: where it was first seen and its current classification.
-- Key: article_id. topic is NULL until the current model has classified the article; stance
-- is NULL when the model could not tell (topic_note and stance_note say why).
CREATE VIEW article_topics AS
WITH first_entry AS (
    -- An article can be reached from several feeds: the outlet is the one that listed it first.
    SELECT article_id,
           arg_min(feed_url, first_seen_at) AS feed_url,
           count(DISTINCT feed_url)         AS feed_count
    FROM entries
    WHERE article_id IS NOT NULL
    GROUP BY article_id
)
SELECT
    a.article_id,
    a.title,
    a.canonical_url,
    coalesce(f.name, f.title, a.site) AS outlet,
    e.feed_url,
    coalesce(e.feed_count, 0)         AS feed_count,
    a.site,
    a.author,
    a.language,
    a.word_count,
    a.published_at,
    a.first_seen_at,
    coalesce(a.published_at, a.first_seen_at) AS dated_at,  -- published, else first seen
    p.topic,
    p.topic_confidence,
    p.topic_note,
    p.stance,
    p.stance_confidence,
    p.stance_note,
    p.model_version
FROM articles AS a
LEFT JOIN first_entry AS e USING (article_id)
LEFT JOIN feeds AS f ON f.feed_url = e.feed_url
LEFT JOIN current_predictions AS p ON p.article_id = a.article_id;

-- Articles per ISO week, topic and stance, by dated_at.
-- Key: (week, topic, stance); NULL topic: not classified yet; NULL stance: could not tell.
CREATE VIEW weekly_topic_stance AS
SELECT
    strftime(dated_at, '%G-W%V')              AS week,        -- ISO week, as in digests.week
    CAST(date_trunc('week', dated_at) AS DATE) AS week_start,  -- its Monday
    topic,
    stance,
    count(*)                                  AS articles
FROM article_topics
GROUP BY ALL;

-- One row per feed: its last poll, its failures and what it has given.
-- Key: feed_url.
CREATE VIEW feed_health AS
WITH linked AS (
    SELECT feed_url,
           count(DISTINCT article_id)                 AS articles,
           count(*) FILTER (WHERE status = 'pending') AS entries_pending,
           count(*) FILTER (WHERE status = 'parked')  AS entries_parked,
           max(first_seen_at)                         AS last_new_entry_at
    FROM entries
    GROUP BY feed_url
)
SELECT
    f.feed_url,
    coalesce(f.name, f.title)           AS name,
    f.last_outcome,
    f.consecutive_failures,
    -- One failure may be a blip (the feed is polled again at once); from two in a row on it
    -- backs off (newsmon.ingest.next_poll_after), and `newsmon status` reports it.
    f.consecutive_failures >= 2         AS failing,
    f.last_error,
    f.last_polled_at,
    f.last_ok_at,
    f.next_poll_at,
    coalesce(l.articles, 0)             AS articles,
    coalesce(l.entries_pending, 0)      AS entries_pending,
    coalesce(l.entries_parked, 0)       AS entries_parked,
    l.last_new_entry_at
FROM feeds AS f
LEFT JOIN linked AS l USING (feed_url);

-- Every run of every flow (ingest, classify, digest), with its duration and first error.
-- Key: run_id. ingest_runs spreads ingest's counts into columns.
CREATE VIEW run_history AS
SELECT
    run_id,
    flow,
    status,
    started_at,
    finished_at,
    epoch(finished_at - started_at)        AS duration_seconds,
    coalesce(json_array_length(errors), 0) AS error_count,
    errors->>0                             AS first_error,
    counts,
    errors
FROM runs;
