"""Operations: `newsmon sql` and `newsmon status` on the analyst copy, and `newsmon serve`.

sql and status read the analyst copy that every run publishes (warehouse/analyst.py), never the
live warehouse, so they answer while a run is writing and cannot hold a run up. sql runs what
the analyst types in a session that can reach no other file (open_analyst_session).
"""

from __future__ import annotations

import contextlib
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from cronsim import CronSim
from rich.table import Table
from rich.text import Text

from newsmon.cli._app import app, console, err_console, fail, get_config
from newsmon.config import Config
from newsmon.warehouse import open_reader
from newsmon.warehouse import status as queries
from newsmon.warehouse.analyst import AnalystSession, QueryError, open_analyst_session

if TYPE_CHECKING:
    import duckdb

# Printing more rows than this helps no one; the exports write them all.
MAX_PRINTED_ROWS = 1000
MAX_COLUMN_WIDTH = 60
LAST_RUNS = 10
NEXT_RUNS = 3
PROMPT, CONTINUATION = "newsmon> ", "     ...> "
# What a misspelt option looks like; no SQL statement does (a bare "--name" is only a comment).
OPTION_LIKE = re.compile(r"-{1,2}[A-Za-z][\w-]*(=\S*)?")


def analyst_copy(config: Config) -> Path:
    path = config.analyst_copy_path
    if not path.exists():
        raise fail(
            f"{path}: no analyst copy yet. It is published after every run: "
            "run `newsmon ingest` (or `newsmon demo`) first.",
            code=1,
        )
    return path


def _published(path: Path, config: Config) -> str:
    when = datetime.fromtimestamp(path.stat().st_mtime, config.zone)
    return f"{path} (published {when:%Y-%m-%d %H:%M} {config.timezone})"


def _cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, float):
        return Text(f"{value:.4g}")
    return Text(str(value))


def show_result(session: AnalystSession, statement: str) -> None:
    """Run one statement and print its result as a table (raises QueryError if it is refused)."""
    columns, rows = session.run(statement, MAX_PRINTED_ROWS + 1)
    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(Text(column), max_width=MAX_COLUMN_WIDTH)
    for row in rows[:MAX_PRINTED_ROWS]:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
    if len(rows) > MAX_PRINTED_ROWS:
        console.print(f"(the first {MAX_PRINTED_ROWS} rows; --csv, --json or --parquet "
                      "writes them all)", style="dim")
    else:
        console.print(f"({len(rows)} row{'' if len(rows) == 1 else 's'})", style="dim")


def show_query(session: AnalystSession, sql: str) -> None:
    """Run each statement in ``sql`` in turn and print each result as its own table; stop at
    the first one refused (raises QueryError)."""
    for number, statement in enumerate(session.statements(sql)):
        if number:
            console.print()
        show_result(session, statement)


def _query_error(exc: QueryError) -> None:
    # DuckDB's own message is the useful part; no prefix, no traceback, and never markup.
    err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)


def repl(session: AnalystSession) -> None:
    """Statements end with ';' and may span lines; .tables lists tables and views; .quit ends."""
    with contextlib.suppress(ImportError):  # line editing and history, where available
        import readline  # noqa: F401
    buffer: list[str] = []
    while True:
        try:
            line = input(CONTINUATION if buffer else PROMPT)
        except EOFError:
            break
        except KeyboardInterrupt:  # Ctrl-C drops the statement being typed, as in psql
            buffer.clear()
            console.print()
            continue
        command = line.strip()
        if not buffer and command in (".quit", ".exit"):
            break
        if not buffer and command == ".tables":
            line = "SHOW TABLES;"
        if not buffer and not command:
            continue
        buffer.append(line)
        statement = "\n".join(buffer).strip()
        if statement.endswith(";"):
            buffer.clear()
            try:
                show_query(session, statement)
            except QueryError as exc:
                _query_error(exc)


def _is_stdout(target: Path) -> bool:
    return str(target) == "-"


