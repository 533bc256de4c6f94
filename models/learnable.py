"""Which classes a task can learn from its labels, and the note that says what it cannot.

Shared by the article tasks (topic, stance toward a topic's target) and the claim model, so that
each says the same thing, in the same words, about a class with too few examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# One example of a class cannot be held out to test it, nor tell the class's spread.
MIN_EXAMPLES = 2


def quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def plan(task: str, counts: Mapping[str, int]) -> tuple[list[str], str | None]:
    """The classes that can be learned (none unless at least two can), and a note on what
    cannot be, or None."""
    learnable = sorted(c for c, n in counts.items() if n >= MIN_EXAMPLES)
    scarce = sorted(c for c, n in counts.items() if n < MIN_EXAMPLES)
    scarce_note = (
        f"{quoted(scarce)} need at least {MIN_EXAMPLES} examples each, so are never predicted"
        if scarce
        else None
    )
    if not counts:
        return [], f"no {task} labels yet"
    if len(learnable) < 2:
        only = f"only {quoted(learnable)} has examples" if learnable else f"no {task} class has"
        if not learnable:
            only += f" {MIN_EXAMPLES} examples"
        return [], "; ".join(filter(None, [only, scarce_note]))
    return learnable, scarce_note
