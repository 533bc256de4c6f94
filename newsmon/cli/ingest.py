"""`newsmon ingest` and `newsmon run`: flow runs on Prefect's local ephemeral API, with progress
bars while they work and a summary when they end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsmon import progress
from newsmon.cli._app import app, console, fail, get_config, wait_for_warehouse
from newsmon.config import Config
from newsmon.warehouse import WarehouseBusy

if TYPE_CHECKING:  # Prefect is imported only when a command runs a flow
    from newsmon.flows.ingest import IngestResult

OFFLINE_HINT = (
    "No feed answered at all: the network looks unreachable from here. "
    "Try `newsmon demo`, which runs the whole cycle on a demo site served on this machine."
)


class RichListener:
    """Shows each stage the flow reports as a rich progress bar."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.tasks[stage] = self.bars.add_task(stage, total=total)
        self.totals[stage] = total

    def advance(self, stage: str, amount: int = 1) -> None:
        self.bars.advance(self.tasks[stage], amount)

    def extend(self, stage: str, amount: int) -> None:
        self.totals[stage] += amount
        self.bars.update(self.tasks[stage], total=self.totals[stage])


@contextmanager
def showing_progress() -> Iterator[None]:
    """Progress bars for the flows run inside the block; a busy warehouse is a clean error."""
    bars = Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)
    from newsmon.flows import logs_through

    try:
        with bars, progress.listening(RichListener(bars)), logs_through(console):
            yield
    except WarehouseBusy as exc:
        raise fail(str(exc)) from None


def print_ingest(result: IngestResult) -> None:
    """The run summary, then one line per failed feed and per feed read with a warning."""
    s = result.summary
    console.print(f"[bold]ingest[/] run {result.run_id}", highlight=False)
    console.print(f"  feeds:    {s.feeds_ok} read, {s.feeds_unchanged} unchanged (304), "
                  f"{s.feeds_failed} failed, {s.feeds_skipped} backing off after failures")
    console.print(f"  articles: {s.articles_new} new, {s.articles_updated} updated, "
                  f"{s.articles_duplicate} duplicate, {s.articles_failed} failed (retried later), "
                  f"{s.articles_parked} parked")
    for url, error in result.feed_errors.items():
        # soft_wrap: a long URL is left whole for the terminal to wrap, and can be copied.
        console.print(f"[red]feed failed[/] {escape(url)}: {escape(error)}", highlight=False,
                      soft_wrap=True)
    for url, warning in result.feed_warnings.items():
        console.print(f"[yellow]feed warning[/] {escape(url)}: {escape(warning)}",
                      highlight=False, soft_wrap=True)
    if result.network_unreachable:
        console.print(f"[bold yellow]{OFFLINE_HINT}[/]")
    if result.classified is not None:
        classified = result.classified
        if classified.get("model_version"):
            console.print(f"classified {classified['classified']} article(s) with model "
                          f"{classified['model_version']}")
        elif classified.get("note"):
            console.print(f"not classified: {classified['note']}", highlight=False, markup=False)


def require_feeds(config: Config) -> None:
    if not config.feeds:
        raise fail(f"{config.source}: no [[feeds]] configured; add at least one feed URL")


def prepare_ingest() -> None:
    """Start, before Prefect loads, what the run's first feeds and pages will wait for.

    The process server that forks the extraction workers spends about half a second importing
    trafilatura, and the TLS context takes 50 ms to load; begun here, both overlap with
    Prefect's import and its ephemeral API's start instead of holding up the first page.
    """
    from newsmon.extract import start_process_server  # numpy comes with it: not for --help
    from newsmon.http import prepare_ssl_context

    start_process_server()
    prepare_ssl_context()


def exit_code(result: IngestResult) -> int:
    """Non-zero only when feeds were polled and not one could be read."""
    polled = result.summary.feeds_read + result.summary.feeds_failed
    return 1 if polled and not result.summary.feeds_read else 0


@app.command()
def ingest(ctx: typer.Context) -> None:
    """Poll every feed once, store new articles, classify them. Exits 1 only if no feed could
    be read."""
    config = get_config(ctx)
    require_feeds(config)
    wait_for_warehouse(config)
    prepare_ingest()
    from newsmon.flows import run_settings, start_local_api

    api = start_local_api()  # its start overlaps with Prefect's import, next
    from newsmon.flows.ingest import ingest_flow

    with run_settings(api), showing_progress():
        result = ingest_flow(str(config.source))
    print_ingest(result)
    raise typer.Exit(exit_code(result))


@app.command()
def run(ctx: typer.Context) -> None:
    """The main job: ingest, classify, and the weekly digest when one is due."""
    config = get_config(ctx)
    require_feeds(config)
    wait_for_warehouse(config)
    prepare_ingest()
    from newsmon.flows import run_settings, start_local_api

    api = start_local_api()  # its start overlaps with Prefect's import, next
    from newsmon.flows.cycle import cycle_flow

    with run_settings(api), showing_progress():
        result = cycle_flow(str(config.source))
    print_ingest(result.ingest)
    if result.digest is None:
        console.print(f"digest {result.digest_week}: already done, none due")
    elif result.digest.files is None:  # an empty week: nothing rendered, tried again next run
        console.print(f"digest {result.digest.week}: {result.digest.not_sent_because}",
                      highlight=False, markup=False)
    else:
        digest = result.digest
        sent = f"mailed to {', '.join(digest.sent_to)}" if digest.sent_to else (
            f"not mailed ({digest.not_sent_because})")
        console.print(f"digest {digest.week}: {digest.articles} article(s), saved as "
                      f"{digest.files.html}; {sent}", highlight=False, markup=False)
    raise typer.Exit(exit_code(result.ingest))
