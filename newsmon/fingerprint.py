"""Text fingerprints for spotting the same story twice: exact (sha256) and near (64-bit simhash).

Outlets republish wire copy with a changed headline, an added line or different whitespace, so an
exact hash alone misses most copies. Simhash maps similar texts to hashes that differ in few bits;
``nearest_duplicate`` compares one new hash against every stored one in a single numpy pass.

Everything here is computed on ``normalize_text`` output and with an unkeyed, stable hash
(BLAKE2b), never Python's ``hash()``, which is salted per process: stored fingerprints must mean
the same thing in every worker, every run and on every machine.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

SIMHASH_BITS = 64
SHINGLE_WORDS = 3
_WORD = re.compile(r"\w+")
# Bits set in each byte value: the popcount used when numpy has no np.bitwise_count (numpy < 2).
_BYTE_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def normalize_text(text: str) -> str:
    """The form both hashes are computed on: NFKC, casefolded, whitespace collapsed to one space.

    NFKC makes compatibility variants (ligatures, full-width letters, non-breaking spaces) equal
    to their plain forms, and casefold is the Unicode caseless match ("Straße" == "STRASSE").
    Normalising again after casefolding keeps the function idempotent.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def content_hash(text: str) -> str:
    """SHA-256 hex of the normalised text: texts differing only in case or spacing hash equal."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def _shingles(text: str) -> list[str]:
    """Overlapping runs of SHINGLE_WORDS words; a text shorter than that is one shingle."""
    words = _WORD.findall(normalize_text(text))
    if len(words) <= SHINGLE_WORDS:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)]


def simhash(text: str) -> int:
    """64-bit simhash (0 <= h < 2**64) of the text's word 3-shingles; 0 for a text with no words.

    Each shingle's BLAKE2b-64 digest votes on every bit; a bit is set when most shingles have it
    set. Words are taken as runs of word characters, so punctuation and spacing do not change
    the hash. Digests are unpacked big-endian byte by byte, so the result is the same on any CPU.
    """
    shingles = _shingles(text)
    if not shingles:
        return 0
    digests = b"".join(
        hashlib.blake2b(shingle.encode("utf-8"), digest_size=SIMHASH_BITS // 8).digest()
        for shingle in shingles
    )
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(len(shingles), -1), axis=1)
    majority = bits.sum(axis=0, dtype=np.int64) * 2 > len(shingles)
    return int.from_bytes(np.packbits(majority).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of bits in which two simhashes differ."""
    return (a ^ b).bit_count()


def _popcount_lut(values: np.ndarray) -> np.ndarray:
    """Bits set in each uint64, by byte lookup; for numpy releases without np.bitwise_count."""
    return _BYTE_POPCOUNT[values.view(np.uint8)].reshape(len(values), 8).sum(axis=1)


_popcount = getattr(np, "bitwise_count", _popcount_lut)


def nearest_duplicate(h: int, known: np.ndarray, max_bits: int) -> int | None:
    """Index of the known simhash closest to ``h``, if it is within ``max_bits``; else None.

    One vectorised XOR and popcount over the whole array, so checking a new article against
    every stored hash stays cheap. Ties go to the lowest index.
    """
    known = np.ascontiguousarray(known, dtype=np.uint64)
    if known.size == 0:
        return None
    distances = _popcount(np.bitwise_xor(known, np.uint64(h)))
    best = int(np.argmin(distances))
    return best if int(distances[best]) <= max_bits else None
