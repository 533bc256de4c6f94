"""The ``newsmon`` command. Each module below adds its commands to the one typer app."""

from newsmon.cli import demo, digest, ingest, model, ops  # noqa: F401  (each registers commands)
from newsmon.cli._app import app

__all__ = ["app"]
