"""Applying a trained NewsClassifier to articles: topic, stance, confidences and notes.

A confidence is the calibrated probability of the predicted class, or None when nothing measured
how often such a guess is right (the keyword rule, an uncalibrated model). A note says what the
model could not do for that article, so a NULL is never silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsmon.labels import NO_TOPIC
from newsmon.models.training import NewsClassifier, TaskModel, document_text

# The claim model's labels (FNC-1's) as stances toward a topic's claim.
CLAIM_STANCE_NAMES = {
    "agree": "favor", "disagree": "against", "discuss": "neutral", "unrelated": "off-topic",
}


@dataclass
class Predictions:
    """Column-wise predictions for a batch of articles, in input order."""

    topic: list[str | None]
    topic_confidence: list[float | None]
    topic_note: list[str | None]
    stance: list[str | None]
    stance_confidence: list[float | None]
    stance_note: list[str | None]

    def __len__(self) -> int:
        return len(self.topic)


def _classify(task: TaskModel, X: object) -> tuple[list[str], list[float | None]]:
    classifier = task.classifier
    if classifier.temperature_ is None:
        return [str(c) for c in classifier.predict(X)], [None] * X.shape[0]
    proba = classifier.predict_proba(X)
    best = proba.argmax(axis=1)
    return [str(c) for c in classifier.classes_[best]], proba.max(axis=1).tolist()


def _topic_stance(
    task: TaskModel, X: object, rows: np.ndarray
) -> tuple[list[str], list[float | None], list[dict[str, float] | None]]:
    """The stance model's label, confidence and (when calibrated) whole distribution per row."""
    classifier, subset = task.classifier, X[rows]
    if classifier.temperature_ is None:
        labels, confidence = _classify(task, subset)
        return labels, confidence, [None] * len(rows)
    proba = classifier.predict_proba(subset)
    classes = [str(c) for c in classifier.classes_]
    labels = [classes[best] for best in proba.argmax(axis=1)]
    return labels, proba.max(axis=1).tolist(), [dict(zip(classes, p, strict=True)) for p in proba]


def _claim_stance(model: NewsClassifier, documents: Sequence[str],
                  topics: Sequence[str | None]) -> dict[int, dict[str, float]]:
    """Per article on a topic with a claim: the claim model's distribution, named as stances
    toward the claim (CLAIM_STANCE_NAMES)."""
    claim_model = model.claims.model if model.claims else None
    if claim_model is None:
        return {}
    rows = [i for i, topic in enumerate(topics) if topic in model.topic_claims]
    if not rows:
        return {}
    proba = claim_model.predict_proba([model.topic_claims[str(topics[i])] for i in rows],
                                      [documents[i] for i in rows])
    names = [CLAIM_STANCE_NAMES.get(str(c), str(c)) for c in claim_model.classes_]
    return {i: dict(zip(names, p, strict=True)) for i, p in zip(rows, proba, strict=True)}


def _stances(model: NewsClassifier, X: object, documents: Sequence[str],
             topics: Sequence[str | None]) -> tuple[list, list, list]:
    """Stance, confidence and note per article: toward the topic's claim where it has one (the
    claim model's distribution, averaged with the topic labels' where both exist), else toward
    the topic's target from the topic's stance labels."""
    n = len(documents)
    stances: list[str | None] = [None] * n
    confidences: list[float | None] = [None] * n
    notes: list[str | None] = [model.stance.note] * n
    topic_dists: dict[int, dict[str, float] | None] = {}
    on_topic = np.flatnonzero([t not in (None, NO_TOPIC) for t in topics])
    if model.stance.classifier is not None and len(on_topic):
        labels, confidence, dists = _topic_stance(model.stance, X, on_topic)
        for i, label, c, dist in zip(on_topic, labels, confidence, dists, strict=True):
            stances[i], confidences[i], topic_dists[i] = label, c, dist
    claim_dists = _claim_stance(model, documents, topics)
    for i, topic in enumerate(topics):
        if i in claim_dists:
            both = topic_dists.get(i) is not None
            dist = _average([claim_dists[i], topic_dists[i]]) if both else claim_dists[i]
            stances[i] = max(dist, key=dist.__getitem__)
            confidences[i] = float(dist[stances[i]])
            notes[i] = ("toward the topic's claim: claim model and topic labels, averaged"
                        if both else "toward the topic's claim: claim model")
        elif topic in model.topic_claims:
            why = model.claims.note if model.claims else "no pair labels (with a target) yet"
            notes[i] = "; ".join(filter(None, [notes[i], f"the topic's claim is not used: {why}"]))
    return stances, confidences, notes


def _average(dists: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of distributions over the union of their classes (absent: probability 0)."""
    classes = dict.fromkeys(name for dist in dists for name in dist)
    return {name: sum(dist.get(name, 0.0) for dist in dists) / len(dists) for name in classes}


def predict(
    model: NewsClassifier, titles: Sequence[str | None], texts: Sequence[str]
) -> Predictions:
    documents = [document_text(title, text) for title, text in zip(titles, texts, strict=True)]
    n = len(documents)
    X = model.features.transform(documents)
    if model.topic.classifier is not None:
        topics, topic_conf = _classify(model.topic, X)
        topic_notes = [model.topic.note] * n
    elif model.keyword_rule.topics:
        # Why the rule and not a model, and that its guess carries no measured confidence.
        reason = model.topic.note
        topics, topic_conf, topic_notes = [], [None] * n, []
        for topic, hits in model.keyword_rule.predict(documents):
            topics.append(topic)
            topic_notes.append(f"keyword rule ({hits} keyword mention(s)), no confidence: {reason}")
    else:
        topics, topic_conf = [None] * n, [None] * n
        topic_notes = [f"{model.topic.note}; no topic keywords configured"] * n

    stances, stance_conf, stance_notes = _stances(model, X, documents, topics)
    for i, topic in enumerate(topics):
        if topic == NO_TOPIC:
            stance_notes[i] = "no topic, so no stance"
        elif topic is None:
            stance_notes[i] = "topic unknown, so no stance"
    return Predictions(topics, topic_conf, topic_notes, stances, stance_conf, stance_notes)
