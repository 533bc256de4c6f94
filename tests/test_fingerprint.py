"""Fingerprints: exact hashes ignore case and spacing; simhash distance follows the edit size."""

from __future__ import annotations

import hashlib
import random
import statistics

import numpy as np

from newsmon.fingerprint import (
    _popcount_lut,
    content_hash,
    hamming,
    nearest_duplicate,
    normalize_text,
    simhash,
)

# Newsy words for generated texts, so that the simhash tests need no corpus on disk.
_NEWS_WORDS = """
the a of to in and said on for that with was by at from as it its their they he she his her
council government minister ministers police city town village region country year years week
month day people residents officials spokesman spokeswoman new old state national local report
reports would could should might after before during since while two three four five ten million
billion percent market markets price prices plan plans vote votes court judge case cases company
companies shares bank banks rate rates inflation election elections party parties leader leaders
statement agency news health hospital hospitals school schools water energy gas power climate
storm storms border talks deal deals trade tariff tariffs army troops ceasefire aid food farmers
harvest rain drought flood floods river bridge road rail train trains airport flights strike
strikes union unions workers wages jobs unemployment budget tax taxes spending debt growth economy
exports imports oil coal wind solar nuclear plant factory factories industry investors analysts
researchers study scientists university students teachers parents children families homes housing
rent mayor president prime parliament senate opposition coalition protest protesters crowd square
capital north south east west coast island mountain valley district province county
"""
VOCABULARY = _NEWS_WORDS.split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(12, 22))).capitalize() + "."


def article(rng: random.Random, words: int = 300) -> list[str]:
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < words:
        sentences.append(sentence(rng))
    return sentences


def test_content_hash_ignores_case_whitespace_and_compatibility_forms() -> None:
    text = "Kim’s  government said\n\nthe ﬁnal deal was signed in Straße 5."
    variant = "  KIM’S government\u00a0said the final deal\twas signed in STRASSE ５. "
    assert normalize_text(variant) == normalize_text(text)
    assert content_hash(variant) == content_hash(text)
    assert content_hash(text) == hashlib.sha256(normalize_text(text).encode()).hexdigest()
    assert content_hash(text) != content_hash(text.replace("signed", "rejected"))


def test_normalize_text_is_idempotent() -> None:
    text = " İstanbul ǅemal ﬀ ß\u2003Ω "
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_simhash_is_stable_across_processes_and_machines() -> None:
    # Stored simhashes must keep their meaning: this value may change only with a migration.
    assert simhash("The council approved the harbour plan on Tuesday.") == 0x106A3E8008117E83


def test_simhash_range_and_trivial_inputs() -> None:
    rng = random.Random(7)
    for _ in range(20):
        h = simhash(" ".join(article(rng, 50)))
        assert 0 <= h < 2**64
    assert simhash("") == 0
    assert simhash("   ") == 0
    assert simhash("Two words") == simhash("two   WORDS!")
    assert simhash("Two words") != 0


def test_simhash_ignores_punctuation_and_spacing() -> None:
    text = "The mayor said: the vote was a turning point, and the plan would go ahead."
    assert simhash(text) == simhash(text.replace(",", "").replace(":", " ").upper())


def test_simhash_distance_grows_with_the_edit() -> None:
    """300-word texts, one 64-bit simhash each, as the pipeline stores them.

    Over several seeds a one-word edit moved a median of 2-3 bits (max 8) and replacing one
    sentence (about 6% of the shingles) a median of 6-8 bits (max 14), while unrelated texts
    differed in about 32 bits (min 21). So a 3-bit threshold catches copies with small edits,
    not copies with a rewritten sentence; the bounds below leave room for the seed's luck.
    """
    rng = random.Random(2026)
    word_edits, sentence_edits, unrelated = [], [], []
    for _ in range(40):
        sentences = article(rng)
        original = simhash(" ".join(sentences))

        words = " ".join(sentences).split()
        words[rng.randrange(len(words))] = "zeppelin"
        word_edits.append(hamming(original, simhash(" ".join(words))))

        edited = list(sentences)
        edited[rng.randrange(len(edited))] = sentence(rng)
        sentence_edits.append(hamming(original, simhash(" ".join(edited))))

        unrelated.append(hamming(original, simhash(" ".join(article(rng)))))

    assert statistics.median(word_edits) <= 4
    assert statistics.median(sentence_edits) <= 10
    assert max(word_edits + sentence_edits) < min(unrelated)
    assert min(unrelated) > 16
    assert 26 <= statistics.median(unrelated) <= 38


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, 2**64 - 1) == 64


def test_nearest_duplicate_finds_the_edited_copy() -> None:
    rng = random.Random(11)
    texts = [" ".join(article(rng)) for _ in range(20)]
    known = np.array([simhash(t) for t in texts], dtype=np.uint64)
    words = texts[13].split()
    words[100] = "zeppelin"
    copy = simhash(" ".join(words))

    assert nearest_duplicate(copy, known, max_bits=10) == 13
    assert nearest_duplicate(simhash(texts[4]), known, max_bits=0) == 4
    assert nearest_duplicate(simhash(" ".join(article(rng))), known, max_bits=10) is None


def test_nearest_duplicate_edge_cases() -> None:
    assert nearest_duplicate(5, np.zeros(0, dtype=np.uint64), max_bits=64) is None
    top = 2**64 - 1
    known = np.array([0, top, top ^ 0b11, top ^ 0b1], dtype=np.uint64)
    assert nearest_duplicate(top, known, max_bits=0) == 1
    assert nearest_duplicate(top ^ 0b1, known, max_bits=0) == 3
    # Equal distances: the first (oldest) hash wins.
    assert nearest_duplicate(0b1, np.array([0b11, 0b0, 0b101], dtype=np.uint64), max_bits=1) == 0
    assert nearest_duplicate(top, known[:1], max_bits=63) is None


def test_lookup_table_popcount_matches_python() -> None:
    values = np.random.default_rng(3).integers(0, 2**64, size=1000, dtype=np.uint64, endpoint=False)
    values[:2] = (0, 2**64 - 1)
    expected = [int(value).bit_count() for value in values]
    assert _popcount_lut(values).tolist() == expected
