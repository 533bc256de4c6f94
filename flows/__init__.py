"""newsmon's Prefect flows. Importing this package sets the Prefect defaults newsmon relies on
(an explicit environment variable always wins)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

# Telemetry from a local server logs "database is locked" tracebacks, and there is no one to
# send it to offline.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The ephemeral API migrates a fresh SQLite database on its first start (15 s seen here), which
# overruns Prefect's 20 s default on a busy two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

HEARTBEAT_ENV_VAR = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


@contextmanager
def run_settings() -> Iterator[None]:
    """Prefect settings for flows run in newsmon's own process (the CLI, the benchmarks).

    On the ephemeral API (no ``PREFECT_API_URL``), flow-run heartbeats are turned off: they exist
    so that a server can notice a crashed run, but the ephemeral server dies with the process,
    and every flow run waits up to a second at its end for the heartbeat thread to wake and
    stop (an empty flow run took 1.2 s with them, 0.2 s without). A run that dies is still
    marked 'interrupted' in newsmon's own runs table by the next run.
    """
    # Imported here, not above: the environment defaults must be set before Prefect loads.
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if get_current_settings().api.url or HEARTBEAT_ENV_VAR in os.environ:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
