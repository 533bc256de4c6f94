"""The scheduled deployments, built from the config's [schedule], and serving them.

`newsmon serve` serves these from one process (Prefect's Runner starts each flow run as a
subprocess). A team with a Prefect server and a work pool deploys the same flows with
prefect.yaml at the project root instead.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.logging import get_logger
from prefect.runner import Runner
from prefect.schedules import Cron, Schedule
from prefect.types.entrypoint import EntrypointType

from newsmon.config import Config

DEPLOYMENT_NAME = "scheduled"
logger = get_logger("newsmon.deployments")


def deployment(flow: Flow, config: Config, schedule: Schedule) -> RunnerDeployment:
    """``flow`` deployed to run with this config's file on ``schedule``."""
    return flow.to_deployment(
        name=DEPLOYMENT_NAME,
        schedule=schedule,
        parameters={"config_path": str(config.source)} if config.source else {},
        # By module, not file path: the runner then finds the flow from any working directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def deployments(config: Config) -> list[RunnerDeployment]:
    """Ingest (which classifies what it stored) on ingest_cron, the digest on digest_cron,
    both in the config's time zone."""
    from newsmon.flows.ingest import ingest_flow

    schedule = config.schedule
    found = [deployment(ingest_flow, config, Cron(schedule.ingest_cron, timezone=config.timezone))]
    try:
        from newsmon.flows.digest import digest_flow
    except ImportError as exc:
        # Serving ingest alone is better than serving nothing while the digest cannot load.
        logger.warning("not scheduling the digest: newsmon.flows.digest does not import (%s)", exc)
    else:
        found.append(
            deployment(digest_flow, config, Cron(schedule.digest_cron, timezone=config.timezone))
        )
    return found


class _Runner(Runner):
    """Prefect's Runner, stopped on SIGTERM from its own event loop.

    Prefect 3.8's handler raises SystemExit inside the signal handler, wherever the main thread
    happens to be. Raised in the middle of pydantic serialising a flow run (the runner was
    starting a scheduled one), it became a PydanticSerializationError, the runner went on
    polling and starting runs, and whoever sent SIGTERM had to kill it (tests/test_serve.py, on
    a busy machine). Stopping from the loop ends ``start()`` the way Ctrl-C does.
    """

    def handle_sigterm(self, *args: object, **kwargs: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving (yet, or any more): there is nothing to stop
            sys.exit(0)
        self._logger.info("SIGTERM received, stopping")
        # Thread-safe scheduling also wakes the loop if it is waiting in select().
        loop.call_soon_threadsafe(self._stop_soon)

    def _stop_soon(self) -> None:
        # Kept on the runner: the loop holds only a weak reference to a task.
        self._stop_task = asyncio.get_running_loop().create_task(self.astop())


def serve(deployments: Sequence[RunnerDeployment]) -> None:
    """Serve until interrupted. The schedules stay active when it stops (Prefect pauses them
    by default), so a restarted `newsmon serve` carries on without reactivating them."""
    runner = _Runner(pause_on_shutdown=False)
    for deployment in deployments:
        runner.add_deployment(deployment)
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in deployments)
    logger.info("serving %s until stopped (Ctrl-C or SIGTERM)", names)
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        logger.info("interrupted, stopping")
