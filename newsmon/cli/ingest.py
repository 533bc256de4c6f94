"""`newsmon ingest`: one ingest run on Prefect's local ephemeral API, with progress bars."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from newsmon import progress
from newsmon.cli._app import app, console, fail, get_config
from newsmon.warehouse import WarehouseBusy


class RichListener:
    """Shows each stage the flow reports as a rich progress bar."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.tasks[stage] = self.bars.add_task(stage, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        self.bars.advance(self.tasks[stage], amount)


def summary_table(result) -> Table:
    s = result.summary
    table = Table(title=f"ingest run {result.run_id}", show_edge=False)
    columns = ("", "ok / new", "unchanged / updated", "duplicate", "failed", "skipped / parked")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row("feeds", str(s.feeds_ok), str(s.feeds_unchanged), "-", str(s.feeds_failed),
                  str(s.feeds_skipped))
    table.add_row("articles", str(s.articles_new), str(s.articles_updated),
                  str(s.articles_duplicate), str(s.articles_failed), str(s.articles_parked))
    return table


@app.command()
def ingest(ctx: typer.Context) -> None:
    """Poll every feed once and store new articles. Exits 1 only when no feed could be read."""
    config = get_config(ctx)
    if not config.feeds:
        raise fail(f"{config.source}: no [[feeds]] configured; add at least one feed URL")
    from newsmon.flows.ingest import ingest_flow  # Prefect is slow to import; only when needed

    bars = Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)
    try:
        with bars, progress.listening(RichListener(bars)):
            result = ingest_flow(str(config.source))
    except WarehouseBusy as exc:
        raise fail(str(exc)) from None
    console.print(summary_table(result))
    for url, error in result.feed_errors.items():
        console.print(f"[red]feed failed[/] {url}: {error}", highlight=False)
    polled = result.summary.feeds_read + result.summary.feeds_failed
    if polled and not result.summary.feeds_read:
        raise typer.Exit(1)
