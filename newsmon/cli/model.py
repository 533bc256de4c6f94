"""`newsmon model train|evaluate`, `newsmon seeds import`, `newsmon label`, `newsmon classify`.

Training reads the warehouse, then lets it go: the writer lock is never held while a model
trains or while a person labels, so the scheduled ingest is not kept waiting.

scikit-learn and the models are imported inside the commands that need them, so that other
``newsmon`` commands do not pay for importing them at startup.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from newsmon.cli._app import app, console, fail, get_config
from newsmon.config import Config
from newsmon.labels import (
    NO_TOPIC,
    Label,
    LabelChanges,
    LabelFileError,
    LabelSession,
    add_user_labels,
    all_labels,
    load_seeds,
    press,
    read_labels,
    seeds_dir,
    write_labels,
)
from newsmon.warehouse.classify import (
    count_pending,
    current_model,
    least_confident,
    replace_labels,
    saved_model,
)
from newsmon.warehouse.db import WarehouseBusy, open_warehouse, peek_live

if TYPE_CHECKING:
    from newsmon.models.training import NewsClassifier

model_app = typer.Typer(
    help="Train and evaluate the topic and stance models.", no_args_is_help=True
)
seeds_app = typer.Typer(help="The labelled seed set in seeds/.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(seeds_app, name="seeds")

NO_MODEL = "no model trained yet: run `newsmon model train`"
# Articles fetched per labelling session.
LABEL_QUEUE = 50
# Characters of the article shown while labelling: the first paragraphs.
SHOWN_CHARS = 1500

SeedFiles = Annotated[
    list[Path] | None,
    typer.Option("--seeds", help="Extra labelled JSONL file(s) for this run.", exists=True),
]


def _labels(config: Config, extra: list[Path] | None = None) -> list[Label]:
    try:
        return all_labels(config, extra or [])
    except LabelFileError as exc:
        raise fail(str(exc)) from None


def print_literal(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def _describe(model: NewsClassifier) -> None:
    from newsmon.models.evaluation import classification_metrics

    for task in (model.topic, model.stance):
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(task.label_counts.items())) or "none"
        console.print(f"[bold]{task.task}[/] labels ({escape(counts)})")
        if task.classifier is not None:
            cv = task.cv_predictions()
            score = (
                f"cross-validated macro-F1 {classification_metrics(*cv)['macro_f1']:.3f}"
                if cv
                else "too few labels to cross-validate"
            )
            console.print(f"  predicts {', '.join(task.classes)}; {score}", markup=False)
            console.print(f"  unlabelled articles: {task.classifier.self_training_reason_}",
                          markup=False)
        elif task.task == "topic" and model.keyword_rule.topics:
            console.print(
                f"  keyword rule for {', '.join(model.keyword_rule.topics)}, no confidence",
                markup=False,
            )
        if task.note:
            console.print(f"  [yellow]cannot:[/] {escape(task.note)}", highlight=False)


def _describe_claims(card: dict) -> None:
    """The claim model's part of a model card, as `model train` reports it."""
    claims = card.get("claims")
    if claims is None:
        return
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(claims["label_counts"].items()))
    console.print(f"[bold]claim stance[/] pair labels ({escape(counts)})")
    held_out = claims["held_out_bodies"]
    if claims["predicts"]:
        score = "too few bodies to hold some out" if held_out is None else (
            f"on held-out bodies: macro-F1 {held_out['macro_f1']:.3f}"
            + (f", FNC-1 score {held_out['fnc_score']:.2f}" if "fnc_score" in held_out else ""))
        console.print(f"  predicts {', '.join(claims['predicts'])}; {score}", markup=False)
        for topic, claim in card["topic_claims"].items():
            console.print(f"  topic {topic}: stance toward \u201c{claim}\u201d", markup=False)
    if claims["cannot"]:
        console.print(f"  [yellow]cannot:[/] {escape(claims['cannot'])}", highlight=False)


@model_app.command("train")
def train_command(
    ctx: typer.Context,
    seeds: SeedFiles = None,
    classify: Annotated[
        bool, typer.Option(help="Re-classify stored articles with the new model.")
    ] = True,
) -> None:
    """Train topic and stance models from seeds/ (and --seeds files) and make them current."""
    from newsmon.flows.classify import classify_stored
    from newsmon.models.lifecycle import NoLabelsError, train_and_record

    config = get_config(ctx)
    try:
        saved = train_and_record(config, seeds or (), report=print_literal)
    except (LabelFileError, NoLabelsError) as exc:
        raise fail(str(exc)) from None
    assert saved.model is not None
    _describe(saved.model)
    _describe_claims(saved.card)
    if saved.model.train_seconds is not None:
        console.print(
            f"trained in {saved.model.train_seconds:.1f} s, peak memory "
            f"{saved.model.peak_memory_mb:.0f} MB",
            markup=False,
        )
    console.print(f"model [bold]{escape(saved.version)}[/] saved to {escape(str(saved.path))} "
                  "and made current")
    if classify:
        outcome = classify_stored(config)
        console.print(f"classified {outcome['classified']} stored article(s)")


