"""The CLI as a scheduler or a person runs it, each test in a real `newsmon` process: signals,
options, what is printed, how long a command with nothing to do takes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from filelock import FileLock

from newsmon.warehouse.db import lock_path, open_writer
from tests.fakesite import Item, article_page, article_text, rss20
from tests.test_ingest_flow import config_text

BATCH_LINE = re.compile(r"stored a batch of \d+ pages")


def newsmon(*args: str, env: dict | None = None, **options) -> subprocess.Popen:
    environment = {**os.environ, **(env or {})}
    environment.pop("PREFECT_API_URL", None)  # as a user runs it: newsmon's temporary API
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options}
    return subprocess.Popen([sys.executable, "-m", "newsmon", *args], env=environment,
                            text=True, **streams)


def finished(*args: str) -> subprocess.CompletedProcess:
    process = newsmon(*args)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (no psutil here)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def slow_site(site, write_config, articles: int = 60):
    for n in range(articles):
        site.page(f"/a/{n}.html", article_page(f"Article {n}", article_text(2000 + n)), delay=0.3)
    site.feed("/feed.xml", rss20("Feed", [Item(f"Article {n}", site.url(f"/a/{n}.html"), f"g{n}")
                                          for n in range(articles)]))
    return write_config(config_text(site, ["/feed.xml"]))


def started_ingest(config: Path) -> tuple[subprocess.Popen, set[int]]:
    """`newsmon ingest` once it has stored a batch, and the processes it had started by then."""
    process = newsmon("--verbose", "ingest", "--config", str(config),
                      stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if BATCH_LINE.search(line) or time.monotonic() > deadline:
            break
    children = descendants(process.pid)
    assert children, "the run started no process (temporary API, extraction workers)"
    return process, children


def test_sigterm_stops_a_run_within_seconds_and_leaves_nothing_behind(site, write_config,
                                                                      tmp_path):
    config = slow_site(site, write_config)
    process, children = started_ingest(config)

    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    process.communicate(timeout=60)
    took = time.monotonic() - stopped

    assert process.returncode == 128 + signal.SIGTERM
    assert took < 10, f"took {took:.1f} s to stop"
    time.sleep(0.5)
    assert not alive(children), "processes left running after SIGTERM"
    with duckdb.connect(str(tmp_path / "wh" / "newsmon.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status FROM runs WHERE flow = 'ingest'").fetchall() == [
            ("interrupted",)]
        stored = con.execute("SELECT count(*) FROM articles").fetchone()[0]
        queued = con.execute("SELECT count(*) FROM entries WHERE status = 'stored'").fetchone()[0]
    assert 0 < stored < 60 and queued == stored  # whole batches only


def test_a_killed_run_leaves_no_prefect_server_running(site, write_config):
    config = slow_site(site, write_config)
    process, children = started_ingest(config)

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    deadline = time.monotonic() + 10
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(children), "processes outlived a killed run"


def test_config_is_accepted_after_the_command(write_config):
    path = write_config("[warehouse]\npath = 'w.duckdb'\n")
    result = finished("ingest", "--config", str(path))
    assert "No such option" not in result.stderr
    assert f"{path}: no [[feeds]] configured" in result.stderr.replace("\n", "")
    assert result.returncode == 2


def test_messages_print_brackets_as_they_are(write_config, tmp_path):
    path = write_config("[fetch]\ntimeout_secs = 3\n")
    result = finished("--config", str(path), "classify")
    assert "unknown key (misspelt, or in the wrong [section]?)" in result.stderr.replace("\n", "")

    odd = tmp_path / "x[/bold]" / "newsmon.toml"
    result = finished("classify", "--config", str(odd))
    assert "MarkupError" not in result.stderr
    assert f"{odd}: config file not found" in result.stderr.replace("\n", "")


def test_classify_with_nothing_to_do_starts_no_prefect(write_config):
    path = write_config("[warehouse]\npath = 'w.duckdb'\n")
    # A Prefect API that cannot be reached: a command that started a flow would fail on it.
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsmon", "--config", str(path), "classify"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},
    )
    assert process.returncode == 1
    assert "no model trained yet" in process.stderr
    # Before, it started Prefect's server first (8 s here); now Prefect is not even imported.
    assert not re.search(r"\| prefect\b", process.stderr)


def test_a_busy_warehouse_says_how_long_this_run_waited_without_a_traceback(write_config,
                                                                            tmp_path):
    path = write_config("[warehouse]\npath = 'w.duckdb'\nlock_timeout_seconds = 1\n")
    with open_writer(tmp_path / "w.duckdb"):
        pass
    with FileLock(str(lock_path(tmp_path / "w.duckdb"))):
        result = finished("--config", str(path), "classify")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "waited 1 s" in result.stderr
    assert "held the" not in result.stderr


def test_a_flow_command_waits_for_a_busy_warehouse_outside_prefect(write_config, tmp_path):
    path = write_config("[warehouse]\npath = 'w.duckdb'\nlock_timeout_seconds = 1\n"
                        "[[feeds]]\nurl = 'http://127.0.0.1:9/feed.xml'\n")
    with open_writer(tmp_path / "w.duckdb"):
        pass
    with FileLock(str(lock_path(tmp_path / "w.duckdb"))):
        results = [finished("--config", str(path), command) for command in ("ingest", "run")]
    for result in results:
        assert result.returncode == 2, result.stderr
        assert "another newsmon run is writing to" in result.stderr
        assert "waiting up to 1 s" in result.stderr
        assert "waited 1 s" in result.stderr
        assert "Traceback" not in result.stderr
        assert "Flow run" not in result.stdout + result.stderr  # no flow was started


def test_status_prints_a_warehouse_path_with_brackets_as_it_is(tmp_path):
    folder = tmp_path / "x[/bold]"
    folder.mkdir(parents=True)
    (folder / "newsmon.toml").write_text("[warehouse]\npath = 'w.duckdb'\n")
    with open_writer(folder / "w.duckdb"):  # and its analyst copy, which status reads
        pass
    result = finished("--config", str(folder / "newsmon.toml"), "status")
    assert result.returncode == 0, result.stderr
    assert f"Warehouse: {folder / 'w.analyst.duckdb'} (published" in result.stdout


def test_digest_with_nothing_due_starts_no_prefect(write_config, tmp_path):
    from datetime import UTC, datetime

    from newsmon.config import load_config
    from newsmon.digest.weeks import IsoWeek
    from newsmon.warehouse.digest import record_render, record_sent

    path = write_config("[warehouse]\npath = 'w.duckdb'\n[email]\nto = ['a@example.org']\n")
    week = str(IsoWeek.last_complete(load_config(path).zone, datetime.now(UTC)))
    with open_writer(tmp_path / "w.duckdb") as con:
        record_render(con, week, None, 3, ["a.html", "a.txt", "a.eml"])
        record_sent(con, week, "<id@example.org>", ["a@example.org"])
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsmon", "--config", str(path), "digest"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert f"Digest {week}: already done, none due" in process.stdout
    assert not re.search(r"\| prefect\b", process.stderr)


def test_a_run_in_a_terminal_prints_no_telemetry_notice(site, write_config, tmp_path):
    import pty

    site.page("/a.html", article_page("A story", article_text(3)))
    site.feed("/ok.xml", rss20("OK", [Item("A story", site.url("/a.html"), "a")]))
    config = write_config(config_text(site, ["/ok.xml"]))
    # As a person runs it: a terminal, a new Prefect home, and none of the CI markers that
    # make Prefect keep quiet on its own.
    ci_markers = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "CIRCLECI",
                  "BUILDKITE", "TF_BUILD", "CODEBUILD_BUILD_ID", "BITBUCKET_COMMIT",
                  "TEAMCITY_VERSION", "DRONE", "SEMAPHORE", "APPVEYOR", "BUDDY", "CI_NAME",
                  "DO_NOT_TRACK", "PREFECT_API_URL")
    environment = {key: value for key, value in os.environ.items() if key not in ci_markers}
    environment["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: newsmon on the terminal
        os.execve(sys.executable, [sys.executable, "-m", "newsmon", "--config", str(config),
                                   "ingest"], environment)
    output = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))  # colours
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "articles: 1 new" in text
    assert "anonymous usage data" not in text
