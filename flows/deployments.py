"""The scheduled deployments, built from the config's [schedule], and serving them.

`newsmon serve` serves these from one process (Prefect's Runner starts each flow run as a
subprocess). A team with a Prefect server and a work pool deploys the same flows with
prefect.yaml at the project root instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import Flow
from prefect import serve as prefect_serve
from prefect.deployments.runner import RunnerDeployment
from prefect.logging import get_logger
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


def serve(deployments: Sequence[RunnerDeployment]) -> None:
    """Serve until interrupted. The schedules stay active when it stops (Prefect pauses them
    by default), so a restarted `newsmon serve` carries on without reactivating them."""
    prefect_serve(*deployments, pause_on_shutdown=False)
