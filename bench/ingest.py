"""Ingest benchmark: N feeds x M realistic article pages served on loopback.

Prints, for each of ``--rounds`` first runs into an empty warehouse: end-to-end articles per
second of the ingest flow (fetch, parse, extract, dedupe, store, Prefect's bookkeeping) and beside
it the rate of the same trafilatura call newsmon makes (``extract_page``), run bare in one process
on the same pages just before and just after that run (the machine's speed drifts), with the
ratio; then the median ratio, the rate of the extractor pool alone on pages already in memory
(the pipeline's own ceiling), peak memory, and the CPU time each process (flow, extraction
workers, Prefect server, site) spent in the first run. Then a second run over the unchanged
feeds, timed against the first.

    .venv/bin/python bench/ingest.py [--feeds 20] [--articles 25] [--rounds 5] [--corpus F.jsonl]

Article bodies come from a labelled corpus in ../shared/datasets (real news text); the page
around each body is generated boilerplate (navigation, related links, scripts, footer) sized
30-200 KB, as real news pages are.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
from html import escape
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared/datasets/bbc.jsonl"


def page_html(title: str, text: str, outlet: str, rng: random.Random, size: int) -> bytes:
    """An article page wrapped in the kind of chrome real outlets send, about `size` bytes."""
    paragraphs = "".join(f"<p>{escape(p)}</p>\n" for p in text.split("\n") if p.strip())
    head = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} - "
        f"{outlet}</title><meta name='author' content='Staff reporter'>"
        f"<meta property='og:site_name' content='{outlet}'>"
        "<meta property='article:published_time' content='2026-11-16T09:00:00Z'>"
        "<link rel='stylesheet' href='/static/site.css'>"
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "</script></head><body>"
    )
    article = (
        f"<main><article><h1>{escape(title)}</h1><p class='byline'>By Staff reporter</p>"
        f"{paragraphs}</article></main>"
    )
    chrome: list[str] = []
    filler = len(head) + len(article) + 200
    section = 0
    while filler < size:
        # Real pages are mostly inline scripts, styles and JSON, plus navigation and teasers.
        section += 1
        script = f"function f{section}(a){{return a.map(function(x){{return x*{section}}})}}"
        links = "".join(
            f"<li><a href='/section/{section}/{k}'>"
            f"{rng.choice(['World', 'Politics', 'Business', 'Sport', 'Culture'])}</a></li>"
            for k in range(8)
        )
        teasers = "".join(
            f"<div class='teaser'><img src='/img/{section}-{k}.jpg' alt=''>"
            f"<h3><a href='/story/{section}-{k}'>Related story {section}-{k}</a></h3>"
            "<p>A short blurb that sells the related story to the reader.</p></div>"
            for k in range(3)
        )
        block = (
            f"<script>{script * 60}</script>"
            f"<style>.c{section}{{margin:0 auto;padding:4px;color:#333}}" * 1 + "</style>"
            f"<script type='application/ld+json'>{json.dumps({'ids': list(range(300))})}</script>"
            f"<nav class='menu-{section}'><ul>{links}</ul></nav><section>{teasers}</section>"
        )
        chrome.append(block)
        filler += len(block)
    half = len(chrome) // 2
    return (
        head
        + "".join(chrome[:half])
        + article
        + "<aside>"
        + "".join(chrome[half:])
        + "</aside><footer>Copyright the outlet</footer></body></html>"
    ).encode()


def distinct_stories(rows: list[dict], needed: int) -> list[dict]:
    """The first ``needed`` rows whose texts newsmon tells apart: the BBC corpus holds some
    stories twice, verbatim or lightly edited, and the pipeline rightly stores each once, which
    would leave the site with fewer articles than feeds x articles."""
    import numpy as np

    from newsmon.config import IngestSettings
    from newsmon.fingerprint import content_hash, nearest_duplicate, simhash

    max_bits = IngestSettings().near_duplicate_bits
    kept: list[dict] = []
    hashes: set[str] = set()
    simhashes = np.zeros(0, dtype=np.uint64)
    for row in rows:
        if len(kept) == needed:
            break
        text_hash, near = content_hash(row["text"]), simhash(row["text"])
        if text_hash in hashes or nearest_duplicate(near, simhashes, max_bits) is not None:
            continue
        kept.append(row)
        hashes.add(text_hash)
        simhashes = np.append(simhashes, np.uint64(near))
    return kept


def build_site(corpus: Path, feeds: int, per_feed: int) -> dict[str, tuple[bytes, str]]:
    rng = random.Random(7)
    rows = [json.loads(line) for line in corpus.open(encoding="utf-8")]
    rng.shuffle(rows)
    needed = feeds * per_feed
    rows = distinct_stories(rows, needed)
    if len(rows) < needed:
        raise SystemExit(f"{corpus} has {len(rows)} distinct articles; {needed} needed")
    documents: dict[str, tuple[bytes, str]] = {}
    for f in range(feeds):
        items = []
        for a in range(per_feed):
            row = rows[f * per_feed + a]
            path = f"/outlet{f}/story{a}.html"
            size = rng.randint(30_000, 200_000)
            documents[path] = (
                page_html(row["title"], row["text"], f"Outlet {f}", rng, size),
                "text/html; charset=utf-8",
            )
            # Relative links: feedparser resolves them against the feed's URL.
            items.append(
                f"<item><title>{escape(row['title'])}</title><link>{path}</link>"
                f"<guid>{path}</guid><pubDate>Mon, 16 Nov 2026 10:00:00 GMT</pubDate>"
                "</item>"
            )
        feed = (
            "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>Outlet {f}</title>{''.join(items)}</channel></rss>"
        )
        documents[f"/outlet{f}/feed.xml"] = (feed.encode(), "application/rss+xml")
    return documents


def serve(documents: dict, port_out) -> None:
    """Child process: the site, on its own core budget rather than the pipeline's GIL."""
    from newsmon.localsite import SiteServer

    server = SiteServer(documents)
    port_out.send(server.server_address[1])
    server.serve_forever()


