"""Extraction: text and metadata from raw bytes; a pool in which one bad page fails alone."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import justext.core
import pytest
import tld.utils
from pebble import ProcessExpired, ProcessFuture

from newsmon.extract import ExtractedPage, ExtractorPool, _cut, _html_lang, extract_page
from newsmon.feeds import ParsedFeed
from newsmon.fingerprint import content_hash, simhash

MiB = 1024 * 1024
URL = "https://news.example.com/2026/03/14/harbour-plan"
PARAGRAPHS = [
    "The city council voted on Tuesday to approve a new plan for the harbour district, ending two"
    " years of debate over how the waterfront should be rebuilt after the shipyard closed.",
    "Under the plan, about 1,200 homes will be built alongside a public park, a school and a ferry"
    " terminal. Supporters said the scheme would bring life back to an area that has stood"
    " largely empty since 2019.",
    "Opponents argued that the council had underestimated the cost of cleaning contaminated soil"
    " and warned that taxpayers could be left with a bill running into tens of millions of euros.",
    "The mayor, Anna Lindqvist, said the vote was a turning point. “We have listened to residents"
    " for two years, and this plan reflects what they asked for,” she told reporters.",
]
NAV = "Subscribe to our morning newsletter"
FOOTER = "Copyright 2026 The Daily Example. All rights reserved."


def article_html(
    paragraphs: list[str] = PARAGRAPHS,
    *,
    title: str = "Council approves harbour plan",
    charset: str = "utf-8",
    lang: str = "en-GB",
) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head>
<meta charset="{charset}">
<title>{title} | The Daily Example</title>
<meta name="author" content="Jane Reporter">
<meta name="description" content="The council backed 1,200 homes on the old shipyard site.">
<meta property="og:site_name" content="The Daily Example">
<meta property="og:title" content="{title}">
<meta property="article:published_time" content="2026-03-14T09:30:00+01:00">
</head><body>
<header><nav><ul>
<li><a href="/">Home</a></li><li><a href="/politics">Politics</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/newsletter">{NAV}</a></li>
</ul></nav></header>
<main><article><h1>{title}</h1>
{body}
</article></main>
<footer><p>{FOOTER}</p><p><a href="/privacy">Privacy policy</a> | <a href="/cookies">Cookies</a></p>
</footer></body></html>"""


def test_extracts_the_article_and_its_metadata() -> None:
    page = extract_page(article_html().encode("utf-8"), URL, MiB)

    for paragraph in PARAGRAPHS:
        assert paragraph in page.text
    assert NAV not in page.text
    assert FOOTER not in page.text
    assert page.url == URL
    assert page.title == "Council approves harbour plan"
    assert page.author == "Jane Reporter"
    assert page.site == "The Daily Example"
    assert page.published == "2026-03-14"
    assert page.language == "en"
    assert page.description == "The council backed 1,200 homes on the old shipyard site."
    assert 100 <= page.word_count <= 200
    assert page.content_hash == content_hash(page.text)
    assert page.simhash == simhash(page.text)
    assert page.truncated is False


KIM = "Pyongyang – Kim’s “historic” café visit, déjà vu for Seoul"
NON_ASCII_PARAGRAPHS = [
    f"{KIM}. State media said on Monday that the leader had toured the border town.",
    "Officials in Seoul said they were studying the report, which Yonhap news agency quoted at"
    " length. The résumé of the visit was broadcast twice on state television that evening.",
    "Analysts said the trip was symbolic. “It costs them nothing and it looks like a gesture,”"
    " said one researcher, who asked not to be named because of the sensitivity of the matter.",
]


def test_utf8_bytes_win_over_a_declared_latin1_charset() -> None:
    html = article_html(NON_ASCII_PARAGRAPHS, charset="iso-8859-1")
    page = extract_page(html.encode("utf-8"), URL, MiB)
    assert KIM in page.text


def test_windows_1252_page_decodes_to_the_right_characters() -> None:
    html = article_html(NON_ASCII_PARAGRAPHS, charset="windows-1252")
    page = extract_page(html.encode("cp1252"), URL, MiB)
    assert KIM in page.text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   \n",
        b"<html><head><title>Nothing</title></head><body></body></html>",
        f"<html><body><div id='app'></div><footer><p>{FOOTER}</p></footer></body></html>".encode(),
    ],
    ids=["empty", "whitespace", "empty-body", "footer-only"],
)
def test_page_without_main_text_has_no_text_and_no_hashes(content: bytes) -> None:
    page = extract_page(content, URL, MiB)
    assert page.text == ""
    assert page.word_count == 0
    assert page.content_hash is None
    assert page.simhash is None


