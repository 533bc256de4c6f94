"""The ingest flow: poll the feeds, download and extract new pages, store articles.

Tasks work on batches (a chunk of feeds, a batch of pages), never on single articles: Prefect's
per-task bookkeeping would otherwise cost more than the work. Batches are passed to tasks
``quote``d, as Prefect would otherwise walk every item of every argument looking for futures,
which cost more CPU than storing the batch. Downloads and extraction of the next batches overlap
with storing the current one. All writes happen in the flow's own thread, on the one warehouse
connection, one transaction per chunk of feed polls or per page batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from newsmon import progress
from newsmon.config import Config, load_config
from newsmon.extract import ExtractionOutcome, ExtractorPool, start_process_server
from newsmon.flows.classify import classify_flow
from newsmon.http import Fetcher, FetchLimits, FetchResult
from newsmon.ingest import (
    BatchOutcome,
    FeedPoll,
    FeedState,
    KnownArticles,
    PageJob,
    conditional_headers,
    page_jobs,
    read_poll,
    resolve_pages,
)
from newsmon.labels import seeds_dir
from newsmon.models.lifecycle import ModelState, ensure_model
from newsmon.urls import normalize_url
from newsmon.warehouse import ingest as store
from newsmon.warehouse import open_warehouse
from newsmon.warehouse.classify import ModelRow, current_model, unclassified_articles
from newsmon.warehouse.runs import finish_run, start_run

FEEDS_PER_TASK = 25
# No Prefect timeout_seconds on these tasks: they run in worker threads, where Prefect cannot
# interrupt blocking I/O. Time is bounded where it can be enforced instead: every request has
# a total deadline (newsmon.http) and every extraction a timeout that kills its worker.
# Page batches in flight: one downloading, one queued for the extraction workers, one being
# extracted or stored. Fewer lets the workers run dry; more only holds more pages in memory.
BATCHES_IN_FLIGHT = 3


@dataclass
class IngestSummary:
    feeds_ok: int = 0
    feeds_unchanged: int = 0
    feeds_failed: int = 0
    feeds_skipped: int = 0
    articles_new: int = 0
    articles_updated: int = 0
    articles_duplicate: int = 0
    articles_failed: int = 0
    articles_parked: int = 0

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def feeds_read(self) -> int:
        return self.feeds_ok + self.feeds_unchanged


@dataclass
class IngestResult:
    run_id: str
    summary: IngestSummary
    feed_errors: dict[str, str]
    page_errors: list[str]
    feeds_unreachable: int = 0
    unclassified: int = 0  # stored articles without a prediction from the current model
    current_model: ModelRow | None = None
    classified: dict | None = None

    @property
    def network_unreachable(self) -> bool:
        """Every feed polled failed without any server answering: likely no network at all."""
        polled = self.summary.feeds_read + self.summary.feeds_failed
        return polled > 0 and self.feeds_unreachable == polled

    def markdown(self) -> str:
        s = self.summary
        lines = [
            "| | ok | unchanged | failed | skipped (backing off) |",
            "|---|---:|---:|---:|---:|",
            f"| **feeds** | {s.feeds_ok} | {s.feeds_unchanged} | {s.feeds_failed} "
            f"| {s.feeds_skipped} |",
            "",
            "| | new | updated | duplicate | failed (will retry) | parked |",
            "|---|---:|---:|---:|---:|---:|",
            f"| **articles** | {s.articles_new} | {s.articles_updated} "
            f"| {s.articles_duplicate} | {s.articles_failed} | {s.articles_parked} |",
        ]
        if self.feed_errors:
            lines += ["", "**Feed errors**", ""]
            lines += [f"- {url}: {error}" for url, error in self.feed_errors.items()]
        return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def poll_feeds(states: Sequence[FeedState], fetcher: Fetcher, workers: ExtractorPool,
               full_fetch_every: int) -> list[FeedPoll]:
    """Conditional GETs for a chunk of feeds, fetched concurrently, and their parsed entries;
    each feed goes to the worker processes to be parsed as soon as it has arrived."""
    sent = [conditional_headers(state, full_fetch_every) for state in states]
    results: dict[int, FetchResult] = {}

    def arrived() -> Iterator[tuple[str, bytes, Mapping[str, str], str]]:
        requests = [(state.feed_url, headers) for state, headers in zip(states, sent, strict=True)]
        for index, result in fetcher.iter_many(requests):
            results[index] = result
            if result.ok:
                yield str(index), result.content, result.headers, result.final_url or result.url

    feeds = workers.parse_feeds(arrived())
    return [read_poll(state, sent[index], results[index], feeds.get(str(index)))
            for index, state in enumerate(states)]


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def download_and_extract(
    jobs: Sequence[PageJob], fetcher: Fetcher, workers: ExtractorPool, arrived: threading.Event
) -> tuple[list[FetchResult], dict[str, ExtractionOutcome]]:
    """Download a batch of pages (HTML only) and extract them in the worker processes; each
    page goes to the workers as soon as it has arrived, while the others still download.
    ``arrived`` is set when every download of the batch has finished."""
    results: dict[int, FetchResult] = {}

    def downloaded() -> Iterator[tuple[str, bytes, str]]:
        for index, result in fetcher.iter_many([(job.url, None) for job in jobs], html_only=True):
            results[index] = result
            if result.ok and result.content is not None:
                job = jobs[index]
                yield job.normalized_url, result.content, result.final_url or job.url
        arrived.set()

    outcomes = workers.extract_many(downloaded())
    return [results[index] for index in range(len(jobs))], {o.key: o for o in outcomes}


def store_pages(
    con: duckdb.DuckDBPyConnection, jobs: Sequence[PageJob], results: Sequence[FetchResult],
    extracted: dict[str, ExtractionOutcome], known: KnownArticles, config: Config, run_id: str,
) -> BatchOutcome:
    """Match the batch against stored articles, then write it in one transaction.

    A plain call in the flow, not a task: it has no retry to give (a failed transaction was
    rolled back and its pages stay pending for the next run, while a retry could see the
    batch's own half-made decisions), and as a task its bookkeeping cost the flow and the
    Prefect server 0.5 CPU-seconds per 500 pages, a quarter of the flow's own CPU time.
    """
    now = _now()
    store.add_known(
        con, known,
        urls=[normalize_url(r.final_url) for r in results if r.ok and r.final_url],
        hashes=[o.page.content_hash for o in extracted.values() if o.page and o.page.content_hash],
    )
    ids = iter(store.next_article_ids(con, len(jobs)))
    outcome = resolve_pages(jobs, results, extracted, known, ids, config.ingest, now)
    requests = [
        row for job, result in zip(jobs, results, strict=True)
        for row in store.page_request_rows(job.url, result.final_url, result.requests)
    ]
    store.store_batch(con, outcome, requests, run_id, now)
    return outcome


def _poll_all(con: duckdb.DuckDBPyConnection, config: Config, workers: ExtractorPool,
              run_id: str, result: IngestResult) -> None:
    logger = get_run_logger()
    summary = result.summary
    now = _now()
    store.register_feeds(con, config.feeds, now)
    due, waiting = store.feed_states(con, [f.url for f in config.feeds], now)
    summary.feeds_skipped = len(waiting)
    progress.start("feeds", len(due))
    limits = FetchLimits.from_settings(config.fetch, config.fetch.max_feed_bytes)
    with Fetcher(limits) as fetcher:
        futures = [poll_feeds.submit(quote(chunk), fetcher, workers, config.fetch.full_fetch_every)
                   for chunk in _chunks(due, FEEDS_PER_TASK)]
        states = {state.feed_url: state for state in due}
        for future in futures:
            polls = future.result()
            counts = store.record_polls(con, polls, states, run_id, _now(),
                                        config.fetch.max_backoff_hours)
            summary.articles_duplicate += counts.linked_entries
            for poll in polls:
                if poll.outcome == "failed":
                    summary.feeds_failed += 1
                    result.feeds_unreachable += poll.unreachable
                    result.feed_errors[poll.feed_url] = poll.error or "failed"
                    logger.warning("feed %s failed: %s", poll.feed_url, poll.error)
                elif poll.outcome == "unchanged":
                    summary.feeds_unchanged += 1
                else:
                    summary.feeds_ok += 1
                    if poll.error:
                        logger.warning("feed %s: %s", poll.feed_url, poll.error)
                progress.advance("feeds")


def _store_all_pages(con: duckdb.DuckDBPyConnection, config: Config, workers: ExtractorPool,
                     run_id: str, result: IngestResult) -> None:
    summary = result.summary
    jobs = page_jobs(store.pending_entries(con, _now()))
    progress.start("articles", len(jobs))
    if not jobs:
        return
    known = store.load_known(con)
    limits = FetchLimits.from_settings(config.fetch, config.fetch.max_page_bytes)
    with Fetcher(limits) as fetcher:
        in_flight: deque[tuple[Sequence[PageJob], PrefectFuture]] = deque()

        def store_oldest() -> None:
            batch, future = in_flight.popleft()
            results, extracted = future.result()
            outcome = store_pages(con, batch, results, extracted, known, config, run_id)
            summary.articles_new += len(outcome.new_articles)
            summary.articles_updated += len(outcome.updated_articles)
            summary.articles_duplicate += outcome.duplicates
            summary.articles_failed += outcome.failed
            summary.articles_parked += outcome.parked
            result.page_errors.extend(outcome.errors)
            progress.advance("articles", len(batch))
            get_run_logger().info(
                "stored a batch of %d pages: %d new, %d updated, %d duplicate, %d failed, "
                "%d parked", len(batch), len(outcome.new_articles),
                len(outcome.updated_articles), outcome.duplicates, outcome.failed, outcome.parked,
            )

        for batch in _chunks(jobs, config.ingest.batch_size):
            arrived = threading.Event()
            future = download_and_extract.submit(quote(batch), fetcher, workers, arrived)
            future.wrapped_future.add_done_callback(lambda _, arrived=arrived: arrived.set())
            in_flight.append((batch, future))
            # Batches download one after another, each with every connection slot, so that the
            # next batch is queued for the workers before they finish this one. Meanwhile the
            # batches already extracted are stored.
            arrived.wait()
            while in_flight and in_flight[0][1].wrapped_future.done():
                store_oldest()
            if len(in_flight) >= BATCHES_IN_FLIGHT:
                store_oldest()
        while in_flight:
            if len(in_flight) == 1:
                in_flight[0][1].wait()
                # The run's last extraction is done: the workers wind down while it is stored.
                workers.stop()
            store_oldest()


def run_ingest(config: Config, run_id: str) -> IngestResult:
    """One ingest run against the configured warehouse; callable from any flow."""
    result = IngestResult(run_id, IngestSummary(), {}, [])
    start_process_server()  # its import of trafilatura overlaps with opening the warehouse
    extract = config.extract
    with (
        open_warehouse(config) as con,
        ExtractorPool(extract.workers, extract.pages_per_worker, extract.timeout_seconds,
                      extract.max_input_bytes) as workers,
    ):
        start_run(con, run_id, "ingest")
        try:
            _poll_all(con, config, workers, run_id, result)
            _store_all_pages(con, config, workers, run_id, result)
        except BaseException as exc:
            finish_run(con, run_id, "failed", result.summary.counts(),
                       [*result.feed_errors.values(), f"run failed: {exc!r}"])
            raise
        result.unclassified = unclassified_articles(con)
        result.current_model = current_model(con)
        errors = [f"{url}: {error}" for url, error in result.feed_errors.items()]
        finish_run(con, run_id, "completed", result.summary.counts(),
                   errors + result.page_errors)
    return result


@flow(name="ingest")
def ingest_flow(config_path: str | None = None, classify: bool = True) -> IngestResult:
    """Poll every configured feed and store each new article; then classify what is new."""
    config = load_config(Path(config_path) if config_path else None)
    result = run_ingest(config, str(flow_run.id))
    create_markdown_artifact(
        key="ingest-summary", markdown=result.markdown(), description="newsmon ingest run"
    )
    if classify and result.unclassified:
        # After run_ingest has released the writer: training and classifying take it in turn.
        # The first model comes from seeds/, so a fresh install classifies from its first run.
        state = ensure_model(config, result.current_model)
        if state is ModelState.NO_LABELS:
            note = (
                f"no model, and no labels in {seeds_dir(config)} to train one: "
                "add some with `newsmon seeds import` or `newsmon label`"
            )
            result.classified = {"classified": 0, "model_version": None, "note": note}
        else:
            if state is ModelState.TRAINED:
                get_run_logger().info("no usable model yet: trained one from the seed labels")
            result.classified = classify_flow(config_path)
    return result
