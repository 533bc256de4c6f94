"""The learners newsmon's classifier chooses among, as plain functions of a feature matrix.

Each takes the whole matrix ``X`` and one code per row: a class index, ``UNLABELLED`` for an
unlabelled row it may learn from, or ``HELD_OUT`` for a row it must not train on (a
cross-validation fold's test rows, or labels left out of a capped trial). Each returns a
``Linear`` map, so prediction costs the same whichever wins.

- the class-balanced linear SVM, on the labelled rows or self-trained: it labels its most
  confident unlabelled rows and is refitted with them (at ``pseudo_weight``), over rounds that
  admit more and more rows, the same number per class so a favoured class cannot swallow the
  pool (BBC, 2 labels per class: macro-F1 about 55 to 95);
- class centroids, optionally refined with the unlabelled rows nearest each (a quota per class)
  or by seeded k-means (every unlabelled row joins its nearest centroid);
- label spreading (Zhou et al. 2004) along a graph linking each article to its nearest
  neighbours in the ``style`` block, then an SVM on the spread labels;
- the ensemble: the self-trained SVM plus k-means centroids, each divided by its spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.svm import LinearSVC

UNLABELLED = -1
HELD_OUT = -2
# Label spreading: how much of a row's label comes from its neighbours (the rest from its own
# label, if any), and how many steps it spreads; 0.9 and 30 steps reach labels about ten links
# away, far enough to cover a publisher's cluster.
SPREAD_ALPHA = 0.9
SPREAD_STEPS = 30
# Rows of the similarity matrix computed at once when finding neighbours: bounds memory to about
# this many times the number of rows, in float32.
_NEIGHBOUR_CHUNK = 512
# Rounds in which the centroids admit their nearest unlabelled rows: the second round still gains
# a little on the benchmark corpora, a third no longer does.
CENTROID_ROUNDS = 2
# Rounds of the ensemble's seeded k-means at most: on BBC (10 labels per class) it settles after
# four to eight.
KMEANS_ROUNDS = 10


@dataclass(frozen=True)
class Settings:
    """The learners' parameters (see ``TaskClassifier`` for each)."""

    C: float = 0.5
    rounds: int = 5
    pseudo_weight: float = 0.5
    random_state: int = 0
    neighbours: int = 4
    spread_pool: int = 20_000


class Linear:
    """A fitted linear scorer: X @ weights + intercept (what every learner reduces to). One
    weight column for two classes, as a binary SVM has: the scores are then (-s, s)."""

    def __init__(self, weights: np.ndarray, intercept: np.ndarray) -> None:
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    def scores(self, X: sp.spmatrix) -> np.ndarray:
        # X @ a C-ordered float32 (features x classes) matrix: with many classes, about twice as
        # fast as LinearSVC's X @ coef_.T, which reads a transposed float64 view.
        scores = sp.csr_matrix(X, dtype=np.float32) @ self.weights + self.intercept
        return np.column_stack([-scores[:, 0], scores[:, 0]]) if scores.shape[1] == 1 else scores


def svm(settings: Settings) -> LinearSVC:
    return LinearSVC(C=settings.C, class_weight="balanced", random_state=settings.random_state)


def svm_linear(fitted: LinearSVC) -> Linear:
    return Linear(fitted.coef_.T, fitted.intercept_)


