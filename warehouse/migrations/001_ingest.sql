-- 001: the ingest tables. Keys are documented, not declared: DuckDB cannot ALTER a table that
-- has a primary key or index (duckdb#6737), and newsmon's writer enforces the keys itself.

CREATE SEQUENCE article_id_seq START 1;

-- One row per configured feed, with its conditional-GET validators and health.
-- Key: feed_url.
CREATE TABLE feeds (
    feed_url             VARCHAR NOT NULL,
    name                 VARCHAR,
    title                VARCHAR,      -- the feed's own title, as last parsed
    site_url             VARCHAR,      -- the feed's link to its website
    added_at             TIMESTAMPTZ NOT NULL,
    etag                 VARCHAR,
    last_modified        VARCHAR,
    polls_since_full     INTEGER NOT NULL DEFAULT 0,  -- conditional polls since the last full fetch
    last_polled_at       TIMESTAMPTZ,
    last_ok_at           TIMESTAMPTZ,
    last_outcome         VARCHAR,      -- ok | unchanged | warning | failed
    last_error           VARCHAR,      -- the error or the parser's warning, NULL when clean
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_poll_at         TIMESTAMPTZ   -- a failing feed is not polled again before this
);

-- One row per story.
-- Key: article_id. canonical_url and content_hash are unique in practice: the writer links a
-- second URL or feed with the same text to the existing article instead of adding a row.
CREATE TABLE articles (
    article_id      BIGINT NOT NULL,
    canonical_url   VARCHAR NOT NULL,  -- normalised URL after redirects
    title           VARCHAR,
    author          VARCHAR,
    published_at    TIMESTAMPTZ,       -- from the page's metadata, else the feed entry's date
    first_seen_at   TIMESTAMPTZ NOT NULL,
    fetched_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ,       -- set when a changed entry updated the article
    site            VARCHAR,
    language        VARCHAR,
    description     VARCHAR,
    text            VARCHAR NOT NULL,
    word_count      INTEGER NOT NULL,
    content_hash    VARCHAR NOT NULL,  -- sha256 of the normalised text
    simhash         UBIGINT,           -- 64-bit simhash of the text, for near-duplicates
    extraction      VARCHAR NOT NULL,  -- trafilatura | feed (page gave no text: the feed's own content)
    extraction_note VARCHAR            -- why the fallback was used
);

-- Every feed entry newsmon has seen, and the article it resolved to: the link of feed entries
-- and URLs to articles. An entry is pending until its page is stored, linked to an existing
-- article (duplicate), or parked with a reason.
-- Key: (feed_url, entry_key).
CREATE TABLE entries (
    feed_url          VARCHAR NOT NULL,
    entry_key         VARCHAR NOT NULL,  -- the entry's GUID, else its normalised link
    url               VARCHAR NOT NULL,  -- the link as the feed gives it, made absolute
    normalized_url    VARCHAR NOT NULL,
    final_url         VARCHAR,           -- normalised URL after redirects
    title             VARCHAR,
    summary           VARCHAR,           -- the feed's own content or summary, as text
    author            VARCHAR,
    published_at      TIMESTAMPTZ,
    fingerprint       VARCHAR NOT NULL,  -- hash of title and summary, to notice edited entries
    status            VARCHAR NOT NULL,  -- pending | stored | duplicate | parked
    article_id        BIGINT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        VARCHAR,
    retry_after       TIMESTAMPTZ,       -- a failed page is not tried again before this
    first_seen_at     TIMESTAMPTZ NOT NULL,
    last_seen_at      TIMESTAMPTZ NOT NULL,
    resolved_at       TIMESTAMPTZ
);

-- Every HTTP request newsmon made (one row per attempt).
CREATE TABLE fetch_log (
    run_id        VARCHAR,
    requested_at  TIMESTAMPTZ NOT NULL,
    kind          VARCHAR NOT NULL,  -- feed | page
    url           VARCHAR NOT NULL,
    final_url     VARCHAR,
    status_code   INTEGER,           -- NULL when no response arrived
    bytes         BIGINT,
    duration_ms   DOUBLE,
    error         VARCHAR
);

-- One row per flow run, written at its start and completed at its end.
-- Key: run_id. counts holds the flow's figures (see the ingest_runs view for ingest's).
CREATE TABLE runs (
    run_id       VARCHAR NOT NULL,
    flow         VARCHAR NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,  -- running | completed | failed | interrupted (killed)
    counts       JSON,
    errors       JSON               -- list of strings
);

CREATE VIEW ingest_runs AS
SELECT
    run_id, started_at, finished_at, status,
    CAST(counts->>'feeds_ok' AS INTEGER)           AS feeds_ok,
    CAST(counts->>'feeds_unchanged' AS INTEGER)    AS feeds_unchanged,
    CAST(counts->>'feeds_failed' AS INTEGER)       AS feeds_failed,
    CAST(counts->>'feeds_skipped' AS INTEGER)      AS feeds_skipped,
    CAST(counts->>'articles_new' AS INTEGER)       AS articles_new,
    CAST(counts->>'articles_updated' AS INTEGER)   AS articles_updated,
    CAST(counts->>'articles_duplicate' AS INTEGER) AS articles_duplicate,
    CAST(counts->>'articles_failed' AS INTEGER)    AS articles_failed,
    CAST(counts->>'articles_parked' AS INTEGER)    AS articles_parked,
    errors
FROM runs
WHERE flow = 'ingest';
