"""Benchmark newsmon's claim-stance model on FNC-1 against plain TF-IDF + logistic regression.

    python bench/claims.py [../shared/datasets/fnc1_train.jsonl.gz] [--seeds 3] [--json out.json]

Each seed holds out 20% of the bodies (no body on both sides: a split by pair leaks) and fits,
in the same run and on the same pairs:

- newsmon: ``ClaimStanceModel`` (features of the claim-body relation, gradient-boosted trees);
- plain: ``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)`` on
  "headline + body" per pair, then ``LogisticRegression()``, the naive reference (the time goal
  is against it);
- separate: the same TF-IDF fitted once on the distinct headlines and bodies, each pair's
  headline and body vectors side by side plus their cosine, then ``LogisticRegression()``.

It prints the FNC-1 weighted score (percent of the best possible), per-class F1, accuracy and
the confusion matrix, training time (vectorising included) and memory, then the means over seeds
and the time ratio newsmon / plain. Every model is fitted in its own fresh process on one core
(as bench/classify.py measures), so the memory figure is that process's peak resident set size
(ru_maxrss: Python, libraries and the loaded pairs included) and, beside it, how far fitting
raised it above the size after loading the data.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from newsmon.models.claims import fnc_score

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared/datasets/fnc1_train.jsonl.gz"
MODELS = ("newsmon", "plain", "separate")
HELD_OUT = 0.2


def read_pairs(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def split_by_body(pairs: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    bodies = sorted({p["text"] for p in pairs})
    rng = np.random.default_rng(seed)
    held = {bodies[i] for i in rng.choice(len(bodies), round(HELD_OUT * len(bodies)), False)}
    return [p for p in pairs if p["text"] not in held], [p for p in pairs if p["text"] in held]


def _fit_predict(name: str, train: list[dict], test: list[dict]) -> Callable[[], Sequence[str]]:
    """Fit model ``name``; the function it returns predicts the held-out pairs."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    claims, bodies, stances = ([p[k] for p in train] for k in ("target", "text", "stance"))
    test_claims, test_bodies = [p["target"] for p in test], [p["text"] for p in test]
    if name == "newsmon":
        from newsmon.models.claims import ClaimStanceModel

        model = ClaimStanceModel().fit(claims, bodies, stances)
        return lambda: model.predict(test_claims, test_bodies)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    if name == "plain":
        X = vectorizer.fit_transform([f"{c}\n\n{b}" for c, b in zip(claims, bodies, strict=True)])
        classifier = LogisticRegression().fit(X, stances)
        return lambda: classifier.predict(
            vectorizer.transform(
                [f"{c}\n\n{b}" for c, b in zip(test_claims, test_bodies, strict=True)]
            )
        )
    import scipy.sparse as sp

    vectorizer.fit(sorted({*claims, *bodies}))

    def features(heads: list[str], texts: list[str]) -> sp.csr_matrix:
        h, b = vectorizer.transform(heads), vectorizer.transform(texts)
        cosine = sp.csr_matrix(h.multiply(b).sum(axis=1))
        return sp.hstack([h, b, cosine], format="csr")

    classifier = LogisticRegression().fit(features(claims, bodies), stances)
    return lambda: classifier.predict(features(test_claims, test_bodies))


def _child(name: str, path: str, seed: int, results: multiprocessing.Queue) -> None:
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", category=UserWarning)
    train, test = split_by_body(read_pairs(Path(path)), seed)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with threadpool_limits(1):
        start = time.perf_counter()
        predict = _fit_predict(name, train, test)
        fitted = time.perf_counter()
        predicted = [str(p) for p in predict()]
        done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put(
        {
            "predicted": predicted,
            "fit_seconds": fitted - start,
            "predict_seconds": done - fitted,
            "peak_mb": peak / 1024,
            "fit_added_mb": (peak - loaded) / 1024,
        }
    )


def run_model(name: str, path: Path, seed: int) -> dict:
    """Fit and predict in a fresh process, so its memory peak is this model's alone."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(name, str(path), seed, results))
    process.start()
    result = results.get()
    process.join()
    return result


def metrics(truth: list[str], predicted: list[str], labels: list[str]) -> dict:
    return {
        "fnc": fnc_score(truth, predicted),
        "accuracy": accuracy_score(truth, predicted),
        "f1": dict(
            zip(labels, f1_score(truth, predicted, labels=labels, average=None), strict=True)
        ),
        "macro_f1": f1_score(truth, predicted, labels=labels, average="macro"),
        "confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def show(name: str, result: dict, labels: list[str]) -> None:
    f1 = "  ".join(f"{label} {result['f1'][label]:.3f}" for label in labels)
    print(
        f"  {name:9} FNC {result['fnc']:6.2f}  accuracy {result['accuracy']:.4f}  "
        f"macro-F1 {result['macro_f1']:.3f}  fit {result['fit_seconds']:6.1f} s  "
        f"predict {result['predict_seconds']:5.1f} s  peak RSS {result['peak_mb']:5.0f} MB "
        f"(+{result['fit_added_mb']:.0f} fitting)"
    )
    print(f"            F1: {f1}")
    width = max(len(label) for label in labels)
    print(f"            confusion (rows true, columns predicted: {', '.join(labels)})")
    for label, row in zip(labels, result["confusion"], strict=True):
        print(f"            {label:>{width}} " + " ".join(f"{n:6d}" for n in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--seeds", type=int, default=3, help="body splits (default 3)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    pairs = read_pairs(args.path)
    labels = sorted({p["stance"] for p in pairs})
    models = [m for m in args.models.split(",") if m]
    print(f"{args.path}: {len(pairs):,} pairs, {len({p['text'] for p in pairs}):,} bodies")
    runs: dict[str, list[dict]] = {m: [] for m in models}
    for seed in range(args.seeds):
        train, test = split_by_body(pairs, seed)
        truth = [p["stance"] for p in test]
        print(
            f"\nsplit {seed}: {len(train):,} training pairs, {len(test):,} held-out pairs "
            f"({len({p['text'] for p in test})} held-out bodies)"
        )
        for name in models:
            result = run_model(name, args.path, seed)
            result = {**metrics(truth, result.pop("predicted"), labels), **result}
            runs[name].append(result)
            show(name, result, labels)
        if "newsmon" in runs and "plain" in runs:
            ratio = runs["newsmon"][-1]["fit_seconds"] / runs["plain"][-1]["fit_seconds"]
            print(f"  training time newsmon / plain: {ratio:.2f}")
    print(f"\nmean over {args.seeds} split(s):")
    for name, results in runs.items():
        mean = {k: np.mean([r[k] for r in results]) for k in ("fnc", "accuracy", "fit_seconds")}
        f1 = "  ".join(f"{lab} {np.mean([r['f1'][lab] for r in results]):.3f}" for lab in labels)
        peak = max(r["peak_mb"] for r in results)
        print(
            f"  {name:9} FNC {mean['fnc']:6.2f} (range {min(r['fnc'] for r in results):.2f}-"
            f"{max(r['fnc'] for r in results):.2f})  accuracy {mean['accuracy']:.4f}  "
            f"fit {mean['fit_seconds']:6.1f} s  max peak RSS {peak:.0f} MB  F1: {f1}"
        )
    if "newsmon" in runs and "plain" in runs:
        ratios = [
            n["fit_seconds"] / p["fit_seconds"]
            for n, p in zip(runs["newsmon"], runs["plain"], strict=True)
        ]
        print(f"  training time newsmon / plain: {np.mean(ratios):.2f} (max {max(ratios):.2f})")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
