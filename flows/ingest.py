"""The ingest flow: poll the feeds, download and extract new pages, store articles.

Tasks work on batches (a chunk of feeds, a batch of pages), never on single articles: Prefect's
per-task bookkeeping would otherwise cost more than the work. Batches are passed to tasks
``quote``d, as Prefect would otherwise walk every item of every argument looking for futures,
which cost more CPU than storing the batch. A feed's pages start as soon as its poll is stored,
and downloads and extraction of the next batches overlap with storing the current one. All
writes happen in the flow's own thread, on the one warehouse connection, one transaction per
group of polls that arrived together or per page batch.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from newsmon import progress
from newsmon.config import Config, load_config
from newsmon.extract import ExtractionOutcome, ExtractorPool, start_process_server
from newsmon.feeds import ParsedFeed
from newsmon.flows.classify import classify_flow
from newsmon.http import Fetcher, FetchLimits, FetchResult, RequestSlots
from newsmon.ingest import (
    BatchOutcome,
    DownloadLoad,
    FeedPoll,
    FeedState,
    KnownArticles,
    PageJob,
    PendingEntry,
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
# How long a thread of the flow's process may hold the interpreter lock before it must hand it
# on (Python's default is 5 ms). The run's threads (downloads, pebble's, Prefect's, the flow's)
# mostly give the lock up at their own I/O; forced hand-overs every 5 ms only add context
# switches, which on two cores also preempt the extraction workers. Measured with
# bench/ingest.py's site, 22 rounds in three runs alternating 5 and 50 ms: the median run took
# 2-4% less time at 50 ms, which was faster in 15 of the 22 rounds; 200 ms gained nothing more.
GIL_SWITCH_INTERVAL_SECONDS = 0.05


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
    feed_warnings: dict[str, str] = field(default_factory=dict)  # read, with something to say
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
               full_fetch_every: int, on_poll: Callable[[FeedPoll], None]) -> list[FeedPoll]:
    """Conditional GETs for a chunk of feeds, fetched concurrently, and their parsed entries.

    Each feed goes to the worker processes to be parsed as soon as it has arrived, and each
    poll to ``on_poll`` (from whichever thread read it) as soon as it is read, so that its pages
    can start while the rest of the chunk is still out. The list returned holds every poll.
    """
    sent = [conditional_headers(state, full_fetch_every) for state in states]
    results: dict[int, FetchResult] = {}
    polls: dict[int, FeedPoll] = {}

    def hand_over(index: int, feed: ParsedFeed | None) -> None:
        polls[index] = read_poll(states[index], sent[index], results[index], feed)
        on_poll(polls[index])

    def arrived() -> Iterator[tuple[str, bytes, Mapping[str, str], str]]:
        requests = [(state.feed_url, headers) for state, headers in zip(states, sent, strict=True)]
        for index, result in fetcher.iter_many(requests):
            results[index] = result
            if result.ok:
                yield str(index), result.content, result.headers, result.final_url or result.url
            else:
                hand_over(index, None)

    # Every feed fetched is parsed and handed over once, so each index has its poll after this.
    workers.parse_feeds(arrived(), on_parsed=lambda key, feed: hand_over(int(key), feed))
    return [polls[index] for index in range(len(states))]


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def download_and_extract(
    jobs: Sequence[PageJob], fetcher: Fetcher, workers: ExtractorPool,
    on_downloaded: Callable[[int], None],
) -> tuple[list[FetchResult], dict[str, ExtractionOutcome]]:
    """Download a batch of pages (HTML only) and extract them in the worker processes; each
    page goes to the workers as soon as it has arrived, while the others still download.
    ``on_downloaded`` is called with each page's index as its download ends."""
    results: dict[int, FetchResult] = {}

    def downloaded() -> Iterator[tuple[str, bytes, str]]:
        for index, result in fetcher.iter_many([(job.url, None) for job in jobs], html_only=True):
            results[index] = result
            on_downloaded(index)
            if result.ok and result.content is not None:
                job = jobs[index]
                yield job.normalized_url, result.content, result.final_url or job.url

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


