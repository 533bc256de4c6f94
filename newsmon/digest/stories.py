"""One story, several outlets: group a week's articles that cover the same story; pick a lede.

Two articles are the same story when their texts are near-duplicates (simhash, the wire copy
case) or when their titles and opening words are similar (TF-IDF cosine) and they appeared
within a couple of days of each other. Groups are the connected components of those pairs.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.sparse import csr_matrix, triu
from sklearn.feature_extraction.text import TfidfVectorizer

# Cosine similarity of title + opening words above which two articles are one story. Checked
# by eye on wire rewrites: different outlets' takes on one event score 0.35-0.7, unrelated
# articles on the same topic rarely above 0.25.
SIMILARITY_THRESHOLD = 0.35
# Same-story coverage appears within days; a recurring headline ("Week in review") a week
# apart is not one story.
MAX_DAYS_APART = 2.0
# A word in more than this share of the week's articles (say "North Korea" in a topic about
# it) says nothing about which story an article covers. Small weeks keep every word.
MAX_DOCUMENT_SHARE = 0.05
MIN_DOCUMENT_CEILING = 10
# Characters of the article's opening compared besides the title: the first sentences carry
# the story's names and facts; further text adds time (the digest's largest cost) more than
# it helps.
OPENING_CHARS = 200
# Rows of the similarity matrix computed at once: bounds memory for large weeks.
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class StoryCandidate:
    title: str
    opening: str  # the start of the article text
    simhash: int | None
    dated_at: datetime


class _Components:
    """Union-find over article indices."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = defaultdict(list)
        for item in range(len(self.parent)):
            found[self.find(item)].append(item)
        return list(found.values())


def _near_duplicate_pairs(simhashes: Sequence[int | None], max_bits: int) -> list[tuple[int, int]]:
    """Pairs whose simhashes differ in at most `max_bits` bits, without comparing every pair.

    Cut the 64 bits into max_bits + 1 bands: two hashes that differ in at most max_bits bits
    agree exactly on at least one band (pigeonhole), so only articles sharing a band value are
    compared.
    """
    bands = max_bits + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    pairs = set()
    for low, high in itertools.pairwise(edges):
        mask = (1 << int(high - low)) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, value in enumerate(simhashes):
            if value is not None:
                buckets[(value >> int(low)) & mask].append(index)
        for members in buckets.values():
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    if (simhashes[a] ^ simhashes[b]).bit_count() <= max_bits:  # type: ignore[operator]
                        pairs.add((a, b))
    return sorted(pairs)


def _similar_pairs(candidates: Sequence[StoryCandidate]) -> list[tuple[int, int]]:
    # The title twice: it names the story more surely than any sentence of the text.
    documents = [f"{c.title} {c.title} {c.opening[:OPENING_CHARS]}" for c in candidates]
    ceiling = max(MIN_DOCUMENT_CEILING, int(MAX_DOCUMENT_SHARE * len(documents)))
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, max_df=ceiling)
    try:
        vectors = vectorizer.fit_transform(documents)
    except ValueError:  # no word left (empty titles, or every word too common)
        return []
    vectors = csr_matrix(vectors, dtype=np.float32)
    timestamps = np.array([c.dated_at.timestamp() for c in candidates])
    pairs = []
    for start in range(0, len(candidates), CHUNK_ROWS):
        block = triu(vectors[start : start + CHUNK_ROWS] @ vectors.T, k=start + 1).tocoo()
        keep = block.data >= SIMILARITY_THRESHOLD
        rows, cols = block.row[keep] + start, block.col[keep]
        close = np.abs(timestamps[rows] - timestamps[cols]) <= MAX_DAYS_APART * 86400
        pairs.extend(zip(rows[close].tolist(), cols[close].tolist(), strict=True))
    return pairs


def group_stories(
    candidates: Sequence[StoryCandidate], near_duplicate_bits: int
) -> list[list[int]]:
    """Indices of `candidates` grouped by story, each group in input order."""
    components = _Components(len(candidates))
    simhashes = [c.simhash for c in candidates]
    for a, b in _near_duplicate_pairs(simhashes, near_duplicate_bits) + _similar_pairs(candidates):
        components.union(a, b)
    return components.groups()


# A sentence ends at . ! or ? (maybe followed by a closing quote or bracket) and whitespace,
# unless the word before the stop is an initial or a common abbreviation ("U.S.", "Mr.").
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+")
_ABBREVIATION = re.compile(
    r"(?:\b[A-Z]\.|\b(?:Mr|Mrs|Ms|Dr|Prof|Gen|Col|Lt|Sgt|Rep|Sen|Gov|St|No|Jr|Sr|vs|etc|Inc|Co"
    r"|Corp|Ltd|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.)$"
)
# Lines shorter than this are navigation, bylines, captions' credits or headings, not prose.
MIN_LEDE_WORDS = 12
MAX_LEDE_CHARS = 320


def _sentences(paragraph: str) -> list[str]:
    sentences, current = [], ""
    position = 0
    for match in _SENTENCE_END.finditer(paragraph):
        piece = paragraph[position : match.end()]
        position = match.end()
        current += piece
        if not _ABBREVIATION.search(current.rstrip("\"'”’)] \t\n")):
            sentences.append(current.strip())
            current = ""
    rest = (current + paragraph[position:]).strip()
    if rest:
        sentences.append(rest)
    return sentences


def lede(text: str | None, title: str | None = None) -> str:
    """The first one or two sentences of the article's prose, at most about 320 characters.

    Extracted text often starts with leftovers ("Skip to content", the title again, a byline):
    the lede comes from the first paragraph that reads like prose and is not the title.
    """
    if not text:
        return ""
    title_key = (title or "").strip().casefold()
    for line in text.splitlines():
        paragraph = " ".join(line.split())
        if len(paragraph.split()) < MIN_LEDE_WORDS or paragraph.casefold() == title_key:
            continue
        sentences = _sentences(paragraph)
        chosen = sentences[0]
        if len(sentences) > 1 and len(chosen) + len(sentences[1]) < MAX_LEDE_CHARS:
            chosen = f"{chosen} {sentences[1]}"
        if len(chosen) > MAX_LEDE_CHARS:
            chosen = chosen[: MAX_LEDE_CHARS - 1].rsplit(" ", 1)[0] + "…"
        return chosen
    return ""
