"""The ingest flow end to end: real HTTP on 127.0.0.1, real Prefect runs, real DuckDB files."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from werkzeug import Request, Response

from newsmon import progress
from newsmon.flows.ingest import GIL_SWITCH_INTERVAL_SECONDS, _SwitchInterval, ingest_flow
from tests.fakesite import Handler, Item, Site, article_page, article_text, atom, rss10, rss20

pytestmark = pytest.mark.usefixtures("prefect_harness")


def config_text(site: Site, feeds: list[str], **fetch) -> str:
    settings = {"allow_private_addresses": "true", "retries": "1", "backoff_seconds": "0.01",
                "timeout_seconds": "2", "deadline_seconds": "3", **fetch}
    lines = ["[warehouse]", 'path = "wh/newsmon.duckdb"', "[fetch]"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["[extract]", "workers = 2", "[ingest]", "batch_size = 4"]
    for path in feeds:
        lines += ["[[feeds]]", f'url = "{site.url(path)}"']
    return "\n".join(lines) + "\n"


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def story(site: Site, path: str, seed: int, title: str) -> list[str]:
    paragraphs = article_text(seed)
    site.page(path, article_page(title, paragraphs))
    return paragraphs


def healthy_site(site: Site) -> None:
    """Three feed formats, gzip, and the same story reached three ways."""
    for n in range(1, 6):
        story(site, f"/news/{n}.html", n, f"Story {n}")
    site.feed("/rss20.xml", rss20("RSS two", [
        Item("Story 1", site.url("/news/1.html"), "g1"),
        Item("Story 2", site.url("/news/2.html"), "g2"),
    ]))
    # Same story 1 again, its link differing only by tracking parameters.
    site.feed("/atom.xml", atom("Atom", [
        Item("Story 3", "news/3.html", "a3"),
        Item("Story 1 (shared)", "news/1.html?utm_source=atom&utm_medium=feed", "a1"),
    ], base=site.url("/")))
    site.feed("/rss10.xml", rss10("RSS one", [Item("Story 4", site.url("/news/4.html"))]))
    site.feed("/gzip.xml", rss20("Gzipped", [Item("Story 5", site.url("/news/5.html"), "z5")]),
              gzipped=True)


HEALTHY_FEEDS = ["/rss20.xml", "/atom.xml", "/rss10.xml", "/gzip.xml"]


def test_second_run_is_conditional_and_stores_nothing(site, write_config, tmp_path):
    healthy_site(site)
    config = write_config(config_text(site, HEALTHY_FEEDS))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    first = ingest_flow(str(config))
    assert first.summary.feeds_ok == 4
    assert first.summary.articles_new == 5
    assert first.summary.articles_duplicate == 1  # story 1 via the atom feed's tracking link
    assert query(warehouse, "SELECT count(*) FROM articles") == [(5,)]
    assert len(site.requests("/news/1.html")) == 1  # fetched once although linked twice
    # No labels anywhere, so no model can exist: no classify run is started, and the reason is
    # reported instead.
    assert first.classified is not None
    assert "no labels" in first.classified["note"]
    assert query(warehouse, "SELECT count(*) FROM runs WHERE flow = 'classify'") == [(0,)]

    site.clear_log()
    articles_before = query(warehouse, "SELECT * FROM articles ORDER BY article_id")
    second = ingest_flow(str(config))

    log = site.requests()
    assert sorted(r.path for r in log) == sorted(HEALTHY_FEEDS)
    assert all(r.headers.get("If-None-Match") for r in log)
    assert all(r.headers.get("If-Modified-Since") for r in log)
    assert [status for _, response in site.server.log for status in [response.status_code]] == [
        304] * 4
    assert second.summary.feeds_unchanged == 4
    assert second.summary.articles_new == 0
    assert query(warehouse, "SELECT * FROM articles ORDER BY article_id") == articles_before
    assert query(warehouse, "SELECT status, count(*) FROM runs WHERE flow = 'ingest' GROUP BY ALL") == [("completed", 2)]


def test_edited_entry_updates_its_article_and_keeps_first_seen(site, write_config, tmp_path):
    healthy_site(site)
    config = write_config(config_text(site, ["/rss20.xml"]))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"
    ingest_flow(str(config))
    (first_seen,) = query(warehouse, "SELECT first_seen_at FROM articles WHERE title = 'Story 2'")

    new_text = article_text(99)
    site.page("/news/2.html", article_page("Story 2, corrected", new_text))
    site.feed("/rss20.xml", rss20("RSS two", [
        Item("Story 1", site.url("/news/1.html"), "g1"),
        Item("Story 2, corrected", site.url("/news/2.html"), "g2"),
    ]))
    result = ingest_flow(str(config))

    assert result.summary.articles_updated == 1
    assert result.summary.articles_new == 0
    rows = query(warehouse, "SELECT title, first_seen_at, updated_at IS NOT NULL, text "
                            "FROM articles WHERE canonical_url LIKE '%/news/2.html'")
    assert len(rows) == 1
    title, seen, updated, text = rows[0]
    assert (title, seen, updated) == ("Story 2, corrected", first_seen[0], True)
    assert new_text[0][:40] in text
    assert query(warehouse, "SELECT count(*) FROM articles") == [(2,)]


def drip(request: Request) -> Response:
    def body():
        yield b"<html><body><p>"
        for _ in range(200):
            time.sleep(0.1)
            yield b"x"

    return Response(body(), content_type="text/html")


def test_broken_feeds_and_pages_are_recorded_and_do_not_stop_the_run(site, write_config,
                                                                       tmp_path):
    healthy_site(site)
    copied = article_text(1)  # story 1's text, published again under another URL
    site.page("/copy/story-one.html", article_page("Story one, syndicated", copied,
                                                   site="Other Outlet"))
    site.page("/binary.html", bytes(range(256)) * 64)
    site.routes["/binary.html"] = lambda r: Response(bytes(range(256)) * 64,
                                                     content_type="application/octet-stream")
    site.routes["/slow.html"] = drip
    site.page("/huge.html", article_page("Huge", article_text(7) * 2000))
    site.feed("/troubled.xml", rss20("Troubled", [
        Item("Binary", site.url("/binary.html"), "t1"),
        Item("Slow", site.url("/slow.html"), "t2"),
        Item("Huge", site.url("/huge.html"), "t3"),
        Item("Gone", site.url("/gone.html"), "t4"),
        Item("Copy", site.url("/copy/story-one.html"), "t5"),
    ]))
    site.feed("/bozo.xml", b'<rss version="2.0"><channel><title>Bozo</title><item>'
              b"<title>Story 4 &nbsp; again</title><link>" + site.url("/news/4.html").encode()
              + b"</link></item>")
    site.routes["/error.xml"] = lambda r: Response("boom", status=500)
    site.routes["/loop-a.xml"] = lambda r: Response(status=302, headers={"Location": "/loop-b.xml"})
    site.routes["/loop-b.xml"] = lambda r: Response(status=302, headers={"Location": "/loop-a.xml"})
    site.routes["/empty.xml"] = lambda r: Response(b"", content_type="application/rss+xml")
    feeds = [*HEALTHY_FEEDS, "/troubled.xml", "/bozo.xml", "/missing.xml", "/error.xml",
             "/loop-a.xml", "/empty.xml"]
    config = write_config(config_text(site, feeds, max_page_bytes=200_000))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    result = ingest_flow(str(config))

    s = result.summary
    assert (s.feeds_ok, s.feeds_failed) == (6, 4)
    assert (s.articles_new, s.articles_parked, s.articles_failed) == (5, 3, 1)
    assert s.articles_duplicate == 3  # tracking link, copied text, story 4 in the bozo feed
    feeds = dict(query(warehouse, "SELECT feed_url, last_outcome || ': ' || coalesce(last_error, '') "
                                  "FROM feeds"))
    assert feeds[site.url("/missing.xml")] == "failed: HTTP 404 Not Found"
    assert feeds[site.url("/error.xml")].startswith("failed: HTTP 500")
    assert feeds[site.url("/loop-a.xml")].startswith("failed: redirect loop")
    assert feeds[site.url("/empty.xml")] == "failed: empty response: the server sent no feed"
    assert feeds[site.url("/bozo.xml")].startswith("warning: ill-formed feed, read anyway")
    assert len(site.requests("/error.xml")) == 2  # one retry on 5xx, no more

    entries = dict(query(warehouse, "SELECT url, status || ': ' || coalesce(last_error, '') "
                                    "FROM entries WHERE feed_url LIKE '%troubled.xml'"))
    assert entries[site.url("/binary.html")].startswith("parked: not HTML")
    assert entries[site.url("/huge.html")].startswith("parked: response exceeds")
    assert entries[site.url("/gone.html")] == "parked: HTTP 404 Not Found"
    assert entries[site.url("/slow.html")].startswith("pending: deadline")
    assert entries[site.url("/copy/story-one.html")] == "duplicate: "
    # The copy is linked to story 1's article, not stored again.
    assert query(warehouse, """
        SELECT a.canonical_url FROM entries e JOIN articles a USING (article_id)
        WHERE e.url LIKE '%/copy/story-one.html'""") == [(site.url("/news/1.html"),)]
    assert query(warehouse, "SELECT count(*), count(DISTINCT content_hash) FROM articles") == [
        (5, 5)]
    statuses = query(warehouse, "SELECT kind, status_code, error IS NOT NULL FROM fetch_log "
                                "WHERE url LIKE '%/gone.html'")
    assert statuses == [("page", 404, True)]
    run = query(warehouse, "SELECT status, feeds_failed, articles_new, articles_parked "
                           "FROM ingest_runs")
    assert run == [("completed", 4, 5, 3)]


class StageCounts:
    """A progress listener that adds up what each stage was said to total and to have done."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.total[stage], self.done[stage] = total, 0

    def advance(self, stage: str, amount: int = 1) -> None:
        self.done[stage] += amount

    def extend(self, stage: str, amount: int) -> None:
        self.total[stage] += amount


