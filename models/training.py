"""Training newsmon's topic and stance models from labels plus unlabelled articles.

Both tasks share one feature space, fitted on the labelled and the unlabelled texts together, so
words that only the unlabelled articles contain still get an IDF weight; each task's classifier
weighs the space's blocks (words, punctuation style) its own way. Each task learns the label
strings it is given; a class needs MIN_EXAMPLES labels to be learned at all. Whatever a task
cannot predict is written down in its ``note``, which the predictions and the model card repeat.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.pipeline import Pipeline

from newsmon.config import TopicSettings
from newsmon.labels import NO_TOPIC, Label
from newsmon.models.claims import ClaimStanceModel
from newsmon.models.classifier import TaskClassifier
from newsmon.models.features import NewsFeatures
from newsmon.models.keywords import KeywordRule
from newsmon.models.learnable import plan, quoted

# Fewer distinct bodies than this among the pair labels: no held-out score for the claim model.
HELD_OUT_MIN_BODIES = 10
# Vocabulary cap per kind (words, word pairs): bounds model size and memory on a large warehouse.
MAX_TERMS = 300_000
# Folds of the cross-validation that sets confidences and chooses the candidate (grouped by
# source when the labels say it).
CALIBRATION_FOLDS = 5


def document_text(title: str | None, text: str) -> str:
    """What the models read: the headline, then the body."""
    return f"{title}\n\n{text}" if title else text


@dataclass
class TaskModel:
    """One task (topic or stance): the classifier, or None and why there is none."""

    task: str
    label_counts: dict[str, int]
    classifier: TaskClassifier | None
    note: str | None  # what this task cannot predict, and why

    @property
    def classes(self) -> list[str]:
        return [] if self.classifier is None else [str(c) for c in self.classifier.classes_]

    def cv_predictions(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Cross-validated (truth, prediction) for the labelled examples, when there were enough."""
        if self.classifier is None or self.classifier.cv_true_ is None:
            return None
        return self.classifier.cv_true_, self.classifier.cv_pred_


@dataclass
class ClaimTask:
    """Stance toward a claim, learned from pair labels: the model, or None and why there is
    none, and how it did on bodies it had not seen."""

    label_counts: dict[str, int]
    model: ClaimStanceModel | None
    note: str | None
    # Truth and prediction for the pairs of a fifth of the bodies, held out from a model fitted
    # on the rest: a new article is an unseen body. None when there were too few bodies.
    held_out_true: np.ndarray | None = None
    held_out_pred: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        return [] if self.model is None else [str(c) for c in self.model.classes_]


@dataclass
class NewsClassifier:
    features: NewsFeatures
    topic: TaskModel
    stance: TaskModel
    keyword_rule: KeywordRule  # the topic rule used while topic.classifier is None
    trained_at: str
    n_unlabelled: int
    library_versions: dict[str, str] = field(default_factory=dict)
    # Stance toward a claim (pair labels), and the claim of each topic that has one, as the
    # config said when the model was trained: a model version predicts the same every time.
    claims: ClaimTask | None = None
    topic_claims: dict[str, str] = field(default_factory=dict)
    # What training cost: wall seconds of train(), and the process's peak resident memory.
    train_seconds: float | None = None
    peak_memory_mb: float | None = None

    def pipeline(self, task: str) -> Pipeline:
        """The task's features and classifier as one scikit-learn Pipeline."""
        model: TaskModel = getattr(self, task)
        if model.classifier is None:
            raise ValueError(f"no {task} classifier: {model.note}")
        return Pipeline([("features", self.features), ("classifier", model.classifier)])


def peak_memory_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux counts ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fit_task(
    task: str,
    X: sp.csr_matrix,
    targets: Sequence[str | None],
    groups: Sequence[str | None],
    counts: Counter[str],
    classifier: TaskClassifier,
    extra_note: str | None = None,
) -> TaskModel:
    learnable, note = plan(task, counts)
    note = "; ".join(filter(None, [note, extra_note])) or None
    if not learnable:
        return TaskModel(task, dict(counts), None, note)
    y = np.array([t if t in learnable else None for t in targets], dtype=object)
    return TaskModel(task, dict(counts), classifier.fit(X, y, groups=groups), note)


