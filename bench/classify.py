"""Benchmark newsmon's classifier against the plain TF-IDF + logistic regression reference.

    python bench/classify.py ../shared/datasets/bbc.jsonl [--repeats 3] [--json out.json]

The file is in the import format with a ``split`` field (train/test). For topic, and for stance
when the file has stance labels, it reports: accuracy, macro-F1, per-class scores and confusion
with all training labels; training time; predictions per second on one core (the whole newsmon
predict path, topic and stance together, against the reference for one task); and a learning
curve at 2, 10 and 50 labels per class, where the labels not drawn are unlabelled articles.
``--speed-only`` measures only the prediction speeds (a few minutes instead of an hour on the
Baly et al. corpus).

``--split outlet`` ignores the file's split and holds out whole outlets instead (the ``source``
field): about a fifth of each stance's articles, taken outlet by outlet in a seeded random
order, so no outlet is on both sides, as a monitoring tool meets new outlets. Each task then also
shows newsmon's own cross-validated estimate beside its held-out score: the gap between the two
is what a random-fold choice would hide. ``--sizes ""`` skips the learning curve.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from threadpoolctl import threadpool_limits

from newsmon.labels import Label, parse_label
from newsmon.models.evaluation import classification_metrics, format_metrics, learning_curve
from newsmon.models.predict import predict
from newsmon.models.training import CALIBRATION_FOLDS, document_text, train

TASKS = ("topic", "stance")


def read_split(path: Path) -> tuple[list[Label], list[Label]]:
    train_set, test_set = [], []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            record = json.loads(line)
            try:
                label = parse_label(record)
            except ValueError as exc:
                sys.exit(f"{path}:{number}: {exc}")
            (train_set if record.get("split") == "train" else test_set).append(label)
    return train_set, test_set


def outlet_split(
    labels: list[Label], fraction: float = 0.2, seed: int = 0
) -> tuple[list[Label], list[Label]]:
    """Train and test sets with no outlet on both sides: per stance (an outlet's articles mostly
    share one), outlets in a seeded random order are held out until ``fraction`` of that stance's
    articles are."""
    by_source: dict[str, list[Label]] = {}
    for label in labels:
        by_source.setdefault(label.source or "", []).append(label)
    leaning = {
        s: Counter(x.stance for x in rows).most_common(1)[0][0] for s, rows in by_source.items()
    }
    held: set[str] = set()
    rng = random.Random(seed)
    for stance in sorted({str(v) for v in leaning.values()}):
        sources = sorted(s for s, v in leaning.items() if str(v) == stance)
        rng.shuffle(sources)
        total = sum(len(by_source[s]) for s in sources)
        taken = 0
        for source in sources:
            if taken >= fraction * total:
                break
            held.add(source)
            taken += len(by_source[source])
    return (
        [x for x in labels if (x.source or "") not in held],
        [x for x in labels if (x.source or "") in held],
    )


def docs(labels: list[Label]) -> list[str]:
    return [document_text(label.title, label.text) for label in labels]


def baseline_pipeline() -> Pipeline:
    return make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
        LogisticRegression(),  # scikit-learn's defaults: the plain reference
    )


def only(task: str, labels: list[Label]) -> list[Label]:
    """Labels for one task, so the learning curve trains only that task's model."""
    if task == "topic":
        return [replace(label, stance=None) for label in labels]
    return [replace(label, topic="any") for label in labels if label.stance is not None]


def baseline_trainer(task: str):
    def run(chosen: list[Label], unlabelled: list[str], test: list[Label]) -> list[str | None]:
        try:
            pipe = baseline_pipeline().fit(docs(chosen), [getattr(x, task) for x in chosen])
        except ValueError:  # "no terms remain" after min_df on a handful of documents
            return [None] * len(test)
        return list(pipe.predict(docs(test)))

    return run


