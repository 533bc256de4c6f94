"""The typer application and what every command shares: the config option, --verbose and error
exits."""

from __future__ import annotations

import copy as copy_module
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from newsmon.config import CONFIG_ENV_VAR, Config, ConfigError, load_config

CONFIG_HELP = f"Config file (default: ${CONFIG_ENV_VAR}, else ./newsmon.toml)."


def _remember_config(ctx: Any, _param: Any, value: Path | None) -> Path | None:
    if value is not None:
        ctx.ensure_object(dict)["config_path"] = value
    return value


def _add_config_option(command: Any, option: Any) -> None:
    """Give ``command`` (and each command under it) a copy of the root's ``--config`` that
    stores its value in the shared context object instead of passing it to the function."""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _add_config_option(sub, option)
    elif not any(param.name == option.name for param in command.params):
        copy = copy_module.copy(option)
        copy.expose_value = False
        copy.callback = _remember_config
        command.params.append(copy)


class ConfigAnywhere(TyperGroup):
    """The root command group: every command also takes ``--config`` after its own name.

    The README says every command takes it, and `newsmon ingest --config FILE` is how people
    type it; the value lands where the global option's does (the shared context object).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        (option,) = (param for param in self.params if param.name == "config")
        for command in self.commands.values():
            _add_config_option(command, option)


app = typer.Typer(
    name="newsmon",
    help="Watch news feeds, classify topic and stance, and mail a weekly digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ConfigAnywhere,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help=CONFIG_HELP, dir_okay=False),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's own INFO log lines.")
    ] = False,
) -> None:
    ctx.ensure_object(dict)["config_path"] = config
    # Read when Prefect loads, which no command has done yet. Prefect's INFO lines (a line per
    # flow and task run) tear the progress bars and repeat what the summary says.
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    else:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr, exactly as given (paths and messages may hold
    brackets, which are not markup); raise the returned Exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def get_config(ctx: typer.Context) -> Config:
    """The config named on the command line (or by default), or a clear exit before any work."""
    try:
        return load_config(ctx.obj.get("config_path") if ctx.obj else None)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def wait_for_warehouse(config: Config) -> None:
    """Before a flow starts: wait, saying so, while another run writes the warehouse, or exit
    with a plain error (no flow-run traceback) once warehouse.lock_timeout_seconds have passed."""
    from newsmon.warehouse.db import WarehouseBusy, wait_until_free

    def say_waiting() -> None:
        err_console.print(
            f"another newsmon run is writing to {config.warehouse_path}; waiting up to "
            f"{config.warehouse.lock_timeout_seconds:.0f} s for it to finish",
            markup=False, highlight=False, soft_wrap=True)

    try:
        wait_until_free(config, say_waiting)
    except WarehouseBusy as exc:
        raise fail(str(exc)) from None
