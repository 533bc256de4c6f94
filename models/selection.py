"""Choosing a candidate by cross-validation, as small functions of the labelled rows.

Folds are grouped by source (the publisher) when the labels say where they come from: no outlet
is on both sides of a fold, as a monitoring tool meets new outlets every week. With random folds
a candidate that recognises an outlet (its bylines, boilerplate, house style) looks as good as
one that recognises a stance; on Baly et al.'s data, split by outlet, such a choice cost 26
points of macro-F1 (bench/RESULTS.md). Beyond ``max_labels`` labels the choice is made on a
stratified draw of that many (the candidates' differences are then far above the noise, and the
cost of every fold grows with the labels).

The choice: the best out-of-fold macro-F1, unless a candidate that learns from the unlabelled
articles is within the noise of it (spreading first, within ``SPREADING_NOISE_MULTIPLE`` times
the noise when it beats the SVM on its own view; then the ensemble; then the best other
self-trained one, each within once the noise). With ~10 labels per class the out-of-fold
macro-F1 is uncertain by several points, and the maximum of several such numbers mostly picks
noise, while the unlabelled articles hold far more evidence. The measurements behind this are in
bench/RESULTS.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from newsmon.models.candidates import Candidate
from newsmon.models.selftraining import HELD_OUT, Linear

# Resamples of the labelled rows that measure how uncertain a difference in macro-F1 is.
BOOTSTRAP_SAMPLES = 200
# How many times that uncertainty the best candidate may lead spreading by, when spreading beats
# the SVM on its own view (bench/RESULTS.md: 1.8 at most where spreading was far better on
# held-out articles, 4.7 and more where it was far worse).
SPREADING_NOISE_MULTIPLE = 3.0

Split = tuple[np.ndarray, np.ndarray]
# (codes of every row, HELD_OUT for a fold's test rows) -> the candidate fitted on them
Fitter = Callable[[np.ndarray], Linear]


@dataclass(frozen=True)
class Folds:
    """The cross-validation of a choice: which labelled rows take part (indices into X), the
    folds over them, and how they were made (said in the model's reason)."""

    rows: np.ndarray
    splits: list[Split]
    how: str


def macro_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(f1_score(truth, scores.argmax(axis=1), average="macro", zero_division=0))


def _every_class_trained(splits: list[Split], truth: np.ndarray) -> bool:
    n_classes = len(np.unique(truth))
    return all(len(np.unique(truth[train])) == n_classes for train, _ in splits)


def _draw(labelled: np.ndarray, truth: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` of the labelled rows, each class in proportion (at least two each)."""
    if len(labelled) <= limit:
        return labelled
    rng = np.random.default_rng(seed)
    share = limit / len(labelled)
    kept = [
        rng.choice(rows, min(len(rows), max(2, round(len(rows) * share))), replace=False)
        for rows in (labelled[truth == c] for c in np.unique(truth))
    ]
    return np.sort(np.concatenate(kept))


def make_folds(
    codes: np.ndarray,
    groups: Sequence[str | None] | None,
    folds: int,
    seed: int,
    max_labels: int,
) -> Folds | None:
    """Folds over the labelled rows (codes >= 0), grouped by ``groups`` (one source per row,
    None where unknown: such a row is a group of its own) when at least two sources are known and
    every training part keeps every class; random stratified folds otherwise. None when a class
    has fewer than two labels to cross-validate with."""
    labelled = np.flatnonzero(codes >= 0)
    rows = _draw(labelled, codes[labelled], max_labels, seed)
    truth = codes[rows]
    folds = min(folds, int(np.bincount(truth).min()))
    if folds < 2:
        return None
    drawn = f", on {len(rows)} of {len(labelled)} labels" if len(rows) < len(labelled) else ""
    known = [] if groups is None else [groups[i] for i in rows]
    sources = {g for g in known if g is not None}
    if len(sources) >= 2:
        ids = np.array([g if g is not None else f"\0{i}" for i, g in enumerate(known)])
        for n in range(min(folds, len(sources)), 1, -1):
            splitter = StratifiedGroupKFold(n, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a class in fewer groups than folds
                splits = list(splitter.split(rows, truth, ids))
            if _every_class_trained(splits, truth):
                return Folds(rows, splits, f"{n} folds grouped by source{drawn}")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class with fewer rows than folds
        splits = list(splitter.split(rows, truth))
    why = " (sources unknown or too few per class)" if groups is not None else ""
    return Folds(rows, splits, f"{folds} random folds{why}{drawn}")


def out_of_fold(
    codes: np.ndarray, folds: Folds, fit: Fitter, n_classes: int, X: sp.csr_matrix
) -> np.ndarray:
    """Out-of-fold scores of ``folds.rows`` for one candidate. A fold's test rows, and labelled
    rows outside the draw, are HELD_OUT: never trained on, not even as unlabelled rows."""
    scores = np.zeros((len(folds.rows), n_classes))
    base = np.where(codes >= 0, HELD_OUT, codes)
    base[folds.rows] = codes[folds.rows]
    for _, test in folds.splits:
        fold_codes = base.copy()
        fold_codes[folds.rows[test]] = HELD_OUT
        scores[test] = fit(fold_codes).scores(X[folds.rows[test]])
    return scores


def noise(truth: np.ndarray, scores: np.ndarray, other: np.ndarray, seed: int) -> float:
    """Bootstrap spread of the difference in macro-F1 between two sets of scores."""
    rng = np.random.default_rng(seed)
    guess, other_guess = scores.argmax(axis=1), other.argmax(axis=1)
    gaps = []
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.integers(0, len(truth), len(truth))
        gaps.append(
            f1_score(truth[rows], guess[rows], average="macro", zero_division=0)
            - f1_score(truth[rows], other_guess[rows], average="macro", zero_division=0)
        )
    return float(np.std(gaps))


def _preference(oof: dict[Candidate, np.ndarray], f1: dict[Candidate, float]) -> list:
    """The candidates that learn from unlabelled rows, in the order they are kept, each with how
    many times the noise it may trail the best by."""
    first = next(iter(oof))
    spreading = next((c for c in oof if c.unlabelled == "spreading"), None)
    ensemble = next((c for c in oof if c.ensemble), None)
    others = [c for c in oof if c.unlabelled not in (None, "spreading") and not c.ensemble]
    order = []
    if spreading is not None:
        # What spreading adds is the spread labels: it must beat the SVM on its own view fitted
        # on the labelled rows alone.
        same_view = next(
            (
                c
                for c in oof
                if c.unlabelled is None
                and not c.centroid
                and c.style_weight == spreading.style_weight
            ),
            first,
        )
        if f1[spreading] > f1[same_view]:
            order.append((spreading, SPREADING_NOISE_MULTIPLE))
    if ensemble is not None:
        order.append((ensemble, 1.0))
    if others:
        order.append((max(others, key=lambda c: f1[c]), 1.0))
    return order


def choose(truth: np.ndarray, oof: dict[Candidate, np.ndarray], seed: int = 0) -> Candidate:
    """The candidate with the best out-of-fold macro-F1 (the first wins ties), unless one that
    learns from the unlabelled rows is within the noise of it (see the module's text)."""
    f1 = {c: macro_f1(truth, scores) for c, scores in oof.items()}
    first = next(iter(oof))
    best = max(oof, key=lambda c: (f1[c], c is first))
    for keep, multiple in _preference(oof, f1):
        if keep is best or f1[best] - f1[keep] <= multiple * noise(
            truth, oof[best], oof[keep], seed
        ):
            return keep
    return best


def temperature(truth: np.ndarray, scores: np.ndarray) -> float:
    """The softmax temperature that fits the out-of-fold scores best (one parameter: stable on
    tiny sets, and it never changes which class wins)."""

    def loss(log_t: float) -> float:
        return -log_softmax(np.exp(log_t) * scores, axis=1)[np.arange(len(truth)), truth].mean()

    return float(np.exp(minimize_scalar(loss, bounds=(-5, 5), method="bounded").x))
