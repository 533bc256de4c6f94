"""Article features: word n-grams (what an article says) and punctuation style (how it is typed).

``NewsFeatures`` puts three L2-normalised TF-IDF blocks side by side and says where each block's
columns are, so a classifier can weight them per task:

- ``words``: word unigrams and bigrams of the headline and body (``WordNgramTfidf``);
- ``lead``: the words of the headline and the start of the body, where an article says what it
  is about; with a handful of labels per topic they tell topics apart better than the whole text;
- ``style``: each run of punctuation with the spacing and the kind of character around it
  (``PunctuationStyle``). Word tokens drop all of it, yet ``'' `` vs ``”``, ``’ s`` vs `` 's``,
  ``–`` vs ``--`` and boilerplate such as ``|`` or ``* *`` are a trace of who typed the article.
  When labels follow the publisher (political leaning often does), articles of one house style
  share labels: the style block is both a feature and the neighbour graph along which labels
  spread to unlabelled articles (``selftraining``).

The word block's features are those of
``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)`` (same tokens, lower-casing,
smooth IDF and L2 norm), computed with array operations instead of Python loops. scikit-learn
builds and looks up every n-gram in a Python loop, about 1.5 ms per full-length article; here an
ASCII article is split by ``str.split`` (the same tokens as the regex, twice as fast), each
document's tokens are mapped to ids in one C-level ``map``, and bigrams are looked up as integer
pair codes with ``numpy.searchsorted``. Columns are ordered by document frequency, so that the
weights a classifier reads for an article lie close together in memory. Prediction stays above
1,000 articles a second on one core.

Bigrams are kept only when both their words are in the unigram vocabulary. With ``min_df`` alone
that loses nothing (a bigram in ``min_df`` documents has both words in at least as many); with
``max_features`` it drops bigrams of words that were cut, which are rare by construction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

# scikit-learn's default token pattern `\b\w\w+\b` finds the same tokens (a greedy run of two or
# more word characters always spans a whole word) but the \b checks make it about 15% slower.
TOKEN = re.compile(r"\w\w+")
_GAP = np.array([-1], dtype=np.int64)
_GAP32 = np.array([-1], dtype=np.int32)
# Words of an article's lead (headline first) in the ``lead`` block: about a headline and a
# sentence, where what the article is about is said most plainly.
LEAD_WORDS = 25


def _tfidf_rows(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf times idf, L2-normalised rows, in place on a CSR matrix of counts (one pass
    over its entries; ``multiply`` and ``normalize`` would copy it twice)."""
    counts.data = (np.log(counts.data) + 1) * idf[counts.indices]
    row = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    norms = np.sqrt(np.bincount(row, weights=counts.data**2, minlength=counts.shape[0]))
    norms[norms == 0] = 1
    counts.data /= norms[row]
    return counts


