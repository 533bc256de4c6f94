"""The `newsmon` command (the entry point in pyproject.toml) and `python -m newsmon`.

The command's script imports this module, and multiprocessing imports that script again in
every extraction worker its forkserver starts, recycled ones included. So the CLI is imported
only when ``main`` runs: at the top here it would cost each worker half a second of typer,
pydantic and pyarrow imports, and their memory, for nothing.
"""

import signal
import sys
from types import FrameType

# What a shell reports for a process ended by SIGTERM; schedulers read it as "stopped".
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


class _Terminated:
    """SIGTERM handler: the first one takes the Ctrl-C path, later ones are ignored.

    Every scheduler, and ``timeout``, sends SIGTERM first. As a KeyboardInterrupt in the main
    thread it reaches the code a Ctrl-C reaches: the batch being stored is rolled back, the run
    is recorded as interrupted, the extraction workers and the temporary Prefect API are
    stopped, in that order. A second SIGTERM must not break into that clean-up.
    """

    received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = True
            raise KeyboardInterrupt


def main() -> None:
    terminated = _Terminated()
    signal.signal(signal.SIGTERM, terminated)
    from newsmon.cli import app

    try:
        app()
    except SystemExit:
        if terminated.received:
            sys.exit(TERMINATED_EXIT_CODE)
        raise


if __name__ == "__main__":
    main()
