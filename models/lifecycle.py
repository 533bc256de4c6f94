"""Training a model and making it current: one plain function for the CLI, the demo and the cycle.

``train_and_record`` reads the labels (seeds/ plus any extra files), mirrors them into the
warehouse and reads the unlabelled pool, then lets the warehouse go: the writer lock is never held
while the model trains, so the scheduled ingest is not kept waiting. It saves the versioned
artifact and records the version as current, in a second short write. ``ensure_model`` does that
only when the warehouse has no usable current model yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path

from newsmon.config import Config
from newsmon.labels import Label, all_labels, seeds_dir
from newsmon.models.artifacts import ArtifactError, SavedModel, load, save, versions_dir
from newsmon.models.training import document_text, train
from newsmon.warehouse.classify import ModelRow, record_model, replace_labels, unlabelled_texts
from newsmon.warehouse.db import open_warehouse

log = logging.getLogger(__name__)


class NoLabelsError(ValueError):
    """There is nothing to train on: seeds/ (and the extra files) hold no labels."""


def sync_labels_and_read_pool(config: Config, labels: Sequence[Label]) -> list[str]:
    """Mirror the labels into the warehouse; return the unlabelled texts to learn from (the
    ``[classify] max_unlabelled`` most recent articles). The writer is closed on return."""
    with open_warehouse(config) as con:
        replace_labels(con, labels)
        rows = unlabelled_texts(con, config.classify.max_unlabelled)
    return [document_text(title, text) for title, text in rows]


def _stored_path(config: Config, path: Path) -> str:
    """The artifact path as the warehouse keeps it: relative to the config's folder if inside."""
    try:
        return str(path.relative_to(config.base_dir))
    except ValueError:
        return str(path)


def train_and_record(
    config: Config,
    extra_seed_files: Sequence[Path] = (),
    report: Callable[[str], None] | None = None,
) -> SavedModel:
    """Train topic and stance models from seeds/ (plus ``extra_seed_files``), save the artifact
    under ``[classify] models_dir`` and make its version current in the warehouse.

    Returns the SavedModel (version, path, hash, card and the model). Raises NoLabelsError when
    there are no labels, LabelFileError for a bad label file, and the warehouse's lock error when
    the writer stays busy. ``report`` receives one line before training starts.
    """
    labels = all_labels(config, extra_seed_files)
    if not labels:
        raise NoLabelsError(
            f"no labels in {seeds_dir(config)}: add some with `newsmon seeds import`"
        )
    pool = sync_labels_and_read_pool(config, labels)
    if report is not None:
        report(f"training on {len(labels)} label(s) and {len(pool)} unlabelled article(s)")
    model = train(labels, pool, config.topics)
    saved = save(model, versions_dir(config))
    with open_warehouse(config) as con:
        record_model(con, saved.version, _stored_path(config, saved.path), saved.sha256, saved.card)
    log.info("model %s: %d label(s), %d unlabelled", saved.version, len(labels), len(pool))
    return saved


class ModelState(Enum):
    """What ``ensure_model`` found or did."""

    READY = "the current model is usable"
    TRAINED = "trained a model from the labels"
    NO_LABELS = "no usable model, and no labels to train one"


def artifact_intact(config: Config, current: ModelRow | None) -> bool:
    """Whether ``current`` (the warehouse's current model) names an artifact that is present,
    unaltered and loads; False, with a warning saying which, when it does not."""
    if current is None:
        return False
    try:
        # Loaded, not only hashed: a file an older newsmon saved is intact but names classes
        # that have since gone, and every classify run would fail on it.
        load(config.resolve(Path(current.artifact_path)), current.artifact_sha256)
    except (OSError, ArtifactError) as exc:
        log.warning("current model %s is unusable (%s): retraining", current.version, exc)
        return False
    return True


def ensure_model(config: Config, current: ModelRow | None) -> ModelState:
    """Train from seeds/ unless ``current`` (the warehouse's current model, read by the caller
    in its own session) is usable.

    A current model whose artifact file is missing or altered (models/ is rebuilt, not versioned)
    counts as none. With no labels at all nothing is trained: NO_LABELS.
    """
    if artifact_intact(config, current):
        return ModelState.READY
    try:
        train_and_record(config)
    except NoLabelsError as exc:
        log.warning("no model trained: %s", exc)
        return ModelState.NO_LABELS
    return ModelState.TRAINED