def bare_extraction(pages: dict[str, bytes], base: str, seconds_out) -> None:
    """Child process: ``extract_page`` on every page in turn, timed after the preparation the
    pipeline's workers inherit from their forkserver (trafilatura imported, one sample page
    extracted)."""
    import newsmon.worker_preload  # noqa: F401
    from newsmon.extract import extract_page

    start = time.perf_counter()
    for path, body in pages.items():
        extract_page(body, base + path, 3 * 2**20)
    seconds_out.send(time.perf_counter() - start)


def time_bare(context, pages: dict[str, bytes], base: str) -> float:
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=bare_extraction, args=(pages, base, send))
    child.start()
    seconds = receive.recv()
    child.join()
    return seconds


def pool_alone_rate(pages: dict[str, bytes], base: str) -> float:
    """Pages per second of newsmon's extractor pool on its own (default workers, pages already in
    memory, no flow): what the pipeline could reach if fetching, storing and Prefect were free."""
    from newsmon.config import ExtractSettings
    from newsmon.extract import ExtractorPool

    settings = ExtractSettings()
    with ExtractorPool(settings.workers, settings.pages_per_worker, settings.timeout_seconds,
                       settings.max_input_bytes) as pool:
        pool.warm_up()
        start = time.perf_counter()
        pool.extract_many([(path, body, base + path) for path, body in pages.items()])
        return len(pages) / (time.perf_counter() - start)