def test_progress_counts_each_page_once_however_many_entries_link_to_it(site, write_config):
    healthy_site(site)  # five pages, story 1 linked from two feeds
    config = write_config(config_text(site, HEALTHY_FEEDS))
    counts = StageCounts()

    with progress.listening(counts):
        ingest_flow(str(config))

    assert counts.total == counts.done == {"feeds": 4, "articles": 5}


def feed_after(event: threading.Event, body: bytes, answered: list[bool]) -> Handler:
    """A feed handler that answers only once ``event`` is set (or after 20 s), noting which."""

    def handler(request: Request) -> Response:
        answered.append(event.wait(timeout=20))
        return Response(body, content_type="application/rss+xml")

    return handler


def test_a_slow_feed_does_not_hold_up_the_pages_of_the_others(site, write_config, tmp_path):
    story(site, "/news/2.html", 2, "Story 2")
    page_requested = threading.Event()
    fast_page = article_page("Story 1", article_text(1))

    def page(request: Request) -> Response:
        page_requested.set()
        return Response(fast_page, content_type="text/html")

    site.routes["/news/1.html"] = page
    site.feed("/fast.xml", rss20("Fast", [Item("Story 1", site.url("/news/1.html"), "f1")]))
    answered: list[bool] = []
    site.routes["/slow.xml"] = feed_after(
        page_requested, rss20("Slow", [Item("Story 2", site.url("/news/2.html"), "s2")]), answered)
    config = write_config(config_text(site, ["/slow.xml", "/fast.xml"], timeout_seconds="30",
                                      deadline_seconds="30"))

    result = ingest_flow(str(config))

    # The slow feed was answered only after the fast feed's page had been requested.
    assert answered == [True]
    assert (result.summary.feeds_ok, result.summary.articles_new) == (2, 2)
    assert query(tmp_path / "wh" / "newsmon.duckdb",
                 "SELECT title FROM articles ORDER BY title") == [("Story 1",), ("Story 2",)]