@dataclass
class _PageBatch:
    """A batch of pages sent to be downloaded and extracted, until it is stored."""

    jobs: list[PageJob]
    future: PrefectFuture | None = None
    downloading: set[int] = field(default_factory=set)  # indexes of jobs still downloading


class _IngestRun:
    """The flow's side of one run: it records each feed's poll as soon as it is read, sends
    the pages of new entries out in batches, and stores each batch once it is extracted.

    Everything that writes runs here, in the flow's thread, on the run's one connection. The
    tasks report through ``events`` (from their own threads); this waits for the next event,
    takes in whatever else has arrived with it, and acts:
    - polls that have arrived are recorded in one transaction, and their pending entries
      queued as page jobs, so a slow feed holds up only its own pages;
    - a batch goes out when the pages out for download leave room for it (``DownloadLoad``:
      it takes only pages whose host has a connection slot to spare, so a slow host keeps
      only its own pages waiting), at most ``BATCHES_IN_FLIGHT`` at once, as soon as it is
      full, or at once when the workers have nothing else, or when there is nothing more to
      wait for;
    - extracted batches are stored in the order they went out.
    A story in several feeds is downloaded once: an entry whose page is already out joins
    that page's job, and its batch links it when stored.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, config: Config, workers: ExtractorPool,
                 run_id: str, result: IngestResult) -> None:
        self.con, self.config, self.workers, self.run_id = con, config, workers, run_id
        self.result = result
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.states: dict[str, FeedState] = {}
        self.recorded: set[str] = set()  # feeds whose poll is stored (a retried task repeats)
        self.poll_tasks_left = 0
        self.taken: set[tuple[str, str]] = set()  # (feed, entry key) of every entry queued
        self.queued: dict[str, list[PendingEntry]] = {}  # by normalised URL, not yet sent
        self.sent: deque[_PageBatch] = deque()  # out for download and extraction, in order
        self.out_for: dict[str, tuple[_PageBatch, int]] = {}  # normalised URL -> its batch
        self.load = DownloadLoad(config.fetch.concurrency, config.fetch.per_host_concurrency)
        self.known: KnownArticles | None = None
        self.page_fetcher: Fetcher | None = None

    def run(self) -> None:
        con, config = self.con, self.config
        now = _now()
        store.register_feeds(con, config.feeds, now)
        due, waiting = store.feed_states(con, [f.url for f in config.feeds], now)
        self.result.summary.feeds_skipped = len(waiting)
        self.states = {state.feed_url: state for state in due}
        progress.start("feeds", len(due))
        progress.start("articles", 0)
        self.known = store.load_known(con)
        # Entries left pending by earlier runs (failed for now, or never reached) go first.
        self._queue(store.pending_entries(con, now))
        feed_limits = FetchLimits.from_settings(config.fetch, config.fetch.max_feed_bytes)
        page_limits = FetchLimits.from_settings(config.fetch, config.fetch.max_page_bytes)
        slots = RequestSlots.from_limits(page_limits)
        logins = [feed.login for feed in config.feeds if feed.login]
        with (
            Fetcher(feed_limits, slots=slots, logins=logins) as feed_fetcher,
            Fetcher(page_limits, slots=slots, logins=logins) as page_fetcher,
        ):
            self.page_fetcher = page_fetcher
            for chunk in _chunks(due, FEEDS_PER_TASK):
                future = poll_feeds.submit(quote(chunk), feed_fetcher, self.workers,
                                           config.fetch.full_fetch_every, self._on_poll)
                future.wrapped_future.add_done_callback(
                    lambda _, future=future: self.events.put(("polled", future)))
                self.poll_tasks_left += 1
            while True:
                self._send_if_due()
                if not (self.poll_tasks_left or self.queued or self.sent):
                    break
                self._handle([self.events.get(), *self._arrived_events()])

    def _on_poll(self, poll: FeedPoll) -> None:
        self.events.put(("poll", poll))

    def _arrived_events(self) -> list[tuple[str, Any]]:
        arrived = []
        with contextlib.suppress(queue.Empty):
            while True:
                arrived.append(self.events.get_nowait())
        return arrived

    def _handle(self, events: list[tuple[str, Any]]) -> None:
        polls: dict[str, FeedPoll] = {}
        for kind, payload in events:
            if kind == "poll":
                polls.setdefault(payload.feed_url, payload)
            elif kind == "polled":
                # The task's own list is the record: a poll handed over early comes first.
                for poll in payload.result():  # raises when the task failed for good
                    polls.setdefault(poll.feed_url, poll)
                self.poll_tasks_left -= 1
            elif kind == "downloaded":
                batch, index = payload
                self._downloaded(batch, [index] if index is not None else list(batch.downloading))
        self._record([poll for url, poll in polls.items() if url not in self.recorded])
        while self.sent and self.sent[0].future.wrapped_future.done():
            self._store_oldest()

    def _downloaded(self, batch: _PageBatch, indexes: Sequence[int]) -> None:
        for index in indexes:
            if index in batch.downloading:
                batch.downloading.remove(index)
                self.load.done(batch.jobs[index].normalized_url)

    def _record(self, polls: Sequence[FeedPoll]) -> None:
        if not polls:
            return
        summary, logger = self.result.summary, get_run_logger()
        counts = store.record_polls(self.con, polls, self.states, self.run_id, _now(),
                                    self.config.fetch.max_backoff_hours,
                                    self.config.ingest.max_new_entries_per_poll)
        summary.articles_duplicate += counts.linked_entries
        for poll in polls:
            self.recorded.add(poll.feed_url)
            if poll.outcome == "failed":
                summary.feeds_failed += 1
                self.result.feeds_unreachable += poll.unreachable
                self.result.feed_errors[poll.feed_url] = poll.error or "failed"
                logger.warning("feed %s failed: %s", poll.feed_url, poll.error)
            elif poll.outcome == "unchanged":
                summary.feeds_unchanged += 1
            else:
                summary.feeds_ok += 1
                warning = "; ".join(
                    note for note in (poll.error, counts.capped.get(poll.feed_url)) if note)
                if warning:
                    self.result.feed_warnings[poll.feed_url] = warning
                    logger.warning("feed %s: %s", poll.feed_url, warning)
            progress.advance("feeds")
        read = [poll.feed_url for poll in polls if poll.entries]
        if read:
            self._queue(store.pending_entries(self.con, _now(), read))

    def _queue(self, entries: Sequence[PendingEntry]) -> None:
        new_pages = 0
        for entry in entries:
            if (entry.feed_url, entry.entry_key) in self.taken:
                continue
            self.taken.add((entry.feed_url, entry.entry_key))
            out = self.out_for.get(entry.normalized_url)
            if out is not None:
                batch, index = out
                job = batch.jobs[index]
                batch.jobs[index] = replace(job, entries=(*job.entries, entry))
            else:
                new_pages += entry.normalized_url not in self.queued
                self.queued.setdefault(entry.normalized_url, []).append(entry)
        progress.extend("articles", new_pages)  # a page is one step, however many link to it

    def _send_if_due(self) -> None:
        if len(self.sent) >= BATCHES_IN_FLIGHT or not self.queued:
            return
        size = self.config.ingest.batch_size
        more_to_come = self.poll_tasks_left > 0
        if len(self.queued) < size and more_to_come and self.sent:
            return  # the workers have pages: wait for a fuller batch
        urls = self.load.pick(iter(self.queued), size)
        if not urls:
            return  # every host with pages waiting has all its slots in use
        jobs = page_jobs([entry for url in urls for entry in self.queued.pop(url)])
        batch = _PageBatch(jobs, downloading=set(range(len(jobs))))
        self.load.add([job.normalized_url for job in jobs])
        # The task gets its own list: entries that join a job later change only this one.
        batch.future = download_and_extract.submit(
            quote(list(jobs)), self.page_fetcher, self.workers,
            lambda index: self.events.put(("downloaded", (batch, index))))
        # Extracted, or failed before its downloads ended: either way the loop must wake.
        batch.future.wrapped_future.add_done_callback(
            lambda _: self.events.put(("downloaded", (batch, None))))
        self.sent.append(batch)
        self.out_for.update({job.normalized_url: (batch, i) for i, job in enumerate(jobs)})

    def _store_oldest(self) -> None:
        batch = self.sent.popleft()
        if not (self.sent or self.queued or self.poll_tasks_left):
            # The run's last extraction is done: the workers wind down while it is stored.
            self.workers.stop()
        results, extracted = batch.future.result()
        for job in batch.jobs:
            del self.out_for[job.normalized_url]
        outcome = store_pages(self.con, batch.jobs, results, extracted, self.known, self.config,
                              self.run_id)
        summary = self.result.summary
        summary.articles_new += len(outcome.new_articles)
        summary.articles_updated += len(outcome.updated_articles)
        summary.articles_duplicate += outcome.duplicates
        summary.articles_failed += outcome.failed
        summary.articles_parked += outcome.parked
        self.result.page_errors.extend(outcome.errors)
        progress.advance("articles", len(batch.jobs))
        get_run_logger().info(
            "stored a batch of %d pages: %d new, %d updated, %d duplicate, %d failed, %d parked",
            len(batch.jobs), len(outcome.new_articles), len(outcome.updated_articles),
            outcome.duplicates, outcome.failed, outcome.parked,
        )


class _SwitchInterval:
    """Holds the process's interpreter-lock switch interval at ``seconds`` while any run is in.

    The setting is process-wide, and runs in one process may overlap (threads, each with its
    own warehouse): the first run in sets it, the last one out puts back what was there.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._runs = 0
        self._before = seconds

    def __enter__(self) -> None:
        with self._lock:
            if self._runs == 0:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(self._seconds)
            self._runs += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._runs -= 1
            if self._runs == 0:
                sys.setswitchinterval(self._before)