@app.command(context_settings={
    # A query may start with an SQL comment ("-- ..."), which click would otherwise parse as an
    # unknown option; the command's own options are still recognised wherever they stand.
    "ignore_unknown_options": True,
})
def sql(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Argument(help="The SQL to run (several statements: each result is "
                                   "shown); - reads it from standard input; leave it out for "
                                   "an interactive prompt.")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the result to this CSV file (- for "
                                  "standard output).", dir_okay=False)
    ] = None,
    json: Annotated[
        Path | None, typer.Option("--json", help="Write the result to this JSON file, an array "
                                  "(- for standard output).", dir_okay=False)
    ] = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="Write the result to this Parquet file (- "
                                  "for standard output, when it is not a terminal).",
                                  dir_okay=False)
    ] = None,
) -> None:
    """Query the warehouse's analyst copy (read-only; it answers while a run is writing).

    Views for analysts: article_topics, weekly_topic_stance, feed_health, run_history
    (warehouse/SCHEMA.md describes every table and view). The session reads the analyst copy
    and nothing else: no other file, no ATTACH, COPY, INSTALL or LOAD, no SET.
    """
    config = get_config(ctx)
    targets = {fmt: path for fmt, path in (("csv", csv), ("json", json), ("parquet", parquet))
               if path is not None}
    if len(targets) > 1:
        raise fail("give one of --csv, --json and --parquet")
    if targets and query is None:
        raise fail("--csv, --json and --parquet need a query")
    if query is not None and OPTION_LIKE.fullmatch(query):
        # ignore_unknown_options hands a misspelt option over as the query.
        raise fail(f"no such option: {query} (newsmon sql --help lists them)")
    if parquet is not None and _is_stdout(parquet) and sys.stdout.isatty():
        raise fail("Parquet is binary: give --parquet a file name, or send standard output to a "
                   "file or a pipe")
    if query == "-":
        query = sys.stdin.read()
    path = analyst_copy(config)
    try:
        with open_analyst_session(path, config.timezone) as session:
            if query is None:
                console.print(f"Read-only SQL on {_published(path, config)}.\n"
                              "End statements with ';'. .tables lists tables and views; "
                              ".quit leaves.", highlight=False, soft_wrap=True, markup=False)
                repl(session)
                return
            statements = session.statements(query)
            if not statements:
                raise fail("no SQL to run: the query is empty or only comments")
            if not targets:
                show_query(session, query)
                return
            if len(statements) > 1:
                raise fail("--csv, --json and --parquet write one result: give one statement")
            ((fmt, target),) = targets.items()
            if _is_stdout(target):
                rows = session.export(statements[0], fmt, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                rows = session.export(statements[0], fmt, target)
    except QueryError as exc:
        _query_error(exc)
        raise typer.Exit(1) from None
    # Beside the data written to standard output, the count goes to standard error.
    (err_console if _is_stdout(target) else console).print(
        f"Wrote {rows} row{'' if rows == 1 else 's'} to "
        f"{'standard output' if _is_stdout(target) else target}.",
        highlight=False, markup=False, soft_wrap=True)


def _local(value: datetime | None, config: Config) -> str:
    return value.astimezone(config.zone).strftime("%Y-%m-%d %H:%M") if value else "never"


def _runs_table(con: duckdb.DuckDBPyConnection, config: Config) -> Table | str:
    rows = con.execute(queries.LAST_RUNS, [LAST_RUNS]).fetchall()
    if not rows:
        return "No runs yet."
    table = Table("flow", "started", "took", "status", "errors", title="Last runs",
                  title_justify="left", show_edge=False)
    for flow, status, started, seconds, error_count, first_error in rows:
        took = "-" if seconds is None else f"{seconds:.0f} s"
        style = {"completed": "green", "running": "yellow"}.get(status, "red")
        errors = f"{error_count}: {first_error}" if error_count else "-"
        table.add_row(flow, _local(started, config), took, Text(status, style=style),
                      Text(errors, overflow="ellipsis", no_wrap=True))
    return table


def _print_failing_feeds(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    rows = con.execute(queries.FAILING_FEEDS).fetchall()
    console.print("\n[bold]Failing feeds[/] (failed at least twice in a row)")
    if not rows:
        console.print("  none")
    # Lines, not a table: URLs and error messages are long and must stay whole to be useful.
    for url, name, failures, error, last_ok in rows:
        label = f"{name} <{url}>" if name else url
        console.print(f"  {label}: {failures} failures in a row, last ok {_local(last_ok, config)}",
                      highlight=False, markup=False, soft_wrap=True)
        console.print(f"      {error}", style="red", highlight=False, markup=False,
                      soft_wrap=True)


def _articles_table(con: duckdb.DuckDBPyConnection, config: Config, now: datetime) -> Table:
    today = now.astimezone(config.zone).date()
    monday = today - timedelta(days=today.weekday())
    since = datetime.combine(monday, datetime.min.time(), config.zone)
    counts = dict(con.execute(queries.ARTICLES_PER_DAY,
                              {"zone": config.timezone, "since": since}).fetchall())
    table = Table("day", "articles", title=f"Articles stored this week ({config.timezone})",
                  title_justify="left", show_edge=False)
    for offset in range((today - monday).days + 1):
        day = monday + timedelta(days=offset)
        table.add_row(f"{day:%a %d %b}", str(counts.get(day, 0)))
    return table


def _print_model(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    row = con.execute(queries.CURRENT_MODEL).fetchone()
    if row is None:
        console.print("\n[bold]Model:[/] no model trained yet (`newsmon model train`)")
        return
    version, trained_at, topic_f1, stance_f1 = row

    def score(value: float | None) -> str:
        return "not evaluated (too few labels)" if value is None else f"{value:.2f}"

    console.print(f"\n[bold]Model:[/] {version}, trained {_local(trained_at, config)}; "
                  f"macro-F1 topic {score(topic_f1)}, stance {score(stance_f1)}", highlight=False,
                  soft_wrap=True)


def _schedule_table(config: Config, now: datetime) -> Table:
    table = Table("flow", "cron", "next runs", show_edge=False, title_justify="left",
                  title=f"Next scheduled runs ({config.timezone}; while `newsmon serve` runs)")
    start = now.astimezone(config.zone)
    for flow, cron in (("ingest", config.schedule.ingest_cron),
                       ("digest", config.schedule.digest_cron)):
        times = CronSim(cron, start)
        upcoming = ", ".join(f"{next(times):%a %d %b %H:%M}" for _ in range(NEXT_RUNS))
        table.add_row(flow, cron, upcoming)
    return table


@app.command()
def status(ctx: typer.Context) -> None:
    """Last runs, failing feeds, articles this week, the current model and the next runs."""
    config = get_config(ctx)
    path = analyst_copy(config)
    now = datetime.now(UTC)
    console.print(f"Warehouse: {_published(path, config)}", highlight=False, soft_wrap=True,
                  markup=False)
    with open_reader(path, config.timezone) as con:
        console.print()
        console.print(_runs_table(con, config))
        _print_failing_feeds(con, config)
        console.print()
        console.print(_articles_table(con, config, now))
        _print_model(con, config)
    console.print()
    console.print(_schedule_table(config, now))


@app.command()
def serve(ctx: typer.Context) -> None:
    """Run the config's schedules (ingest and classify hourly, the digest weekly) until Ctrl-C.

    Uses the Prefect server in PREFECT_API_URL, or starts a local one (its state in .prefect
    beside the config) and stops it on exit.
    """
    config = get_config(ctx)
    # Imported here: Prefect takes seconds to import, and only this command needs it.
    from newsmon.flows.deployments import deployments
    from newsmon.flows.deployments import serve as serve_deployments
    from newsmon.prefect_server import PrefectServerError, prefect_api

    console.print("Connecting to Prefect (a first local start takes up to a minute) ...")
    try:
        with prefect_api(config.base_dir / ".prefect") as api_url:
            console.print(f"Prefect API {api_url}; its dashboard is at "
                          f"{api_url.removesuffix('/api')}", highlight=False)
            serve_deployments(deployments(config))
    except PrefectServerError as exc:
        raise fail(str(exc), code=1) from None
