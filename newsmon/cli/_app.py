"""The typer application and what every command shares: the config option and error exits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from newsmon.config import CONFIG_ENV_VAR, Config, ConfigError, load_config

app = typer.Typer(
    name="newsmon",
    help="Watch news feeds, classify topic and stance, and mail a weekly digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"Config file (default: ${CONFIG_ENV_VAR}, else ./newsmon.toml).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    ctx.obj = {"config_path": config}


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr; raise the returned Exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def get_config(ctx: typer.Context) -> Config:
    """The config named on the command line (or by default), or a clear exit before any work."""
    try:
        return load_config(ctx.obj.get("config_path") if ctx.obj else None)
    except ConfigError as exc:
        raise fail(str(exc)) from None
