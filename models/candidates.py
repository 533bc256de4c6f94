"""The candidates newsmon's classifier compares: which feature blocks, weighted how, and which
learner (``selftraining``). Every candidate is fitted to one ``Linear`` map of the whole
feature space: block weights fold into its weights.

- ``labelled_only``: the SVM on the word block (newsmon's first model);
- ``style``: the SVM on words and punctuation style;
- ``centroid``: the nearest class centroid on words and lead, which with a handful of labels per
  class and many classes often beats the SVM (it fits no per-word weights it cannot estimate);
- ``centroid_self_training``: the centroids, refined over two rounds with the unlabelled rows
  nearest each; cheap with any number of classes;
- ``self_training`` (on the better of the two SVM views), ``ensemble`` (self-trained SVM plus
  k-means centroids on words and lead) and ``spreading`` (labels spread over the style graph),
  which refit SVMs on every unlabelled row, once per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from newsmon.models import selftraining as learners
from newsmon.models.selftraining import Linear, Settings

Blocks = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Candidate:
    """One option: the weights of the style and lead blocks (the word block's is one), the
    learner (the SVM, the centroids, or with ``ensemble`` both, summed), and what is done with
    the unlabelled rows (None, "self_training" or "spreading")."""

    name: str
    style_weight: float
    lead_weight: float = 0.0
    centroid: bool = False
    unlabelled: str | None = None
    ensemble: bool = False


def block_columns(blocks: Blocks | None, name: str) -> tuple[int, int] | None:
    """A block's (start, stop) columns, None when it is absent or empty."""
    columns = (blocks or {}).get(name)
    return columns if columns and columns[1] > columns[0] else None


def column_scale(n_features: int, blocks: Blocks | None, candidate: Candidate) -> np.ndarray | None:
    """Per-column weights of a candidate's view (None: all ones)."""
    weights = {"style": candidate.style_weight, "lead": candidate.lead_weight}
    found = {name: block_columns(blocks, name) for name in weights}
    if all(found[name] is None or weights[name] == 1.0 for name in weights):
        return None
    scale = np.ones(n_features)
    for name, columns in found.items():
        if columns is not None:
            scale[columns[0] : columns[1]] = weights[name]
    return scale


def _view(X: sp.csr_matrix, scale: np.ndarray | None) -> sp.csr_matrix:
    if scale is None:
        return X
    view = sp.csr_matrix(X.multiply(scale[np.newaxis, :]))
    view.eliminate_zeros()
    return view


def fit_candidate(
    X: sp.csr_matrix,
    codes: np.ndarray,
    n_classes: int,
    candidate: Candidate,
    settings: Settings,
    blocks: Blocks | None,
    graph: tuple[np.ndarray, sp.csr_matrix] | None = None,
) -> Linear:
    """``candidate`` fitted on the rows of X with codes (see ``selftraining``); the weights apply
    to X's columns directly. ``graph`` (from ``selftraining.style_graph``) for spreading."""
    scale = column_scale(X.shape[1], blocks, candidate)
    view = _view(X, scale)
    if candidate.ensemble:
        fitted = learners.ensemble(view, codes, n_classes, settings)
    elif candidate.centroid:
        rounds = learners.CENTROID_ROUNDS if candidate.unlabelled == "self_training" else 0
        means = learners.centroids(view, codes, n_classes, rounds, settings.pseudo_weight)
        fitted = Linear(means.T, np.zeros(n_classes))
    elif candidate.unlabelled == "spreading":
        if graph is None:
            raise ValueError("spreading needs the style graph")
        spread = learners.spread_and_fit(view, codes, n_classes, graph, settings)
        fitted = learners.svm_linear(spread)
    else:
        rounds = settings.rounds if candidate.unlabelled == "self_training" else 0
        fitted = learners.svm_linear(learners.self_train(view, codes, n_classes, rounds, settings))
    if scale is None:
        return fitted
    # In place, in float32 as the weights are: a product would copy a large model's weights.
    fitted.weights *= scale.astype(np.float32)[:, np.newaxis]
    return fitted


def labelled_candidates(blocks: Blocks | None, style_weight: float, lead_weight: float) -> list:
    """The candidates that learn from the labelled rows alone; the SVM on words first (it wins
    ties). Without a style block, the word view is the whole space."""
    style = block_columns(blocks, "style") is not None
    words = 0.0 if style else 1.0
    views = [Candidate("labelled_only", words)]
    if style:
        views.append(Candidate("style", style_weight))
    views.append(Candidate("centroid", words, lead_weight, centroid=True))
    return views


def unlabelled_candidates(
    centroid: Candidate, best_svm: Candidate, svms_too: bool, spreading_weight: float | None
) -> list[Candidate]:
    """The candidates that learn from unlabelled rows: the self-trained centroids always (a few
    products with the centroids, cheap with any number of classes); with ``svms_too`` the
    self-trained SVM on ``best_svm``'s view, the ensemble on the centroids' view, and spreading
    at ``spreading_weight`` when there is a style block."""
    extra = [
        Candidate(
            "centroid_self_training",
            centroid.style_weight,
            centroid.lead_weight,
            centroid=True,
            unlabelled="self_training",
        )
    ]
    if not svms_too:
        return extra
    extra.append(Candidate("self_training", best_svm.style_weight, unlabelled="self_training"))
    extra.append(
        Candidate(
            "ensemble",
            centroid.style_weight,
            centroid.lead_weight,
            unlabelled="self_training",
            ensemble=True,
        )
    )
    if spreading_weight is not None:
        extra.append(Candidate("spreading", spreading_weight, unlabelled="spreading"))
    return extra
