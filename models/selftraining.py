"""A linear classifier that also learns from unlabelled articles, with honest probabilities.

Self-training: a linear SVM is fitted on the labelled rows, labels its most confident unlabelled
rows, and is refitted with them (at a lower weight), over a few rounds that admit more and more
rows. Each round admits the same number of rows per class, so a class that is already favoured
cannot swallow the unlabelled pool. On the benchmark corpora this lifts macro-F1 most when labels
are few (BBC, 2 labels per class: about 55 to 95).

Whether the unlabelled rows help is decided per task, by the same cross-validation that sets the
confidences: the out-of-fold predictions of the labelled rows are computed with and without
self-training, and the unlabelled rows are used only when they raise the out-of-fold macro-F1.
Topics (words that recur within a class) gain from them; political leaning, where the model's own
guesses are often wrong, can lose, and then the labelled rows alone are used. Above
``max_self_training_classes`` classes self-training is not tried: each round refits one SVM per
class, and with a hundred classes the gain does not pay for the time.

Probabilities come from one softmax temperature fitted on out-of-fold scores of the labelled rows
only (pseudo-labels agree with the model by construction and would flatter it). With a handful of
labels the out-of-fold guesses are often wrong, so the temperature is low and the probabilities
stay near uniform: the model does not look surer than it has shown itself to be. One parameter
keeps the fit stable on tiny sets and never changes which class wins.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

UNLABELLED = -1


def _scores(svm: LinearSVC, X: sp.spmatrix) -> np.ndarray:
    """Decision scores as one column per class, also for a binary SVM (which gives one)."""
    scores = svm.decision_function(X)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def _macro_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(f1_score(truth, scores.argmax(axis=1), average="macro", zero_division=0))


class SelfTrainingSVM(ClassifierMixin, BaseEstimator):
    """Class-balanced self-training around LinearSVC. ``y`` holds None for unlabelled rows.

    C: the SVM's regularisation. rounds: self-training rounds (0: labelled rows only).
    pseudo_weight: sample weight of a pseudo-labelled row relative to a labelled one.
    calibration_folds: at most this many folds for the out-of-fold scores (fewer when a class has
    fewer examples; 0 skips calibration, so predict_proba is unavailable, and with it the
    cross-validated choice: self-training is then used whenever rounds > 0).
    max_self_training_classes: above this many classes, only the labelled rows are used.
    cv_pool: at most this many unlabelled rows (drawn at random) take part in the cross-validated
    choice, which fits ``rounds + 1`` SVMs per fold; the final model uses the whole pool.

    After fit: ``self_training_`` (whether the unlabelled rows were used), ``self_training_reason_``
    (why) and ``cv_macro_f1_`` (out-of-fold macro-F1 of each option tried, or None).
    """

    def __init__(
        self,
        C: float = 0.5,
        rounds: int = 5,
        pseudo_weight: float = 0.5,
        calibration_folds: int = 5,
        random_state: int = 0,
        max_self_training_classes: int = 20,
        cv_pool: int = 2000,
    ) -> None:
        self.C = C
        self.rounds = rounds
        self.pseudo_weight = pseudo_weight
        self.calibration_folds = calibration_folds
        self.random_state = random_state
        self.max_self_training_classes = max_self_training_classes
        self.cv_pool = cv_pool

    def _svm(self) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight="balanced", random_state=self.random_state)

    def _self_train(self, X: sp.csr_matrix, codes: np.ndarray, rounds: int) -> LinearSVC:
        labelled = np.flatnonzero(codes != UNLABELLED)
        pool = np.flatnonzero(codes == UNLABELLED)
        svm = self._svm().fit(X[labelled], codes[labelled])
        n_classes = len(self.classes_)
        for round_ in range(1, rounds + 1):
            if len(pool) == 0:
                break
            scores = _scores(svm, X[pool])
            guess = scores.argmax(axis=1)
            top2 = np.sort(scores, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
            per_class = int(np.ceil(len(pool) * round_ / rounds / n_classes))
            chosen = np.concatenate(
                [
                    rows[np.argsort(-margin[rows])[:per_class]]
                    for rows in (np.flatnonzero(guess == c) for c in range(n_classes))
                ]
            )
            rows = np.concatenate([labelled, pool[chosen]])
            weights = np.concatenate(
                [np.ones(len(labelled)), np.full(len(chosen), self.pseudo_weight)]
            )
            targets = np.concatenate([codes[labelled], guess[chosen]])
            svm = self._svm().fit(X[rows], targets, sample_weight=weights)
        return svm

    def fit(self, X: sp.spmatrix, y: np.ndarray) -> SelfTrainingSVM:
        X = sp.csr_matrix(X)
        y = np.asarray(y, dtype=object)
        is_labelled = np.array([value is not None for value in y])
        self.classes_, labelled_codes = np.unique(y[is_labelled].astype(str), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("self-training needs labelled examples of at least two classes")
        codes = np.full(len(y), UNLABELLED)
        codes[is_labelled] = labelled_codes
        self.temperature_ = None
        self.cv_true_ = self.cv_pred_ = None
        self.cv_macro_f1_ = None
        counts = np.bincount(labelled_codes)
        folds = min(self.calibration_folds, int(counts.min()))
        use, reason = self._try_self_training(is_labelled)
        if folds >= 2:
            labelled = np.flatnonzero(is_labelled)
            truth = codes[labelled]
            splits = self._splits(labelled, truth, folds)
            plain = self._oof_scores(X, codes, splits, rounds=0)
            chosen = plain
            self.cv_macro_f1_ = {"labelled_only": _macro_f1(truth, plain), "self_training": None}
            if use:
                with_pool = self._oof_scores(X, codes, splits, rounds=self.rounds)
                self.cv_macro_f1_["self_training"] = _macro_f1(truth, with_pool)
                gain = self.cv_macro_f1_["self_training"] - self.cv_macro_f1_["labelled_only"]
                use = gain > 0
                chosen = with_pool if use else plain
                reason = (
                    f"cross-validated macro-F1 {'+' if gain >= 0 else ''}{gain:.3f} "
                    f"with unlabelled articles ({folds} folds)"
                )
            self._calibrate(truth, chosen)
        elif use:
            reason += "; too few labels per class to cross-validate the choice"
        self.self_training_ = bool(use)
        self.self_training_reason_ = reason
        self.svm_ = self._self_train(X, codes, self.rounds if use else 0)
        self.weights_ = np.ascontiguousarray(self.svm_.coef_.T, dtype=np.float32)
        self.intercept_ = self.svm_.intercept_.astype(np.float32)
        return self

    def _try_self_training(self, is_labelled: np.ndarray) -> tuple[bool, str]:
        """Whether self-training is worth trying at all, and if not why."""
        if self.rounds <= 0:
            return False, "self-training switched off"
        if is_labelled.all():
            return False, "no unlabelled articles"
        if len(self.classes_) > self.max_self_training_classes:
            return False, (
                f"{len(self.classes_)} classes (more than {self.max_self_training_classes}): "
                "labelled articles only, to bound training time"
            )
        return True, "self-training on unlabelled articles"

    def _splits(self, labelled: np.ndarray, truth: np.ndarray, folds: int) -> list:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        with warnings.catch_warnings():
            # A class with fewer rows than folds is expected with tiny label sets.
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(labelled, truth))

    def _oof_scores(
        self, X: sp.csr_matrix, codes: np.ndarray, splits: list, rounds: int
    ) -> np.ndarray:
        """Out-of-fold scores of the labelled rows; each fold's held-out rows join the unlabelled
        pool, as unseen articles do in use."""
        labelled = np.flatnonzero(codes != UNLABELLED)
        scores = np.zeros((len(labelled), len(self.classes_)))
        for _, held_out in splits:
            fold_codes = codes.copy()
            fold_codes[labelled[held_out]] = UNLABELLED
            if rounds == 0:  # the pool is not used: fit on the fold's labelled rows only
                keep = np.flatnonzero(fold_codes != UNLABELLED)
                fold_codes = fold_codes[keep]
                svm = self._self_train(X[keep], fold_codes, 0)
            else:
                pool = np.flatnonzero(codes == UNLABELLED)
                if len(pool) > self.cv_pool:
                    rng = np.random.default_rng(self.random_state)
                    dropped = np.setdiff1d(pool, rng.choice(pool, self.cv_pool, replace=False))
                    keep = np.setdiff1d(np.arange(len(codes)), dropped)
                    svm = self._self_train(X[keep], fold_codes[keep], rounds)
                else:
                    svm = self._self_train(X, fold_codes, rounds)
            scores[held_out] = _scores(svm, X[labelled[held_out]])
        return scores

    def _calibrate(self, truth: np.ndarray, scores: np.ndarray) -> None:
        """Cross-validated predictions and the softmax temperature from out-of-fold scores."""
        self.cv_true_ = self.classes_[truth]
        self.cv_pred_ = self.classes_[scores.argmax(axis=1)]

        def loss(log_t: float) -> float:
            return -log_softmax(np.exp(log_t) * scores, axis=1)[np.arange(len(truth)), truth].mean()

        self.temperature_ = float(np.exp(minimize_scalar(loss, bounds=(-5, 5), method="bounded").x))

    def decision_function(self, X: sp.spmatrix) -> np.ndarray:
        check_is_fitted(self, "svm_")
        weights = getattr(self, "weights_", None)
        if weights is None:  # a model saved before weights_ existed
            return _scores(self.svm_, X)
        # X @ a C-ordered float32 (features x classes) matrix: with many classes, about twice as
        # fast as LinearSVC's X @ coef_.T, which reads a transposed float64 view.
        scores = sp.csr_matrix(X, dtype=np.float32) @ weights + self.intercept_
        return np.column_stack([-scores[:, 0], scores[:, 0]]) if scores.shape[1] == 1 else scores

    def predict(self, X: sp.spmatrix) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def predict_proba(self, X: sp.spmatrix) -> np.ndarray:
        if getattr(self, "temperature_", None) is None:
            raise AttributeError("not calibrated: too few labels per class for held-out scores")
        return softmax(self.temperature_ * self.decision_function(X), axis=1)
