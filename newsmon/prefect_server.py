"""A Prefect API that can schedule: the one in PREFECT_API_URL, else a local server started here.

Prefect's ephemeral API runs flows but cannot schedule them, so `newsmon serve` needs a real
server. Without one configured it starts `prefect server start` on loopback, with its own
PREFECT_HOME (SQLite database, logs) under the project, and stops it again on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# A fresh PREFECT_HOME migrates its SQLite database first: 28 s seen on a two-core machine,
# about 10 s on later starts.
STARTUP_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15
LOG_NAME = "server.log"


class PrefectServerError(Exception):
    """The local Prefect server did not start; the message says where its log is."""


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def _wait_until_healthy(url: str, server: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise PrefectServerError(
                f"the local Prefect server exited with code {server.returncode}; "
                f"the end of {log}:\n{_log_tail(log)}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.5)
    raise PrefectServerError(
        f"the local Prefect server did not answer {url}/health within {timeout:.0f} s; "
        f"see {log}"
    )


def stop_process_group(server: subprocess.Popen,
                       timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """End a server started in its own session (uvicorn and the services it started): SIGTERM
    to its process group, SIGKILL if it has not gone after ``timeout`` seconds."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextmanager
def prefect_api(home: Path, timeout: float = STARTUP_TIMEOUT_SECONDS) -> Iterator[str]:
    """The API URL to schedule against, for the duration of the block.

    With PREFECT_API_URL set (environment or Prefect profile) that server is used as it is.
    Otherwise a local server is started with PREFECT_HOME=``home`` and PREFECT_API_URL points
    at it, in this process and in the flow-run processes it starts, until the block ends.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / LOG_NAME
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with log.open("ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # Its own session, so Ctrl-C reaches newsmon only, which stops the runner first
            # and the server after it.
            start_new_session=True,
        )
    try:
        _wait_until_healthy(url, server, timeout, log)
        os.environ["PREFECT_API_URL"] = url  # inherited by the flow-run processes
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}):
                yield url
        finally:
            del os.environ["PREFECT_API_URL"]
    finally:
        stop_process_group(server)
