"""`newsmon sql` and `newsmon status` on the analyst copy, with real DuckDB files and runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from werkzeug import Response

from newsmon.cli import app
from newsmon.warehouse import open_writer
from newsmon.warehouse.runs import finish_run, start_run

runner = CliRunner()
CONFIG = """timezone = "Europe/London"
[warehouse]
path = "wh/newsmon.duckdb"
[schedule]
ingest_cron = "15 * * * *"
"""


def newsmon(config: Path, *args: str, stdin: str | None = None):
    return runner.invoke(app, ["--config", str(config), *args], input=stdin)


def record_two_runs(con) -> None:
    """A completed ingest and a failed digest, as a warehouse shows them to `status` and SQL."""
    start_run(con, "run-1", "ingest")
    finish_run(con, "run-1", "completed", {"articles_new": 1})
    start_run(con, "run-2", "digest")
    finish_run(con, "run-2", "failed", {}, ["SMTP refused"])


@pytest.fixture
def warehouse(write_config, tmp_path) -> Path:
    """A config whose warehouse holds two runs and one article; its path."""
    config = write_config(CONFIG)
    with open_writer(tmp_path / "wh" / "newsmon.duckdb") as con:
        record_two_runs(con)
        con.execute("""
            INSERT INTO articles (article_id, canonical_url, title, first_seen_at, fetched_at,
                                  text, word_count, content_hash, extraction)
            VALUES (1, 'http://a.test/1', 'One', now(), now(), 'text', 1, 'h1', 'trafilatura')
        """)
    return config


def test_sql_answers_while_a_run_holds_the_warehouse(warehouse, tmp_path):
    command = [sys.executable, "-m", "newsmon", "--config", str(warehouse), "sql",
               "SELECT string_agg(run_id, '+' ORDER BY run_id) AS runs FROM runs"]
    with open_writer(tmp_path / "wh" / "newsmon.duckdb") as con:
        start_run(con, "run-3", "ingest")
        # Another process, as an analyst would be: DuckDB's own locks apply across processes.
        during = subprocess.run(command, capture_output=True, text=True, timeout=60)
    after = newsmon(warehouse, *command[-2:])

    assert during.returncode == 0, during.stderr
    assert "run-1+run-2" in during.stdout and "run-3" not in during.stdout
    assert "run-1+run-2+run-3" in after.stdout  # published when the writer closed


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_sql_writes_the_result_to_a_file(warehouse, tmp_path, fmt):
    target = tmp_path / f"runs.{fmt}"
    result = newsmon(warehouse, "sql", "SELECT run_id, flow, status FROM run_history "
                     "ORDER BY run_id", f"--{fmt}", str(target))

    assert result.exit_code == 0, result.output
    assert f"Wrote 2 rows to {target}." in result.stdout
    expected = [{"run_id": "run-1", "flow": "ingest", "status": "completed"},
                {"run_id": "run-2", "flow": "digest", "status": "failed"}]
    if fmt == "csv":
        with target.open(newline="") as file:
            assert list(csv.DictReader(file)) == expected
    elif fmt == "json":
        assert json.loads(target.read_text()) == expected
    else:
        assert pq.read_table(target).to_pylist() == expected


def test_sql_prints_a_table(warehouse):
    result = newsmon(warehouse, "sql", "SELECT title, word_count, NULL AS nothing FROM articles")
    assert result.exit_code == 0, result.output
    assert "title" in result.stdout and "One" in result.stdout and "NULL" in result.stdout
    assert "(1 row)" in result.stdout


def test_a_bad_query_gets_duckdbs_message_and_nothing_else(warehouse):
    result = newsmon(warehouse, "sql", "SELECT * FROM no_such_table")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Catalog Error: Table with name no_such_table does not exist")
    assert "Traceback" not in result.output

    result = newsmon(warehouse, "sql", "DELETE FROM runs", "--csv", "out.csv")
    assert result.exit_code == 1
    assert "read-only" in result.stderr and "Traceback" not in result.output


def test_the_prompt_runs_statements_across_lines_until_quit(warehouse):
    session = "SELECT 40 + 2\n  AS answer;\nSELECT nonsense FROM runs;\n\nSELECT 'still here' AS s;\n.quit\nSELECT 'after quit';\n"
    result = newsmon(warehouse, "sql", stdin=session)
    assert result.exit_code == 0, result.output
    assert "answer" in result.stdout and "42" in result.stdout
    assert 'Referenced column "nonsense" not found' in result.stderr
    assert "still here" in result.stdout
    assert "after quit" not in result.stdout


def test_sql_and_status_say_how_to_get_a_warehouse_first(write_config):
    config = write_config(CONFIG)
    for command in (["sql", "SELECT 1"], ["status"]):
        result = newsmon(config, *command)
        assert result.exit_code == 1
        message = " ".join(result.stderr.split())  # rich wraps it to the terminal's width
        assert "no analyst copy yet" in message
        assert "wh/newsmon.analyst.duckdb:" in "".join(message.split())
        assert "run `newsmon ingest` (or `newsmon demo`) first" in message


def test_status_shows_runs_articles_model_and_next_runs(warehouse, tmp_path):
    result = newsmon(warehouse, "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "digest" in out and "failed" in out and "SMTP refused" in out
    assert "no model trained yet" in out
    today = datetime.now(ZoneInfo("Europe/London")).strftime("%a %d %b")
    assert any(today in line and line.rstrip().endswith("1") for line in out.splitlines())
    assert ":15," in out  # the next ingest runs, from ingest_cron "15 * * * *"

    with open_writer(tmp_path / "wh" / "newsmon.duckdb") as con:
        con.execute("INSERT INTO model_versions VALUES "
                    "('2026-11-20-abc', now(), true, 'p', 's', 0.83, NULL, '{}')")
    out = newsmon(warehouse, "status").stdout
    assert "2026-11-20-abc" in out
    assert "topic 0.83, stance not evaluated (too few labels)" in out


@pytest.mark.usefixtures("prefect_harness")
def test_status_names_a_feed_that_failed_twice(site, write_config):
    from newsmon.flows.ingest import ingest_flow
    from tests.test_ingest_flow import config_text

    site.routes["/down.xml"] = lambda request: Response("boom", status=500)
    config = write_config(config_text(site, ["/down.xml"]))
    ingest_flow(str(config))
    assert site.url("/down.xml") not in newsmon(config, "status").stdout  # once may be a blip
    ingest_flow(str(config))

    result = newsmon(config, "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    feed_line = next(i for i, line in enumerate(lines) if site.url("/down.xml") in line)
    assert "2 failures in a row" in lines[feed_line]
    assert lines[feed_line + 1].strip().startswith("HTTP 500")