def newsmon_trainer(task: str, rounds: int, choices: list[str] | None = None):
    choices = [] if choices is None else choices

    def run(chosen: list[Label], unlabelled: list[str], test: list[Label]) -> list[str | None]:
        # With rounds > 0 this is newsmon as shipped: the cross-validation that calibrates also
        # chooses the candidate (view, centroid, self-training, spreading). Labelled-only skips
        # it: the SVM on words, as newsmon was before the candidates.
        model = train(
            only(task, chosen),
            unlabelled,
            self_training_rounds=rounds,
            calibration_folds=CALIBRATION_FOLDS if rounds else 0,
        )
        if rounds:
            choices.append(getattr(model, task).classifier.method_)
        classifier = getattr(model, task).classifier
        if classifier is None:
            return [None] * len(test)
        return list(classifier.predict(model.features.transform(docs(test))))

    return run


def per_second(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def curve(
    task: str, train_set: list[Label], test_set: list[Label], sizes: tuple[int, ...], repeats: int
) -> list[dict]:
    """One task's learning curve (baseline, newsmon on the labels alone, newsmon as shipped with
    the unlabelled articles) at each size: printed, and returned."""
    choices: list[str] = []
    curve_start = time.perf_counter()
    rows = learning_curve(
        task,
        train_set,
        test_set,
        [],
        {
            "baseline": baseline_trainer(task),
            "newsmon_labelled_only": newsmon_trainer(task, rounds=0),
            "newsmon": newsmon_trainer(task, rounds=5, choices=choices),
        },
        sizes=sizes,
        repeats=repeats,
    )
    # The candidate each draw chose (the cross-validated choice), per size.
    per_size = [choices[i * repeats : (i + 1) * repeats] for i in range(len(sizes))]
    for row, chosen in zip(rows, per_size, strict=False):
        row["newsmon_method"] = chosen
    print(f"[{task}] learning curve, macro-F1 (mean ± sd over {repeats} draws)")
    for row in rows:
        cells = "  ".join(
            f"{name}={row[name]['macro_f1']:.3f}±{row[name]['std']:.3f}"
            for name in ("baseline", "newsmon_labelled_only", "newsmon")
        )
        chosen = ", ".join(f"{m} {n}" for m, n in Counter(row["newsmon_method"]).items())
        print(
            f"  {row['labels_per_class']:>3}/class  {cells}  (chosen: {chosen})",
            flush=True,
        )
    print(f"  learning curve took {time.perf_counter() - curve_start:.0f} s", flush=True)
    return rows


def bench(
    path: Path,
    repeats: int,
    sizes: tuple[int, ...],
    wanted: tuple[str, ...],
    speed_only: bool = False,
    curve_only: bool = False,
    split: str = "file",
) -> dict:
    train_set, test_set = read_split(path)
    if split == "outlet":
        train_set, test_set = outlet_split([*train_set, *test_set])
        outlets = [len({x.source for x in part}) for part in (train_set, test_set)]
        print(f"outlet split: {outlets[0]} outlets to train, {outlets[1]} held out", flush=True)
    tasks = [t for t in wanted if any(getattr(x, t) is not None for x in train_set)]
    if tasks == ["stance"]:  # skip training a topic model nobody asked for
        train_set, test_set = only("stance", train_set), only("stance", test_set)
    report: dict = {"file": str(path), "train": len(train_set), "test": len(test_set), "tasks": {}}
    print(f"{path.name}: {len(train_set)} train / {len(test_set)} test, tasks {tasks}", flush=True)

    if curve_only:
        for task in tasks:
            learning = curve(task, train_set, test_set, sizes, repeats)
            report["tasks"][task] = {"learning_curve": learning}
        return report

    start = time.perf_counter()
    model = train(train_set, [])
    newsmon_train_s = time.perf_counter() - start
    test_features = model.features.transform(docs(test_set))
    speed = per_second(
        lambda: predict(model, [x.title for x in test_set], [x.text for x in test_set]),
        len(test_set),
    )
    report["newsmon"] = {"train_seconds": newsmon_train_s, "predictions_per_second": speed}
    print(
        f"newsmon: trained in {newsmon_train_s:.1f} s (both tasks, with calibration), "
        f"{speed:.0f} predictions/s (topic and stance)",
        flush=True,
    )

    if speed_only:
        # The reference for the task with the fewest classes: the quickest to train, and its
        # prediction cost hardly depends on the classes.
        task = min(tasks, key=lambda t: len({getattr(x, t) for x in train_set}))
        train_task = [x for x in train_set if getattr(x, task) is not None]
        pipe = baseline_pipeline().fit(docs(train_task), [getattr(x, task) for x in train_task])
        test_docs = docs([x for x in test_set if getattr(x, task) is not None])
        base_speed = per_second(lambda: pipe.predict(test_docs), len(test_docs))
        report["baseline_predictions_per_second"] = {task: base_speed}
        print(
            f"baseline ({task} only): {base_speed:.0f} predictions/s; newsmon (topic and stance) "
            f"at {speed / base_speed:.2f}x",
            flush=True,
        )
        return report

    for task in tasks:
        train_task = [x for x in train_set if getattr(x, task) is not None]
        test_task = [x for x in test_set if getattr(x, task) is not None]
        truth = [getattr(x, task) for x in test_task]
        start = time.perf_counter()
        pipe = baseline_pipeline().fit(docs(train_task), [getattr(x, task) for x in train_task])
        base_train_s = time.perf_counter() - start
        test_docs = docs(test_task)
        base_speed = per_second(lambda pipe=pipe, d=test_docs: pipe.predict(d), len(test_task))
        base = classification_metrics(truth, list(pipe.predict(test_docs)))
        # The task's classifier on every test article with that label (predict() would leave
        # stance out where it judged the topic 'none').
        keep = [i for i, x in enumerate(test_set) if getattr(x, task) is not None]
        mine = classification_metrics(
            truth, list(getattr(model, task).classifier.predict(test_features[keep]))
        )
        print(format_metrics(f"\n[{task}] baseline (all labels)", base, max_confusion=8))
        print(
            f"  trained in {base_train_s:.1f} s, {base_speed:.0f} predictions/s "
            f"(newsmon, topic and stance: {speed / base_speed:.2f}x)"
        )
        print(format_metrics(f"[{task}] newsmon (all labels)", mine, max_confusion=8), flush=True)
        task_classifier = getattr(model, task).classifier
        print(f"  self-training: {task_classifier.self_training_reason_}", flush=True)
        cv_f1 = (task_classifier.cv_macro_f1_ or {}).get(task_classifier.method_)
        if cv_f1 is not None:
            print(
                f"  cross-validated macro-F1 {cv_f1:.3f}, held out {mine['macro_f1']:.3f}: "
                f"gap {cv_f1 - mine['macro_f1']:+.3f}",
                flush=True,
            )
        mine["cross_validated_macro_f1"] = cv_f1
        learning = curve(task, train_set, test_set, sizes, repeats) if sizes else []
        report["tasks"][task] = {
            "baseline": {
                **base,
                "train_seconds": base_train_s,
                "predictions_per_second": base_speed,
            },
            "newsmon": mine,
            "learning_curve": learning,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="draws per learning-curve size")
    parser.add_argument("--sizes", default="2,10,50", help="labels per class, comma-separated")
    parser.add_argument("--tasks", default="topic,stance", help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the prediction speeds, against the reference's for one task",
    )
    parser.add_argument(
        "--curve-only",
        action="store_true",
        help="only the learning curves, without the all-labels comparison",
    )
    parser.add_argument(
        "--split",
        choices=("file", "outlet"),
        default="file",
        help="the file's train/test split, or one holding out whole outlets (source)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    # One core, as the goal is stated, and so numbers do not depend on the machine's core count.
    with threadpool_limits(1):
        sizes = tuple(int(s) for s in args.sizes.split(",") if s)
        report = bench(
            args.file,
            args.repeats,
            sizes,
            tuple(args.tasks.split(",")),
            args.speed_only,
            args.curve_only,
            args.split,
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