def _split(labels: list[Label], fraction: float = 0.3) -> tuple[list[Label], list[Label]]:
    """A fixed held-out share of the labels, for the learning curve without a test file."""
    import random

    shuffled = sorted(labels, key=lambda label: label.id)
    random.Random(0).shuffle(shuffled)
    cut = int(len(shuffled) * fraction)
    return shuffled[cut:], shuffled[:cut]


def _why_no_curve(
    task: str, train_part: list[Label], test_part: list[Label], test_file: Path | None
) -> str | None:
    """Why a task's learning curve cannot be drawn from these labels, or None if it can: it
    needs held-out labels to score and two classes to learn (the normal case on a fresh
    install, whose seeds are two documents)."""
    if not test_part and test_file is None:
        return f"too few labels to hold some out to score on ({len(train_part)} in all)"
    held_out = sum(getattr(label, task) is not None for label in test_part)
    if not held_out:
        where = test_file or f"the {len(test_part)} of {len(train_part) + len(test_part)} held out"
        return f"no {task} labels in {where} to score it on"
    classes = {getattr(label, task) for label in train_part} - {None}
    if len(classes) < 2:
        return f"the labels to learn from have {len(classes)} {task} class(es); 2 are needed"
    return None


def _curve_trainer(task: str, rounds: int):
    from newsmon.models.training import CALIBRATION_FOLDS, document_text, train

    def run(chosen: list[Label], unlabelled: list[str], test: list[Label]) -> list[str | None]:
        # With unlabelled articles this is the shipped model: its cross-validation decides
        # whether to use them. Labelled only needs no calibration (it never changes the winner).
        folds = CALIBRATION_FOLDS if rounds else 0
        model = train(chosen, unlabelled, self_training_rounds=rounds, calibration_folds=folds)
        classifier = getattr(model, task).classifier
        if classifier is None:
            return [None] * len(test)
        texts = [document_text(x.title, x.text) for x in test]
        return list(classifier.predict(model.features.transform(texts)))

    return run


# How each way of evaluating is named in the text report.
METHOD_TITLES = {
    "test file": "on the test file",
    "model card": "cross-validated when it was trained",
    "cross-validation": "cross-validated now, from seeds/",
}


def _score_saved(config: Config, version: str | None, test_labels: list[Label] | None) -> dict:
    """A saved version (the current one by default), scored on the test labels; without them,
    the cross-validated metrics its card recorded at training."""
    from newsmon.models.artifacts import ArtifactError, load
    from newsmon.models.evaluation import score_labels

    with open_warehouse(config) as con:
        found = saved_model(con, version)
    if found is None:
        if version is not None:
            raise fail(f"no model version {version!r} in the warehouse (see `newsmon status`)")
        raise fail(
            "no model trained yet: run `newsmon model train`, or `newsmon model evaluate --cv` "
            "to cross-validate the labels in seeds/"
        )
    row, card = found
    report: dict = {
        "method": "model card" if test_labels is None else "test file",
        "model_version": row.version,
        "tasks": {},
    }
    if test_labels is None:
        for task in ("topic", "stance"):
            report["tasks"][task] = {
                "cannot": card[task]["cannot"],
                "metrics": card[task]["cross_validated"],
            }
        if card.get("claims"):  # scored on a fifth of the pairs' bodies, held out
            report["tasks"]["claim stance"] = {
                "cannot": card["claims"]["cannot"],
                "metrics": card["claims"]["held_out_bodies"],
            }
        return report
    try:
        model = load(config.resolve(Path(row.artifact_path)), row.artifact_sha256)
    except ArtifactError as exc:
        raise fail(str(exc)) from None
    report["tasks"] = score_labels(model, test_labels)
    return report


def _cross_validate(config: Config, labels: list[Label], pool: list[str]) -> dict:
    """A model trained now from the labels (saved nowhere), scored out of fold."""
    from newsmon.models.evaluation import classification_metrics
    from newsmon.models.training import train

    model = train(labels, pool, config.topics)
    report: dict = {"method": "cross-validation", "model_version": None, "tasks": {}}
    for task in ("topic", "stance"):
        task_model = getattr(model, task)
        cv = task_model.cv_predictions()
        report["tasks"][task] = {
            "cannot": task_model.note,
            "metrics": classification_metrics(*cv) if cv is not None else None,
        }
    return report