def test_oversized_input_is_cut_and_still_extracted() -> None:
    paragraphs = NON_ASCII_PARAGRAPHS * 200  # about 100 KB
    content = article_html(paragraphs).encode("utf-8")
    limit = 20_000
    # Cut inside a three-byte character: a half character left at the end would make the page
    # invalid UTF-8 and send trafilatura into charset guessing.
    limit = content.index("’".encode(), limit) + 1

    page = extract_page(content, URL, limit)

    assert page.truncated is True
    assert KIM in page.text
    assert 0 < page.word_count < 20_000 / 4
    assert page.content_hash == content_hash(page.text)


def test_cut_drops_only_a_split_character() -> None:
    text = "a–é€𝄞b".encode()  # 1-, 3-, 2-, 3-, 4- and 1-byte characters
    for limit in range(len(text) + 1):
        cut = _cut(text, limit)
        assert text.startswith(cut)
        assert limit - 3 <= len(cut) <= limit
        cut.decode("utf-8")  # never a partial character at the end
    latin1 = "café".encode("latin-1")
    assert _cut(latin1, 3) == b"caf"
    assert len(_cut(latin1, 4)) >= 3


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<!DOCTYPE html><html lang="en-GB">', "en"),
        ("<html class='no-js' lang='DE'>", "de"),
        ('<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr">', "fr"),
        ("<html lang=pt-br>", "pt"),
        ('<html data-lang="fr">', None),
        ("<html>", None),
        ('<html lang="">', None),
    ],
)
def test_language_from_the_html_lang_attribute(head: str, expected: str | None) -> None:
    assert _html_lang(f"{head}<head></head><body></body></html>".encode()) == expected


@pytest.fixture(scope="module")
def pool() -> Iterator[ExtractorPool]:
    # Three pages per worker, so the ten-page batch below also runs through worker recycling.
    with ExtractorPool(
        workers=2, pages_per_worker=3, timeout_seconds=1.0, max_input_bytes=16 * MiB
    ) as extractor:
        extractor.warm_up()
        yield extractor


def items(count: int) -> list[tuple[str, bytes, str]]:
    return [
        (f"page-{n}", article_html(title=f"Harbour story number {n}").encode(), f"{URL}/{n}")
        for n in range(count)
    ]


def test_pool_returns_outcomes_in_order(pool: ExtractorPool) -> None:
    outcomes = pool.extract_many(items(10))

    assert [o.key for o in outcomes] == [f"page-{n}" for n in range(10)]
    for n, outcome in enumerate(outcomes):
        assert outcome.error is None
        assert isinstance(outcome.page, ExtractedPage)
        assert outcome.page.title == f"Harbour story number {n}"
        assert outcome.page.url == f"{URL}/{n}"
        assert PARAGRAPHS[2] in outcome.page.text
    assert pool.extract_many([]) == []


def slow_page() -> bytes:
    """4.5 MB of paragraphs: about 6.5 s of trafilatura work on the VM this was written on."""
    paragraph = "<div><p>" + " ".join(PARAGRAPHS) + "</p></div>"
    return f"<html><body>{paragraph * 6000}</body></html>".encode()


def test_a_page_past_the_timeout_fails_alone(pool: ExtractorPool) -> None:
    batch = items(6)
    batch.insert(2, ("slow", slow_page(), f"{URL}/slow"))

    outcomes = pool.extract_many(batch)

    assert [o.key for o in outcomes] == [key for key, _, _ in batch]
    failed = outcomes.pop(2)
    assert failed.page is None
    assert failed.error == "extraction timed out after 1 s (worker killed)"
    assert all(o.error is None and o.page is not None for o in outcomes)


def test_an_exception_in_the_worker_fails_that_item_alone(pool: ExtractorPool) -> None:
    batch = items(3)
    batch[1] = ("broken", None, URL)  # type: ignore[assignment]  # not bytes: extract_page raises

    outcomes = pool.extract_many(batch)

    assert outcomes[1].page is None
    assert outcomes[1].error is not None
    assert outcomes[1].error.startswith("extraction crashed: TypeError: ")
    assert outcomes[0].page is not None and outcomes[2].page is not None


