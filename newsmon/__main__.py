"""The `newsmon` command (the entry point in pyproject.toml) and `python -m newsmon`.

The command's script imports this module, and multiprocessing imports that script again in
every extraction worker its forkserver starts, recycled ones included. So the CLI is imported
only when ``main`` runs: at the top here it would cost each worker half a second of typer,
pydantic and pyarrow imports, and their memory, for nothing.
"""


def main() -> None:
    from newsmon.cli import app

    app()


if __name__ == "__main__":
    main()