def test_the_run_gives_its_threads_longer_interpreter_slices_and_restores_the_default(
        site, write_config):
    # The site answers from a thread of this process, so it sees the interval the run set.
    seen_by_the_site: list[float] = []
    page_body = article_page("Story 1", article_text(1))

    def page(request: Request) -> Response:
        seen_by_the_site.append(sys.getswitchinterval())
        return Response(page_body, content_type="text/html")

    site.routes["/news/1.html"] = page
    site.feed("/feed.xml", rss20("Feed", [Item("Story 1", site.url("/news/1.html"), "g1")]))
    before = sys.getswitchinterval()

    result = ingest_flow(str(write_config(config_text(site, ["/feed.xml"]))))

    assert result.summary.articles_new == 1
    assert before < GIL_SWITCH_INTERVAL_SECONDS  # Python's default, 5 ms
    assert seen_by_the_site == [pytest.approx(GIL_SWITCH_INTERVAL_SECONDS)]  # kept in µs
    assert sys.getswitchinterval() == before


def test_overlapping_runs_restore_the_interval_only_when_the_last_one_ends():
    interval = _SwitchInterval(0.05)
    before = sys.getswitchinterval()
    with interval:
        interval.__enter__()  # a second run starts while the first goes on
    # The first run has ended while the second goes on: the second keeps its interval.
    assert sys.getswitchinterval() == pytest.approx(0.05)
    interval.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_a_story_reaching_a_second_feed_while_its_page_downloads_is_fetched_once(
    site, write_config, tmp_path
):
    page_requested, late_feed_answered = threading.Event(), threading.Event()
    body = article_page("Story 1", article_text(1))

    def page(request: Request) -> Response:
        page_requested.set()
        # Still downloading when the late feed's poll is stored.
        late_feed_answered.wait(timeout=20)
        time.sleep(0.5)
        return Response(body, content_type="text/html")

    def late_feed(request: Request) -> Response:
        page_requested.wait(timeout=20)
        late_feed_answered.set()
        return Response(rss20("Late", [Item("Story 1 again",
                                            site.url("/news/1.html?utm_source=late"), "l1")]),
                        content_type="application/rss+xml")

    site.routes["/news/1.html"] = page
    site.routes["/late.xml"] = late_feed
    site.feed("/early.xml", rss20("Early", [Item("Story 1", site.url("/news/1.html"), "e1")]))
    config = write_config(config_text(site, ["/late.xml", "/early.xml"], timeout_seconds="30",
                                      deadline_seconds="30"))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    result = ingest_flow(str(config))

    assert late_feed_answered.is_set()
    assert len(site.requests("/news/1.html")) == 1
    assert (result.summary.articles_new, result.summary.articles_duplicate) == (1, 1)
    assert query(warehouse, "SELECT count(*) FROM articles") == [(1,)]
    linked = query(warehouse, "SELECT entry_key, status, article_id FROM entries ORDER BY 1")
    assert [(key, status) for key, status, _ in linked] == [("e1", "stored"), ("l1", "duplicate")]
    assert linked[0][2] is not None and linked[0][2] == linked[1][2]