def test_concurrent_batches_share_the_pool(pool: ExtractorPool) -> None:
    # The flow overlaps batches: extract_many is called from several threads at once.
    batches = [[(f"{b}-{key}", content, url) for key, content, url in items(4)] for b in "abc"]
    with ThreadPoolExecutor(max_workers=3) as threads:
        results = list(threads.map(pool.extract_many, batches))
    for batch, outcomes in zip(batches, results, strict=True):
        assert [o.key for o in outcomes] == [key for key, _, _ in batch]
        assert all(o.page is not None for o in outcomes)


@pytest.mark.parametrize(
    ("error", "expected", "retryable"),
    [
        (ProcessExpired("Abnormal termination", code=-11), "worker died (exit code -11)", False),
        (TimeoutError("Task timeout", 1), "extraction timed out after 1 s (worker killed)", False),
        (MemoryError("out of memory"), "extraction crashed: MemoryError: out of memory", False),
        (BrokenProcessPool("workers expired"), "extraction pool failed: workers expired", True),
    ],
)
def test_failures_become_reasons(
    pool: ExtractorPool, error: Exception, expected: str, retryable: bool
) -> None:
    future: ProcessFuture = ProcessFuture()
    future.set_exception(error)
    outcome = pool._outcome("k", future)
    assert (outcome.key, outcome.page, outcome.error) == ("k", None, expected)
    assert outcome.retryable is retryable


def test_a_worker_dying_while_idle_does_not_break_later_batches() -> None:
    # pebble gives up the whole pool when a worker dies with no task (the OOM killer may pick
    # an idle worker that has grown large); the next batch must get a fresh pool.
    with ExtractorPool(2, pages_per_worker=10, timeout_seconds=5, max_input_bytes=MiB) as extractor:
        extractor.warm_up()
        broken = extractor._pool
        idle_worker = next(iter(broken._pool_manager.worker_manager.workers))
        os.kill(idle_worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while broken.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not broken.active

        outcomes = extractor.extract_many(items(3))

        assert all(o.page is not None for o in outcomes)
        assert extractor._pool is not broken


def test_closing_the_pool_ends_a_waiting_batch() -> None:
    # If the flow fails while a batch is in flight, closing the pool must not leave that
    # batch's thread waiting forever: its unfinished pages come back as retryable failures.
    # Two big pages on one worker: the second fills the pipe, so the small ones are still in
    # pebble's queue when the pool closes, and pebble never finishes queued tasks itself.
    extractor = ExtractorPool(1, pages_per_worker=10, timeout_seconds=30, max_input_bytes=16 * MiB)
    batch = [("slow-1", slow_page(), URL), ("slow-2", slow_page(), URL), *items(2)]
    with ThreadPoolExecutor(max_workers=1) as threads:
        waiting = threads.submit(extractor.extract_many, batch)
        time.sleep(0.5)
        extractor.close()
        outcomes = waiting.result(timeout=10)

    assert [o.key for o in outcomes] == [key for key, _, _ in batch]
    for outcome in outcomes:
        assert outcome.page is None
        assert outcome.error == "extraction pool failed: pool closed before the page was extracted"
        assert outcome.retryable is True


def test_closed_pool_refuses_work() -> None:
    extractor = ExtractorPool(workers=1, pages_per_worker=1, timeout_seconds=1, max_input_bytes=1)
    with extractor:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        extractor.extract_many(items(1))


def test_a_stopped_pool_refuses_work_and_still_closes() -> None:
    extractor = ExtractorPool(workers=1, pages_per_worker=5, timeout_seconds=10, max_input_bytes=MiB)
    [done] = extractor.extract_many(items(1))
    extractor.stop()
    with pytest.raises(RuntimeError, match="closed"):
        extractor.extract_many(items(1))
    extractor.close()
    assert done.page is not None
    assert not extractor._pool.active


def test_workers_start_with_the_public_suffix_list_read() -> None:
    # Read by the forkserver's preload (newsmon.worker_preload), not by the worker's first page:
    # this pool has run nothing before the probe.
    with ExtractorPool(1, pages_per_worker=5, timeout_seconds=10, max_input_bytes=MiB) as fresh:
        [(_, probe)] = fresh._run_many(tld.utils.get_tld_names_container, [("probe", ())])
        assert probe.result(), "the worker would read the public-suffix list on its first page"


def stoplists_cached() -> int:
    """Run in a worker: how many stoplist sets justext has built there so far."""
    return justext.core.define_stoplist.cache_info().currsize


def test_workers_start_with_the_justext_stoplist_built() -> None:
    # trafilatura's last fallback merges every language's stoplist on first use; the preload
    # does it, so no worker spends its first pages on it.
    with ExtractorPool(1, pages_per_worker=5, timeout_seconds=10, max_input_bytes=MiB) as fresh:
        [(_, probe)] = fresh._run_many(stoplists_cached, [("probe", ())])
        assert probe.result() == 1, "the stoplist would be built on a worker's page"


def rss(items: int, title: str = "Harbour news") -> bytes:
    entries = "".join(
        f"<item><title>Story {n}</title><link>https://news.example.com/{n}</link>"
        f"<guid>story-{n}</guid><description>{' '.join(PARAGRAPHS)}</description></item>"
        for n in range(items)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{title}"
        f"</title><link>https://news.example.com/</link>{entries}</channel></rss>"
    ).encode()


FEED_HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}


