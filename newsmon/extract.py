"""Main text and metadata of article pages, extracted with trafilatura in worker processes.

trafilatura is not thread-safe (segfaults reported in threads), has no timeout of its own and grows
in memory over many pages, so it never runs in the flow's process: ``ExtractorPool`` runs
``extract_page`` in a pebble process pool whose workers are killed when a page takes too long and
replaced after ``pages_per_worker`` pages. Every failure becomes an ``ExtractionOutcome`` with a
reason, so one bad page costs that page only.

Feeds are parsed in the same workers: feedparser has no timeout either, and as pure-Python work
it would hold the flow process's interpreter lock while the pages download.

trafilatura is imported inside the functions that run in workers, not at the top of this module:
the flow's process imports this module for ``ExtractorPool`` and never needs trafilatura itself.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import InvalidStateError, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from types import TracebackType

from pebble import ProcessExpired, ProcessFuture, ProcessPool

from newsmon.feeds import ParsedFeed, parse_feed
from newsmon.fingerprint import content_hash, simhash

# The <html> start tag follows at most a doctype and a few comments; scanning further for its
# lang attribute would only cost time on pages that have none.
_LANG_SCAN_BYTES = 64 * 1024
_HTML_LANG = re.compile(rb"<html\b[^>]*?[\s:]lang\s*=\s*[\"']?\s*([a-z]{2,3})(?![a-z])", re.I)
# How often a waiting batch checks that its pool is still alive: pebble never finishes the
# tasks of a pool that was stopped or broke, and a batch must not wait for them forever.
_POOL_CHECK_SECONDS = 1.0
# A page shaped like an outlet's article: metadata, navigation and several paragraphs, so that
# extracting it takes trafilatura down its whole pipeline once (see newsmon.worker_preload).
_PARAGRAPH = (
    b"<p>Talks between the two delegations resumed on day %d after a pause of several weeks, "
    b"officials said, and both sides described the first session as useful and frank.</p>"
)
SAMPLE_PAGE = (
    b"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Sample story - Outlet"
    b"</title><meta name='author' content='A. Reporter'><meta name='description' content='A "
    b"sample story.'><meta property='og:site_name' content='Outlet'><meta property="
    b"'article:published_time' content='2026-01-02T09:00:00Z'></head><body><nav><ul><li><a "
    b"href='/world'>World</a></li><li><a href='/politics'>Politics</a></li></ul></nav><main>"
    b"<article><h1>Sample story</h1><p class='byline'>By A. Reporter</p>"
    + b"".join(_PARAGRAPH % day for day in range(1, 9))
    + b"</article></main><aside><h3><a href='/story/2'>Related story</a></h3></aside><footer>"
    b"Copyright Outlet</footer></body></html>"
)
# Its address is never requested. trafilatura finds most sites' domain with a pattern, but hosts
# with short labels (bbc.co.uk, npr.org) or with an IP and a port it looks up in the
# public-suffix list, which it reads on the first such page; this one has it read.
SAMPLE_PAGE_URL = "https://www.bbc.co.uk/news/sample-story"


@dataclass(frozen=True)
class ExtractedPage:
    """What one page yielded; hash fields are None when trafilatura found no main text."""

    url: str
    text: str
    title: str | None
    author: str | None
    # ISO date ('YYYY-MM-DD', trafilatura's htmldate format) as found in the page's metadata.
    published: str | None
    site: str | None
    # Primary language subtag of <html lang> ('en' for 'en-GB'); trafilatura itself reports a
    # language only when asked to filter by one, which the pipeline does not do.
    language: str | None
    description: str | None
    word_count: int
    content_hash: str | None
    simhash: int | None
    truncated: bool


@dataclass(frozen=True)
class ExtractionOutcome:
    """One item's result: a page, or the reason there is none (timeout, crash, dead worker)."""

    key: str
    page: ExtractedPage | None
    error: str | None
    # True when the pool failed or was closed rather than the page (pebble gives up a whole
    # batch when a worker dies while idle): the page may well extract on the next try. Timeouts,
    # crashes and workers that died on the page are False, as the same bytes would fail again.
    retryable: bool = False


