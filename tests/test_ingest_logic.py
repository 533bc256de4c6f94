"""The ingest decisions as plain functions, without HTTP, Prefect or a warehouse."""

from datetime import UTC, datetime, timedelta

from newsmon.config import IngestSettings
from newsmon.extract import ExtractedPage, ExtractionOutcome
from newsmon.fingerprint import content_hash, simhash
from newsmon.http import FetchResult
from newsmon.ingest import (
    FEED_TEXT_NOTE,
    FeedState,
    KnownArticles,
    PendingEntry,
    conditional_headers,
    next_poll_after,
    page_jobs,
    resolve_pages,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TEXT = "Envoys met in Hanoi and agreed to keep talking about the next summit. " * 20


def state(polls: int) -> FeedState:
    return FeedState("https://f.example/rss", '"v1"', "Mon, 16 Nov 2026 12:00:00 GMT", polls, 0)


def test_conditional_headers_until_a_full_fetch_is_due():
    assert conditional_headers(state(0), 24) == {
        "If-None-Match": '"v1"', "If-Modified-Since": "Mon, 16 Nov 2026 12:00:00 GMT"}
    assert conditional_headers(state(23), 24) == {}


def test_failing_feed_backs_off_exponentially_with_a_cap():
    assert next_poll_after(1, NOW, 24) is None
    assert next_poll_after(2, NOW, 24) == NOW + timedelta(hours=1)
    assert next_poll_after(4, NOW, 24) == NOW + timedelta(hours=4)
    assert next_poll_after(30, NOW, 24) == NOW + timedelta(hours=24)


def pending(feed: str, key: str, url: str, summary: str | None = None, attempts: int = 0,
            article_id: int | None = None) -> PendingEntry:
    return PendingEntry(feed, key, url, url, f"Title {key}", summary, None, None, article_id,
                        attempts)


def page(url: str, text: str) -> ExtractionOutcome:
    extracted = ExtractedPage(url=url, text=text, title="Page title", author="A", published=None,
                              site="Outlet", language="en", description=None,
                              word_count=len(text.split()),
                              content_hash=content_hash(text) if text else None,
                              simhash=simhash(text) if text else None, truncated=False)
    return ExtractionOutcome(key=url, page=extracted, error=None)


def fetched(url: str, ok: bool = True, error: str | None = None, permanent: bool = False):
    return FetchResult(url=url, final_url=url, status_code=200 if ok else 503, headers={},
                       content=b"<html>" if ok else None, error=error,
                       error_kind=None if ok else "http_status", permanent=permanent, requests=())


def test_one_download_per_url_and_same_text_is_one_article():
    entries = [pending("f1", "a", "https://x.example/a"), pending("f2", "a2", "https://x.example/a"),
               pending("f1", "b", "https://y.example/b")]
    jobs = page_jobs(entries)
    assert [len(job.entries) for job in jobs] == [2, 1]
    outcome = resolve_pages(
        jobs, [fetched(j.url) for j in jobs],
        {"https://x.example/a": page("https://x.example/a", TEXT),
         "https://y.example/b": page("https://y.example/b", TEXT.upper())},
        KnownArticles(), iter([1, 2]), IngestSettings(), NOW)
    assert [a.article_id for a in outcome.new_articles] == [1]
    assert [(u.entry_key, u.status, u.article_id) for u in outcome.entry_updates] == [
        ("a", "stored", 1), ("a2", "duplicate", 1), ("b", "duplicate", 1)]
    assert outcome.duplicates == 2


def test_empty_extraction_falls_back_to_the_feed_text_and_says_so():
    jobs = page_jobs([pending("f", "a", "https://x.example/a", summary="Feed summary text.")])
    outcome = resolve_pages(jobs, [fetched(jobs[0].url)],
                            {"https://x.example/a": page("https://x.example/a", "")},
                            KnownArticles(), iter([7]), IngestSettings(), NOW)
    (article,) = outcome.new_articles
    assert (article.text, article.extraction, article.extraction_note) == (
        "Feed summary text.", "feed", FEED_TEXT_NOTE)


def test_transient_failures_retry_later_then_park():
    settings = IngestSettings(max_page_attempts=3)
    for attempts, status in ((0, "pending"), (1, "pending"), (2, "parked")):
        jobs = page_jobs([pending("f", "a", "https://x.example/a", attempts=attempts)])
        outcome = resolve_pages(jobs, [fetched(jobs[0].url, ok=False, error="HTTP 503")], {},
                                KnownArticles(), iter([1]), settings, NOW)
        (update,) = outcome.entry_updates
        assert (update.status, update.attempts, update.last_error) == (
            status, attempts + 1, "HTTP 503")
        assert (update.retry_after is not None) == (status == "pending")


def test_edited_entry_updates_its_own_article():
    jobs = page_jobs([pending("f", "a", "https://x.example/a", article_id=42)])
    outcome = resolve_pages(jobs, [fetched(jobs[0].url)],
                            {"https://x.example/a": page("https://x.example/a", TEXT)},
                            KnownArticles(by_hash={content_hash(TEXT): 42}), iter([99]),
                            IngestSettings(), NOW)
    assert [a.article_id for a in outcome.updated_articles] == [42]
    assert outcome.new_articles == []


def test_a_copy_with_a_rewritten_sentence_is_a_near_duplicate_but_a_short_text_is_not():
    from tests.fakesite import article_text

    original = " ".join(article_text(5, paragraphs=5))
    sentences = original.split(". ")
    sentences[3] = "A wholly different sentence about harbour railways and budgets"
    edited = ". ".join(sentences)
    assert content_hash(original) != content_hash(edited)
    first = page_jobs([pending("f", "a", "https://x.example/a")])
    copy = page_jobs([pending("g", "b", "https://y.example/b")])
    known = KnownArticles()
    settings = IngestSettings()
    stored = resolve_pages(first, [fetched(first[0].url)],
                           {first[0].url: page(first[0].url, original)}, known, iter([1]),
                           settings, NOW)
    assert len(stored.new_articles) == 1
    again = resolve_pages(copy, [fetched(copy[0].url)], {copy[0].url: page(copy[0].url, edited)},
                          known, iter([2]), settings, NOW)
    assert [(u.status, u.article_id) for u in again.entry_updates] == [("duplicate", 1)]
    # The same edit on a text too short for a stable simhash is a new article.
    strict = IngestSettings(near_duplicate_min_words=10_000)
    third = page_jobs([pending("h", "c", "https://z.example/c")])
    separate = resolve_pages(third, [fetched(third[0].url)],
                             {third[0].url: page(third[0].url, edited + " Extra words.")},
                             known, iter([3]), strict, NOW)
    assert [a.article_id for a in separate.new_articles] == [3]


def test_download_load_sends_only_pages_whose_host_has_a_slot_to_spare():
    from newsmon.ingest import DownloadLoad

    load = DownloadLoad(concurrency=3, per_host=2)
    slow = [f"http://slow.test/{n}" for n in range(5)]
    load.add(slow)  # five pages out for one host: both its slots in use
    queued = [*slow[:1], "http://slow.test/later", "http://fast.test/1", "http://fast.test/2"]
    assert load.pick(queued, 10) == ["http://fast.test/1", "http://fast.test/2"]
    assert load.pick(queued, 1) == ["http://fast.test/1"]
    load.add(["http://fast.test/1"])
    # Three connections in use (two slow, one fast): the run's limit, so nothing more goes.
    assert load.pick(queued, 10) == []
    for url in slow[:3]:
        load.done(url)
        assert load.pick(["http://slow.test/later"], 10) == []  # two or more still out
    load.done(slow[3])  # one left: room for another of its pages
    assert load.pick(["http://slow.test/later"], 10) == ["http://slow.test/later"]
