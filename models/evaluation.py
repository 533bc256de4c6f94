"""Measuring a classifier: metrics, their text form, and the learning curve at few labels.

The learning curve answers "does using the unlabelled articles help?": at n labels per class it
trains newsmon's model with and without the unlabelled pool on the same labels and scores both on
the same held-out articles.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from newsmon.labels import Label
from newsmon.models.claims import FNC_STANCES, fnc_score
from newsmon.models.predict import predict
from newsmon.models.training import NewsClassifier, document_text

LEARNING_CURVE_SIZES = (2, 10, 50)
# Bounds on the learning curve's cost: it stops drawing after this many seconds (and says so),
# and each draw learns from at most this many unlabelled texts (with 26,590 labels the labels not
# drawn alone are 26,000 texts for every draw's features and self-training).
CURVE_SECONDS = 600.0
CURVE_MAX_POOL = 5000


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str | None]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A missing prediction (None) counts as wrong: it is shown as the class '(none)'.
    """
    truth = [str(t) for t in y_true]
    pred = ["(none)" if p is None else str(p) for p in y_pred]
    classes = sorted(set(truth))
    shown = classes + sorted(set(pred) - set(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=classes, zero_division=0
    )
    return {
        "n": len(truth),
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(np.mean(f1)) if classes else 0.0,
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "labels": shown,
            "matrix": confusion_matrix(truth, pred, labels=shown).tolist(),
        },
    }


def score_labels(model: NewsClassifier, labels: Sequence[Label]) -> dict[str, dict]:
    """A trained model scored on labelled articles it did not see: per task, its metrics (None
    when no label has that task) and what it cannot predict.

    ``stance`` scores each label's stance where it is toward: a pair label's toward its own
    claim (by the claim model), any other toward its topic's target. On pair labels alone in
    FNC-1's four labels, its metrics carry FNC-1's weighted score too."""
    predictions = predict(model, [x.title for x in labels], [x.text for x in labels])
    topic_rows = [i for i, x in enumerate(labels) if x.topic is not None]
    pairs = [x for x in labels if x.target is not None and x.stance is not None]
    targeted = [i for i, x in enumerate(labels) if x.target is None and x.stance is not None]
    claim_model = model.claims.model if model.claims else None
    truth = [str(labels[i].stance) for i in targeted]
    predicted: list[str | None] = [predictions.stance[i] for i in targeted]
    if pairs:
        truth += [str(x.stance) for x in pairs]
        predicted += [None] * len(pairs) if claim_model is None else list(claim_model.predict(
            [str(x.target) for x in pairs], [document_text(x.title, x.text) for x in pairs]))
    stance_metrics = classification_metrics(truth, predicted) if truth else None
    if stance_metrics and pairs and not targeted and set(truth) <= set(FNC_STANCES):
        stance_metrics["fnc_score"] = fnc_score(truth, ["(none)" if p is None else str(p)
                                                        for p in predicted])
    claim_note = ("no claim model: the model was trained without pair labels"
                  if pairs and claim_model is None else model.claims.note if pairs else None)
    return {
        "topic": {
            "cannot": model.topic.note,
            "metrics": classification_metrics([str(labels[i].topic) for i in topic_rows],
                                              [predictions.topic[i] for i in topic_rows])
            if topic_rows else None,
        },
        "stance": {
            "cannot": "; ".join(filter(None, [model.stance.note if targeted else None,
                                              claim_note])) or None,
            "metrics": stance_metrics,
        },
    }


def format_metrics(title: str, metrics: dict, max_confusion: int = 12) -> str:
    """A plain-text report; the confusion matrix only when it fits on a screen."""
    lines = [
        f"{title}: n={metrics['n']}  accuracy={metrics['accuracy']:.3f}  "
        f"macro-F1={metrics['macro_f1']:.3f}"
        + (f"  FNC-1 score={metrics['fnc_score']:.2f}" if "fnc_score" in metrics else ""),
        f"  {'class':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>7}",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"  {name[:24]:<24} {row['precision']:>9.3f} {row['recall']:>7.3f} "
            f"{row['f1']:>6.3f} {row['support']:>7}"
        )
    labels = metrics["confusion"]["labels"]
    if len(labels) <= max_confusion:
        width = max(6, *(len(label[:12]) for label in labels))
        lines.append("  confusion (rows: truth, columns: predicted)")
        lines.append("  " + " " * width + " " + " ".join(f"{lab[:12]:>{width}}" for lab in labels))
        for label, row in zip(labels, metrics["confusion"]["matrix"], strict=True):
            lines.append(f"  {label[:12]:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    else:
        lines.append(f"  (confusion matrix of {len(labels)} classes: see --json)")
    return "\n".join(lines)


def sample_per_class(targets: Sequence[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most n examples of each class, drawn at random."""
    targets = np.asarray(targets, dtype=object)
    chosen = [
        rng.choice(rows, min(n, len(rows)), replace=False)
        for rows in (np.flatnonzero(targets == c) for c in sorted(set(targets)))
    ]
    return np.sort(np.concatenate(chosen))


# (labels to train on, unlabelled texts, test labels) -> predicted test targets
Trainer = Callable[[Sequence[Label], Sequence[str], Sequence[Label]], list[str | None]]


def learning_curve(
    task: str,
    train_labels: Sequence[Label],
    test_labels: Sequence[Label],
    unlabelled: Sequence[str],
    trainers: dict[str, Trainer],
    sizes: Sequence[int] = LEARNING_CURVE_SIZES,
    repeats: int = 3,
    seed: int = 0,
    max_seconds: float | None = CURVE_SECONDS,
    max_pool: int = CURVE_MAX_POOL,
) -> list[dict]:
    """Macro-F1 of each trainer at n labels per class (mean and spread over the draws made).

    The labels not drawn join the unlabelled pool as texts, as unlabelled articles would; at
    most ``max_pool`` unlabelled texts in all are drawn for each draw. scikit-learn's warnings
    about tiny label sets are silenced. Once ``max_seconds`` have passed no further draw starts:
    each row says how many draws it holds, the last one made why it stopped (``stopped``), and
    sizes not reached are left out.
    """
    pool_labels = [label for label in train_labels if getattr(label, task) is not None]
    test = [label for label in test_labels if getattr(label, task) is not None]
    truth = [getattr(label, task) for label in test]
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    rows: list[dict] = []
    for size in sizes:
        scores: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(repeats):
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
            drawn = set(sample_per_class([getattr(x, task) for x in pool_labels], size, rng))
            chosen = [label for i, label in enumerate(pool_labels) if i in drawn]
            rest = [
                document_text(label.title, label.text)
                for i, label in enumerate(pool_labels)
                if i not in drawn
            ]
            pool = [*unlabelled, *rest]
            if len(pool) > max_pool:
                pool = [pool[i] for i in np.sort(rng.choice(len(pool), max_pool, replace=False))]
            for name, trainer in trainers.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predicted = trainer(chosen, pool, test)
                scores[name].append(classification_metrics(truth, predicted)["macro_f1"])
        made = len(next(iter(scores.values())))
        if made:
            rows.append(
                {
                    "labels_per_class": size,
                    "draws": made,
                    **{
                        name: {"macro_f1": float(np.mean(v)), "std": float(np.std(v))}
                        for name, v in scores.items()
                    },
                }
            )
        if made < repeats:
            if rows:
                rows[-1]["stopped"] = f"time budget of {max_seconds:.0f} s reached"
            return rows
    return rows