def _held_out_bodies(bodies: Sequence[str]) -> np.ndarray | None:
    """Which pairs belong to a fifth of the distinct bodies, drawn at random; None with fewer
    than HELD_OUT_MIN_BODIES bodies, where a fifth would say little."""
    distinct = list(dict.fromkeys(bodies))
    if len(distinct) < HELD_OUT_MIN_BODIES:
        return None
    order = np.random.default_rng(0).permutation(len(distinct))
    held = {distinct[i] for i in order[: len(distinct) // 5]}
    return np.array([body in held for body in bodies])


def _fit_claims(pairs: Sequence[Label]) -> ClaimTask | None:
    """The claim model from pair labels, scored first on held-out bodies; None without pairs."""
    if not pairs:
        return None
    counts = Counter(str(pair.stance) for pair in pairs)
    learnable, note = plan("claim stance", counts)
    if not learnable:
        return ClaimTask(dict(counts), None, note)
    claims = [str(pair.target) for pair in pairs]
    bodies = [document_text(pair.title, pair.text) for pair in pairs]
    stances = list(map(str, (pair.stance for pair in pairs)))
    task = ClaimTask(dict(counts), ClaimStanceModel().fit(claims, bodies, stances), note)
    held = _held_out_bodies(bodies)
    if held is not None and set(np.array(stances)[~held]) >= set(learnable):
        rest, kept = (claims, bodies, stances), [claims, bodies]
        trial = ClaimStanceModel().fit(*(_where(values, ~held) for values in rest))
        task.held_out_true = np.array(_where(stances, held), dtype=object)
        task.held_out_pred = trial.predict(*(_where(values, held) for values in kept))
    return task


def _where(values: Sequence[str], mask: np.ndarray) -> list[str]:
    return [value for value, keep in zip(values, mask, strict=True) if keep]


def train(
    labels: Sequence[Label],
    unlabelled: Sequence[str],
    topics: Sequence[TopicSettings] = (),
    self_training_rounds: int = 5,
    calibration_folds: int = CALIBRATION_FOLDS,
) -> NewsClassifier:
    """Fit features, topic and stance models; ``unlabelled`` holds document_text()s.

    Each label's ``source`` groups the cross-validation that chooses and scores a model, so that
    no outlet is on both sides of a fold."""
    if not labels:
        raise ValueError("no labels: add some with `newsmon seeds import` or `newsmon label`")
    start = time.perf_counter()
    pairs = [label for label in labels if label.target is not None]
    # A pair label (one with a claim, `target`) teaches the claim model; it counts for the
    # article tasks only if it names a topic too.
    labels = [label for label in labels if label.topic is not None]
    labelled_texts = [document_text(label.title, label.text) for label in labels]
    texts = [*labelled_texts, *unlabelled]
    # With pair labels alone, the features (which keyword topics and later labels use) are
    # fitted on their distinct texts.
    corpus = texts or list(dict.fromkeys(document_text(p.title, p.text) for p in pairs))
    features = NewsFeatures(min_df=2, max_features=MAX_TERMS).fit(corpus)
    # Transformed once for both tasks: on a large label set it is most of the features' cost.
    X = features.transform(texts)

    def classifier() -> TaskClassifier:
        return TaskClassifier(
            rounds=self_training_rounds,
            calibration_folds=calibration_folds,
            blocks=features.blocks_,
        )

    sources = [label.source for label in labels]
    no_sources: list[str | None] = [None] * len(unlabelled)
    topic_counts = Counter(label.topic for label in labels)
    configured = {topic.id for topic in topics}
    missing = sorted(configured - set(topic_counts))
    topic_extra = [f"no examples of configured topic(s) {quoted(missing)}"] if missing else []
    if NO_TOPIC not in topic_counts:
        topic_extra.append(f"no '{NO_TOPIC}' examples, so off-topic articles are not recognised")
    topic_model = _fit_task(
        "topic",
        X,
        [label.topic for label in labels] + [None] * len(unlabelled),
        sources + no_sources,
        topic_counts,
        classifier(),
        "; ".join(topic_extra) or None,
    )

    # Stance is toward a topic's target: articles labelled 'none' have none and are left out,
    # and a pair label's stance is toward its own claim.
    on_topic = [i for i, label in enumerate(labels)
                if label.topic != NO_TOPIC and label.target is None]
    stance_counts = Counter(labels[i].stance for i in on_topic if labels[i].stance is not None)
    rows = [*on_topic, *range(len(labels), len(texts))]
    stance_model = _fit_task(
        "stance",
        X if len(rows) == len(texts) else X[rows],
        [labels[i].stance for i in on_topic] + [None] * len(unlabelled),
        [sources[i] for i in on_topic] + no_sources,
        stance_counts,
        classifier(),
    )
    return NewsClassifier(
        features=features,
        topic=topic_model,
        stance=stance_model,
        keyword_rule=KeywordRule({t.id: tuple(t.keywords) for t in topics}),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        n_unlabelled=len(unlabelled),
        library_versions={"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        claims=_fit_claims(pairs),
        topic_claims={t.id: t.claim for t in topics if t.claim},
        train_seconds=time.perf_counter() - start,
        peak_memory_mb=peak_memory_mb(),
    )
