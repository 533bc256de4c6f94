"""The ``newsmon`` command. Each module below adds its commands to the one typer app."""

from newsmon.cli import ingest  # noqa: F401  (registers commands)
from newsmon.cli._app import app

__all__ = ["app"]
