"""The runs table: one row per flow run, opened at its start and completed at its end."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import duckdb

# Runs start under the writer lock, so a run still marked running now was killed mid-way.
MARK_INTERRUPTED = "UPDATE runs SET status = 'interrupted' WHERE status = 'running'"
START_RUN = """
INSERT INTO runs (run_id, flow, started_at, status)
SELECT ?, ?, now(), 'running'
WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?)
"""
FINISH_RUN = """
UPDATE runs SET finished_at = now(), status = ?, counts = ?::JSON, errors = ?::JSON
WHERE run_id = ?
"""


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str) -> None:
    """Record a run as started. Call it only while holding the warehouse's writer lock."""
    con.execute(MARK_INTERRUPTED)
    con.execute(START_RUN, [run_id, flow, run_id])


# A run's errors column is a summary for people: a feed with 100,000 broken links once put 5.5 MB
# into one value. Every failure stays in fetch_log and entries.last_error.
MAX_RUN_ERRORS = 100
MAX_ERROR_CHARS = 500


def error_summary(errors: Sequence[str]) -> list[str]:
    """The first MAX_RUN_ERRORS errors, each cut to MAX_ERROR_CHARS, and how many were left."""
    kept = [e if len(e) <= MAX_ERROR_CHARS else e[: MAX_ERROR_CHARS - 1] + "…"
            for e in errors[:MAX_RUN_ERRORS]]
    if len(errors) > MAX_RUN_ERRORS:
        left = len(errors) - MAX_RUN_ERRORS
        kept.append(f"... and {left} more errors (see fetch_log and entries.last_error)")
    return kept


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    errors: Sequence[str] = (),
) -> None:
    summary = error_summary(errors)
    con.execute(FINISH_RUN, [status, json.dumps(dict(counts)), json.dumps(summary), run_id])
