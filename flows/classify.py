"""The classify flow: predict, in batches, every stored article the current model has not seen.

The flow only orchestrates: the work is ``classify_stored`` (a plain function, which the ingest
flow calls at its end once it has closed its own writer) and ``classify_batch``, run as one
Prefect task per batch of articles, never one per article. A batch is one transaction, so a
retried or crashed batch leaves nothing half-written, and the next run picks up what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from newsmon.config import Config, load_config
from newsmon.models.artifacts import load
from newsmon.models.predict import predict
from newsmon.warehouse.classify import (
    count_pending,
    current_model,
    insert_predictions,
    pending_articles,
)
from newsmon.warehouse.db import open_warehouse
from newsmon.warehouse.runs import finish_run, start_run

BatchFn = Callable[[duckdb.DuckDBPyConnection, object, str, int], int]


def classify_batch(con: duckdb.DuckDBPyConnection, model: object, version: str, limit: int) -> int:
    """Predict up to ``limit`` articles lacking a prediction from ``version``; store them."""
    pending = pending_articles(con, version, limit)
    if pending.num_rows == 0:
        return 0
    result = predict(model, pending["title"].to_pylist(), pending["text"].to_pylist())
    batch = pa.table(
        {
            "article_id": pending["article_id"],
            "topic": pa.array(result.topic, pa.string()),
            "topic_confidence": pa.array(result.topic_confidence, pa.float64()),
            "topic_note": pa.array(result.topic_note, pa.string()),
            "stance": pa.array(result.stance, pa.string()),
            "stance_confidence": pa.array(result.stance_confidence, pa.float64()),
            "stance_note": pa.array(result.stance_note, pa.string()),
        }
    )
    return insert_predictions(con, version, batch)


classify_batch_task = task(
    classify_batch,
    name="classify-batch",
    retries=2,
    retry_delay_seconds=5,
    timeout_seconds=900,
    # Its arguments are a live connection and a model: nothing to cache on.
    cache_policy=NO_CACHE,
)


def classify_stored(
    config: Config,
    run_id: str | None = None,
    batch: BatchFn = classify_batch,
    batch_size: int | None = None,
) -> dict:
    """Classify every stored article without a prediction from the current model version.

    ``batch_size`` articles per batch and transaction (default: ``[classify] batch_size``).
    Records a 'classify' row in runs. Returns counts and, when there is no model, a note.
    """
    from uuid import uuid4

    run_id = run_id or f"classify-{uuid4()}"
    batch_size = batch_size or config.classify.batch_size
    outcome: dict = {"classified": 0, "model_version": None, "note": None}
    with open_warehouse(config) as con:
        start_run(con, run_id, "classify")
        try:
            row = current_model(con)
            if row is None:
                outcome["note"] = "no model trained yet: run `newsmon model train`"
            else:
                model = load(config.resolve(Path(row.artifact_path)), row.artifact_sha256)
                outcome["model_version"] = row.version
                while done := batch(con, model, row.version, batch_size):
                    outcome["classified"] += done
                outcome["remaining"] = count_pending(con, row.version)
        except Exception as exc:
            finish_run(con, run_id, "failed", {"classified": outcome["classified"]}, [str(exc)])
            raise
        notes = [outcome["note"]] if outcome["note"] else []
        finish_run(con, run_id, "completed", {"classified": outcome["classified"]}, notes)
    return outcome


def summary_markdown(outcome: dict) -> str:
    lines = ["# Classify run", ""]
    if outcome["model_version"] is None:
        lines.append(f"Nothing classified: {outcome['note']}.")
    else:
        lines += [
            f"- model version: `{outcome['model_version']}`",
            f"- articles classified: {outcome['classified']}",
            f"- still without a prediction: {outcome.get('remaining', 0)}",
        ]
    return "\n".join(lines)


@flow(name="classify")
def classify_flow(config_path: str | None = None) -> dict:
    """Predict every stored article lacking a prediction from the current model, in batches."""
    config = load_config(Path(config_path) if config_path else None)
    outcome = classify_stored(config, run_id=str(flow_run.id), batch=classify_batch_task)
    get_run_logger().info(
        "classified %d article(s) with model %s", outcome["classified"], outcome["model_version"]
    )
    create_markdown_artifact(summary_markdown(outcome), key="classify-summary")
    return outcome
