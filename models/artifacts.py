"""Versioned model artifacts: models/versions/<version>/model.joblib with card.json beside it.

joblib (pickle) can run code when loaded, so a file is loaded only when its SHA-256 matches the
hash recorded at training time (in the card and in the warehouse's model_versions row): a
swapped or corrupted file is refused instead of executed.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import joblib

from newsmon.config import Config
from newsmon.models.claims import FNC_STANCES, fnc_score
from newsmon.models.evaluation import classification_metrics
from newsmon.models.learnable import MIN_EXAMPLES
from newsmon.models.training import ClaimTask, NewsClassifier, TaskModel

ARTIFACT_NAME = "model.joblib"
CARD_NAME = "card.json"


class ArtifactError(Exception):
    """A model file that is missing or does not match its recorded hash."""


@dataclass(frozen=True)
class SavedModel:
    version: str
    path: Path
    sha256: str
    card: dict
    # The model itself, when it was just trained in this process (not part of the record).
    model: NewsClassifier | None = field(default=None, repr=False, compare=False)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_METHODS = {
    "labelled_only": "linear SVM on the words of the labelled articles",
    "style": "linear SVM on the words and punctuation style of the labelled articles",
    "centroid": "nearest class centroid of the labelled articles' words and leads",
    "centroid_self_training": "nearest class centroid of the labelled articles' words and leads, "
    "refined with the unlabelled articles nearest each centroid",
    "self_training": "linear SVM, self-trained on unlabelled articles",
    "spreading": "linear SVM on labels spread to unlabelled articles of the same house style",
    "ensemble": "self-trained linear SVM plus class centroids refined by seeded k-means over the "
    "unlabelled articles, on words and leads, their scores summed",
}


def _method(task: TaskModel) -> str | None:
    if task.classifier is None:
        return None
    method = getattr(task.classifier, "method_", None)
    if method is None:  # a model saved before the candidates
        if getattr(task.classifier, "self_training_", False):
            return _METHODS["self_training"]
        return "linear SVM on the labelled articles"
    return _METHODS.get(method, method)


def _task_card(task: TaskModel) -> dict:
    cv = task.cv_predictions()
    return {
        "label_counts": task.label_counts,
        "predicts": task.classes,
        "method": _method(task),
        "self_training": {
            "used": getattr(task.classifier, "self_training_", None),
            "reason": getattr(task.classifier, "self_training_reason_", None),
            "cross_validated_macro_f1": getattr(task.classifier, "cv_macro_f1_", None),
            "folds": getattr(task.classifier, "cv_folds_", None),
        }
        if task.classifier
        else None,
        "cannot": task.note,
        "cross_validated": classification_metrics(*cv) if cv else None,
        "temperature": task.classifier.temperature_ if task.classifier else None,
    }


def _claims_card(task: ClaimTask | None) -> dict | None:
    """The claim model's part of the card; its score on held-out bodies is the one the digest
    quotes, with FNC-1's weighted score when it was trained on FNC-1's four labels."""
    if task is None:
        return None
    held_out = None
    if task.held_out_true is not None:
        truth, predicted = task.held_out_true, task.held_out_pred
        held_out = {**classification_metrics(truth, predicted), "pairs": len(truth)}
        if set(truth) <= set(FNC_STANCES):
            held_out["fnc_score"] = fnc_score(list(truth), list(predicted))
    return {
        "label_counts": task.label_counts,
        "predicts": task.classes,
        "method": "gradient-boosted trees on the relation of claim and text (similarity, "
        "overlap, refuting and hedging cues near the claim's words)",
        "cannot": task.note,
        "held_out_bodies": held_out,
    }


def model_card(model: NewsClassifier, version: str) -> dict:
    """What the model is, what it was trained on, how well it did, and what it cannot do."""
    return {
        "version": version,
        "trained_at": model.trained_at,
        "topic": _task_card(model.topic),
        "stance": _task_card(model.stance),
        "claims": _claims_card(model.claims),
        "topic_claims": dict(model.topic_claims),
        "topic_rule": None
        if model.topic.classifier
        else {"keywords": dict(model.keyword_rule.keywords), "confidence": None},
        "unlabelled_articles": model.n_unlabelled,
        "features": {
            "kind": "TF-IDF of word unigrams and bigrams, of the lead's words, and of punctuation "
            "runs in context (sublinear tf, L2 per block), title + text",
            "min_df": model.features.min_df,
            "n_features": model.features.n_features,
        },
        "training": {
            "classifier": "LinearSVC (class-balanced) or nearest centroid; per task, "
            "cross-validation (grouped by source where the labels name it) chooses the feature "
            "blocks, and self-training or label spreading over house style on unlabelled articles",
            "seconds": getattr(model, "train_seconds", None),
            "peak_memory_mb": getattr(model, "peak_memory_mb", None),
            "confidence": "softmax of SVM scores, temperature fitted on out-of-fold scores",
            "min_examples_per_class": MIN_EXAMPLES,
        },
        "library_versions": {**model.library_versions, "python": platform.python_version()},
    }


def save(model: NewsClassifier, versions_dir: Path) -> SavedModel:
    """Write the model and its card under a new version name (UTC time of training)."""
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = versions_dir / version
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / ARTIFACT_NAME
    joblib.dump(model, path, compress=3)
    digest = sha256_of(path)
    card = {**model_card(model, version), "artifact_sha256": digest}
    (folder / CARD_NAME).write_text(
        json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return SavedModel(version, path, digest, card, model)


def load(path: Path, sha256: str) -> NewsClassifier:
    """The model at ``path``, after checking that its bytes are the ones recorded at training."""
    if not path.is_file():
        raise ArtifactError(f"{path}: model file missing (run `newsmon model train`)")
    actual = sha256_of(path)
    if actual != sha256:
        raise ArtifactError(
            f"{path}: SHA-256 {actual[:12]}… does not match recorded {sha256[:12]}…"
        )
    try:
        model = joblib.load(path)
    except (AttributeError, ImportError) as exc:
        # A class it names was renamed or moved since (SelfTrainingSVM became TaskClassifier).
        raise ArtifactError(
            f"{path}: saved by an older newsmon ({exc}): run `newsmon model train`"
        ) from None
    if not isinstance(model, NewsClassifier):
        raise ArtifactError(f"{path}: not a newsmon model")
    return model


def versions_dir(config: Config) -> Path:
    """The configured ``[classify] models_dir`` (default models/versions/ beside the config file;
    gitignored: artifacts are rebuilt by training)."""
    return config.resolve(config.classify.models_dir)
