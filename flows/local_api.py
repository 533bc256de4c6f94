"""The temporary Prefect API a CLI run reports to when no PREFECT_API_URL is configured.

Prefect's own temporary server (started by its client on first use) is a plain child in newsmon's
process group: ``timeout`` or a scheduler's SIGTERM to the group stopped it before newsmon had
finished reporting, and a ``kill -9`` of newsmon left it running. This one is served by the
same command Prefect uses (uvicorn on Prefect's app factory, UI off, the ephemeral server's
reduced set of services), but in its own session, so only newsmon stops it, after the run has
reported; and on Linux it asks the kernel to kill it when newsmon dies (PR_SET_PDEATHSIG), so a
killed run leaves no process behind.

Started with ``start_local_api`` before Prefect is imported, its own start (about 3 s: imports,
then the database check) overlaps with that import instead of following it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from newsmon.prefect_server import free_port, stop_process_group

STOP_TIMEOUT_SECONDS = 5
# uvicorn exits with 3 when its port was taken between our choosing it and its binding it.
PORT_TAKEN_EXIT_CODE = 3
START_ATTEMPTS = 3

# Run as ``python -c`` in the child, before uvicorn loads: a preexec_fn would run between fork
# and exec in a parent that already has threads, which Python warns can deadlock.
_CHILD = """\
import os, runpy, sys
if sys.platform == "linux":
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[1]):  # newsmon died before the line above
        sys.exit(0)
sys.argv = ["uvicorn", *sys.argv[2:]]
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


class LocalApiError(RuntimeError):
    """The temporary Prefect API did not start."""


class LocalApi:
    """A Prefect API served by a child process of this one, on a free loopback port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._launch()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _launch(self) -> None:
        spec = importlib.util.find_spec("prefect")  # its location only: importing costs 0.8 s
        assert spec is not None and spec.origin is not None
        self.port = free_port()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(os.getpid()),
             "--app-dir", str(Path(spec.origin).parent.parent),
             "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def wait_until_healthy(self, timeout: float) -> None:
        """Return once the API answers its health check; raise LocalApiError if it cannot."""
        assert self.process is not None, "stopped"
        deadline = time.monotonic() + timeout
        attempts = 1
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code == PORT_TAKEN_EXIT_CODE and attempts < START_ATTEMPTS:
                    attempts += 1
                    self._launch()
                elif code is not None:
                    raise LocalApiError(f"the temporary Prefect API exited with code {code}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                time.sleep(0.05)
        self.stop()
        raise LocalApiError(f"the temporary Prefect API did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """End the server and anything it started (its session's process group). Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, STOP_TIMEOUT_SECONDS)


def start_local_api() -> LocalApi | None:
    """Start a temporary Prefect API unless PREFECT_API_URL names one; ``run_settings`` waits
    for it and points Prefect at it (or stops it, if a Prefect profile names a server)."""
    return None if os.environ.get("PREFECT_API_URL") else LocalApi()