def class_means(
    X: sp.csr_matrix, targets: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """Weighted mean row of each class, L2-normalised (so the sum will do), in float32.

    Returned as the transpose of a C-ordered (features x classes) array, the layout ``Linear``
    keeps, so that it takes the weights without a copy: with a hundred classes and 1.7 million
    columns each dense copy is 720 MB (26,590 labels peaked at 3.9 GB with three of them)."""
    membership = sp.csr_matrix(
        (weights, (np.arange(len(targets)), targets)), shape=(len(targets), n_classes)
    )
    sums = sp.csc_matrix(X.T @ membership)
    norms = np.sqrt(np.asarray(sums.multiply(sums).sum(axis=0))).ravel()
    sums = sums @ sp.diags(1 / np.where(norms > 0, norms, 1))
    return sums.astype(np.float32).toarray(order="C").T


def spread(scores: np.ndarray) -> float:
    """Standard deviation of the scores about each row's mean (what tells classes apart): an
    SVM's margins are about one apart, centroids' cosines a few hundredths, so a sum of the two
    divides each by its own. One for a scorer that tells no classes apart."""
    return float(np.std(scores - scores.mean(axis=1, keepdims=True))) or 1.0


def surest(scores: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best class, and the rows chosen as pseudo-labels: per class, at most
    ``per_class`` of the rows it won, those with the widest margin over the runner-up first."""
    guess = scores.argmax(axis=1)
    top2 = np.sort(scores, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    chosen = np.concatenate(
        [
            rows[np.argsort(-margin[rows])[:per_class]]
            for rows in (np.flatnonzero(guess == c) for c in range(scores.shape[1]))
        ]
    )
    return guess, chosen


def neighbour_graph(X: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Symmetric, degree-normalised graph linking each row to its ``k`` most cosine-similar rows
    (rows of X are L2-normalised). Computed in chunks so memory stays linear in the rows."""
    n = X.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n))
    X = sp.csr_matrix(X, dtype=np.float32)
    XT = X.T.tocsc()
    rows, cols, sims = [], [], []
    for start in range(0, n, _NEIGHBOUR_CHUNK):
        stop = min(start + _NEIGHBOUR_CHUNK, n)
        block = (X[start:stop] @ XT).toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(np.arange(start, stop), k))
        cols.append(nearest.ravel())
        sims.append(np.maximum(np.take_along_axis(block, nearest, axis=1).ravel(), 0))
    A = sp.csr_matrix((np.concatenate(sims), (np.concatenate(rows), np.concatenate(cols))), (n, n))
    A = A.maximum(A.T)
    degree = np.asarray(A.sum(axis=1)).ravel()
    scale = sp.diags(1 / np.sqrt(np.where(degree > 0, degree, 1)))
    return (scale @ A @ scale).tocsr()


