"""The analyst copy: a read-only snapshot of the warehouse, published after every writing run.

DuckDB lets one process write a file or many read it, never both, so an analyst session left
open on the live file would stop the scheduled runs. Analysts open this copy instead. It is
replaced atomically (written beside it, then renamed over it): a session already open keeps
reading the snapshot it opened (on Linux the old file lives on until its last reader closes
it), the next session opens the new one, and the writer never waits for either.

A plain file copy is enough because it is taken with the writer lock held and the writer's
connection closed: DuckDB checkpoints on close, so the file then holds every committed change
and nothing writes it while it is copied. (Rebuilding the copy with ATTACH and COPY FROM
DATABASE would also work, but rewrites every row; a file copy is a sequential read.)
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import duckdb

# COPY ... TO options per export format. JSON is one array, which every tool reads; DuckDB's
# default (one object per line) is not valid JSON as a whole.
EXPORT_OPTIONS = {
    "csv": "FORMAT csv, HEADER true",
    "json": "FORMAT json, ARRAY true",
    "parquet": "FORMAT parquet",
}
EXPORT_VIEW = "newsmon_export"


def default_copy_path(live: Path) -> Path:
    """``<stem>.analyst<suffix>`` beside the live file, the default of Config.analyst_copy_path."""
    return live.with_name(f"{live.stem}.analyst{live.suffix}")


def publish(live: Path, copy: Path) -> None:
    """Copy the live warehouse file to ``copy`` and swap it in atomically.

    Call it with the writer lock held and the writer connection closed (see the module doc).
    """
    copy.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".tmp", dir=copy.parent)
    temporary = Path(name)
    try:
        os.close(fd)
        shutil.copyfile(live, temporary)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())  # the rename must never expose a half-written file
        # Readable by whoever may read the live file, writable by no one: DuckDB then refuses
        # to open it for writing, and analysts' changes cannot silently vanish at the next swap.
        os.chmod(temporary, stat.S_IMODE(live.stat().st_mode) & ~0o222)
        # A write-ahead log beside the copy can only come from a session that wrote into an
        # earlier copy (root ignores the mode); replayed against this one it would corrupt it.
        copy.with_name(copy.name + ".wal").unlink(missing_ok=True)
        os.replace(temporary, copy)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def export(con: duckdb.DuckDBPyConnection, query: str, fmt: str, path: Path) -> int:
    """Write the result of ``query`` to ``path`` as csv, json or parquet; the number of rows.

    Raises duckdb.Error for a bad query.
    """
    result = con.sql(query)
    # A registered relation streams into COPY, so any query DuckDB accepts can be exported,
    # including SHOW, DESCRIBE and FROM-first syntax that would not nest inside COPY (...).
    con.register(EXPORT_VIEW, result)
    try:
        target = str(path).replace("'", "''")
        (rows,) = con.execute(
            f"COPY {EXPORT_VIEW} TO '{target}' ({EXPORT_OPTIONS[fmt]})"
        ).fetchone()
    finally:
        con.unregister(EXPORT_VIEW)
    return rows
