"""`newsmon digest`: render a week's digest from the warehouse, save it, and mail it once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from newsmon.cli._app import app, console, fail, get_config, wait_for_warehouse
from newsmon.digest.weeks import IsoWeek, refusal
from newsmon.warehouse.db import WarehouseBusy


@app.command()
def digest(
    ctx: typer.Context,
    week: Annotated[
        str | None,
        typer.Option(help="ISO week such as 2026-W47 (default: the last complete week)."),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send/--no-send", help="Mail it to email.to, or only save it.")
    ] = True,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Mail it even if this week's digest was sent already; with --no-send, "
            "preview the week under way.",
        ),
    ] = False,
) -> None:
    """Render the weekly digest (HTML, text, .eml under the digests folder) and mail it.

    A week's digest is due once the week has ended; a week with no articles is not mailed.
    """
    config = get_config(ctx)
    if week is not None:
        try:
            iso_week = IsoWeek.parse(week)
        except ValueError as exc:
            raise fail(f"--week: {exc}") from None
        refused = refusal(iso_week, config.zone, datetime.now(UTC), preview=force and not send)
        if refused:
            raise fail(f"--week: {refused}")
    wait_for_warehouse(config)
    if week is None and send and not force:
        # Looked at before Prefect loads and its API starts (seconds): often nothing is due.
        from newsmon.digest.due import due_week

        now = datetime.now(UTC)
        if due_week(config, now) is None:
            done = IsoWeek.last_complete(config.zone, now)
            console.print(f"Digest {done}: already done, none due (--force renders and sends "
                          "it again).", highlight=False, markup=False)
            return
    # Imported here: Prefect takes seconds to import, and only this command needs the flow.
    from newsmon.flows import run_settings
    from newsmon.flows.digest import DigestNotSent, digest_flow

    try:
        with run_settings():
            outcome = digest_flow(
                config_path=str(config.source) if config.source else None,
                week=week,
                send=send,
                force=force,
            )
    except (DigestNotSent, WarehouseBusy) as exc:
        raise fail(str(exc), code=1) from None
    if outcome.files is None:
        console.print(f"Digest {outcome.week}: {outcome.not_sent_because}.", highlight=False,
                      markup=False)
        return
    console.print(
        f"Digest {outcome.week}: {outcome.articles} articles. Saved {outcome.files.html} "
        "(and .txt, .eml).",
        highlight=False,
        markup=False,
    )
    if outcome.sent_to:
        console.print(f"Sent to {', '.join(outcome.sent_to)}.", highlight=False, markup=False)
    else:
        console.print(outcome.not_sent_because, highlight=False, markup=False)
