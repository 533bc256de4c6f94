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
# Sending the last queued logs and events to the local API takes well under a second.
LOOP_EXIT_TIMEOUT_SECONDS = 10


@contextmanager
def run_settings() -> Iterator[None]:
    """Prefect settings for flows run in newsmon's own process (the CLI, the benchmarks).

    On the ephemeral API (no ``PREFECT_API_URL``), flow-run heartbeats are turned off: they exist
    so that a server can notice a crashed run, but the ephemeral server dies with the process,
    and every flow run waits up to a second at its end for the heartbeat thread to wake and
    stop (an empty flow run took 1.2 s with them, 0.2 s without). A run that dies is still
    marked 'interrupted' in newsmon's own runs table by the next run.

    On leaving, Prefect's background loop is stopped (see ``stop_prefect_loop``).
    """
    # Imported here, not above: the environment defaults must be set before Prefect loads.
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    try:
        if get_current_settings().api.url or HEARTBEAT_ENV_VAR in os.environ:
            yield
        else:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                yield
    finally:
        stop_prefect_loop()


def stop_prefect_loop() -> None:
    """Stop Prefect's background event loop, draining its log and event workers.

    The loop runs in a daemon thread that Prefect never stops. At exit it still holds copies of
    the runs' contexts (in its timers and shutdown hooks), and through them the flows' modules
    and DuckDB's types, which DuckDB's bindings then report as "leaked" in dozens of lines.
    Stopped, it sends what is queued and lets them go; a later flow run starts a new one.
    Prefect has no public call for this; constraints.txt pins the version it was checked on.
    """
    from prefect._internal.concurrency.threads import wait_for_global_loop_exit

    wait_for_global_loop_exit(timeout=LOOP_EXIT_TIMEOUT_SECONDS)
