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

    stances: list[str | None] = [None] * n
    stance_conf: list[float | None] = [None] * n
    stance_notes: list[str | None] = [model.stance.note] * n
    if model.stance.classifier is not None:
        on_topic = np.array([t not in (None, NO_TOPIC) for t in topics])
        if on_topic.any():
            rows = np.flatnonzero(on_topic)
            labels, conf = _classify(model.stance, X[rows])
            for i, label, c in zip(rows, labels, conf, strict=True):
                stances[i], stance_conf[i] = label, c
    for i, topic in enumerate(topics):
        if topic == NO_TOPIC:
            stance_notes[i] = "no topic, so no stance"
        elif topic is None:
            stance_notes[i] = "topic unknown, so no stance"
    return Predictions(topics, topic_conf, topic_notes, stances, stance_conf, stance_notes)
