"""Shared fixtures: a Prefect test harness for the session, and configs written per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import newsmon.flows  # noqa: F401  (sets newsmon's Prefect defaults before Prefect is imported)


@pytest.fixture(scope="session")
def prefect_harness():
    """A real, temporary Prefect API (SQLite) shared by every test that runs a flow.

    Without flow-run heartbeats, as newsmon runs its flows on the ephemeral API (each flow run
    would otherwise wait up to a second for the heartbeat thread at its end).
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from newsmon.flows import stop_prefect_loop

    try:
        with (
            prefect_test_harness(server_startup_timeout=120),
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        ):
            yield
    finally:
        # As newsmon's own commands do: left running, Prefect's loop holds the runs' contexts
        # until exit, and DuckDB's bindings then report their types as leaked.
        stop_prefect_loop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a newsmon.toml into the test's folder; its relative paths resolve there."""

    def write(body: str) -> Path:
        path = tmp_path / "newsmon.toml"
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def site():
    """A threaded HTTP server on 127.0.0.1 serving a site the test writes (tests/fakesite.py)."""
    from pytest_httpserver import HTTPServer

    from tests.fakesite import Site

    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        yield Site(server)
    finally:
        server.clear()
        server.stop()
