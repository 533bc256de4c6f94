-- 003: the weekly digests, so that a week's digest is mailed once (`newsmon digest --force`
-- mails it again) and the files on disk can be found from the warehouse.
-- Key: week (ISO week, e.g. '2026-W47'); the digest writer updates the row or inserts it.
CREATE TABLE digests (
    week          VARCHAR NOT NULL,
    run_id        VARCHAR,              -- the run that last rendered it
    rendered_at   TIMESTAMPTZ NOT NULL,
    article_count INTEGER NOT NULL,
    html_path     VARCHAR NOT NULL,
    text_path     VARCHAR NOT NULL,
    eml_path      VARCHAR NOT NULL,
    message_id    VARCHAR,              -- of the message last sent
    sent_at       TIMESTAMPTZ,          -- NULL until mailed; the last time it was mailed
    recipients    JSON,                 -- list of addresses it was last mailed to
    send_count    INTEGER NOT NULL DEFAULT 0,
    last_error    VARCHAR               -- why the last attempt to mail it failed, NULL after success
);