def test_feeds_are_parsed_in_the_pool_by_key(pool: ExtractorPool) -> None:
    feeds = [
        ("a", rss(2, "Feed A"), FEED_HEADERS, "https://news.example.com/a.xml"),
        ("b", rss(3, "Feed B"), FEED_HEADERS, "https://news.example.com/b.xml"),
        ("junk", b"\x89PNG\r\n\x1a\n not a feed", {}, "https://news.example.com/c.xml"),
    ]

    parsed = pool.parse_feeds(iter(feeds))

    assert parsed.keys() == {"a", "b", "junk"}
    assert (parsed["a"].title, len(parsed["a"].entries)) == ("Feed A", 2)
    assert [e.url for e in parsed["b"].entries] == [f"https://news.example.com/{n}" for n in range(3)]
    assert parsed["a"].error is None
    assert parsed["junk"].entries == ()
    assert parsed["junk"].error is not None
    assert parsed["junk"].error.startswith("not an RSS or Atom feed")


def test_each_parsed_feed_is_handed_over_once_as_soon_as_it_is_parsed(pool: ExtractorPool) -> None:
    handed: list[tuple[str, ParsedFeed]] = []
    small_seen_before_big_parsed = threading.Event()

    def feeds():
        yield "small", rss(1, "Small"), FEED_HEADERS, "https://news.example.com/small.xml"
        # The next feed arrives only after the first has been handed over.
        assert small_seen_before_big_parsed.wait(timeout=30)
        yield "big", rss(500, "Big"), FEED_HEADERS, "https://news.example.com/big.xml"

    def on_parsed(key: str, feed: ParsedFeed) -> None:
        handed.append((key, feed))
        small_seen_before_big_parsed.set()

    parsed = pool.parse_feeds(feeds(), on_parsed=on_parsed)

    assert [key for key, _ in handed] == ["small", "big"]
    assert dict(handed) == parsed
    assert len(parsed["big"].entries) == 500


def test_a_feed_past_the_timeout_fails_alone_with_the_reason(pool: ExtractorPool) -> None:
    # 10,000 entries: about 6 s of feedparser work here, well past the pool's 1 s timeout.
    feeds = [
        ("huge", rss(10_000), FEED_HEADERS, "https://news.example.com/huge.xml"),
        ("small", rss(1), FEED_HEADERS, "https://news.example.com/small.xml"),
    ]

    parsed = pool.parse_feeds(feeds)

    assert parsed["huge"].entries == ()
    assert parsed["huge"].error == "feed parsing timed out after 1 s (worker killed)"
    assert len(parsed["small"].entries) == 1


def test_feeds_the_pool_could_not_reach_are_parsed_in_process() -> None:
    # A closed or broken pool is not the feed's fault: the feed must still be read, not counted
    # as failing. Two big feeds on one worker keep the small one queued when the pool closes.
    extractor = ExtractorPool(1, pages_per_worker=10, timeout_seconds=30, max_input_bytes=MiB)
    feeds = [
        (key, rss(count), FEED_HEADERS, f"https://news.example.com/{key}.xml")
        for key, count in (("big-1", 3000), ("big-2", 3000), ("small", 2))
    ]
    with ThreadPoolExecutor(max_workers=1) as threads:
        waiting = threads.submit(extractor.parse_feeds, feeds)
        time.sleep(0.3)
        extractor.close()
        parsed = waiting.result(timeout=60)

    assert {key: len(feed.entries) for key, feed in parsed.items()} == {
        "big-1": 3000, "big-2": 3000, "small": 2,
    }
    assert all(feed.error is None for feed in parsed.values())