def _cut(content: bytes, max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes, minus a UTF-8 character the cut split in two.

    trafilatura decodes input as UTF-8 when it can and otherwise guesses the charset from the
    bytes; a half character at the end makes the UTF-8 decode fail and the guess garbles every
    non-ASCII letter of the page. At most three bytes are dropped, so a page in a single-byte
    charset loses nothing that matters either.
    """
    cut = content[:max_bytes]
    for back in range(1, min(4, len(cut)) + 1):
        byte = cut[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return cut[:-back] if byte >= 0xC0 and back < length else cut
    return cut


def _html_lang(content: bytes) -> str | None:
    """Primary language subtag from the <html lang> attribute, lower-cased; None if absent."""
    match = _HTML_LANG.search(content, 0, _LANG_SCAN_BYTES)
    return match.group(1).decode("ascii").lower() if match else None


def extract_page(content: bytes, url: str, max_input_bytes: int) -> ExtractedPage:
    """Extract main text and metadata from raw page bytes; runs inside a pool worker.

    The bytes go to trafilatura undecoded: it decodes valid UTF-8 as UTF-8 whatever the page
    declares and guesses the charset of anything else, which is right far more often than
    trusting a charset that servers and templates often get wrong. Input is cut to
    ``max_input_bytes`` first because extraction time and memory grow with page size. Comments
    are left out: they are readers' text, not the outlet's. The hashes are computed here so
    that the flow's process does no per-page text work.
    """
    from trafilatura import bare_extraction  # imported here: see the module docstring

    truncated = len(content) > max_input_bytes
    if truncated:
        content = _cut(content, max_input_bytes)
    document = bare_extraction(content, url=url, with_metadata=True, include_comments=False)
    text = (document.text or "").strip() if document is not None else ""

    def field(name: str) -> str | None:
        value = getattr(document, name, None)
        return value or None

    return ExtractedPage(
        url=url,
        text=text,
        title=field("title"),
        author=field("author"),
        published=field("date"),
        site=field("sitename"),
        language=_html_lang(content),
        description=field("description"),
        word_count=len(text.split()),
        content_hash=content_hash(text) if text else None,
        simhash=simhash(text) if text else None,
        truncated=truncated,
    )


def _init_worker() -> None:
    """Run once in each new worker: silence trafilatura's logging and import it ahead of pages.

    trafilatura logs a warning for every page it discards; from a worker those lines reach the
    flow's stderr without saying which page they concern, while the outcome already says it.
    """
    import trafilatura  # noqa: F401 -- imported for its import cost, before the first page

    # After the import, so that a failing import is still logged (by pebble) before exit.
    logging.disable(logging.ERROR)


def _mp_context() -> BaseContext:
    """A start method that does not fork the flow's process.

    The flow runs Prefect's threads, and forking a threaded process can copy a lock held by
    another thread into the child, which then deadlocks. A forkserver is a fresh single-threaded
    process that forks the workers; what it preloads (``newsmon.worker_preload``) every worker,
    including every recycled one, starts with. Spawn is the fallback where there is no
    forkserver (Windows).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["newsmon.worker_preload"])
        return context
    return multiprocessing.get_context("spawn")


def start_process_server() -> None:
    """Start the process server that forks the extraction workers, without waiting for it.

    It imports trafilatura first (about half a second), and does so in its own process: called
    when a run starts, that import overlaps with polling the feeds instead of delaying the first
    page. Later pools of the same process reuse it. Does nothing without a forkserver.
    """
    if _mp_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


