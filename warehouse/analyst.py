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

`newsmon sql` opens the copy through `open_analyst_session`, a connection that can read this one
file and nothing else, whatever is typed into it; its exports are written here, by pyarrow,
outside DuckDB.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import duckdb

from newsmon.files import replacing

if TYPE_CHECKING:
    import pyarrow as pa

# An analyst session may read the analyst copy and nothing else. With external access off,
# DuckDB refuses every other file (read_text, read_csv, glob, COPY, EXPORT DATABASE, ATTACH,
# a live file included) and extension INSTALL or LOAD, and still reads the file it was opened
# on. Known extensions are neither fetched nor loaded behind the analyst's back (the ones built
# into the library, such as json and parquet, stay available).
SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# Last, once the session's own settings are made: after it no SET, RESET or PRAGMA can change
# any setting, so nothing typed can turn external access back on or widen what it allows.
LOCK_CONFIGURATION = "SET lock_configuration = true"
SET_TIMEZONE = "SET TimeZone = '{zone}'"
# Every column as DuckDB's own text: the CSV shows what the terminal shows (times in the
# session's zone, lists and structs as DuckDB writes them), which pyarrow could not write itself.
# Positional references keep duplicate and odd column names apart.
AS_TEXT = 'CAST(#{position} AS VARCHAR) AS "{name}"'

EXPORT_BATCH_ROWS = 65_536


class QueryError(Exception):
    """DuckDB refused the SQL, or its result could not be written; the message says why."""


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


@contextmanager
def _refused() -> Iterator[None]:
    """DuckDB's errors as QueryError, DuckDB's message unchanged."""
    try:
        yield
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None


class AnalystSession:
    """A connection to the analyst copy that reads that file and nothing else (see
    `open_analyst_session`). Every method raises QueryError for SQL that DuckDB refuses."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def statements(self, sql: str) -> list[str]:
        """The statements in ``sql``, parsed but not run: none if it holds only whitespace and
        comments. A syntax error anywhere refuses them all, so none of them runs."""
        with _refused():
            return [statement.query for statement in self._con.extract_statements(sql)]

    def run(self, statement: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement: its column names and at most its first ``limit`` rows."""
        with _refused():
            result = self._con.execute(statement)
            return [column for column, *_ in result.description], result.fetchmany(limit)

    def export(self, statement: str, fmt: str, target: Path | BinaryIO) -> int:
        """Write the result of one statement as ``fmt`` (csv, json as one array, or parquet) to
        ``target``, a file (replaced only once the whole result is written) or a binary stream;
        the number of rows written.

        DuckDB only runs the statement and hands its rows over as Arrow batches; pyarrow and
        the json module write them, so the session itself never needs to write a file.
        """
        # Imported here, not above: the config imports this module, and pyarrow would add 0.15 s
        # to every command.
        import pyarrow as pa

        with _refused():
            relation = self._con.sql(statement)
            if fmt == "csv":
                relation = relation.project(", ".join(
                    AS_TEXT.format(position=position, name=name.replace('"', '""'))
                    for position, name in enumerate(relation.columns, start=1)))
            reader = relation.to_arrow_reader(EXPORT_BATCH_ROWS)
        try:
            if isinstance(target, Path):
                with replacing(target) as out:
                    return WRITERS[fmt](reader.schema, _batches(reader), out)
            return WRITERS[fmt](reader.schema, _batches(reader), target)
        except OSError as exc:  # no such folder, a full disk, a closed pipe
            where = target if isinstance(target, Path) else getattr(target, "name", "the stream")
            raise QueryError(f"cannot write {where}: {exc.strerror or exc}") from None
        except pa.ArrowException as exc:  # a type the format cannot hold
            raise QueryError(f"cannot write this result as {fmt}: {exc}") from None


@contextmanager
def open_analyst_session(path: Path, timezone: str | None = None) -> Iterator[AnalystSession]:
    """The analyst copy at ``path``, read-only, in a session that can read no other file, write
    none, attach no database, install or load no extension, and change none of its settings.

    ``timezone`` (an IANA name) is set before the settings are locked: DuckDB shows timestamps
    in it and the analyst views cut days and weeks in it.
    """
    with _refused():
        con = duckdb.connect(str(path), read_only=True, config=SANDBOX_CONFIG)
    try:
        with _refused():
            if timezone:
                con.execute(SET_TIMEZONE.format(zone=timezone.replace("'", "''")))
            con.execute(LOCK_CONFIGURATION)
        yield AnalystSession(con)
    finally:
        con.close()


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches; an error DuckDB meets while it runs the statement (Arrow hands it
    on as an OSError) is the query's error, not the writer's."""
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise QueryError(str(exc)) from None
        yield batch


def _write_csv(schema: pa.Schema, batches: Iterator[pa.RecordBatch], out: BinaryIO) -> int:
    import pyarrow.csv as pa_csv

    return _write_with(pa_csv.CSVWriter(out, schema), batches)


def _write_parquet(schema: pa.Schema, batches: Iterator[pa.RecordBatch], out: BinaryIO) -> int:
    import pyarrow.parquet as pq

    return _write_with(pq.ParquetWriter(out, schema), batches)


def _write_with(writer: Any, batches: Iterator[pa.RecordBatch]) -> int:
    """Write every batch with a pyarrow writer (CSV or Parquet), close it; the rows written."""
    rows = 0
    with writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _json_value(value: Any) -> Any:
    """What the json module cannot write itself: dates and times as ISO 8601 text, decimals as
    numbers, anything else (blobs, durations) as text."""
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _write_json(_schema: pa.Schema, batches: Iterator[pa.RecordBatch], out: BinaryIO) -> int:
    """One JSON array of objects, an object a line: valid JSON as a whole, which every tool
    reads (JSON Lines is not)."""
    rows = 0
    out.write(b"[")
    for batch in batches:
        for row in batch.to_pylist():
            out.write(b",\n" if rows else b"\n")
            out.write(json.dumps(row, default=_json_value, ensure_ascii=False).encode())
            rows += 1
    out.write(b"\n]\n" if rows else b"]\n")
    return rows


WRITERS = {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}
