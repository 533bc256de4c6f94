"""Which week's digest is due, read from the warehouse's record of digests.

A plain read (no Prefect, no run, no analyst copy published), so that `newsmon digest` and the
cycle can tell "nothing to do" in milliseconds before any flow starts.
"""

from __future__ import annotations

from datetime import datetime

from newsmon.config import Config
from newsmon.digest.weeks import IsoWeek
from newsmon.warehouse.db import peek_live
from newsmon.warehouse.digest import digest_record


def due_week(config: Config, now: datetime) -> str | None:
    """The last complete week, if its digest was never rendered, or is still to be mailed."""
    week = str(IsoWeek.last_complete(config.zone, now))
    with peek_live(config) as con:
        record = None if con is None else digest_record(con, week)
    if record is None or (config.email.to and record.sent_at is None):
        return week
    return None
