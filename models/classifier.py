"""``TaskClassifier``: one task's classifier (topic or stance), chosen per task among a few
candidates (``candidates``) by cross-validation grouped by source (``selection``), with honest
probabilities.

Probabilities come from one softmax temperature fitted on out-of-fold scores of the labelled rows
only (pseudo-labels agree with the model by construction and would flatter it). With a handful of
labels the out-of-fold guesses are often wrong, so the temperature is low and the probabilities
stay near uniform: the model does not look surer than it has shown itself to be.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from newsmon.models import selection
from newsmon.models.candidates import (
    Candidate,
    block_columns,
    fit_candidate,
    labelled_candidates,
    unlabelled_candidates,
)
from newsmon.models.selftraining import UNLABELLED, Linear, Settings, style_graph


def encode(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes (sorted label strings) and one code per row, UNLABELLED where y is None."""
    y = np.asarray(y, dtype=object)
    is_labelled = np.array([value is not None for value in y], dtype=bool)
    classes, labelled_codes = np.unique(y[is_labelled].astype(str), return_inverse=True)
    codes = np.full(len(y), UNLABELLED)
    codes[is_labelled] = labelled_codes
    return classes, codes


class TaskClassifier(ClassifierMixin, BaseEstimator):
    """Linear classifier of one task; ``y`` holds None for unlabelled rows, ``groups`` (to fit)
    each row's source, None where unknown.

    C: the SVM's regularisation. rounds: self-training rounds (0: labelled rows only).
    pseudo_weight: sample weight of a pseudo-labelled row relative to a labelled one.
    calibration_folds: at most this many folds (fewer when a class or the sources are few; 0
    skips the choice and calibration, so predict_proba is unavailable: the SVM on words is used,
    self-trained whenever rounds > 0).
    max_self_training_classes: above this many classes no SVM learns from unlabelled rows (each
    refits one SVM per class per round); the centroids still may.
    max_self_training_labels: above this many labels nothing learns from unlabelled rows (the
    labels carry the task, and each trial refits on the pool in every fold).
    max_cv_labels: the choice is cross-validated on a stratified draw of at most this many labels.
    max_svm_work: above this many labels times classes the SVMs are not candidates, only the
    centroids (an SVM fits one weight vector per class over every label: on Baly et al.'s 107
    topics and 6,400 labels, 30 s and 2 GB, and 3 points of macro-F1 below the centroids).
    cv_pool: at most this many unlabelled rows take part in a fold of a self-training trial.
    blocks: the feature blocks' (start, stop) columns (``NewsFeatures.blocks_``).
    style_weight, lead_weight: the style and lead blocks' weights where a candidate uses them.
    neighbours, spread_pool: each row's neighbours in the spreading graph, and at most how many
    rows it links (it costs time quadratic in them).

    After fit: ``method_`` (the candidate chosen), ``self_training_`` (whether the unlabelled rows
    were used), ``self_training_reason_`` (why), ``cv_macro_f1_`` (out-of-fold macro-F1 of each
    candidate, None for one not tried; None without cross-validation) and ``cv_folds_`` (how the
    folds were made).
    """

    def __init__(
        self,
        C: float = 0.5,
        rounds: int = 5,
        pseudo_weight: float = 0.5,
        calibration_folds: int = 5,
        random_state: int = 0,
        max_self_training_classes: int = 20,
        max_self_training_labels: int = 5000,
        max_cv_labels: int = 4000,
        max_svm_work: int = 300_000,
        cv_pool: int = 2000,
        blocks: dict[str, tuple[int, int]] | None = None,
        style_weight: float = 1.0,
        lead_weight: float = 0.5,
        neighbours: int = 4,
        spread_pool: int = 20_000,
    ) -> None:
        self.C = C
        self.rounds = rounds
        self.pseudo_weight = pseudo_weight
        self.calibration_folds = calibration_folds
        self.random_state = random_state
        self.max_self_training_classes = max_self_training_classes
        self.max_self_training_labels = max_self_training_labels
        self.max_cv_labels = max_cv_labels
        self.max_svm_work = max_svm_work
        self.cv_pool = cv_pool
        self.blocks = blocks
        self.style_weight = style_weight
        self.lead_weight = lead_weight
        self.neighbours = neighbours
        self.spread_pool = spread_pool

    def _settings(self) -> Settings:
        return Settings(
            self.C,
            self.rounds,
            self.pseudo_weight,
            self.random_state,
            self.neighbours,
            self.spread_pool,
        )

    def _why_no_unlabelled(self, codes: np.ndarray) -> tuple[str, str]:
        """Why nothing, or no SVM, learns from the unlabelled rows ("" where they may)."""
        if self.rounds <= 0:
            return "self-training switched off", ""
        if (codes >= 0).all():
            return "no unlabelled articles", ""
        if (codes >= 0).sum() > self.max_self_training_labels:
            return f"more than {self.max_self_training_labels} labels, to bound training time", ""
        if self._too_costly_for_svms(codes):
            return "", (
                f"{(codes >= 0).sum()} labels of {len(self.classes_)} classes (more than "
                f"{self.max_svm_work} labels x classes), no SVM at all, to bound training time"
            )
        if len(self.classes_) > self.max_self_training_classes:
            return "", (
                f"{len(self.classes_)} classes (more than {self.max_self_training_classes}), "
                "to bound training time"
            )
        return "", ""

    def _too_costly_for_svms(self, codes: np.ndarray) -> bool:
        return (codes >= 0).sum() * len(self.classes_) > self.max_svm_work

    def _views(self, codes: np.ndarray) -> list[Candidate]:
        """The labelled-only candidates: all of them, or the centroids alone beyond
        ``max_svm_work``."""
        views = labelled_candidates(self.blocks, self.style_weight, self.lead_weight)
        if self._too_costly_for_svms(codes):
            return [c for c in views if c.centroid]
        return views

    def _fitter(self, X: sp.csr_matrix, candidate: Candidate, graph: tuple | None):
        """Fits ``candidate`` on a fold's codes: on the labelled rows and, for a self-training
        candidate, at most ``cv_pool`` unlabelled ones drawn at random; spreading on all of X
        (its graph spans the rows)."""
        settings, n_classes = self._settings(), len(self.classes_)

        def fit(codes: np.ndarray) -> Linear:
            if candidate.unlabelled == "spreading":
                return fit_candidate(X, codes, n_classes, candidate, settings, self.blocks, graph)
            keep = np.flatnonzero(codes >= 0)
            pool = np.flatnonzero(codes == UNLABELLED) if candidate.unlabelled else keep[:0]
            if len(pool) > self.cv_pool:
                rng = np.random.default_rng(self.random_state)
                pool = rng.choice(pool, self.cv_pool, replace=False)
            keep = np.union1d(keep, pool)
            return fit_candidate(X[keep], codes[keep], n_classes, candidate, settings, self.blocks)

        return fit

    def _trial(
        self, X: sp.csr_matrix, codes: np.ndarray, folds: selection.Folds, svms_too: bool
    ) -> tuple[dict[Candidate, np.ndarray], tuple | None]:
        """Out-of-fold scores of every candidate tried, and the style graph if one was built."""
        n_classes = len(self.classes_)
        truth = codes[folds.rows]
        views = self._views(codes)
        oof = {
            c: selection.out_of_fold(codes, folds, self._fitter(X, c, None), n_classes, X)
            for c in views
        }
        if self.rounds <= 0 or (codes >= 0).all() or not self._unlabelled_allowed:
            return oof, None
        svm_views = [c for c in views if not c.centroid] if svms_too else views
        best_svm = max(svm_views, key=lambda c: selection.macro_f1(truth, oof[c]))
        style = block_columns(self.blocks, "style")
        spreading = self.style_weight if style is not None else None
        graph = style_graph(X, codes, style, self._settings()) if svms_too and style else None
        for c in unlabelled_candidates(views[-1], best_svm, svms_too, spreading):
            oof[c] = selection.out_of_fold(codes, folds, self._fitter(X, c, graph), n_classes, X)
        return oof, graph

    def fit(
        self, X: sp.spmatrix, y: np.ndarray, groups: Sequence[str | None] | None = None
    ) -> TaskClassifier:
        X = sp.csr_matrix(X)
        self.classes_, codes = encode(y)
        if len(self.classes_) < 2:
            raise ValueError("a classifier needs labelled examples of at least two classes")
        none_reason, svm_reason = self._why_no_unlabelled(codes)
        self._unlabelled_allowed = not none_reason
        not_tried = none_reason or svm_reason
        self.temperature_ = None
        self.cv_true_ = self.cv_pred_ = self.cv_macro_f1_ = self.cv_folds_ = None
        folds = selection.make_folds(
            codes, groups, self.calibration_folds, self.random_state, self.max_cv_labels
        )
        first = self._views(codes)[0]
        graph = None
        if folds is None:
            # Nothing to compare on: newsmon's first model, self-training if allowed.
            chosen = first
            if not not_tried:
                chosen = Candidate("self_training", first.style_weight, unlabelled="self_training")
                not_tried = "self-training; too few labels per class to cross-validate the choice"
        else:
            oof, graph = self._trial(X, codes, folds, svms_too=not not_tried)
            truth = codes[folds.rows]
            chosen = selection.choose(truth, oof, self.random_state)
            self._record(truth, oof, chosen, folds)
        del self._unlabelled_allowed
        self.method_ = chosen.name
        self.self_training_ = chosen.unlabelled is not None
        self.self_training_reason_ = self._reason(chosen, first, not_tried)
        if chosen.unlabelled == "spreading" and graph is None:
            graph = style_graph(X, codes, block_columns(self.blocks, "style"), self._settings())
        final = fit_candidate(
            X, codes, len(self.classes_), chosen, self._settings(), self.blocks, graph
        )
        self.weights_, self.intercept_ = final.weights, final.intercept
        return self

    def _record(
        self,
        truth: np.ndarray,
        oof: dict[Candidate, np.ndarray],
        chosen: Candidate,
        folds: selection.Folds,
    ) -> None:
        """What the cross-validation found: every candidate's score, the chosen one's
        out-of-fold predictions and the temperature they give."""
        names = ("self_training", "spreading", "centroid_self_training", "ensemble")
        self.cv_macro_f1_ = {name: None for name in names}
        self.cv_macro_f1_.update({c.name: selection.macro_f1(truth, s) for c, s in oof.items()})
        self.cv_folds_ = folds.how
        self.cv_true_ = self.classes_[truth]
        self.cv_pred_ = self.classes_[oof[chosen].argmax(axis=1)]
        self.temperature_ = selection.temperature(truth, oof[chosen])

    def _reason(self, chosen: Candidate, first: Candidate, not_tried: str) -> str:
        if self.cv_macro_f1_ is None:
            return not_tried or chosen.name
        gain = self.cv_macro_f1_[chosen.name] - self.cv_macro_f1_[first.name]
        over = "the SVM on words"
        if first.centroid:
            over = f"the centroids (no SVM beyond {self.max_svm_work} labels x classes)"
        return (
            f"{chosen.name}: cross-validated macro-F1 {gain:+.3f} over {over} "
            f"({self.cv_folds_})"
            + (f"; SVMs on unlabelled articles not tried: {not_tried}" if not_tried else "")
        )

    def decision_function(self, X: sp.spmatrix) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return Linear(self.weights_, self.intercept_).scores(X)

    def predict(self, X: sp.spmatrix) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def predict_proba(self, X: sp.spmatrix) -> np.ndarray:
        if getattr(self, "temperature_", None) is None:
            raise AttributeError("not calibrated: too few labels per class for held-out scores")
        return softmax(self.temperature_ * self.decision_function(X), axis=1)
