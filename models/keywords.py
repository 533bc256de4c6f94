"""The topic keyword rule: what newsmon can say about topic before it has a topic model.

With labelled examples of only one topic (the shipped seeds) no classifier can learn what
"another topic" or "no topic" looks like. The configured keywords still tell something: an
article that names the topic's keywords several times is probably about it. The rule gives no
confidence, because nothing labelled measures how often it is right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from newsmon.labels import NO_TOPIC

# One passing mention is common in unrelated news (a round-up, a sidebar); two or more are not.
MIN_KEYWORD_HITS = 2


@dataclass(frozen=True)
class KeywordRule:
    keywords: Mapping[str, tuple[str, ...]]  # topic id -> keywords

    def __post_init__(self) -> None:
        patterns = {
            topic: re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
            for topic, words in self.keywords.items()
            if words
        }
        object.__setattr__(self, "_patterns", patterns)

    @property
    def topics(self) -> list[str]:
        return sorted(self._patterns)

    def hits(self, document: str) -> dict[str, int]:
        return {topic: len(pattern.findall(document)) for topic, pattern in self._patterns.items()}

    def predict(self, documents: Sequence[str]) -> list[tuple[str, int]]:
        """(topic or 'none', keyword mentions of that topic) for each document."""
        out = []
        for document in documents:
            counts = self.hits(document)
            best = max(counts, key=counts.__getitem__, default=None)
            if best is not None and counts[best] >= MIN_KEYWORD_HITS:
                out.append((best, counts[best]))
            else:
                out.append((NO_TOPIC, max(counts.values(), default=0)))
        return out
