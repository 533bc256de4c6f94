"""Labels, model versions and predictions in the warehouse (tables from 002_classify.sql).

Rows go in as Arrow tables through one INSERT ... SELECT per batch, inside one transaction:
row-by-row inserts are orders of magnitude slower in DuckDB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from newsmon.labels import Label
from newsmon.warehouse.db import transaction

CURRENT_MODEL = """
SELECT model_version, artifact_path, artifact_sha256
FROM model_versions WHERE is_current
"""
# One saved version: the current one when $version is NULL.
SAVED_MODEL = """
SELECT model_version, artifact_path, artifact_sha256, card
FROM model_versions
WHERE CASE WHEN $version::VARCHAR IS NULL THEN is_current ELSE model_version = $version END
"""
RETIRE_CURRENT = "UPDATE model_versions SET is_current = false WHERE is_current"
ADD_MODEL = """
INSERT INTO model_versions
    (model_version, trained_at, is_current, artifact_path, artifact_sha256,
     topic_macro_f1, stance_macro_f1, card)
VALUES (?, ?::TIMESTAMPTZ, true, ?, ?, ?, ?, ?::JSON)
"""
# Articles with no prediction from this model version, oldest first so a backlog drains in order.
PENDING_ARTICLES = """
SELECT a.article_id, a.title, a.text
FROM articles AS a
WHERE NOT EXISTS (
    SELECT 1 FROM predictions AS p
    WHERE p.article_id = a.article_id AND p.model_version = $version
)
ORDER BY a.article_id
LIMIT $limit
"""
COUNT_PENDING = """
SELECT count(*) FROM articles AS a
WHERE NOT EXISTS (
    SELECT 1 FROM predictions AS p
    WHERE p.article_id = a.article_id AND p.model_version = $version
)
"""
INSERT_PREDICTIONS = """
INSERT INTO predictions
    (article_id, model_version, predicted_at, topic, topic_confidence, topic_note,
     stance, stance_confidence, stance_note)
SELECT article_id, $version, now(), topic, topic_confidence, topic_note,
       stance, stance_confidence, stance_note
FROM batch
"""
# The seeds/ files are the source of truth; the table is rebuilt from them whole. A label finds
# its stored article by URL, so the link survives a warehouse rebuild.
REPLACE_LABELS = """
INSERT INTO labels (label_id, article_id, title, text, url, topic, stance, source, labelled_at,
                    target)
SELECT b.label_id, a.article_id, b.title, b.text, b.url, b.topic, b.stance, b.origin,
       coalesce(b.labelled_at::TIMESTAMPTZ, now()), b.target
FROM batch AS b
LEFT JOIN (SELECT canonical_url, min(article_id) AS article_id FROM articles GROUP BY ALL) AS a
    ON a.canonical_url = b.url
"""
# Recent unlabelled articles: the pool self-training learns from.
UNLABELLED_TEXTS = """
SELECT a.title, a.text
FROM articles AS a
WHERE a.article_id NOT IN (SELECT article_id FROM labels WHERE article_id IS NOT NULL)
ORDER BY a.first_seen_at DESC
LIMIT $limit
"""
# The labelling queue: what the current model is least sure of. Rows without a confidence (the
# keyword rule) come first, since nothing has measured them; then the lowest confidence.
LEAST_CONFIDENT = """
SELECT a.article_id, a.title, a.site, a.published_at, a.canonical_url, a.text,
       p.topic, p.topic_confidence, p.topic_note, p.stance, p.stance_confidence, p.stance_note
FROM current_predictions AS p
JOIN articles AS a USING (article_id)
WHERE a.article_id NOT IN (SELECT article_id FROM labels WHERE article_id IS NOT NULL)
  AND a.canonical_url NOT IN (SELECT url FROM labels WHERE url IS NOT NULL)
ORDER BY p.topic_confidence ASC NULLS FIRST,
         p.stance_confidence ASC NULLS FIRST,
         a.first_seen_at DESC
