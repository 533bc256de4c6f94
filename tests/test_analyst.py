"""The analyst copy and the single writer: real DuckDB files, real processes, real ingest runs."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from newsmon.warehouse import WarehouseBusy, open_reader, open_writer
from newsmon.warehouse.runs import finish_run, start_run
from tests.fakesite import Item, article_page, article_text, rss20

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
    assert str(busy.value) == (f"{database}: another newsmon run has held the writer lock for "
                               "0 s; try again when it has finished")


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