def test_run_settings_turn_heartbeats_off_only_on_the_ephemeral_api(monkeypatch) -> None:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    from newsmon.flows import HEARTBEAT_ENV_VAR, run_settings

    def heartbeat() -> int | None:
        return get_current_settings().flows.heartbeat_frequency

    monkeypatch.delenv(HEARTBEAT_ENV_VAR, raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 90}):
        with run_settings():
            assert heartbeat() is None
        assert heartbeat() == 90
        # Asked for explicitly: kept.
        monkeypatch.setenv(HEARTBEAT_ENV_VAR, "90")
        with run_settings():
            assert heartbeat() == 90
    # A real server (here a made-up address) can use heartbeats to notice a crashed run.
    monkeypatch.delenv(HEARTBEAT_ENV_VAR)
    server = {PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 90}
    with temporary_settings(updates=server), run_settings():
        assert heartbeat() == 90


def test_a_poll_takes_the_newest_entries_up_to_the_cap_and_the_rest_wait(
    site, write_config, tmp_path
):
    # 30 items, listed oldest first, so "newest first" cannot come from the feed's order.
    items = [Item(f"Story {n}", site.url(f"/news/{n}.html"), f"s{n}",
                  published=f"Mon, {n:02d} Nov 2026 10:30:00 GMT") for n in range(1, 31)]
    site.feed("/big.xml", rss20("Big", items))
    for n in range(1, 31):
        story(site, f"/news/{n}.html", n, f"Story {n}")
    config = write_config(config_text(site, ["/big.xml"]).replace(
        "batch_size = 4", "batch_size = 4\nmax_new_entries_per_poll = 12"))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    first = ingest_flow(str(config))
    assert len(site.requests("/news/")) == 12
    assert query(warehouse, "SELECT count(*) FROM entries") == [(12,)]
    taken = {title for (title,) in query(warehouse, "SELECT title FROM entries")}
    assert taken == {f"Story {n}" for n in range(19, 31)}
    assert "took the newest 12 of 30 new entries" in first.feed_warnings[site.url("/big.xml")]
    # The feed's validators were not kept, so the next poll reads it in full.
    assert query(warehouse, "SELECT etag, last_modified FROM feeds") == [(None, None)]

    site.clear_log()
    second = ingest_flow(str(config))
    assert not site.requests("/big.xml")[0].headers.get("If-None-Match")
    assert second.summary.articles_new == 12
    site.clear_log()
    third = ingest_flow(str(config))
    assert third.summary.articles_new == 6
    assert query(warehouse, "SELECT count(*) FROM entries") == [(30,)]
    assert site.url("/big.xml") not in third.feed_warnings
    # Everything taken, the validators are kept again: the fourth poll is conditional.
    site.clear_log()
    ingest_flow(str(config))
    assert site.requests("/big.xml")[0].headers.get("If-None-Match")