def spread_labels(graph: sp.csr_matrix, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Label spreading from the rows with a code; one score column per class.

    Each class's seeds add up to one, so a class with more labels does not flood the graph.
    Rows no label reached score zero everywhere."""
    seeds = np.zeros((len(codes), n_classes))
    labelled = np.flatnonzero(codes >= 0)
    seeds[labelled, codes[labelled]] = 1
    seeds /= np.maximum(seeds.sum(axis=0, keepdims=True), 1)
    spread = seeds.copy()
    for _ in range(SPREAD_STEPS):
        spread = SPREAD_ALPHA * (graph @ spread) + (1 - SPREAD_ALPHA) * seeds
    return spread


def centroids(
    X: sp.csr_matrix,
    codes: np.ndarray,
    n_classes: int,
    rounds: int,
    pseudo_weight: float,
    every_row: bool = False,
) -> np.ndarray:
    """L2-normalised class centroids (one row per class) of the labelled rows, then, each
    round, of the labelled rows and, at ``pseudo_weight``, the unlabelled rows nearest each
    centroid: as many per class as the pool holds per class, the surest first, or with
    ``every_row`` all of them (seeded spherical k-means). Stops early once no unlabelled row
    changes class."""
    labelled = np.flatnonzero(codes >= 0)
    pool = np.flatnonzero(codes == UNLABELLED)
    per_class = len(pool) if every_row else int(np.ceil(len(pool) / n_classes))
    means = class_means(X[labelled], codes[labelled], np.ones(len(labelled)), n_classes)
    previous = None
    for _ in range(rounds if len(pool) else 0):
        guess, chosen = surest(X[pool] @ means.T, per_class)
        if previous is not None and np.array_equal(guess, previous):
            break  # the same rows again: the same centroids
        previous = guess
        means = class_means(
            X[np.concatenate([labelled, pool[chosen]])],
            np.concatenate([codes[labelled], guess[chosen]]),
            np.concatenate([np.ones(len(labelled)), np.full(len(chosen), pseudo_weight)]),
            n_classes,
        )
    return means


def _labelled_rows(X: sp.csr_matrix, codes: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The labelled rows and their codes; X itself when every row is labelled (a slice would
    copy the largest matrix of a big label set)."""
    labelled = np.flatnonzero(codes >= 0)
    if len(labelled) == X.shape[0]:
        return X, codes
    return X[labelled], codes[labelled]


def self_train(
    X: sp.csr_matrix, codes: np.ndarray, n_classes: int, rounds: int, settings: Settings
) -> LinearSVC:
    """The SVM on the labelled rows, refitted ``rounds`` times with its surest guesses."""
    labelled = np.flatnonzero(codes >= 0)
    pool = np.flatnonzero(codes == UNLABELLED)
    fitted = svm(settings).fit(*_labelled_rows(X, codes))
    for round_ in range(1, rounds + 1):
        if len(pool) == 0:
            break
        per_class = int(np.ceil(len(pool) * round_ / rounds / n_classes))
        guess, chosen = surest(svm_linear(fitted).scores(X[pool]), per_class)
        rows = np.concatenate([labelled, pool[chosen]])
        weights = np.concatenate(
            [np.ones(len(labelled)), np.full(len(chosen), settings.pseudo_weight)]
        )
        targets = np.concatenate([codes[labelled], guess[chosen]])
        fitted = svm(settings).fit(X[rows], targets, sample_weight=weights)
    return fitted


def style_graph(
    X: sp.csr_matrix, codes: np.ndarray, style: tuple[int, int], settings: Settings
) -> tuple[np.ndarray, sp.csr_matrix]:
    """The rows the spreading graph links (all labelled rows, and unlabelled ones drawn at
    random up to ``spread_pool`` in all) and the graph over their ``style`` columns."""
    labelled = np.flatnonzero(codes >= 0)
    pool = np.flatnonzero(codes < 0)
    room = max(settings.spread_pool - len(labelled), 0)
    if len(pool) > room:
        pool = np.random.default_rng(settings.random_state).choice(pool, room, replace=False)
    members = np.sort(np.concatenate([labelled, pool]))
    return members, neighbour_graph(X[members][:, style[0] : style[1]], settings.neighbours)


def spread_and_fit(
    X: sp.csr_matrix,
    codes: np.ndarray,
    n_classes: int,
    graph: tuple[np.ndarray, sp.csr_matrix],
    settings: Settings,
) -> LinearSVC:
    """Spread the labels over the style graph, then fit the SVM on the labelled rows and, at
    ``pseudo_weight``, every unlabelled row a label reached (with the label that won there).
    HELD_OUT rows are spread through, never trained on."""
    members, adjacency = graph
    spread_scores = spread_labels(adjacency, codes[members], n_classes)
    reached = spread_scores.sum(axis=1) > 0
    spread_to = reached & (codes[members] == UNLABELLED)
    pseudo = members[spread_to]
    labelled = np.flatnonzero(codes >= 0)
    guess = spread_scores.argmax(axis=1)[spread_to]
    rows = np.concatenate([labelled, pseudo])
    targets = np.concatenate([codes[labelled], guess])
    weights = np.concatenate([np.ones(len(labelled)), np.full(len(pseudo), settings.pseudo_weight)])
    return svm(settings).fit(X[rows], targets, sample_weight=weights)


def ensemble(X: sp.csr_matrix, codes: np.ndarray, n_classes: int, settings: Settings) -> Linear:
    """The self-trained SVM's scores plus those of centroids refined by seeded k-means, each
    divided by its spread over X's rows; a sum of two linear maps is one.

    The SVM weighs the words that tell classes apart, the centroids every word a class shares,
    and they err on different articles (BBC, 10 labels per class: about 0.5 points of macro-F1
    above either alone). k-means admits every unlabelled row, not a quota per class: in the sum,
    another 0.4 points there."""
    fitted = self_train(X, codes, n_classes, settings.rounds, settings)
    svm_weights, svm_intercept = fitted.coef_.T, fitted.intercept_
    if svm_weights.shape[1] == 1:  # binary: one column per class, as the centroids have
        svm_weights = np.hstack([-svm_weights, svm_weights])
        svm_intercept = np.concatenate([-svm_intercept, svm_intercept])
    means = centroids(X, codes, n_classes, KMEANS_ROUNDS, settings.pseudo_weight, every_row=True).T
    svm_scale = spread(X @ svm_weights + svm_intercept)
    weights = svm_weights / svm_scale + means / spread(X @ means)
    intercept = svm_intercept / svm_scale
    if weights.shape[1] == 2:
        # Back to the one column of a binary SVM, s with scores (-s, s): the same winner and,
        # with s half the difference, the same softmax.
        return Linear((weights[:, 1:] - weights[:, :1]) / 2, (intercept[1:] - intercept[:1]) / 2)
    return Linear(weights, intercept)
