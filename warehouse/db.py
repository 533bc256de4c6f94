"""Opening the warehouse: one writer at a time, migrations applied on open.

DuckDB lets one process open a file for writing, or several for reading, never both. newsmon
therefore takes a file lock beside the database before it opens it for writing, so that a
second run waits its turn (and then reports clearly) instead of failing on DuckDB's own lock.
Readers (analysts, `newsmon sql`, `newsmon status`) open the analyst copy that every writer
publishes when it closes (newsmon.warehouse.analyst), so they never hold the live file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from filelock import FileLock, Timeout

from newsmon.warehouse.analyst import default_copy_path, publish

if TYPE_CHECKING:  # the config module imports the analyst copy's naming rule from here
    from newsmon.config import Config

MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name) VALUES (?, ?)"


class WarehouseBusy(Exception):
    """Another process holds the warehouse's writer lock for longer than we were willing to wait."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every numbered migration, in order."""
    found = []
    for entry in resources.files("newsmon.warehouse").joinpath("migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {[name for _, name, _ in found]}")
    return found


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll all of it back if the block raised."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations this database has not seen, each in its own transaction."""
    con.execute(CREATE_MIGRATIONS_TABLE)
    applied = {row[0] for row in con.execute(APPLIED_VERSIONS).fetchall()}
    done = []
    for version, name, sql in migrations():
        if version in applied:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute(RECORD_MIGRATION, [version, name])
        done.append(name)
    return done


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _acquire(database: Path, lock_timeout: float) -> FileLock:
    lock = FileLock(str(lock_path(database)))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        # How long *this* run waited: when the other run took the lock is not known here.
        raise WarehouseBusy(
            f"{database}: another newsmon run is writing to it; waited {lock_timeout:.0f} s for "
            "it to finish (warehouse.lock_timeout_seconds). Try again when it has finished"
        ) from None
    return lock


def wait_until_free(config: Config, on_wait: Callable[[], None]) -> None:
    """Return once no other run holds the writer lock, calling ``on_wait`` first if one does;
    WarehouseBusy after ``warehouse.lock_timeout_seconds``.

    Commands call it before they start a flow, so a busy warehouse is reported plainly rather
    than as a failed flow run with its traceback. The flow still takes the lock itself.
    """
    database = config.warehouse_path
    if not database.exists():
        return
    lock = FileLock(str(lock_path(database)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        on_wait()
        lock = _acquire(database, config.warehouse.lock_timeout_seconds)
    lock.release()


@contextmanager
def open_writer(
    database: Path, lock_timeout: float = 1800, analyst_copy: Path | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse opened for writing, migrated, under the writer lock; checkpointed on close,
    then published as the analyst copy (``analyst_copy``, default beside the live file)."""
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = _acquire(database, lock_timeout)
    try:
        con = duckdb.connect(str(database))
        try:
            migrate(con)
            yield con
            con.execute("CHECKPOINT")
        finally:
            con.close()
            # After a failed run too: what it committed, and its runs row saying why, is what
            # analysts and `newsmon status` need to see. Still under the lock: nothing writes.
            publish(database, analyst_copy or default_copy_path(database))
    finally:
        lock.release()


@contextmanager
def peek_live(config: Config) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The live warehouse read-only, under the writer lock, or None if it does not exist yet.

    For a look before deciding whether a run is needed at all (nothing to classify): no
    migration, no checkpoint, no analyst copy published, so it costs milliseconds where a
    writer's close copies the whole file. Holding the lock, nothing writes meanwhile.
    """
    database = config.warehouse_path
    if not database.exists():
        yield None
        return
    lock = _acquire(database, config.warehouse.lock_timeout_seconds)
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            yield con
    finally:
        lock.release()


def open_warehouse(config: Config) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The configured warehouse, opened for writing as `open_writer` does."""
    return open_writer(
        config.warehouse_path, config.warehouse.lock_timeout_seconds, config.analyst_copy_path
    )


@contextmanager
def open_reader(database: Path, timezone: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection. Use it on the analyst copy, not on the live file.

    ``timezone`` (an IANA name) sets the session's TimeZone, in which DuckDB shows timestamps
    and the analyst views cut days and weeks.
    """
    con = duckdb.connect(str(database), read_only=True)
    try:
        if timezone:
            quoted = timezone.replace("'", "''")
            con.execute(f"SET TimeZone = '{quoted}'")
        yield con
    finally:
        con.close()