def _count_matrix(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """How often each (row, column) pair occurs, as a CSR matrix with sorted indices: one sort of
    int64 keys, about twice as fast as scipy's way through COO and summing duplicates."""
    keys, counts = np.unique(rows.astype(np.int64) * shape[1] + columns, return_counts=True)
    row, column = np.divmod(keys, shape[1])
    indptr = np.searchsorted(row, np.arange(shape[0] + 1))
    return sp.csr_matrix((counts.astype(np.float64), column.astype(np.int32), indptr), shape=shape)


def _side_by_side(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """``sp.hstack([left, right])`` for CSR matrices without its detour through COO: each row's
    entries of ``left`` then those of ``right``, placed by index arithmetic."""
    rows = left.shape[0]
    indptr = left.indptr + right.indptr
    at_left = np.arange(left.nnz) + np.repeat(right.indptr[:-1], np.diff(left.indptr))
    at_right = np.arange(right.nnz) + np.repeat(left.indptr[1:], np.diff(right.indptr))
    data = np.empty(left.nnz + right.nnz)
    indices = np.empty(left.nnz + right.nnz, dtype=np.int32)
    data[at_left], data[at_right] = left.data, right.data
    indices[at_left], indices[at_right] = left.indices, right.indices + left.shape[1]
    return sp.csr_matrix((data, indices, indptr), shape=(rows, left.shape[1] + right.shape[1]))


def _ascii_word_table() -> bytes:
    """Byte -> itself lower-cased for ASCII word characters (what ``\\w`` matches in ASCII),
    space for the other ASCII bytes."""
    return bytes(
        code
        if code >= 128
        else ord(chr(code).lower())
        if chr(code).isalnum() or code == 95
        else ord(" ")
        for code in range(256)
    )


_ASCII_WORDS = _ascii_word_table()
# Non-ASCII characters common in news that are not word characters (spaces, quotes, dashes,
# currency and other signs). Replaced by a space they change no token, and they are often the
# only non-ASCII characters of an article, which can then be split without the regex.
_SEPARATORS = tuple("\u00a0\u00ad\u2009\u200a\u200b\u202f‘’‚“”„–—―…«»‹›•·£€¢°©®™█")
# Words of one character, which the token pattern leaves out: they are looked up as _SKIP and
# dropped, so that the words on either side still make a bigram.
_SKIP = -2
_ONE_CHARACTER_WORDS = [chr(code) for code in range(128) if chr(code).isalnum() or code == 95]


def _words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: the tokens of TOKEN, plus words of one character
    when the text is ASCII. An ASCII text is lower-cased and split by a byte table and
    ``str.split``, which gives the same words about twice as fast as the regex."""
    if not text.isascii():
        for separator in _SEPARATORS:
            if separator in text:
                text = text.replace(separator, " ")
        if not text.isascii():
            return TOKEN.findall(text.lower())
    return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()


class _NewIds(dict):
    """Word -> id, numbering words in the order they are first seen."""

    def __missing__(self, word: str) -> int:
        self[word] = len(self)
        return len(self) - 1


def _provisional_ids(docs: list[list[str]], ids_of: _NewIds) -> tuple[np.ndarray, np.ndarray]:
    """All documents' word ids in one int32 array, -1 after each document, and the document
    each position belongs to."""
    parts: list[np.ndarray] = []
    for tokens in docs:
        parts.append(np.fromiter(map(ids_of.__getitem__, tokens), np.int32, len(tokens)))
        parts.append(_GAP32)
    ids = np.concatenate(parts) if parts else np.empty(0, np.int32)
    return ids, np.repeat(np.arange(len(docs)), [len(tokens) + 1 for tokens in docs])


def _tokens(texts: Iterable[str]) -> list[list[str]]:
    """Each text's tokens, exactly those of TOKEN on the lower-cased text."""
    return [[word for word in _words(text) if len(word) > 1] for text in texts]


class WordNgramTfidf(TransformerMixin, BaseEstimator):
    """Sublinear TF-IDF over word unigrams and bigrams, L2-normalised rows.

    min_df: a term must occur in at least this many fitted documents.
    max_features: keep at most this many unigrams, and as many bigrams (the most frequent by
    document frequency), which bounds the model's size when it is fitted on a large warehouse.
    lead: when above 0, the n-gram columns are followed by a second block, the unigrams of each
    document's first ``lead`` words (the headline and the start of the body, which say most
    plainly what an article is about), with the unigrams' IDF and their own L2 norm. It costs
    next to nothing: the words are already tokenised and looked up.
    """

    def __init__(self, min_df: int = 2, max_features: int | None = None, lead: int = 0) -> None:
        self.min_df = min_df
        self.max_features = max_features
        self.lead = lead

    def fit(self, X: Sequence[str], y: object = None) -> WordNgramTfidf:
        # Tokenised a chunk of texts at a time, each word kept as a 4-byte id: token lists cost
        # tens of bytes a word, and a 26,590-article fit of the whole list peaked at 4 GB.
        ids_of = _NewIds()
        chunks: list[np.ndarray] = []
        df = np.zeros(0, dtype=np.int64)
        for _, texts in _chunks(X):
            ids, rows = _provisional_ids(_tokens(texts), ids_of)
            # Document frequency: each (document, word) once, as one int64 key.
            known = ids >= 0
            once = np.unique(rows[known].astype(np.int64) << 32 | ids[known]) & 0xFFFFFFFF
            df = np.pad(df, (0, len(ids_of) - len(df))) + np.bincount(once, minlength=len(ids_of))
            chunks.append(ids)
        self._vocabulary(list(ids_of), df)
        remap = np.full(len(ids_of) + 1, -1, dtype=np.int64)  # the last: a gap stays -1
        for word, provisional in ids_of.items():
            remap[provisional] = self.vocabulary_.get(word, -1)
        bigrams, bigram_df = self._bigram_df((remap[ids], ids == -1) for ids in chunks)
        keep = self._frequent_bigrams(bigram_df)
        self.bigrams_ = bigrams[keep]
        unigram_df = np.empty(len(self.vocabulary_))
        kept = remap[:-1] >= 0
        unigram_df[remap[:-1][kept]] = df[kept]
        bigram_doc_freq = bigram_df[keep].astype(np.float64)
        frequency = np.concatenate([unigram_df, bigram_doc_freq])
        # Columns in order of document frequency: an article's terms are mostly frequent ones,
        # so the rows of a classifier's weights that it reads lie close together in memory. With
        # a hundred classes, scoring is two to three times faster than in alphabetical order.
        order = np.argsort(-frequency, kind="stable")
        self.columns_ = np.empty(len(order), dtype=np.int64)
        self.columns_[order] = np.arange(len(order))
        self.idf_ = np.log((1 + len(X)) / (1 + frequency[order])) + 1
        # The lead block's columns in order of document frequency too.
        by_frequency = np.argsort(-unigram_df, kind="stable")
        self.lead_columns_ = np.empty(len(by_frequency), dtype=np.int64)
        self.lead_columns_[by_frequency] = np.arange(len(by_frequency))
        self.lead_idf_ = np.log((1 + len(X)) / (1 + unigram_df[by_frequency])) + 1
        return self

    def _frequent_bigrams(self, df: np.ndarray) -> np.ndarray:
        """Which bigrams to keep: in at least min_df documents, and the max_features most
        frequent of those. Uncapped, rare bigrams were 1.3M of 1.7M columns at 26,590 articles,
        and a dense row per topic over them made the model 720 MB."""
        keep = df >= self.min_df
        candidates = np.flatnonzero(keep)
        if self.max_features is not None and len(candidates) > self.max_features:
            frequent = candidates[np.argsort(-df[candidates], kind="stable")[: self.max_features]]
            keep = np.zeros(len(df), dtype=bool)
            keep[frequent] = True
        return keep

    def _vocabulary(self, words: list[str], df: np.ndarray) -> None:
        """The words kept (in at least min_df documents; the max_features most frequent) as
        ``vocabulary_`` in alphabetical order, and ``lookup_``."""
        counts = zip(words, df.tolist(), strict=True)
        kept = [(count, word) for word, count in counts if count >= self.min_df]
        if self.max_features is not None and len(kept) > self.max_features:
            kept = sorted(kept, reverse=True)[: self.max_features]
        self.vocabulary_ = {word: i for i, word in enumerate(sorted(word for _, word in kept))}
        self.lookup_ = {**self.vocabulary_, **dict.fromkeys(_ONE_CHARACTER_WORDS, _SKIP)}

    def _bigram_df(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each bigram's code and document frequency, from each chunk's word ids (-1: a word
        not kept, or a gap) and where its gaps between documents are."""
        span = max(len(self.vocabulary_), 1) ** 2
        per_document = []
        for ids, gaps in chunks:
            rows = np.concatenate([[0], np.cumsum(gaps[:-1])])
            codes, code_rows = self._bigram_codes(ids, rows)
            # Each (document, code) pair once, as one int64 key: several times faster than
            # np.unique(axis=1). codes < V**2, V <= a few 10**5: keys stay far below 2**63.
            if span * (gaps.sum() + 1) < 2**62:
                per_document.append(np.unique(code_rows.astype(np.int64) * span + codes) % span)
            else:  # a vocabulary too large for one key: the slower 2-D unique
                per_document.append(np.unique(np.stack([code_rows, codes]), axis=1)[1])
        return np.unique(np.concatenate([np.empty(0, np.int64), *per_document]), return_counts=True)

    @property
    def n_ngrams(self) -> int:
        return len(self.vocabulary_) + len(self.bigrams_)

    @property
    def n_features(self) -> int:
        return self.n_ngrams + (len(self.vocabulary_) if self.lead else 0)

    def _ids(self, docs: Sequence[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All documents' token ids in one array (-1: unknown word, or a gap between documents),
        and the document each position belongs to. ``docs`` may hold words of one character
        (from ``_words``): they are dropped here, in one array operation."""
        get = self.lookup_.get
        parts: list[np.ndarray] = []
        for tokens in docs:
            parts.append(np.fromiter(map(get, tokens, repeat(-1)), np.int64, len(tokens)))
            parts.append(_GAP)
        ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
        rows = np.repeat(np.arange(len(docs)), [len(tokens) + 1 for tokens in docs])
        kept = ids != _SKIP
        return ids[kept], rows[kept]

    def _bigram_codes(self, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        left, right = ids[:-1], ids[1:]
        both = (left >= 0) & (right >= 0)
        return left[both] * len(self.vocabulary_) + right[both], rows[:-1][both]

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, "idf_")
        docs = [_words(text) for text in X]
        ids, rows = self._ids(docs)
        known = ids >= 0
        codes, bigram_rows = self._bigram_codes(ids, rows)
        span = max(len(self.vocabulary_), 1) ** 2
        if span * (len(docs) + 1) < 2**62:
            # Looking up sorted codes is several times faster than looking up codes in text order
            # (the binary searches walk the table in order instead of at random), so the codes
            # are sorted with their rows packed below them in one int64 key.
            keys = np.sort(bigram_rows.astype(np.int64) + codes * (len(docs) + 1))
            codes, bigram_rows = np.divmod(keys, len(docs) + 1)
        where = np.searchsorted(self.bigrams_, codes)
        found = where < len(self.bigrams_)
        found[found] = self.bigrams_[where[found]] == codes[found]
        terms = np.concatenate([ids[known], len(self.vocabulary_) + where[found]])
        row_index = np.concatenate([rows[known], bigram_rows[found]])
        counts = _count_matrix(row_index, self.columns_[terms], (len(docs), self.n_ngrams))
        ngrams = _tfidf_rows(counts, self.idf_)
        if not self.lead:
            return ngrams
        starts = np.searchsorted(rows, np.arange(len(docs)))
        in_lead = known & (np.arange(len(ids)) - starts[rows] < self.lead)
        lead = _count_matrix(
            rows[in_lead], self.lead_columns_[ids[in_lead]], (len(docs), len(self.vocabulary_))
        )
        return _side_by_side(ngrams, _tfidf_rows(lead, self.lead_idf_))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "idf_")
        words = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        n = len(words)
        bigrams = [f"{words[code // n]} {words[code % n]}" for code in self.bigrams_]
        names = np.empty(self.n_ngrams, dtype=object)
        names[self.columns_] = words + bigrams
        if self.lead:
            lead = np.empty(len(words), dtype=object)
            lead[self.lead_columns_] = [f"lead: {word}" for word in words]
            names = np.concatenate([names, lead])
        return names


def _shape_table() -> bytes:
    """UTF-8 byte -> its kind: ASCII capitals 'A', other ASCII letters and '_' 'a', digits '9',
    white space other than newlines ' '. Punctuation, newlines and non-ASCII bytes stay as they
    are, so curly quotes, dashes and other non-ASCII marks keep their identity (letters outside
    ASCII are rare in English news; in other scripts they count as punctuation, and
    cross-validation weighs the block accordingly)."""
    table = bytearray(range(256))
    for code in range(128):
        char = chr(code)
        if char.isupper():
            table[code] = ord("A")
        elif char.isalpha() or char == "_":
            table[code] = ord("a")
        elif char.isdigit():
            table[code] = ord("9")
        elif char.isspace() and char != "\n":
            table[code] = ord(" ")
    return bytes(table)


_SHAPES = _shape_table()
# What each byte of a shape string is to a style term; BOUNDARY marks where one text ends.
WORD, SPACE, PUNCTUATION, BOUNDARY = 0, 1, 2, 3
_KINDS = np.full(256, PUNCTUATION, dtype=np.uint8)
_KINDS[list(b"aA9")] = WORD
_KINDS[list(b" \n")] = SPACE
# Texts tokenised or whose style terms are found at once: bounds the token lists and byte arrays
# to about this many articles' size.
_CHUNK = 2000


@dataclass
class _StyleWindows:
    """The punctuation runs in context of some texts: windows ``[left, right)`` of ``shapes``
    (the texts' shape strings joined end to end) and the index of each window's text."""

    shapes: bytes
    left: np.ndarray
    right: np.ndarray
    text: np.ndarray

    def as_bytes(self, which: np.ndarray | slice = slice(None)) -> list[bytes]:
        starts, stops = self.left[which].tolist(), self.right[which].tolist()
        return list(map(self.shapes.__getitem__, map(slice, starts, stops)))

    def packed(self, which: np.ndarray) -> np.ndarray:
        """Windows of at most _PACKED_BYTES bytes as integers (see ``_pack``), read from the
        array in one go instead of sliced one by one."""
        padded = np.frombuffer(self.shapes + bytes(_PACKED_BYTES), dtype=np.uint8)
        left, length = self.left[which], (self.right - self.left)[which]
        offsets = np.arange(_PACKED_BYTES)
        window = padded[left[:, np.newaxis] + offsets].astype(np.uint64)
        window[offsets >= length[:, np.newaxis]] = 0
        shifted = window << (np.uint64(8) * offsets.astype(np.uint64))
        return np.bitwise_or.reduce(shifted, axis=1) | (length.astype(np.uint64) << np.uint64(56))


# Windows this short (most of them) are looked up as integers: their bytes, then their length.
_PACKED_BYTES = 7


def _pack(window: bytes) -> int:
    return int.from_bytes(window, "little") | len(window) << 56


def _style_windows(texts: Sequence[str]) -> _StyleWindows:
    """Every punctuation run in context in ``texts``.

    A run is a maximal run of punctuation bytes; on each side its context is the white space
    touching it (at most one) and then the kind of letter or digit next to that (at most one).
    Runs consist of punctuation and contexts of anything else, so a window names its run and
    both contexts unambiguously: "word , next." gives b"a , a" and b"a.". The runs of all texts
    are found at once with array operations on their shape strings joined end to end."""
    shapes = [text.encode("utf-8").translate(_SHAPES) for text in texts]
    joined = b"\0".join(shapes)
    # Two boundary bytes on each side, so the context look-ups below never leave the array.
    kinds = np.full(len(joined) + 4, BOUNDARY, dtype=np.uint8)
    kinds[2:-2] = _KINDS[np.frombuffer(joined, dtype=np.uint8)]
    text_starts = np.cumsum([0] + [len(shape) + 1 for shape in shapes[:-1]])
    kinds[text_starts[1:] + 1] = BOUNDARY  # the separators (a NUL in a text stays punctuation)
    is_punctuation = np.concatenate([[0], kinds[2:-2] == PUNCTUATION, [0]]).astype(np.int8)
    edges = np.diff(is_punctuation)
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # Byte i of `joined` is kinds[i + 2]: the byte before a window starting at i is kinds[i + 1].
    left = run_starts - (kinds[run_starts + 1] == SPACE)
    left -= kinds[left + 1] == WORD
    right = run_ends + (kinds[run_ends + 2] == SPACE)
    right += kinds[right + 2] == WORD
    text = np.searchsorted(text_starts, run_starts, side="right") - 1
    return _StyleWindows(joined, left, right, text)


def _chunks(texts: Sequence[str]) -> Iterable[tuple[int, Sequence[str]]]:
    for start in range(0, len(texts), _CHUNK):
        yield start, texts[start : start + _CHUNK]


class PunctuationStyle(TransformerMixin, BaseEstimator):
    """Sublinear TF-IDF over punctuation runs in context (L2-normalised rows, smooth IDF).

    A term is a run of punctuation with, on each side, the white space touching it (if any) and
    the kind of letter or digit next to that: ``a , a`` for a comma typed between spaced words,
    ``a’a`` for an apostrophe inside a word, ``a .\nA`` for a paragraph's end. Terms are found
    for many texts at once by array operations (``_style_terms``): the block costs about a
    fifth of the word block per article.
    """

    def __init__(self, min_df: int = 2) -> None:
        self.min_df = min_df

    def fit(self, X: Sequence[str], y: object = None) -> PunctuationStyle:
        df: Counter[bytes] = Counter()
        for _, texts in _chunks(X):
            windows = _style_windows(texts)
            pairs = zip(windows.text.tolist(), windows.as_bytes(), strict=True)
            df.update(window for _, window in set(pairs))
        terms = sorted(term for term, count in df.items() if count >= self.min_df)
        self.vocabulary_ = {term: i for i, term in enumerate(terms)}
        short = [(_pack(term), i) for i, term in enumerate(terms) if len(term) <= _PACKED_BYTES]
        short.sort()
        self.packed_terms_ = np.array([key for key, _ in short], dtype=np.uint64)
        self.packed_columns_ = np.array([i for _, i in short], dtype=np.int64)
        doc_freq = np.array([df[term] for term in terms], dtype=np.float64)
        self.idf_ = np.log((1 + len(X)) / (1 + doc_freq)) + 1
        return self

    @property
    def n_features(self) -> int:
        return len(self.vocabulary_)

    def _columns(self, windows: _StyleWindows) -> np.ndarray:
        """Each window's column, -1 for a term not in the vocabulary."""
        columns = np.full(len(windows.left), -1, dtype=np.int64)
        short = windows.right - windows.left <= _PACKED_BYTES
        if len(self.packed_terms_):
            keys = windows.packed(short)
            where = np.searchsorted(self.packed_terms_, keys)
            where[where == len(self.packed_terms_)] = 0
            hit = self.packed_terms_[where] == keys
            columns[np.flatnonzero(short)[hit]] = self.packed_columns_[where[hit]]
        long = np.flatnonzero(~short)
        get = self.vocabulary_.get
        columns[long] = np.fromiter(
            map(get, windows.as_bytes(long), repeat(-1)), np.int64, len(long)
        )
        return columns

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, "idf_")
        columns, rows = [], []
        for start, texts in _chunks(X):
            windows = _style_windows(texts)
            columns.append(self._columns(windows))
            rows.append(windows.text + start)
        column = np.concatenate(columns) if columns else np.empty(0, np.int64)
        row = np.concatenate(rows) if rows else np.empty(0, np.int64)
        known = column >= 0
        counts = _count_matrix(row[known], column[known], (len(X), self.n_features))
        return _tfidf_rows(counts, self.idf_)


class NewsFeatures(TransformerMixin, BaseEstimator):
    """The ``words``, ``lead`` and ``style`` blocks side by side (see the module docstring).

    ``blocks_`` maps each block's name to its (start, stop) columns after fit. Each block's rows
    are L2-normalised, so a classifier weights a block by scaling its columns.
    """

    def __init__(
        self, min_df: int = 2, max_features: int | None = None, lead: int = LEAD_WORDS
    ) -> None:
        self.min_df = min_df
        self.max_features = max_features
        self.lead = lead

    def fit(self, X: Sequence[str], y: object = None) -> NewsFeatures:
        self.words_ = WordNgramTfidf(self.min_df, self.max_features, self.lead).fit(X)
        self.style_ = PunctuationStyle(self.min_df).fit(X)
        ngrams, words = self.words_.n_ngrams, self.words_.n_features
        self.blocks_ = {
            "words": (0, ngrams),
            "lead": (ngrams, words),
            "style": (words, words + self.style_.n_features),
        }
        return self

    @property
    def n_features(self) -> int:
        return self.blocks_["style"][1]

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, "blocks_")
        # A chunk of texts at a time: the token lists and index arrays of a whole large set
        # (tens of bytes a word) peaked at 6 GB for 26,590 articles.
        parts = [
            _side_by_side(self.words_.transform(texts), self.style_.transform(texts))
            for _, texts in _chunks(X)
        ]
        if len(parts) == 1:
            return parts[0]
        return sp.vstack(parts, format="csr") if parts else self._empty()

    def _empty(self) -> sp.csr_matrix:
        return _side_by_side(self.words_.transform([]), self.style_.transform([]))
