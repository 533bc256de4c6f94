-- 002: labels, model versions and predictions.

-- Every trained model. Exactly one row has is_current; predictions name their model_version,
-- so a change in the news can be told apart from a change in the model.
-- Key: model_version.
CREATE TABLE model_versions (
    model_version   VARCHAR NOT NULL,
    trained_at      TIMESTAMPTZ NOT NULL,
    is_current      BOOLEAN NOT NULL,
    artifact_path   VARCHAR NOT NULL,
    artifact_sha256 VARCHAR NOT NULL,
    topic_macro_f1  DOUBLE,           -- cross-validated; NULL when too few labels to evaluate
    stance_macro_f1 DOUBLE,
    card            JSON NOT NULL     -- the model card: label counts, metrics, features, versions
);

-- Human labels: the seed set, imported files and the labelling loop. seeds/ on disk is the
-- source of truth; this table mirrors it so analysts can join labels to articles.
-- Key: label_id.
CREATE TABLE labels (
    label_id    VARCHAR NOT NULL,
    article_id  BIGINT,              -- when the label is for a stored article
    title       VARCHAR,
    text        VARCHAR,
    url         VARCHAR,             -- the article's URL; links a label to a stored article again
                                     -- after a rebuild, when article ids have changed
    topic       VARCHAR NOT NULL,    -- a configured topic id, or 'none'
    stance      VARCHAR,             -- NULL for a topic-only label
    source      VARCHAR NOT NULL,    -- seed | import | labelled
    labelled_at TIMESTAMPTZ NOT NULL
);

-- One row per (article, model version).
-- stance is NULL when the model cannot tell, and stance_note says why
-- (for instance "only 'favor' has examples").
-- Key: (article_id, model_version).
CREATE TABLE predictions (
    article_id        BIGINT NOT NULL,
    model_version     VARCHAR NOT NULL,
    predicted_at      TIMESTAMPTZ NOT NULL,
    topic             VARCHAR,
    topic_confidence  DOUBLE,           -- NULL when nothing measured it (the keyword rule)
    topic_note        VARCHAR,          -- what the model could not do (no 'none' examples, ...)
    stance            VARCHAR,
    stance_confidence DOUBLE,
    stance_note       VARCHAR
);

CREATE VIEW current_predictions AS
SELECT p.*
FROM predictions AS p
JOIN model_versions AS m USING (model_version)
WHERE m.is_current;