def test_a_run_records_a_bounded_error_summary(site, write_config, tmp_path):
    # 300 links that all fail: the run's errors column keeps a bounded summary of them.
    items = [Item(f"Gone {n}", site.url(f"/gone/{n}.html"), f"g{n}") for n in range(300)]
    site.feed("/gone.xml", rss20("Gone", items))
    config = write_config(config_text(site, ["/gone.xml"]).replace(
        "batch_size = 4", "batch_size = 128"))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"

    result = ingest_flow(str(config))
    assert result.summary.articles_parked == 300
    (errors,) = query(warehouse, "SELECT errors::VARCHAR[] FROM runs WHERE flow = 'ingest'")[0]
    assert len(errors) == 101
    assert errors[-1] == "... and 200 more errors (see fetch_log and entries.last_error)"


class SilentHost:
    """A host that accepts connections and never answers; it notes when each one is given up."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.connected = threading.Event()
        self.closed_at: list[float] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            self.connected.set()
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection) -> None:
        with connection:
            while connection.recv(65536):  # the request, then nothing until the client leaves
                pass
        with self._lock:
            self.closed_at.append(time.monotonic())

    def url(self, path: str) -> str:
        # "localhost", not 127.0.0.1: another host to newsmon than the healthy site.
        return f"http://localhost:{self.port}{path}"

    def close(self) -> None:
        self.listener.close()


def test_a_silent_host_holds_up_neither_the_other_hosts_nor_the_run(site, write_config, tmp_path):
    silent = SilentHost()
    requested_at: dict[str, float] = {}

    def healthy_page(n: int):
        body = article_page(f"Healthy {n}", article_text(200 + n))

        def handler(request: Request) -> Response:
            requested_at[request.path] = time.monotonic()
            return Response(body, content_type="text/html")

        return handler

    for n in range(4):
        site.routes[f"/healthy/{n}.html"] = healthy_page(n)
    site.feed("/silent-links.xml", rss20("Silent", [
        Item(f"Silent {n}", silent.url(f"/{n}.html"), f"s{n}") for n in range(10)]))
    # The healthy feed answers once the silent host's pages are out, so they go first.
    answered: list[bool] = []
    site.routes["/healthy.xml"] = feed_after(silent.connected, rss20("Healthy", [
        Item(f"Healthy {n}", site.url(f"/healthy/{n}.html"), f"h{n}") for n in range(4)]),
        answered)
    # Timeouts long enough that the healthy pages' head start holds on a loaded machine.
    config = write_config(config_text(site, ["/silent-links.xml", "/healthy.xml"],
                                      timeout_seconds="5", deadline_seconds="8"))
    warehouse = tmp_path / "wh" / "newsmon.duckdb"
    try:
        result = ingest_flow(str(config))
    finally:
        silent.close()

    assert answered == [True]
    assert result.summary.articles_new == 4
    # Every healthy page was requested before the first request to the silent host timed out.
    assert len(requested_at) == 4
    assert max(requested_at.values()) < min(silent.closed_at)
    # Two pages' requests timed out; the host was then given up on (one of them may have been
    # retried as the other was still timing out: 20 connections before this was fixed). The
    # other eight pages were never requested this run and wait for the next one without having
    # used an attempt.
    assert silent.accepted <= 3
    rows = query(warehouse, "SELECT attempts, count(*) FROM entries WHERE status = 'pending' "
                            "GROUP BY attempts ORDER BY attempts")
    assert rows == [(0, 8), (1, 2)]
    skipped = query(warehouse, "SELECT DISTINCT last_error FROM entries WHERE attempts = 0 "
                               "AND status = 'pending'")
    assert skipped == [("host localhost skipped for the rest of this run: 2 requests to it "
                        "timed out",)]