LIMIT $limit
"""


@dataclass(frozen=True)
class ModelRow:
    version: str
    artifact_path: str
    artifact_sha256: str


def current_model(con: duckdb.DuckDBPyConnection) -> ModelRow | None:
    # fetchall, not fetchone: DuckDB refuses new work on a connection with a result half read.
    rows = con.execute(CURRENT_MODEL).fetchall()
    return ModelRow(*rows[0]) if rows else None


def saved_model(
    con: duckdb.DuckDBPyConnection, version: str | None = None
) -> tuple[ModelRow, dict] | None:
    """A saved version's row and its model card: ``version``, or the current one; None if
    there is no such version."""
    rows = con.execute(SAVED_MODEL, {"version": version}).fetchall()
    if not rows:
        return None
    *row, card = rows[0]
    return ModelRow(*row), json.loads(card)


def record_model(
    con: duckdb.DuckDBPyConnection,
    version: str,
    artifact_path: str,
    sha256: str,
    card: dict,
) -> None:
    """Make this version the current one (exactly one row is current)."""
    metrics = [
        (card[task].get("cross_validated") or {}).get("macro_f1") for task in ("topic", "stance")
    ]
    with transaction(con):
        con.execute(RETIRE_CURRENT)
        con.execute(
            ADD_MODEL,
            [version, card["trained_at"], artifact_path, sha256, *metrics, json.dumps(card)],
        )


def pending_articles(con: duckdb.DuckDBPyConnection, version: str, limit: int) -> pa.Table:
    return con.sql(PENDING_ARTICLES, params={"version": version, "limit": limit}).to_arrow_table()


def count_pending(con: duckdb.DuckDBPyConnection, version: str) -> int:
    return con.execute(COUNT_PENDING, {"version": version}).fetchall()[0][0]


def insert_predictions(con: duckdb.DuckDBPyConnection, version: str, batch: pa.Table) -> int:
    """One batch of predictions (columns as in the predictions table), in one transaction."""
    with transaction(con):
        con.register("batch", batch)
        try:
            con.execute(INSERT_PREDICTIONS, {"version": version})
        finally:
            con.unregister("batch")
    return batch.num_rows


def replace_labels(con: duckdb.DuckDBPyConnection, labels: Sequence[Label]) -> int:
    """Mirror seeds/ into the labels table."""
    batch = pa.table(
        {
            "label_id": [x.id for x in labels],
            "title": [x.title for x in labels],
            "text": [x.text for x in labels],
            "url": [x.url for x in labels],
            "topic": [x.topic for x in labels],
            "stance": [x.stance for x in labels],
            "origin": [x.origin for x in labels],
            "labelled_at": [x.labelled_at for x in labels],
            "target": [x.target for x in labels],
        },
        schema=pa.schema(
            [
                (name, pa.string())
                for name in (
                    "label_id",
                    "title",
                    "text",
                    "url",
                    "topic",
                    "stance",
                    "origin",
                    "labelled_at",
                    "target",
                )
            ]
        ),
    )
    with transaction(con):
        con.execute("DELETE FROM labels")
        con.register("batch", batch)
        try:
            con.execute(REPLACE_LABELS)
        finally:
            con.unregister("batch")
    return batch.num_rows


def unlabelled_texts(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple[str | None, str]]:
    return con.execute(UNLABELLED_TEXTS, {"limit": limit}).fetchall()


def least_confident(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict]:
    cursor = con.execute(LEAST_CONFIDENT, {"limit": limit})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


UNCLASSIFIED_ARTICLES = """
SELECT count(*) FROM articles AS a
WHERE NOT EXISTS (
    SELECT 1 FROM current_predictions AS p WHERE p.article_id = a.article_id
)
"""


def unclassified_articles(con: duckdb.DuckDBPyConnection) -> int:
    """Stored articles without a prediction from the current model (all of them before one)."""
    return con.execute(UNCLASSIFIED_ARTICLES).fetchall()[0][0]
