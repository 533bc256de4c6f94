"""newsmon's Prefect flows. Importing this package sets the Prefect defaults newsmon relies on
(an explicit environment variable always wins)."""

import os

# Telemetry from a local server logs "database is locked" tracebacks, and there is no one to
# send it to offline.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The ephemeral API migrates a fresh SQLite database on its first start (15 s seen here), which
# overruns Prefect's 20 s default on a busy two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