class ExtractorPool:
    """Context manager around a pebble process pool that runs ``extract_page``.

    Each page is a task with its own timeout: a worker past it is killed and replaced, and the
    other pages of the batch carry on. Workers are replaced after ``pages_per_worker`` pages to
    return the memory trafilatura accumulates. Several threads may call ``extract_many`` at once
    (the flow overlaps batches); their pages share the same workers.
    """

    def __init__(
        self,
        workers: int | None,
        pages_per_worker: int,
        timeout_seconds: float,
        max_input_bytes: int,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.pages_per_worker = pages_per_worker
        self.timeout_seconds = timeout_seconds
        self.max_input_bytes = max_input_bytes
        self._closed = False
        # Guards replacing the pool, so that concurrent batches never build two.
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self.workers,
            max_tasks=self.pages_per_worker,
            initializer=_init_worker,
            context=_mp_context(),
        )

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stop(self) -> None:
        """Take no more work and have the workers stopped; ``close`` then waits for them to exit.

        pebble notices a stop only on its next tick, up to 0.1 s later: a caller that knows its
        last item is done stops the pool then, and does its remaining work meanwhile.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._pool.stop()

    def close(self) -> None:
        """Stop the workers at once; nothing is pending, since extract_many waits for every page."""
        self.stop()
        self._pool.join()

    def _ensure_pool(self) -> None:
        """Replace a broken pool (pebble gives up when a worker dies while idle) with a new one."""
        if self._closed:
            raise RuntimeError("ExtractorPool is closed")
        if not self._pool.active:
            self._pool.stop()
            self._pool.join()
            self._pool = self._new_pool()

    def _schedule(self, function: Callable, args: tuple) -> ProcessFuture:
        try:
            return self._pool.schedule(function, args=args, timeout=self.timeout_seconds)
        except RuntimeError as error:  # the pool broke while this batch was being scheduled
            future: ProcessFuture = ProcessFuture()
            future.set_exception(BrokenProcessPool(str(error)))
            return future

    def _wait(self, pool: ProcessPool, futures: Sequence[ProcessFuture]) -> None:
        """Wait until every future is done, failing those that a dead pool will never finish.

        When the pool is found dead, pebble gets one more check interval to fail its own tasks
        (it marks the pool dead before it aborts them), then the rest are failed here.
        """
        pending = set(futures)
        pool_found_dead = False
        while pending:
            pending = wait(pending, timeout=_POOL_CHECK_SECONDS).not_done
            if not pending or pool.active:
                continue
            if pool_found_dead:
                for future in pending:
                    with contextlib.suppress(InvalidStateError):  # pebble finished it after all
                        future.set_exception(BrokenProcessPool("pool stopped before the page ran"))
                return
            pool_found_dead = True

    def _outcome(self, key: str, future: ProcessFuture) -> ExtractionOutcome:
        """Turn a finished task into an outcome; every failure becomes a reason string."""
        try:
            page = future.result()
        except Exception as exc:
            error, retryable = self._describe(exc, "extraction", "the page was extracted")
            return ExtractionOutcome(key=key, page=None, error=error, retryable=retryable)
        return ExtractionOutcome(key=key, page=page, error=None)

    def _describe(self, exc: Exception, work: str, unfinished: str) -> tuple[str, bool]:
        """The reason a task failed, and whether the item itself may succeed on another try.

        Once the pool is closed, whatever a task reports is put down to the closing: pebble
        stopping mid-send can hand a task an unrelated error (seen: a TypeError from a closed
        pipe), and the item must not be given up for it.
        """
        if self._closed:
            return f"extraction pool failed: pool closed before {unfinished}", True
        if isinstance(exc, BrokenProcessPool):
            return f"extraction pool failed: {str(exc) or 'the worker pool broke'}", True
        if isinstance(exc, TimeoutError):
            return f"{work} timed out after {self.timeout_seconds:g} s (worker killed)", False
        if isinstance(exc, ProcessExpired):
            return f"worker died (exit code {exc.exitcode})", False
        return f"{work} crashed: {type(exc).__name__}: {exc}", False

    def _run_many(
        self,
        function: Callable,
        items: Iterable[tuple[str, tuple]],
        when_done: Callable[[str, ProcessFuture], None] | None = None,
    ) -> list[tuple[str, ProcessFuture]]:
        """Run ``function(*args)`` for each ``(key, args)`` in the workers; wait for all of them.

        Each item is queued the moment ``items`` yields it, so a generator fed by downloads keeps
        the workers busy while the rest are still arriving. ``when_done(key, future)`` is called
        as each one finishes.
        """
        scheduled: list[tuple[str, ProcessPool, ProcessFuture]] = []
        for key, args in items:
            with self._lock:
                self._ensure_pool()
                future = self._schedule(function, args)
                scheduled.append((key, self._pool, future))
            if when_done is not None:
                future.add_done_callback(lambda future, key=key: when_done(key, future))
        # A pool replaced midway (it broke) is waited on for its own items only.
        for pool in {id(pool): pool for _, pool, _ in scheduled}.values():
            self._wait(pool, [future for _, owner, future in scheduled if owner is pool])
        return [(key, future) for key, _, future in scheduled]

    def extract_many(self, items: Iterable[tuple[str, bytes, str]]) -> list[ExtractionOutcome]:
        """Extract ``(key, content, url)`` items; outcomes come back in the order given.

        A page that times out or kills its worker fails alone. If the pool is closed or breaks
        meanwhile, the pages it had not finished come back as retryable failures. Raises only
        when called after ``close``.
        """
        done = self._run_many(
            extract_page,
            ((key, (content, url, self.max_input_bytes)) for key, content, url in items),
        )
        return [self._outcome(key, future) for key, future in done]

    def parse_feeds(
        self,
        items: Iterable[tuple[str, bytes, Mapping[str, str], str]],
        on_parsed: Callable[[str, ParsedFeed], None] | None = None,
    ) -> dict[str, ParsedFeed]:
        """``parse_feed`` for each ``(key, content, headers, url)`` item, by key.

        ``on_parsed(key, feed)`` is called once for each feed as soon as it is parsed (from one
        of the pool's threads), so that a caller can go on with the first feeds while later ones
        still download. A feed that times out or kills its worker comes back as a ParsedFeed with
        that error. One the pool could not get to (it broke or was closed) is parsed here
        instead: the feed is not at fault, and must not be counted as failing for it.
        """
        arguments: dict[str, tuple[bytes, dict[str, str], str]] = {}
        parsed: dict[str, ParsedFeed] = {}
        # A future's waiters hear of it before its callbacks run, so both this thread and the
        # callback may settle a feed: the first one does.
        settling = threading.Lock()

        def settle(key: str, feed: ParsedFeed) -> None:
            with settling:
                if key in parsed:
                    return
                parsed[key] = feed
                if on_parsed is not None:
                    on_parsed(key, feed)

        def parsed_in_pool(key: str, future: ProcessFuture) -> ParsedFeed | None:
            """The feed, or the reason it failed; None when the pool failed rather than it."""
            try:
                return future.result()
            except Exception as exc:
                error, pool_failed = self._describe(exc, "feed parsing", "the feed was parsed")
                return None if pool_failed else ParsedFeed(None, None, (), None, error)

        def when_done(key: str, future: ProcessFuture) -> None:
            feed = parsed_in_pool(key, future)
            if feed is not None:
                settle(key, feed)

        def queued() -> Iterable[tuple[str, tuple]]:
            for key, content, headers, url in items:
                arguments[key] = (content, dict(headers), url)
                yield key, arguments[key]

        for key, future in self._run_many(parse_feed, queued(), when_done):
            if key not in parsed:
                feed = parsed_in_pool(key, future)
                settle(key, feed if feed is not None else parse_feed(*arguments[key]))
        return parsed

    def warm_up(self) -> None:
        """Fork the workers now rather than on the first item, and have them extract the sample.

        What the first pages would otherwise pay for, the workers already inherit from the
        forkserver (``newsmon.worker_preload``); this is for callers that time the pool.
        """
        self.extract_many(
            [(str(n), SAMPLE_PAGE, SAMPLE_PAGE_URL) for n in range(self.workers)]
        )