_run_switch_interval = _SwitchInterval(GIL_SWITCH_INTERVAL_SECONDS)


def run_ingest(config: Config, run_id: str) -> IngestResult:
    """One ingest run against the configured warehouse; callable from any flow."""
    result = IngestResult(run_id, IngestSummary(), {}, [])
    start_process_server()  # its import of trafilatura overlaps with opening the warehouse
    extract = config.extract
    with (
        _run_switch_interval,
        open_warehouse(config) as con,
        ExtractorPool(extract.workers, extract.pages_per_worker, extract.timeout_seconds,
                      extract.max_input_bytes) as workers,
    ):
        start_run(con, run_id, "ingest")
        try:
            _IngestRun(con, config, workers, run_id, result).run()
        except BaseException as exc:
            # Ctrl-C, or SIGTERM (Prefect's own handler raises TerminationSignal during a flow
            # run): stopped, not broken.
            stopped = isinstance(exc, KeyboardInterrupt | TerminationSignal)
            finish_run(con, run_id, "interrupted" if stopped else "failed",
                       result.summary.counts(),
                       [*result.feed_errors.values(), f"run failed: {exc!r}"])
            raise
        result.unclassified = unclassified_articles(con)
        result.current_model = current_model(con)
        errors = [f"{url}: {error}" for url, error in result.feed_errors.items()]
        warnings = [f"{url}: {warning}" for url, warning in result.feed_warnings.items()]
        finish_run(con, run_id, "completed", result.summary.counts(),
                   errors + warnings + result.page_errors)
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
