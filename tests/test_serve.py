"""Scheduled deployments: built from [schedule], and served against a real local Prefect server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from newsmon.config import load_config
from newsmon.warehouse import open_reader
from tests.fakesite import Item, article_page, article_text, rss20
from tests.test_ingest_flow import config_text

# Serve an ingest deployment on a short interval, as `newsmon serve` does with the crons. Not
# shorter: each run is a process importing Prefect, and a pile of them starves a small machine.
SERVE_SCRIPT = """
import sys
from pathlib import Path
from prefect.schedules import Interval
from newsmon.config import load_config
from newsmon.flows.deployments import deployment, serve
from newsmon.flows.ingest import ingest_flow
from newsmon.prefect_server import prefect_api

config = load_config(Path(sys.argv[1]))
with prefect_api(config.base_dir / ".prefect") as url:
    print("API", url, flush=True)
    serve([deployment(ingest_flow, config, Interval(15))])
"""
FIRE_TIMEOUT_SECONDS = 150  # a fresh local server migrates its database first (~30 s here)


def test_deployments_follow_the_schedule_in_the_config(write_config):
    from newsmon.flows.deployments import deployments

    path = write_config('timezone = "Europe/Berlin"\n[schedule]\n'
                        'ingest_cron = "5 * * * *"\ndigest_cron = "30 6 * * 2"\n')
    built = {d.flow_name: d for d in deployments(load_config(path))}

    assert sorted(built) == ["digest", "ingest"]
    for flow, cron in (("ingest", "5 * * * *"), ("digest", "30 6 * * 2")):
        (schedule,) = built[flow].schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, "Europe/Berlin")
        assert built[flow].parameters == {"config_path": str(path)}
        assert built[flow].entrypoint == f"newsmon.flows.{flow}.{flow}_flow"


@pytest.mark.usefixtures("prefect_harness")
def test_a_configured_prefect_api_is_used_as_it_is(tmp_path):
    from prefect.settings import PREFECT_API_URL

    from newsmon.prefect_server import prefect_api

    with prefect_api(tmp_path / ".prefect") as url:
        assert url == PREFECT_API_URL.value()
    assert not (tmp_path / ".prefect").exists()  # no local server was started


def test_a_served_deployment_fires_on_its_schedule_and_leaves_a_run_row(site, write_config,
                                                                        tmp_path):
    site.page("/news/1.html", article_page("Story 1", article_text(1)))
    site.feed("/feed.xml", rss20("Feed", [Item("Story 1", site.url("/news/1.html"), "s1")]))
    config = load_config(write_config(config_text(site, ["/feed.xml"])))
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "client-home"),  # no user profile with an API URL
               PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the runs
    with log.open("w") as output:
        serving = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, str(config.source)],
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + FIRE_TIMEOUT_SECONDS
        runs = []
        while not runs and time.monotonic() < deadline and serving.poll() is None:
            time.sleep(1)
            if config.analyst_copy_path.exists():
                with open_reader(config.analyst_copy_path) as con:
                    runs = con.execute("SELECT run_id, status FROM runs "
                                       "WHERE flow = 'ingest' AND status = 'completed'").fetchall()
        assert runs, f"no ingest run was recorded by the served deployment:\n{log.read_text()}"
        api_url = re.search(r"^API (\S+)$", log.read_text(), re.MULTILINE).group(1)
        assert httpx.get(f"{api_url}/health", timeout=5).status_code == 200
        assert (config.base_dir / ".prefect" / "prefect.db").exists()
    finally:
        serving.send_signal(signal.SIGTERM)  # as a service manager stops `newsmon serve`
        try:
            serving.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serving.kill()
            serving.wait()
    assert serving.returncode == 0, log.read_text()
    with pytest.raises(httpx.TransportError):  # the local server stopped with it
        httpx.get(f"{api_url}/health", timeout=5)