@model_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    test: Annotated[
        Path | None, typer.Option("--test", help="Labelled JSONL to score the model on.",
                                  exists=True)
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="A saved model version (default: current).")
    ] = None,
    cv: Annotated[
        bool,
        typer.Option("--cv", help="Cross-validate a model trained now from seeds/ (not saved)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    curve: Annotated[
        bool,
        typer.Option(
            help="Also the learning curve at 2, 10, 50 labels per class (stops after 10 minutes)."
        ),
    ] = False,
    repeats: Annotated[int, typer.Option(min=1, help="Draws per learning-curve size.")] = 3,
) -> None:
    """Score the current model version (or --version) on a --test file, or show the metrics it
    was cross-validated with at training; --cv cross-validates the labels in seeds/ instead."""
    from newsmon.models.evaluation import format_metrics, learning_curve
    from newsmon.models.lifecycle import sync_labels_and_read_pool

    config = get_config(ctx)
    if cv and (test or version):
        raise fail(
            "use either --cv or --test/--version: --cv cross-validates a model trained now "
            "from seeds/, --test and --version score a saved one"
        )
    try:
        test_labels = read_labels(test) if test else None
    except LabelFileError as exc:
        raise fail(str(exc)) from None
    labels: list[Label] = []
    pool: list[str] = []
    if cv or curve:
        labels = _labels(config)
        if not labels:
            raise fail(f"no labels in {seeds_dir(config)}: add some with `newsmon seeds import`")
        pool = sync_labels_and_read_pool(config, labels)
    report = _cross_validate(config, labels, pool) if cv else _score_saved(
        config, version, test_labels
    )
    if curve:
        for task, entry in report["tasks"].items():
            train_part, test_part = (labels, test_labels) if test_labels else _split(labels)
            not_run = _why_no_curve(task, train_part, test_part, test)
            entry["learning_curve_not_run"] = not_run
            entry["learning_curve"] = [] if not_run else learning_curve(
                task,
                train_part,
                test_part,
                pool,
                {
                    "labelled_only": _curve_trainer(task, rounds=0),
                    "with_unlabelled": _curve_trainer(task, rounds=5),
                },
                repeats=repeats,
            )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    if report["model_version"]:
        typer.echo(f"model {report['model_version']}, {METHOD_TITLES[report['method']]}")
    for task, entry in report["tasks"].items():
        if entry["metrics"]:
            typer.echo(format_metrics(f"{task} ({report['method']})", entry["metrics"]))
        elif report["method"] == "test file":
            typer.echo(f"{task}: nothing to score ({entry['cannot'] or 'no labelled test rows'})")
        else:
            typer.echo(f"{task}: not cross-validated ({entry['cannot'] or 'too few labels'})")
        if entry["cannot"]:
            typer.echo(f"  cannot: {entry['cannot']}")
        if entry.get("learning_curve_not_run"):
            typer.echo(f"  learning curve not run: {entry['learning_curve_not_run']}")
        for row in entry.get("learning_curve", []):
            typer.echo(
                f"  {row['labels_per_class']:>3} labels/class: macro-F1 "
                f"{row['labelled_only']['macro_f1']:.3f} labelled only, "
                f"{row['with_unlabelled']['macro_f1']:.3f} with unlabelled articles"
                f" ({row['draws']} draw(s))"
            )
            if row.get("stopped"):
                typer.echo(f"  learning curve stopped: {row['stopped']}")


@seeds_app.command("import")
def seeds_import(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Labelled JSONL file(s).", exists=True)],
) -> None:
    """Add labels in bulk to seeds/user_labels.jsonl. A file with any bad line adds nothing;
    a label already there (same id, same content) is skipped, a changed one replaces it."""
    config = get_config(ctx)
    try:
        new = [label for path in files for label in read_labels(path)]
        changes = add_user_labels(seeds_dir(config), new, origin="import")
        labels = _labels(config)
    except LabelFileError as exc:
        raise fail(str(exc)) from None
    with open_warehouse(config) as con:
        replace_labels(con, labels)
    configured = {topic.id for topic in config.topics} | {NO_TOPIC}
    unknown = sorted({label.topic for label in new if label.topic is not None} - configured)
    console.print(
        f"imported {len(new)} label(s): {changes.added} new, {changes.changed} changed, "
        f"{changes.unchanged} already there; seeds/ now holds {len(labels)}",
        highlight=False,
    )
    if changes.changed:
        console.print("a changed label replaces the one with its id", highlight=False)
    if unknown:
        console.print(f"[yellow]note:[/] topics not in the config: {escape(', '.join(unknown))}")


