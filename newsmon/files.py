"""Replacing a file whole or not at all, for files that people and other runs read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def replacing(target: Path) -> Iterator[BinaryIO]:
    """A new file that becomes ``target`` when the block ends without an error: a reader, a
    crash or a failed write sees the old file or the new one, never part of either.

    The file is created as open() would create it (mode 0666 less the umask, not mkstemp's
    0600), or with the mode of the file it replaces.
    """
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{id(target):x}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if target.exists():
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
