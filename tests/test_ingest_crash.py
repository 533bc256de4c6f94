"""A run killed with SIGKILL mid-way loses nothing it had committed, and the next run finishes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from prefect.settings import PREFECT_API_URL

from newsmon.flows.ingest import ingest_flow
from tests.fakesite import Item, article_page, article_text, rss20
from tests.test_ingest_flow import config_text

ARTICLES = 40
PAGE_DELAY = 0.15
BATCH_LINE = re.compile(r"stored a batch of \d+ pages: (\d+) new")


@pytest.mark.usefixtures("prefect_harness")
def test_sigkill_mid_run_keeps_committed_articles_and_next_run_stores_the_rest(
    site, write_config, tmp_path
):
    for n in range(ARTICLES):
        # Slow pages, so the run is still downloading when it is killed.
        site.page(f"/a/{n}.html", article_page(f"Article {n}", article_text(1000 + n)),
                  delay=PAGE_DELAY)
    site.feed("/feed.xml", rss20("Feed", [Item(f"Article {n}", site.url(f"/a/{n}.html"), f"g{n}")
                                          for n in range(ARTICLES)]))
    config = write_config(config_text(site, ["/feed.xml"]))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    process = subprocess.Popen(
        # --verbose: the batch lines are Prefect's INFO lines, hidden by default.
        [sys.executable, "-m", "newsmon", "--verbose", "--config", str(config), "ingest"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    committed = batches = 0
    deadline = time.monotonic() + 240
    try:
        for line in process.stdout:
            match = BATCH_LINE.search(line)
            if match:
                committed += int(match.group(1))
                batches += 1
            if batches == 2 or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert batches == 2, "the run never got as far as two committed batches"

    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM articles").fetchone()[0]
        run_status = con.execute("SELECT status FROM runs WHERE flow = 'ingest'").fetchall()
    assert committed <= stored < ARTICLES
    assert run_status == [("running",)]  # the killed run is visible as never finished

    # The killed run's last requests are logged when their handlers return, up to a page's
    # delay after the kill; they must not count as the next run's.
    time.sleep(PAGE_DELAY * 5)
    site.clear_log()
    result = ingest_flow(str(config))

    with duckdb.connect(str(warehouse), read_only=True) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT canonical_url) FROM articles").fetchone()
        pending = con.execute("SELECT count(*) FROM entries WHERE status <> 'stored'").fetchone()[0]
        statuses = con.execute("SELECT status FROM runs WHERE flow = 'ingest' ORDER BY started_at").fetchall()
    assert (total, distinct, pending) == (ARTICLES, ARTICLES, 0)
    assert result.summary.articles_new == ARTICLES - stored
    assert statuses == [("interrupted",), ("completed",)]
    # Only the pages not yet stored were downloaded again.
    assert len(site.requests("/a/")) == ARTICLES - stored