def _show(article: dict, session: LabelSession, total: int) -> None:
    date = article["published_at"].date().isoformat() if article["published_at"] else "undated"
    guess = f"{article['topic']}" + (
        f" ({article['topic_confidence']:.0%})"
        if article["topic_confidence"] is not None
        else " (no confidence)"
    )
    if article["stance"]:
        guess += f", stance {article['stance']} ({article['stance_confidence']:.0%})"
    elif article["stance_note"]:
        guess += f", no stance: {article['stance_note']}"
    body = textwrap.shorten(article["text"] or "", SHOWN_CHARS, placeholder=" …")
    console.print(
        Panel(
            f"[bold]{escape(article['title'] or '(untitled)')}[/]\n{escape(article['site'] or '')}"
            f" · {date}\n\n{escape(body)}\n\n[dim]model: {escape(guess)}[/]",
            title=f"{session.position + 1}/{total}",
            highlight=False,
        )
    )
    if session.choosing_stance:
        keys = "  ".join(f"{i}={s}" for i, s in enumerate(session.stances, 1))
        console.print(f"stance toward {session.topic}: {keys}  x=none  n=new  u=back  q=quit",
                      markup=False)
    else:
        keys = "  ".join(f"{i}={t}" for i, t in enumerate(session.topics, 1))
        console.print(f"topic: {keys}  0=none  s=skip  u=undo  q=quit", markup=False)


@app.command("label")
def label_command(
    ctx: typer.Context,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write all labels as import-format JSONL.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Articles to offer.")] = LABEL_QUEUE,
) -> None:
    """Label the stored articles the model is least sure about, one key at a time."""
    config = get_config(ctx)
    if export:
        count = write_labels(export, _labels(config))
        console.print(f"wrote {count} label(s) to {export}", markup=False)
        return
    with open_warehouse(config) as con:
        queue = least_confident(con, limit)
    if not queue:
        raise fail("no classified articles to label: run `newsmon classify` first", code=1)
    labels = _labels(config)
    topics = [t.id for t in config.topics]
    topics += sorted({x.topic for x in labels if x.topic is not None} - set(topics) - {NO_TOPIC})
    session = LabelSession(
        topics=topics[:9],
        # Stances toward a topic's target; a pair label's (agree, ...) are toward its own claim.
        stances=sorted({x.stance for x in labels if x.stance and x.target is None})[:9],
        n_articles=len(queue),
    )
    try:
        while not session.finished:
            _show(queue[session.position], session, len(queue))
            if press(session, typer.getchar()) == "name-stance":
                session.name_stance(typer.prompt("new stance"))
    except KeyboardInterrupt:
        console.print("interrupted: keeping the labels made so far")
    new = [
        Label(
            id=queue[i]["canonical_url"],
            title=queue[i]["title"],
            text=queue[i]["text"],
            topic=topic,
            stance=stance,
            url=queue[i]["canonical_url"],
            published=queue[i]["published_at"].isoformat() if queue[i]["published_at"] else None,
            source=queue[i]["site"],
        )
        for i, topic, stance in session.decisions
    ]
    changes = LabelChanges()
    if new:
        try:
            changes = add_user_labels(seeds_dir(config), new, origin="labelled")
        except LabelFileError as exc:
            raise fail(str(exc)) from None
        with open_warehouse(config) as con:
            replace_labels(con, load_seeds(seeds_dir(config)))
    console.print(
        f"saved {len(new)} label(s) ({changes.added} new, {changes.changed} changed) to "
        f"{seeds_dir(config)}; `newsmon model train` to use them",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _nothing_to_classify(config: Config) -> str | None:
    """Why there is nothing for the classify flow to do, if so; None when there is work, or
    when the warehouse predates a migration (the flow applies it, then looks itself)."""
    import duckdb

    try:
        with peek_live(config) as con:
            model = current_model(con) if con is not None else None
            if model is None:
                raise fail(NO_MODEL, code=1)
            if count_pending(con, model.version):
                return None
            return ("nothing to classify: every stored article has a prediction from "
                    f"{model.version}")
    except duckdb.CatalogException:
        return None
    except WarehouseBusy as exc:
        raise fail(str(exc), code=1) from None


@app.command("classify")
def classify_command(ctx: typer.Context) -> None:
    """Classify stored articles that lack a prediction from the current model (Prefect flow)."""
    config = get_config(ctx)
    # Looked at before Prefect loads and its API starts (seconds): often there is nothing to do.
    nothing = _nothing_to_classify(config)
    if nothing:
        console.print(nothing, markup=False)
        return
    from newsmon.flows import run_settings, start_local_api

    api = start_local_api()  # its start overlaps with Prefect's import, next
    from newsmon.flows.classify import classify_flow

    with run_settings(api):
        outcome = classify_flow(config_path=str(config.source) if config.source else None)
    if outcome["model_version"] is None:
        raise fail(outcome["note"], code=1)
    console.print(f"classified {outcome['classified']} article(s) with {outcome['model_version']}",
                  markup=False)