def descendants() -> list[int]:
    """Process ids of this process's live descendants, read from Linux's /proc."""
    found: list[int] = []
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            children = [int(c) for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            continue
        found += children
        pending += children
    return found


def process_kind(pid: int) -> str | None:
    if pid == os.getpid():
        return "flow process"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    if "forkserver" in command:
        return "extraction workers"
    if "uvicorn" in command:
        return "Prefect server"
    if "spawn_main" in command:
        return "site server"
    return None


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time (user + system) so far of this process and each descendant, with its kind.

    Counted with the time of their children that have ended (cutime, cstime): the extraction
    workers have exited by the end of a run, and their time is then their forkserver's.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in [os.getpid(), *descendants()]:
        kind = process_kind(pid)
        try:
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if kind:
            seconds[pid] = (kind, sum(int(value) for value in fields[11:15]) / ticks)
    return seconds


def cpu_by_kind(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds spent between two ``cpu_seconds`` readings, summed by kind of process."""
    spent: dict[str, float] = {}
    for pid, (kind, total) in after.items():
        spent[kind] = spent.get(kind, 0.0) + total - before.get(pid, (kind, 0.0))[1]
    return spent


def reset_peak_memory() -> None:
    """Restart this process's resident-memory high-water mark (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mib(pid: int | str = "self") -> float | None:
    """A process's resident-memory high-water mark (since its start or the last reset), in MiB;
    None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    peak = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")),
                None)
    return None if peak is None else int(peak) / 1024


class DescendantMemory:
    """Peak resident memory of this process's descendants (the extraction workers are children
    of the forkserver, not of this process, so getrusage cannot see them), read from Linux's
    /proc while the pipeline runs. VmHWM is each process's own high-water mark, so reading it
    now and then is enough."""

    def __init__(self) -> None:
        self.peak_mib: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DescendantMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for pid in descendants():
                self._record(pid)

    def _record(self, pid: int) -> None:
        kind = process_kind(pid)
        if kind not in ("extraction workers", "Prefect server"):
            return
        peak = peak_memory_mib(pid)
        if peak is not None:
            self.peak_mib[kind] = max(self.peak_mib.get(kind, 0.0), peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--articles", type=int, default=25, help="articles per feed")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=5, help="timed first runs, each cold")
    args = parser.parse_args()

    documents = build_site(args.corpus, args.feeds, args.articles)
    pages = {path: body for path, (body, kind) in documents.items() if kind.startswith("text/html")}
    sizes = sorted(len(b) for b in pages.values())
    held_mib = sum(len(body) for body, _ in documents.values()) / 2**20
    print(
        f"site: {args.feeds} feeds x {args.articles} articles = {len(pages)} pages, "
        f"median {sizes[len(sizes) // 2] / 1024:.0f} KB, "
        f"{sum(sizes) / 2**20:.0f} MiB in all"
    )

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(documents, send), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{receive.recv()}"
    feeds = "".join(f'[[feeds]]\nurl = "{base}/outlet{f}/feed.xml"\n' for f in range(args.feeds))

    def fresh_config() -> str:
        """A config whose warehouse is new and empty, so that every timed run starts cold."""
        config = Path(tempfile.mkdtemp(prefix="newsmon-bench-")) / "newsmon.toml"
        config.write_text(
            f'[warehouse]\npath = "newsmon.duckdb"\n[fetch]\nallow_private_addresses = true\n'
            f"{feeds}",
            encoding="utf-8",
        )
        return str(config)

    from newsmon.cli.ingest import prepare_ingest

    prepare_ingest()  # as `newsmon ingest` does, before Prefect loads
    from prefect import flow

    from newsmon.flows import run_settings
    from newsmon.flows.ingest import IngestResult, ingest_flow

    @flow
    def warm_up() -> None:
        """Start Prefect's ephemeral API before the clock starts: it is paid once per process."""

    # This machine's speed drifts by 10-30% from one minute to the next, so the bare rate is
    # measured before and after every pipeline run and each run is compared with the mean of
    # its two neighbours; the median of those ratios is the figure.
    bare_rates = [len(pages) / time_bare(context, pages, base)]
    runs: list[tuple[IngestResult, float]] = []  # each cold first run and its seconds
    with run_settings(), DescendantMemory() as memory:  # as `newsmon ingest` runs its flows
        warm_up()
        for round_ in range(args.rounds):
            config = fresh_config()
            cpu_before = cpu_seconds()
            if round_ == 0:
                reset_peak_memory()
            start = time.perf_counter()
            first = ingest_flow(config)
            runs.append((first, time.perf_counter() - start))
            if round_ == 0:
                flow_peak_mib = peak_memory_mib()
                cpu_spent = cpu_by_kind(cpu_before, cpu_seconds())
                start = time.perf_counter()
                second = ingest_flow(config)
                second_seconds = time.perf_counter() - start
            bare_rates.append(len(pages) / time_bare(context, pages, base))
    pool_rate = pool_alone_rate(pages, base)
    server.terminate()

    ratios = []
    for round_, (result, seconds) in enumerate(runs):
        stored = result.summary.articles_new
        bare_rate = (bare_rates[round_] + bare_rates[round_ + 1]) / 2
        ratios.append(stored / seconds / bare_rate)
        print(
            f"run {round_ + 1}: {stored} articles stored in {seconds:.1f} s = "
            f"{stored / seconds:.1f} articles/s end to end; bare extract_page, one process, "
            f"same pages: {bare_rate:.1f} pages/s (mean of {bare_rates[round_]:.1f} before and "
            f"{bare_rates[round_ + 1]:.1f} after); ratio {ratios[-1]:.2f}x"
        )
    median_ratio = statistics.median(ratios)
    bare_rate = statistics.mean(bare_rates)
    first_of_all, first_seconds = runs[0]
    stored = first_of_all.summary.articles_new
    print(
        f"ratio pipeline / bare single process: median {median_ratio:.2f}x over {len(runs)} "
        f"runs (goal >= 1.5x); the extractor pool alone, same pages: {pool_rate:.1f} pages/s = "
        f"{pool_rate / bare_rate:.2f}x the mean bare rate ({bare_rate:.1f} pages/s)"
    )
    print(
        f"second run over unchanged feeds: {second_seconds:.2f} s = "
        f"{100 * second_seconds / first_seconds:.1f}% of the first "
        f"(goal < 5%); feeds unchanged: {second.summary.feeds_unchanged}, "
        f"new articles: {second.summary.articles_new}"
    )
    peaks = ", ".join(f"{kind} {mib:.0f} MiB" for kind, mib in sorted(memory.peak_mib.items()))
    print(
        f"peak memory in the first run: flow process {flow_peak_mib:.0f} MiB (of which "
        f"{held_mib:.0f} MiB is the benchmark's own copy of the site), {peaks} (largest)"
    )
    spent = ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in sorted(cpu_spent.items()))
    print(
        f"CPU time in the first run: {spent}; in all {sum(cpu_spent.values()):.1f} s "
        f"against {len(pages) / bare_rate:.1f} s for the bare extraction of every page"
    )
    if stored != len(pages):
        counts = {name: n for name, n in first_of_all.summary.counts().items()
                  if n and name.startswith("articles")}
        print(f"note: {len(pages) - stored} of {len(pages)} pages made no new article: {counts}")


if __name__ == "__main__":
    main()
