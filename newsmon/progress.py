"""Progress reporting from flows to whoever is watching (the CLI's progress bars, or no one).

Flows run the same whether a person is watching or not; the CLI installs a listener for the
duration of a command, and a scheduled run has none, so reporting costs nothing there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressListener(Protocol):
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, amount: int = 1) -> None: ...
    def extend(self, stage: str, amount: int) -> None: ...


_listeners: list[ProgressListener] = []


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def start(stage: str, total: int) -> None:
    for listener in _listeners:
        listener.start(stage, total)


def advance(stage: str, amount: int = 1) -> None:
    for listener in _listeners:
        listener.advance(stage, amount)


def extend(stage: str, amount: int) -> None:
    """The stage has ``amount`` more to do than it was started with (found as it went)."""
    for listener in _listeners:
        listener.extend(stage, amount)
