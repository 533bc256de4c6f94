"""A private feed read with `user:password@` in its URL: the password goes with the requests that
need it and nowhere else (output, logs, warehouse, analyst copy, Prefect's database)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import duckdb
from werkzeug import Request, Response

from newsmon.config import parse_config
from newsmon.credentials import redact_url
from tests.fakesite import Handler, Item, Site, article_page, article_text, rss20
from tests.test_ingest_flow import config_text

USER, PASSWORD = "reader", "s3cret-Pa55"


def requiring_login(site: Site, path: str) -> None:
    """Let only requests that carry the reader's Basic credentials through to path."""
    handler: Handler = site.routes[path]
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def guarded(request: Request) -> Response:
        if request.headers.get("Authorization") != expected:
            return Response("login required", status=401)
        return handler(request)

    site.routes[path] = guarded


def tables_text(path: Path) -> str:
    """Every value of every table and view of a DuckDB file, as text."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(str(con.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names)


def files_containing(folder: Path, secret: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_redact_url_keeps_the_user_and_hides_the_password() -> None:
    assert redact_url("https://me:pw@host.test:8443/f.xml?q=1") == "https://me:***@host.test:8443/f.xml?q=1"
    assert redact_url("https://token@host.test/f.xml") == "https://***@host.test/f.xml"
    assert redact_url("https://host.test/f.xml") == "https://host.test/f.xml"
    assert redact_url("not a url") == "not a url"


def test_the_config_shows_a_feed_url_without_its_password() -> None:
    config = parse_config({"feeds": [{"url": f"https://{USER}:{PASSWORD}@host.test/feed.xml"}]})
    (feed,) = config.feeds
    assert feed.url == f"https://{USER}:***@host.test/feed.xml"
    assert PASSWORD not in repr(config)
    assert PASSWORD not in config.model_dump_json()


def test_a_private_feed_is_read_and_its_password_is_stored_nowhere(site, tmp_path):
    site.page("/private/a.html", article_page("A private story", article_text(7)))
    site.feed("/private/feed.xml", rss20("Private", [
        Item("A private story", site.url("/private/a.html"), "p1")]))
    site.routes["/private/broken.xml"] = lambda request: Response("down", status=503)
    for path in ("/private/a.html", "/private/feed.xml", "/private/broken.xml"):
        requiring_login(site, path)
    private, broken = (site.url(path).replace("http://", f"http://{USER}:{PASSWORD}@")
                       for path in ("/private/feed.xml", "/private/broken.xml"))
    config = tmp_path / "newsmon.toml"
    config.write_text(config_text(site, []) + f'[[feeds]]\nurl = "{private}"\n'
                      f'[[feeds]]\nurl = "{broken}"\n', encoding="utf-8")
    prefect_home = tmp_path / "prefect-home"
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PREFECT_API")}
    environment |= {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    outputs = []
    for command in (["ingest"], ["status"]):
        finished = subprocess.run(
            [sys.executable, "-m", "newsmon", "--config", str(config), *command],
            capture_output=True, text=True, timeout=300, env=environment,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
        outputs.append(finished.stdout + finished.stderr)

    # The credential went where it was needed: the feed and its page were read.
    assert site.requests("/private/a.html")
    warehouse = tmp_path / "wh" / "newsmon.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT title FROM articles").fetchall() == [("A private story",)]
        stored_urls = sorted(row[0] for row in con.execute("SELECT feed_url FROM feeds").fetchall())
    assert stored_urls == sorted(u.replace(PASSWORD, "***") for u in (private, broken))
    # And nowhere else.
    assert f"{USER}:***@" in outputs[0]  # the failed feed is named, redacted
    for output in outputs:
        assert PASSWORD not in output
    assert PASSWORD not in tables_text(warehouse)
    analyst_copy = warehouse.with_name("newsmon.analyst.duckdb")
    assert PASSWORD not in tables_text(analyst_copy)
    # Prefect's database holds the run's logs, which name the failed feed, redacted.
    assert files_containing(prefect_home, f"{USER}:***@".encode())
    assert files_containing(prefect_home, PASSWORD.encode()) == []
    assert files_containing(tmp_path / "wh", PASSWORD.encode()) == []
