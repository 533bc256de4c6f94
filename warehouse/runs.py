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


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    errors: Sequence[str] = (),
) -> None:
    con.execute(FINISH_RUN, [status, json.dumps(dict(counts)), json.dumps(list(errors)), run_id])
