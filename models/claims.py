"""Stance of an article toward a claim, learned from (claim, body) pairs.

One model serves every topic: it reads the relation between a claim and an article, not the
article alone, so a new topic's claim gets a stance before anyone labels for it. Each pair is
described by:

- how much the body is about the claim: TF-IDF cosine of the claim with the whole body, with its
  lead and with its best-matching sentences, cosine in a latent (LSA) space, the share of the
  claim's words and word pairs found in the body, Jaccard overlap;
- what the body says near the claim's words: refuting, hedging and confirming cue words, in the
  sentences that match the claim best and in the whole body, and the claim's own cues;
- what the claim and the body are about: their LSA coordinates and the products of the two
  (which topics they share).

Gradient-boosted trees (``HistGradientBoostingClassifier``) learn the label strings they are
given from these dense features. When the labels include ``unrelated`` and two stances or more,
they learn in two stages, as FNC-1's pairs call for: whether the body is about the claim, from
every pair, then the stance among related pairs only; the probability of a stance is the product.
On two FNC-1 body splits that scored higher than one four-class model (91.7 against 91.5, 92.9
against 92.2) and trained in 36 s instead of 60: a round grows one tree over all pairs and three
over a quarter of them, not four over all.

Claims and bodies repeat across pairs (FNC-1 has 1,683 bodies under 50,000 pairs), so every
distinct text is analysed once per call and pairs only index into those results: training costs
a few thousand text transforms, not one per pair.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax
from sklearn.base import BaseEstimator
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from newsmon.models.learnable import plan

TOKEN = re.compile(r"\w\w+")
# A sentence ends at . ! or ? followed by space, or at a line break.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Words of the body's lead, where a story states what it reports.
LEAD_WORDS = 60
# Best-matching sentences whose cues are read as "near the claim's words".
NEAR_SENTENCES = 3
# Below this many groups (bodies), a held-out fifth is too few to fit the confidence on.
MIN_GROUPS = 20

# Cue words (as TOKEN splits them: "didn't" gives "didn"). Refuting cues mark a body that
# contradicts a claim, hedging ones a body that reports it without taking sides.
REFUTE = frozenset(
    TOKEN.findall(
        "fake fakes fraud hoax hoaxes false falsely deny denies denied denial denying not no never "
        "nothing none nobody despite doubt doubts doubtful bogus debunk debunked debunks debunking "
        "prank pranks retract retracted retraction untrue myth myths incorrect wrong misleading "
        "satire satirical fabricated fabrication unfounded baseless dismiss dismissed dismisses "
        "refute refuted refutes reject rejected rejects isn wasn didn doesn don aren weren cannot "
        "couldn won nor neither contrary rumor rumors rumour rumours"
    )
)
HEDGE = frozenset(
    TOKEN.findall(
        "reportedly allegedly alleged claim claims claimed claiming according apparently "
        "unconfirmed unverified may might could possibly possible purportedly supposedly appears "
        "appear seems seem suggest suggests suggested speculation speculate speculated reports "
        "reported report believed believe if whether unclear unknown rumored rumoured said says"
    )
)
CONFIRM = frozenset(
    TOKEN.findall(
        "confirm confirms confirmed confirmation official officially announced announces verified "
        "indeed true truly actually proof proved proven evidence shows showed revealed reveals"
    )
)
CUES = (REFUTE, HEDGE, CONFIRM)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) - REFUTE - HEDGE - CONFIRM


# FNC-1's labels, the import format's stances of a pair label.
FNC_STANCES = ("agree", "disagree", "discuss", "unrelated")


def fnc_score(
    truth: Sequence[str], predicted: Sequence[str], unrelated: str = "unrelated"
) -> float:
    """FNC-1's weighted score as a percent of the best possible: 0.25 for telling related from
    unrelated right, 0.75 more for the right class of a related pair."""
    truth_a, predicted_a = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    if truth_a.shape != predicted_a.shape:
        raise ValueError(f"{len(truth_a)} true labels but {len(predicted_a)} predictions")
    related, said_related = truth_a != unrelated, predicted_a != unrelated
    score = 0.25 * np.sum(related == said_related) + 0.75 * np.sum(
        related & (truth_a == predicted_a)
    )
    best = 0.25 * len(truth_a) + 0.75 * np.sum(related)
    return float(100 * score / best) if best else 0.0


def _words(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def _content(words: list[str]) -> set[str]:
    return {w for w in words if w not in STOP_WORDS}


def _cue_counts(words: list[str]) -> list[int]:
    return [sum(w in cue for w in words) for cue in CUES]


def _distinct(texts: Sequence[Hashable]) -> tuple[list, np.ndarray]:
    """The distinct texts (or groups), and for each input the index of its own among them."""
    seen: dict[str, int] = {}
    index = np.fromiter((seen.setdefault(t, len(seen)) for t in texts), np.int64, len(texts))
    return list(seen), index


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


@dataclass
class _Claims:
    tfidf: sp.csr_matrix
    lsa: np.ndarray
    words: list[set[str]]
    pairs: list[set[tuple[str, str]]]
    cues: np.ndarray  # per claim: refute, hedge, confirm counts, question mark, length


@dataclass
class _Bodies:
    tfidf: sp.csr_matrix
    lead: sp.csr_matrix
    lsa: np.ndarray
    words: list[set[str]]
    pairs: list[set[tuple[str, str]]]
    sentences: sp.csr_matrix  # TF-IDF rows of every body's sentences, body after body
    sentence_start: np.ndarray  # body i's sentences are rows sentence_start[i]:[i + 1]
    sentence_cues: np.ndarray  # per sentence: refute, hedge, confirm counts
    cues: np.ndarray  # per body: cue rates, length


class ClaimStanceModel(BaseEstimator):
    """Stance of a body toward a claim (agree / disagree / discuss / unrelated, or whatever label
    strings it is given), from features of the pair's relation and gradient-boosted trees.
    ``unrelated`` names the label of bodies not about the claim (the first stage's negative).

    ``note_`` says which labels it cannot predict and why; ``classes_`` are those it can.
    """

    def __init__(
        self,
        n_components: int = 100,
        n_shown: int = 50,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        random_state: int = 0,
        unrelated: str = "unrelated",
    ) -> None:
        self.n_components = n_components
        self.n_shown = n_shown
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state
        self.unrelated = unrelated

    # -- texts -------------------------------------------------------------------------------

    def _claims(self, claims: list[str]) -> _Claims:
        words = [_words(c) for c in claims]
        cues = np.array(
            [[*_cue_counts(w), "?" in c, len(w)] for w, c in zip(words, claims, strict=True)],
            dtype=np.float64,
        )
        tfidf = self.vectorizer_.transform(claims)
        return _Claims(
            tfidf,
            self._lsa(tfidf),
            [_content(w) for w in words],
            [set(pairwise(w)) for w in words],
            cues,
        )

    def _bodies(self, bodies: list[str]) -> _Bodies:
        words = [_words(b) for b in bodies]
        sentences, starts, sentence_cues = [], [0], []
        for body in bodies:
            parts = [s for s in SENTENCE_END.split(body) if TOKEN.search(s)] or [body]
            sentences.extend(parts)
            sentence_cues.extend(_cue_counts(_words(s)) for s in parts)
            starts.append(len(sentences))
        lengths = np.array([max(len(w), 1) for w in words], dtype=np.float64)
        counts = np.array([_cue_counts(w) for w in words], dtype=np.float64)
        tfidf = self.vectorizer_.transform(bodies)
        return _Bodies(
            tfidf,
            self.vectorizer_.transform([" ".join(w[:LEAD_WORDS]) for w in words]),
            self._lsa(tfidf),
            [_content(w) for w in words],
            [set(pairwise(w)) for w in words],
            self.vectorizer_.transform(sentences),
            np.array(starts),
            np.array(sentence_cues, dtype=np.float64).reshape(-1, len(CUES)),
            np.column_stack([100 * counts / lengths[:, None], np.log(lengths)]),
        )

    def _lsa(self, tfidf: sp.csr_matrix) -> np.ndarray:
        return _normalised(self.svd_.transform(tfidf))

    # -- pairs -------------------------------------------------------------------------------

    def _pair_features(self, claims: Sequence[str], bodies: Sequence[str]) -> np.ndarray:
        if len(claims) != len(bodies):
            raise ValueError(f"{len(claims)} claims but {len(bodies)} bodies")
        claim_texts, ci = _distinct(claims)
        body_texts, bi = _distinct(bodies)
        c, b = self._claims(claim_texts), self._bodies(body_texts)
        n = len(ci)

        def cosine(left: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
            # Rows are L2-normalised, so the cosine is the sum of the products.
            return np.asarray(left[ci].multiply(right[bi]).sum(axis=1)).ravel()

        overlap = np.zeros((n, 4))
        for k, (i, j) in enumerate(zip(ci, bi, strict=True)):
            cw, bw = c.words[i], b.words[j]
            shared = len(cw & bw)
            overlap[k] = (
                shared / max(len(cw), 1),
                shared / max(len(cw | bw), 1),
                len(c.pairs[i] & b.pairs[j]) / max(len(c.pairs[i]), 1),
                shared,
            )
        near = self._near(c, b, ci, bi)
        lsa_c, lsa_b = c.lsa[ci], b.lsa[bi]
        return np.column_stack(
            [
                cosine(c.tfidf, b.tfidf),
                cosine(c.tfidf, b.lead),
                np.sum(lsa_c * lsa_b, axis=1),
                overlap,
                near,
                c.cues[ci],
                b.cues[bi],
                lsa_c[:, : self.n_shown_],
                lsa_b[:, : self.n_shown_],
                (lsa_c * lsa_b)[:, : self.n_shown_],
            ]
        )

    @staticmethod
    def _near(c: _Claims, b: _Bodies, ci: np.ndarray, bi: np.ndarray) -> np.ndarray:
        """Per pair: the best and mean-of-best sentence cosines with the claim, where the best
        sentence lies in the body, and the cues of the best-matching sentences."""
        out = np.zeros((len(ci), 3 + 2 * len(CUES)))
        order = np.argsort(bi, kind="stable")
        bounds = np.searchsorted(bi[order], np.arange(len(b.words) + 1))
        for j in range(len(b.words)):
            rows = order[bounds[j] : bounds[j + 1]]
            if not len(rows):
                continue
            start, stop = b.sentence_start[j], b.sentence_start[j + 1]
            sims = (b.sentences[start:stop] @ c.tfidf[ci[rows]].T).toarray()  # sentences × pairs
            top = np.argsort(-sims, axis=0)[:NEAR_SENTENCES]
            top_sims = np.take_along_axis(sims, top, axis=0)
            cues = b.sentence_cues[start:stop][top]  # top × pairs × cues
            out[rows, 0] = top_sims[0]
            out[rows, 1] = top_sims.mean(axis=0)
            out[rows, 2] = top[0] / max(stop - start, 1)
            out[rows, 3 : 3 + len(CUES)] = cues[0]
            out[rows, 3 + len(CUES) :] = cues.sum(axis=0)
        return out

    # -- estimator ---------------------------------------------------------------------------

    def fit(
        self,
        claims: Sequence[str],
        bodies: Sequence[str],
        stances: Sequence[str],
        groups: Sequence[object] | None = None,
    ) -> ClaimStanceModel:
        """Learn from (claim, body, stance) triples. Pairs of one group (default: of one body)
        stay together when some are held out to fit the confidence."""
        if (
            not len(claims)
            == len(bodies)
            == len(stances)
            == len(stances if groups is None else groups)
        ):
            raise ValueError(
                f"{len(claims)} claims, {len(bodies)} bodies and {len(stances)} stances"
                + (f" but {len(groups)} groups" if groups is not None else "")
            )
        counts = Counter(stances)
        learnable, self.note_ = plan("claim stance", counts)
        if not learnable:
            raise ValueError(f"cannot learn stance toward claims: {self.note_}")
        keep = np.array([s in learnable for s in stances])
        claims = [t for t, k in zip(claims, keep, strict=True) if k]
        bodies = [t for t, k in zip(bodies, keep, strict=True) if k]
        y = np.array([s for s, k in zip(stances, keep, strict=True) if k], dtype=object)

        claim_texts, _ = _distinct(claims)
        body_texts, body_index = _distinct(bodies)
        self.vectorizer_ = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=2, stop_words=sorted(STOP_WORDS)
        )
        texts = self.vectorizer_.fit_transform([*body_texts, *claim_texts])
        components = max(1, min(self.n_components, texts.shape[0] - 1, texts.shape[1] - 1))
        self.svd_ = TruncatedSVD(components, random_state=self.random_state).fit(texts)
        self.n_shown_ = min(self.n_shown, components)
        X = self._pair_features(claims, bodies)
        group = body_index if groups is None else _distinct(np.asarray(groups)[keep])[1]
        # A fixed number of rounds: stopping on the log-loss of held-out bodies stopped near 60
        # rounds and cost a point of FNC score (one four-class model: 91.1 against 91.9 at 300).
        self.classes_ = np.array(learnable, dtype=object)
        stances_of_related = [c for c in learnable if c != self.unrelated]
        if self.unrelated in learnable and len(stances_of_related) >= 2:
            # Two stages: whether the body is about the claim, from all pairs (one tree a round),
            # then the stance among related pairs only (a quarter of FNC-1's pairs).
            related = y != self.unrelated
            self.relatedness_ = self._booster().fit(X, related)
        else:
            self.relatedness_ = None
            related = np.ones(len(y), dtype=bool)
        self.temperature_ = self._temperature(X[related], y[related], group[related])
        self.classifier_ = self._booster().fit(X[related], y[related])
        return self

    def _temperature(self, X: np.ndarray, y: np.ndarray, group: np.ndarray) -> float:
        """What the stance scores are divided by so that their softmax is an honest confidence:
        boosting for a fixed number of rounds is overconfident (on FNC-1's related pairs, 0.94
        mean confidence for 0.82 accuracy). Fitted on a fifth of the groups (bodies), held out
        from a model fitted on the rest, as a new body is unseen."""
        names = np.unique(group)
        held = np.isin(
            group,
            np.random.default_rng(self.random_state).permutation(names)[: len(names) // 5],
        )
        if len(names) < MIN_GROUPS or set(y[~held]) != set(y) or not held.any():
            return 1.0
        scores = _scores(self._booster().fit(X[~held], y[~held]), X[held])
        truth = np.searchsorted(np.unique(y), y[held])

        def loss(temperature: float) -> float:
            logp = scores / temperature
            logp -= logsumexp(logp, axis=1, keepdims=True)
            return -float(np.mean(logp[np.arange(len(truth)), truth]))

        return float(minimize_scalar(loss, bounds=(0.05, 20), method="bounded").x)

    def _booster(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            early_stopping=False,
            random_state=self.random_state,
        )

    def predict_proba(self, claims: Sequence[str], bodies: Sequence[str]) -> np.ndarray:
        """Probability of each of ``classes_`` for each (claim, body) pair."""
        check_is_fitted(self, "classifier_")
        if not len(claims):
            return np.zeros((0, len(self.classes_)))
        X = self._pair_features(claims, bodies)
        stance = softmax(_scores(self.classifier_, X) / self.temperature_, axis=1)
        if self.relatedness_ is None:
            return stance
        columns = np.searchsorted(self.classes_, self.classifier_.classes_)
        related = self.relatedness_.predict_proba(X)[:, 1]
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, columns] = stance * related[:, None]
        proba[:, np.searchsorted(self.classes_, self.unrelated)] = 1 - related
        return proba

    def predict(self, claims: Sequence[str], bodies: Sequence[str]) -> np.ndarray:
        """The most probable stance of each body toward its claim."""
        return self.classes_[np.argmax(self.predict_proba(claims, bodies), axis=1)]


def _scores(booster: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    """Raw scores, one column per class (a binary booster gives one: the second class's)."""
    raw = booster.decision_function(X)
    return np.column_stack([np.zeros(len(raw)), raw]) if raw.ndim == 1 else raw
