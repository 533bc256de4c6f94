"""`newsmon ingest` as a user runs it: summary, one line per failed feed, and the exit code."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from typer.testing import CliRunner

from newsmon.cli import app
from tests.fakesite import Item, article_page, article_text, rss20
from tests.test_ingest_flow import config_text

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_ingest_prints_summary_and_exits_zero_when_some_feed_was_read(site, write_config):
    site.page("/a.html", article_page("A story", article_text(3)))
    site.feed("/ok.xml", rss20("OK", [Item("A story", site.url("/a.html"), "a")]))
    config = write_config(config_text(site, ["/ok.xml", "/missing.xml"]))

    result = CliRunner().invoke(app, ["--config", str(config), "ingest"])

    assert result.exit_code == 0, result.output
    assert "feeds:    1 read, 0 unchanged (304), 1 failed" in result.output
    assert "articles: 1 new" in result.output
    assert f"feed failed {site.url('/missing.xml')}: HTTP 404 Not Found" in result.output


def test_ingest_exits_one_when_no_feed_could_be_read(site, write_config):
    config = write_config(config_text(site, ["/missing.xml"]))
    result = CliRunner().invoke(app, ["--config", str(config), "ingest"])
    assert result.exit_code == 1
    assert "feeds:    0 read, 0 unchanged (304), 1 failed" in result.output


def test_ingest_in_its_own_process_ends_without_a_leak_report(site, write_config):
    # Prefect's background loop holds copies of the runs' contexts until it is stopped; left
    # running at exit, DuckDB's bindings print dozens of "leaked instance" lines.
    site.page("/a.html", article_page("A story", article_text(3)))
    site.feed("/ok.xml", rss20("OK", [Item("A story", site.url("/a.html"), "a")]))
    config = write_config(config_text(site, ["/ok.xml"]))
    from prefect.settings import PREFECT_API_URL

    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the harness's

    finished = subprocess.run(
        [sys.executable, "-m", "newsmon", "--config", str(config), "ingest"],
        capture_output=True, text=True, timeout=300, env=environment,
    )

    assert finished.returncode == 0, finished.stderr
    assert "articles: 1 new" in finished.stdout
    assert "leaked" not in finished.stderr


def test_the_command_script_does_not_import_the_cli_until_it_runs():
    # multiprocessing imports the command's script again in every extraction worker, and a
    # worker has no use for the CLI's typer, pydantic and pyarrow.
    (command,) = entry_points(group="console_scripts", name="newsmon")
    loaded = subprocess.run(
        [sys.executable, "-c",
         f"import sys, {command.module}; print(sorted(m for m in sys.modules if m in "
         "('newsmon.cli', 'typer', 'pydantic', 'pyarrow')))"],
        capture_output=True, text=True, check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_ingest_names_a_feed_read_with_a_warning(site, write_config):
    for n in range(3):
        site.page(f"/w/{n}.html", article_page(f"Story {n}", article_text(40 + n)))
    site.feed("/many.xml", rss20("Many", [Item(f"Story {n}", site.url(f"/w/{n}.html"), f"w{n}")
                                          for n in range(3)]))
    config = write_config(config_text(site, ["/many.xml"]).replace(
        "batch_size = 4", "batch_size = 4\nmax_new_entries_per_poll = 1"))

    result = CliRunner().invoke(app, ["--config", str(config), "ingest"])

    assert result.exit_code == 0, result.output
    assert (f"feed warning {site.url('/many.xml')}: took the newest 1 of 3 new entries; "
            "the rest wait for later polls") in result.output


def test_the_demo_folder_is_ignored_by_git():
    import inspect
    from pathlib import Path

    from newsmon.cli.demo import demo

    default = inspect.signature(demo).parameters["directory"].default
    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().splitlines()
    assert f"{default}/" in ignored
