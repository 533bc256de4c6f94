"""newsmon's Prefect flows. Importing this package sets the Prefect defaults newsmon relies on
(an explicit environment variable always wins)."""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from newsmon.flows.local_api import LocalApi, start_local_api

if TYPE_CHECKING:
    from rich.console import Console

# Telemetry from a local server logs "database is locked" tracebacks, and there is no one to
# send it to offline.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Likewise Prefect's client telemetry, which also prints a notice over the first run in a
# terminal. DO_NOT_TRACK is the convention Prefect reads; a user's own value wins.
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary API migrates a fresh SQLite database on its first start (15 s seen here), which
# overruns a 20 s limit on a busy two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

HEARTBEAT_ENV_VAR = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
API_URL_ENV_VAR = "PREFECT_API_URL"
# Sending the last queued logs and events to the local API takes well under a second.
LOOP_EXIT_TIMEOUT_SECONDS = 10

__all__ = ["HEARTBEAT_ENV_VAR", "LocalApi", "logs_through", "run_settings", "start_local_api",
           "stop_prefect_loop"]


@contextmanager
def run_settings(api: LocalApi | None = None) -> Iterator[None]:
    """Prefect settings for flows run in newsmon's own process (the CLI, the benchmarks).

    Without a configured ``PREFECT_API_URL``, the flows report to a temporary API that newsmon
    starts itself (``api``, begun early by the caller so that its start overlaps the caller's
    imports, or started here): unlike Prefect's own temporary server it is out of reach of a
    signal sent to newsmon's process group and dies with newsmon even on SIGKILL
    (``newsmon.flows.local_api``). It is stopped last, after Prefect's background loop has sent
    it the run's final states and logs.

    On that temporary API, flow-run heartbeats are turned off: they exist so that a server can
    notice a crashed run, but this one dies with the process, and every flow run waits up to a
    second at its end for the heartbeat thread to wake and stop (an empty flow run took 1.2 s
    with them, 0.2 s without). A run that dies is still marked 'interrupted' in newsmon's own
    runs table by the next run.
    """
    # Imported here, not above: the environment defaults must be set before Prefect loads.
    from prefect.context import refresh_global_settings_context
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    with ExitStack() as stack:
        if api is not None:
            stack.callback(api.stop)  # registered first, so it runs last
        if get_current_settings().api.url:
            if api is not None:
                api.stop()  # a Prefect profile names a server after all
        else:
            if api is None:
                api = LocalApi()
                stack.callback(api.stop)
            api.wait_until_healthy(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
            # In the environment and the process-wide settings too: Prefect's background
            # threads (its events worker) do not see a temporary_settings context, and without
            # a URL they start Prefect's own temporary server after all.
            os.environ[API_URL_ENV_VAR] = api.url
            stack.callback(refresh_global_settings_context)
            stack.callback(os.environ.pop, API_URL_ENV_VAR, None)
            refresh_global_settings_context()
            updates: dict = {PREFECT_API_URL: api.url}
            if HEARTBEAT_ENV_VAR not in os.environ:
                updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
            stack.enter_context(temporary_settings(updates=updates))
        stack.callback(stop_prefect_loop)
        yield


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


@contextmanager
def logs_through(console: "Console") -> Iterator[None]:
    """Prefect's console log lines printed by ``console`` for the duration of the block.

    Prefect's handler prints to the stderr it found when logging was configured, beneath a
    progress display drawn by another console, and tears it; printed by the display's own
    console, each line goes above the bars.
    """
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = {handler for name in ("prefect", "")
                for handler in logging.getLogger(name).handlers
                if isinstance(handler, PrefectConsoleHandler)}
    before = {handler: handler.console for handler in handlers}
    for handler in handlers:
        handler.console = _LiteralPrinter(console)
    try:
        yield
    finally:
        for handler, original in before.items():
            handler.console = original


class _LiteralPrinter:
    """Prints log lines as they are: a URL or message with brackets is not rich markup."""

    def __init__(self, console: "Console") -> None:
        self._console = console

    def print(self, message: str, **options: object) -> None:
        self._console.print(message, markup=False, highlight=False, **options)
