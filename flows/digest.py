"""The weekly digest flow: gather a week from the warehouse, render and save it, mail it once.

Only orchestration lives here; the work is in newsmon.digest. The run holds the warehouse's
writer lock from start to finish, like every newsmon run: start_run treats a run still marked
running under the lock as killed, so the lock cannot be let go while mail is being sent. A
send is seconds; only retries (minutes) delay an ingest waiting for the lock, never fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import State

from newsmon.config import Config, EmailSettings, load_config
from newsmon.digest.charts import make_charts
from newsmon.digest.mail import SendError, build_message, send_message, smtp_password
from newsmon.digest.render import DigestFiles, render, save
from newsmon.digest.report import DigestReport, gather
from newsmon.digest.weeks import IsoWeek, refusal
from newsmon.warehouse.db import open_warehouse
from newsmon.warehouse.digest import (
    DigestRecord,
    digest_record,
    record_render,
    record_send_failure,
    record_sent,
)
from newsmon.warehouse.runs import finish_run, start_run

FLOW_NAME = "digest"
# Waits before each retry of a failed send: a mail server restarting or greylisting us
# (4xx "try again later") is usually back within minutes; a wrong password or a refused
# address is not retried at all.
SEND_RETRY_DELAYS_SECONDS = [30, 120, 300]


class DigestNotSent(Exception):
    """Sending failed after the retries; the digest's files were saved all the same."""


class WeekNotDue(ValueError):
    """The week has not ended (or not begun): its digest would be incomplete."""


@dataclass(frozen=True)
class DigestOutcome:
    week: str
    articles: int
    files: DigestFiles | None  # None when the week had no articles: nothing was rendered
    sent_to: list[str]
    not_sent_because: str | None  # None when it was sent


@task(cache_policy=NO_CACHE)
def read_week(
    con: duckdb.DuckDBPyConnection, config: Config, week: IsoWeek
) -> tuple[DigestReport, DigestRecord | None]:
    return gather(con, config, week), digest_record(con, str(week))


@task(cache_policy=NO_CACHE)
def render_and_save(
    config: Config, report: DigestReport, name: str
) -> tuple[EmailMessage, DigestFiles]:
    charts = make_charts(report)
    rendered = render(report, charts, config.email.subject_prefix)
    message = build_message(config.email, rendered, charts)
    return message, save(config.digests_path, name, rendered, bytes(message))


def _retry_if_transient(task: object, task_run: object, state: State) -> bool:
    """Prefect's retry_condition_fn: retry only errors that trying again may cure."""
    try:
        state.result()
    except SendError as exc:
        return exc.transient
    return False


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_if_transient)
def send_mail(settings: EmailSettings, message: EmailMessage) -> None:
    send_message(settings, message, smtp_password(settings))


def reason_not_to_send(
    send: bool, force: bool, record: DigestRecord | None, recipients: list[str]
) -> str | None:
    if not send:
        return "not sent (--no-send)"
    if not recipients:
        return "not sent: no recipients configured ([email] to = [...])"
    if record is not None and record.sent_at is not None and not force:
        return (
            f"not sent: already sent {record.sent_at:%Y-%m-%d %H:%M %Z} to "
            f"{', '.join(record.recipients)}; use --force to send it again"
        )
    return None


@flow(name=FLOW_NAME)
def digest_flow(
    config_path: str | None = None,
    week: str | None = None,
    send: bool = True,
    force: bool = False,
) -> DigestOutcome:
    """Render the digest for `week` (default: the last complete ISO week), save it, mail it.

    A week with no articles is neither rendered nor recorded: a feed may be down, and its
    articles may still arrive, so the next run tries the week again. A week not ended yet is
    refused (WeekNotDue), but the week under way can be previewed with send=False and
    force=True: saved as <week>-preview, neither mailed nor recorded as the week's digest.
    """
    logger = get_run_logger()
    config = load_config(Path(config_path) if config_path else None)
    now = datetime.now(UTC)
    iso_week = IsoWeek.parse(week) if week else IsoWeek.last_complete(config.zone, now)
    refused = refusal(iso_week, config.zone, now, preview=force and not send)
    if refused:
        raise WeekNotDue(refused)
    preview = not iso_week.has_ended(config.zone, now)
    run_id = str(flow_run.id)
    counts = {"articles": 0, "sent": 0}
    files: DigestFiles | None = None

    with open_warehouse(config) as con:
        start_run(con, run_id, FLOW_NAME)
        try:
            report, record = read_week(con, config, iso_week)
            counts["articles"] = report.total
            if report.empty:
                reason = (
                    f"no articles dated in {iso_week} yet: nothing to mail, and the week is "
                    "not recorded as done"
                )
                logger.info("Digest %s: %s", iso_week, reason)
            elif preview:
                _, files = render_and_save(config, report, f"{iso_week}-preview")
                reason = "a preview of a week not ended yet: not sent, not recorded"
                logger.info("Preview of %s saved as %s", iso_week, files.html)
            else:
                message, files = render_and_save(config, report, str(iso_week))
                record_render(con, str(iso_week), run_id, report.total, files.as_strings())
                logger.info(
                    "Digest %s: %d articles, saved as %s", iso_week, report.total, files.html
                )
                reason = reason_not_to_send(send, force, record, config.email.to)
                if reason is None:
                    # Options applied here, not in the decorator, so the delays are read when
                    # it runs.
                    send_mail.with_options(
                        retries=len(SEND_RETRY_DELAYS_SECONDS),
                        retry_delay_seconds=SEND_RETRY_DELAYS_SECONDS,
                    )(config.email, message)
                    record_sent(con, str(iso_week), str(message["Message-ID"]), config.email.to)
                    counts["sent"] = 1
                    logger.info("Digest %s sent to %s", iso_week, ", ".join(config.email.to))
        except SendError as exc:
            error = (
                f"digest {iso_week} was not sent: {exc}. It was saved as {files.html} (.txt, .eml)"
            )
            record_send_failure(con, str(iso_week), str(exc))
            finish_run(con, run_id, "failed", counts, [error])
            raise DigestNotSent(error) from exc
        except Exception as exc:
            finish_run(con, run_id, "failed", counts, [f"{type(exc).__name__}: {exc}"])
            raise
        finish_run(con, run_id, "completed", counts)

    return DigestOutcome(
        week=str(iso_week),
        articles=report.total,
        files=files,
        sent_to=list(config.email.to) if counts["sent"] else [],
        not_sent_because=reason,
    )
