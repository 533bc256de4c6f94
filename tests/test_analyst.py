"""The analyst copy and the single writer: real DuckDB files, real processes, real ingest runs."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import pty
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest

from newsmon.warehouse import WarehouseBusy, open_reader, open_writer
from newsmon.warehouse.runs import finish_run, start_run
from tests.fakesite import Item, article_page, article_text, rss20
from tests.test_ops import record_two_runs

HOLD_SECONDS = 1.5


def count_elsewhere(database: Path, sql: str) -> int:
    """What a new analyst session in another process sees (DuckDB shares one open database
    per file within a process, so a second connection here would see the first one's snapshot)."""
    script = ("import duckdb, sys\n"
              "con = duckdb.connect(sys.argv[1], read_only=True)\n"
              "print(con.execute(sys.argv[2]).fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", script, str(database), sql],
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_each_writer_publishes_a_read_only_copy_swapped_under_open_readers(tmp_path):
    live = tmp_path / "wh" / "newsmon.duckdb"
    copy = tmp_path / "wh" / "newsmon.analyst.duckdb"
    with open_writer(live) as con:
        con.execute("CREATE TABLE notes (n INTEGER)")
        con.execute("INSERT INTO notes VALUES (1)")
    assert copy.exists()
    assert copy.stat().st_mode & 0o222 == 0  # nobody's to write
    assert count_elsewhere(copy, "SELECT max(version) FROM schema_migrations") >= 4

    held = duckdb.connect(str(copy), read_only=True)
    try:
        with open_writer(live) as con:
            con.execute("INSERT INTO notes VALUES (2)")
        # The open session keeps its snapshot; a new one sees the new copy.
        assert held.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        assert count_elsewhere(copy, "SELECT count(*) FROM notes") == 2
    finally:
        held.close()
    assert sorted(p.name for p in copy.parent.iterdir()) == [
        "newsmon.analyst.duckdb", "newsmon.duckdb", "newsmon.duckdb.lock"]


def test_a_failed_run_is_published_too(tmp_path):
    live = tmp_path / "newsmon.duckdb"
    with pytest.raises(RuntimeError), open_writer(live) as con:
        start_run(con, "r1", "ingest")
        finish_run(con, "r1", "failed", {}, ["feeds unreachable"])
        raise RuntimeError("the run failed after recording why")
    with open_reader(tmp_path / "newsmon.analyst.duckdb") as con:
        assert con.execute("SELECT status, first_error FROM run_history").fetchall() == [
            ("failed", "feeds unreachable")]


def hold_writer(database: str, run_id: str, ready, results) -> None:
    """A writer run in its own process: wait for the other one, then take the writer lock."""
    ready.wait()
    asked = time.time()
    with open_writer(Path(database)) as con:
        entered = time.time()
        start_run(con, run_id, "test")
        time.sleep(HOLD_SECONDS)
        finish_run(con, run_id, "completed", {"held": 1})
        left = time.time()
    results.put((run_id, asked, entered, left))


def test_two_concurrent_writers_take_turns_and_both_complete(tmp_path):
    database = tmp_path / "newsmon.duckdb"
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(2), context.Queue()
    runs = [context.Process(target=hold_writer, args=(str(database), f"run-{n}", ready, results))
            for n in (1, 2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    assert [run.exitcode for run in runs] == [0, 0]

    first, second = sorted((results.get(timeout=5) for _ in runs), key=lambda r: r[2])
    assert second[1] < first[3]  # the second asked while the first was writing ...
    assert second[2] >= first[3]  # ... and got in only once the first had finished
    with open_reader(tmp_path / "newsmon.analyst.duckdb") as con:
        rows = con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    assert rows == [("run-1", "completed"), ("run-2", "completed")]


def test_a_writer_that_cannot_wait_longer_reports_the_busy_warehouse(tmp_path):
    database = tmp_path / "newsmon.duckdb"
    with open_writer(database) as con:
        con.execute("CREATE TABLE notes (n INTEGER)")
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as busy, open_writer(database, lock_timeout=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 5
    assert str(busy.value) == (f"{database}: another newsmon run is writing to it; waited 0 s "
                               "for it to finish (warehouse.lock_timeout_seconds). Try again when "
                               "it has finished")


def test_views_give_articles_their_current_topic_feed_health_and_runs(tmp_path):
    live = tmp_path / "newsmon.duckdb"
    with open_writer(live) as con:
        start_run(con, "r1", "ingest")
        finish_run(con, "r1", "completed", {"feeds_ok": 1}, ["one", "two"])
        con.execute("""
            INSERT INTO feeds (feed_url, name, added_at, consecutive_failures, last_outcome)
            VALUES ('http://a.test/feed', 'Outlet A', now(), 0, 'ok'),
                   ('http://b.test/feed', NULL, now(), 2, 'failed');
            INSERT INTO articles (article_id, canonical_url, title, published_at, first_seen_at,
                                  fetched_at, text, word_count, content_hash, extraction)
            VALUES (1, 'http://a.test/1', 'One', '2026-11-17 09:00Z', now(), now(), 't', 1, 'h1',
                    'trafilatura'),
                   (2, 'http://a.test/2', 'Two', '2026-11-18 09:00Z', now(), now(), 't', 1, 'h2',
                    'trafilatura');
            INSERT INTO entries (feed_url, entry_key, url, normalized_url, fingerprint, status,
                                 article_id, first_seen_at, last_seen_at)
            VALUES ('http://b.test/feed', 'x', 'http://a.test/1', 'http://a.test/1', 'f',
                    'duplicate', 1, '2026-11-17 11:00Z', now()),
                   ('http://a.test/feed', 'y', 'http://a.test/1', 'http://a.test/1', 'f',
                    'stored', 1, '2026-11-17 10:00Z', now());
            INSERT INTO model_versions VALUES
                ('old', now(), false, 'p', 's', 0.5, 0.5, '{}'),
                ('new', now(), true, 'p', 's', 0.8, 0.7, '{}');
            INSERT INTO predictions (article_id, model_version, predicted_at, topic, stance)
            VALUES (1, 'old', now(), 'us-dprk', 'against'), (1, 'new', now(), 'us-dprk', 'favor'),
                   (2, 'new', now(), 'us-dprk', 'favor');
        """)
    with open_reader(tmp_path / "newsmon.analyst.duckdb", "Europe/London") as con:
        assert con.execute("SELECT article_id, outlet, feed_count, topic, stance, model_version "
                           "FROM article_topics ORDER BY 1").fetchall() == [
            (1, "Outlet A", 2, "us-dprk", "favor", "new"),
            (2, None, 0, "us-dprk", "favor", "new")]
        assert con.execute("SELECT * FROM weekly_topic_stance").fetchall() == [
            ("2026-W47", date(2026, 11, 16), "us-dprk", "favor", 2)]
        assert con.execute("SELECT feed_url, failing, articles FROM feed_health "
                           "ORDER BY 1").fetchall() == [
            ("http://a.test/feed", False, 1), ("http://b.test/feed", True, 1)]
        assert con.execute("SELECT flow, error_count, first_error FROM run_history").fetchall() == [
            ("ingest", 2, "one")]


@pytest.mark.usefixtures("prefect_harness")
def test_an_analyst_session_held_across_an_ingest_run_does_not_stop_it(site, write_config,
                                                                       tmp_path):
    from newsmon.flows.ingest import ingest_flow
    from tests.test_ingest_flow import config_text

    for n in (1, 2):
        site.page(f"/news/{n}.html", article_page(f"Story {n}", article_text(n)))
    site.feed("/feed.xml", rss20("Feed", [Item("Story 1", site.url("/news/1.html"), "s1")]))
    config = write_config(config_text(site, ["/feed.xml"]))
    copy = tmp_path / "wh" / "newsmon.analyst.duckdb"
    ingest_flow(str(config))

    analyst = duckdb.connect(str(copy), read_only=True)  # left open, as over a whole day
    try:
        site.feed("/feed.xml", rss20("Feed", [Item("Story 1", site.url("/news/1.html"), "s1"),
                                              Item("Story 2", site.url("/news/2.html"), "s2")]))
        result = ingest_flow(str(config))
        assert result.summary.articles_new == 1
        assert analyst.execute("SELECT count(*) FROM articles").fetchone() == (1,)
        assert count_elsewhere(copy, "SELECT count(*) FROM articles") == 2
        assert count_elsewhere(copy, "SELECT count(*) FROM runs WHERE flow = 'ingest' "
                                     "AND status = 'completed'") == 2
    finally:
        analyst.close()


# The analysts' SQL door (`newsmon sql`): it reads the analyst copy and nothing else.

SQL_CONFIG = """timezone = "Europe/London"
[warehouse]
path = "wh/newsmon.duckdb"
"""


@pytest.fixture
def analyst_config(write_config, tmp_path) -> Path:
    """A config whose warehouse (and so its analyst copy) holds two runs; its path."""
    config = write_config(SQL_CONFIG)
    with open_writer(tmp_path / "wh" / "newsmon.duckdb") as con:
        record_two_runs(con)
    return config


def newsmon_process(config: Path, *args: str, stdin: str | None = None,
                    **kwargs) -> subprocess.CompletedProcess:
    """`newsmon --config CONFIG ARGS...` as its own process, run in the config's folder."""
    return subprocess.run([sys.executable, "-m", "newsmon", "--config", str(config), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          cwd=config.parent, **kwargs)


OUTSIDE_STATEMENTS = [
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM glob('{folder}/*')",
    "SELECT * FROM read_blob('{live}')",
    "COPY (SELECT 'x') TO '{live}' (FORMAT csv)",
    "COPY (SELECT 'x') TO '{folder}/new.csv' (FORMAT csv)",
    "EXPORT DATABASE '{folder}/exported'",
    "ATTACH '{live}' AS live (READ_ONLY)",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET lock_configuration = false",
    "SET autoinstall_known_extensions = true",
]


def test_an_analyst_session_reads_the_copy_and_nothing_else(analyst_config, tmp_path):
    from newsmon.warehouse.analyst import QueryError, open_analyst_session

    folder = tmp_path / "wh"
    live, copy = folder / "newsmon.duckdb", folder / "newsmon.analyst.duckdb"
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    before = {path: path.read_bytes() for path in (live, copy)}
    with open_analyst_session(copy, "Europe/London") as session:
        for template in OUTSIDE_STATEMENTS:
            statement = template.format(secret=secret, folder=folder, live=live)
            with pytest.raises(QueryError) as refused:
                session.run(statement, limit=10)
            message = str(refused.value)
            assert message.startswith(("Permission Error:", "Invalid Input Error: Cannot change "
                                       "configuration option")), statement
            assert "configuration" in message, statement
        # What analysts do still works: the views, temporary scratch tables, the session's zone.
        assert session.run("SELECT run_id, status FROM run_history ORDER BY run_id", limit=10) == (
            ["run_id", "status"], [("run-1", "completed"), ("run-2", "failed")])
        session.run("CREATE TEMP TABLE scratch AS SELECT 42 AS n", limit=10)
        assert session.run("FROM scratch", limit=10) == (["n"], [(42,)])
        assert session.run("SELECT current_setting('TimeZone')", limit=10)[1] == [
            ("Europe/London",)]
    assert {path: path.read_bytes() for path in (live, copy)} == before
    assert sorted(p.name for p in folder.iterdir()) == [
        "newsmon.analyst.duckdb", "newsmon.duckdb", "newsmon.duckdb.lock"]


def test_sql_cannot_overwrite_the_live_warehouse_or_read_other_files(analyst_config, tmp_path):
    live = tmp_path / "wh" / "newsmon.duckdb"
    before = live.read_bytes()
    clobber = newsmon_process(analyst_config, "sql",
                              f"COPY (SELECT 'x') TO '{live}' (FORMAT csv)")
    assert clobber.returncode == 1
    assert "disabled by configuration" in clobber.stderr and "Traceback" not in clobber.stderr
    assert live.read_bytes() == before
    with open_writer(live) as con:  # the next run still opens it
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)

    (tmp_path / "secret.txt").write_text("hunter2")
    peek = newsmon_process(analyst_config, "sql",
                           f"SELECT content FROM read_text('{tmp_path / 'secret.txt'}')")
    assert peek.returncode == 1
    assert "hunter2" not in peek.stdout and "disabled by configuration" in peek.stderr


def test_the_prompt_cannot_attach_the_live_warehouse_and_block_a_run(analyst_config, tmp_path):
    live = tmp_path / "wh" / "newsmon.duckdb"
    prompt = subprocess.Popen(
        [sys.executable, "-m", "newsmon", "--config", str(analyst_config), "sql"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        prompt.stdin.write(f"ATTACH '{live}' AS live (READ_ONLY);\nSELECT 'at the prompt' AS s;\n")
        prompt.stdin.flush()
        while "at the prompt" not in prompt.stdout.readline():
            pass
        # The analyst is still at the prompt; the scheduled run must still get the warehouse.
        with open_writer(live, lock_timeout=5) as con:
            start_run(con, "run-3", "ingest")
        prompt.stdin.write(".quit\n")
        prompt.stdin.flush()
        _, errors = prompt.communicate(timeout=60)
    finally:
        prompt.kill()
    assert prompt.returncode == 0
    assert "disabled by configuration" in errors


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_sql_still_exports_dates_decimals_lists_and_local_times(analyst_config, tmp_path, fmt):
    target = tmp_path / f"out.{fmt}"
    query = ("SELECT run_id, DATE '2026-11-16' AS day, TIMESTAMPTZ '2026-07-01 09:00Z' AS at, "
             "1.5::DECIMAL(4, 2) AS amount, [1, 2] AS numbers, NULL AS nothing "
             "FROM run_history ORDER BY run_id")
    done = newsmon_process(analyst_config, "sql", query, f"--{fmt}", str(target))
    assert done.returncode == 0, done.stderr
    assert f"Wrote 2 rows to {target}." in done.stdout
    runs = ("run-1", "run-2")
    if fmt == "csv":  # DuckDB's own text, times in the config's zone (London is on BST in July)
        with target.open(newline="") as file:
            assert list(csv.DictReader(file)) == [
                {"run_id": run, "day": "2026-11-16", "at": "2026-07-01 10:00:00+01",
                 "amount": "1.50", "numbers": "[1, 2]", "nothing": ""} for run in runs]
    elif fmt == "json":
        assert json.loads(target.read_text()) == [
            {"run_id": run, "day": "2026-11-16", "at": "2026-07-01T10:00:00+01:00",
             "amount": 1.5, "numbers": [1, 2], "nothing": None} for run in runs]
    else:
        assert pq.read_table(target).to_pylist() == [
            {"run_id": run, "day": date(2026, 11, 16),
             "at": datetime(2026, 7, 1, 9, tzinfo=UTC).astimezone(ZoneInfo("Europe/London")),
             "amount": Decimal("1.50"), "numbers": [1, 2], "nothing": None} for run in runs]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_an_export_to_dash_goes_to_standard_output(analyst_config, fmt):
    query = "SELECT run_id, flow FROM run_history ORDER BY run_id"
    done = subprocess.run([sys.executable, "-m", "newsmon", "--config", str(analyst_config),
                           "sql", query, f"--{fmt}", "-"], capture_output=True, timeout=60,
                          cwd=analyst_config.parent)
    assert done.returncode == 0, done.stderr
    assert not (analyst_config.parent / "-").exists()
    assert b"Wrote 2 rows to standard output." in done.stderr
    expected = [{"run_id": "run-1", "flow": "ingest"}, {"run_id": "run-2", "flow": "digest"}]
    if fmt == "csv":
        assert list(csv.DictReader(io.StringIO(done.stdout.decode()))) == expected
    elif fmt == "json":
        assert json.loads(done.stdout) == expected
    else:
        assert pq.read_table(io.BytesIO(done.stdout)).to_pylist() == expected


def test_parquet_is_not_written_to_a_terminal(analyst_config):
    terminal, other_end = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "newsmon", "--config", str(analyst_config),
                               "sql", "SELECT 1", "--parquet", "-"], stdout=other_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(terminal)
        os.close(other_end)
    assert done.returncode == 2
    assert "Parquet" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("query", ["", "   \n", "-- only a comment", "/* nothing */ ;"])
def test_an_empty_query_is_refused_clearly(analyst_config, query):
    for export in ([], ["--csv", "out.csv"]):
        done = newsmon_process(analyst_config, "sql", query, *export)
        assert done.returncode == 2, done.stderr
        assert "no SQL to run" in done.stderr and "Traceback" not in done.stderr
        assert not (analyst_config.parent / "out.csv").exists()


def test_a_misspelt_option_is_not_taken_for_an_empty_query(analyst_config):
    done = newsmon_process(analyst_config, "sql", "--cvs")
    assert done.returncode == 2
    assert "no such option: --cvs" in done.stderr


def test_a_query_may_start_with_a_comment(analyst_config):
    query = "-- runs per flow\nSELECT flow, count(*) AS n FROM run_history GROUP BY flow ORDER BY 1"
    for args in (["sql", query], ["sql", "--", query], ["sql", query, "--csv", "-"]):
        done = newsmon_process(analyst_config, *args)
        assert done.returncode == 0, done.stderr
        assert "digest" in done.stdout and "ingest" in done.stdout
    from_stdin = newsmon_process(analyst_config, "sql", "-", stdin=query)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert "digest" in from_stdin.stdout


def test_every_statement_of_several_shows_its_result(analyst_config):
    done = newsmon_process(analyst_config, "sql",
                           "SELECT 'first' AS one; SELECT 'second' AS two, 2 AS n;")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("one") < out.index("first") < out.index("two") < out.index("second")
    assert out.count("(1 row)") == 2

    failing = newsmon_process(analyst_config, "sql", "SELECT 'shown' AS a; SELECT nonsense FROM runs; "
                              "SELECT 'never run' AS c")
    assert failing.returncode == 1
    assert "shown" in failing.stdout and "never run" not in failing.stdout
    assert 'Referenced column "nonsense" not found' in failing.stderr

    export = newsmon_process(analyst_config, "sql", "SELECT 1; SELECT 2", "--csv", "out.csv")
    assert export.returncode == 2
    assert "one statement" in export.stderr
    assert not (analyst_config.parent / "out.csv").exists()


def test_errors_are_printed_literally(analyst_config):
    done = newsmon_process(analyst_config, "sql", "SELECT * FROM \"[bold]no_such[/bold]\"")
    assert done.returncode == 1
    assert "[bold]no_such[/bold]" in done.stderr

    shown = newsmon_process(analyst_config, "sql", "SELECT '[red]a[/red]' AS \"[b]h[/b]\"")
    assert shown.returncode == 0, shown.stderr
    assert "[b]h[/b]" in shown.stdout and "[red]a[/red]" in shown.stdout


def test_a_failed_export_leaves_the_earlier_file_as_it_was(analyst_config):
    target = analyst_config.parent / "out.csv"
    target.write_text("earlier\n")
    # DuckDB fails only once it is well into the result, after the first batches were written.
    done = newsmon_process(analyst_config, "sql", "SELECT CAST(CASE WHEN i > 150000 THEN 'x' "
                           "ELSE '1' END AS INTEGER) AS n FROM range(300000) t(i)",
                           "--csv", str(target))
    assert done.returncode == 1
    assert done.stderr.startswith("Conversion Error: Could not convert string 'x' to INT32")
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in analyst_config.parent.iterdir()) == [
        "newsmon.toml", "out.csv", "wh"]
