"""One full cycle, the main job: ingest (which classifies at its end), then the weekly digest
when one is due. Each step is its own flow run, so the Prefect UI shows them separately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger

from newsmon.config import load_config
from newsmon.digest.due import due_week
from newsmon.digest.weeks import IsoWeek
from newsmon.flows.digest import DigestNotSent, DigestOutcome, digest_flow
from newsmon.flows.ingest import IngestResult, ingest_flow


@dataclass
class CycleResult:
    ingest: IngestResult
    digest: DigestOutcome | None
    digest_week: str


@flow(name="cycle")
def cycle_flow(config_path: str | None = None) -> CycleResult:
    """Ingest and classify, then render and mail the digest when one is due."""
    config = load_config(Path(config_path) if config_path else None)
    ingested = ingest_flow(config_path)
    week = due_week(config, datetime.now(UTC))
    digest = None
    if week is None:
        get_run_logger().info("the digest for the last complete week is done; none is due")
    else:
        try:
            digest = digest_flow(config_path, week=week, send=True)
        except DigestNotSent as exc:
            # Saved on disk, and tried again next cycle; the ingest itself went well.
            get_run_logger().error(str(exc))
    return CycleResult(ingested, digest, week or str(IsoWeek.last_complete(config.zone,
                                                                             datetime.now(UTC))))
