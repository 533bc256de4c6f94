"""Training time and peak memory at a large label count, against the plain reference.

    python bench/train_scale.py ../shared/datasets/article_bias_sample.jsonl [--labels 26590]

Baly et al.'s media split has 26,590 training articles; the sample holds 8,000. The label set is
drawn from the sample with replacement, each copy with a seeded 5% of its words dropped, so that
copies are not identical texts (the vocabulary and the SVMs' work grow as with new articles; the
outlets are the sample's). Each side runs in its own child process, which builds the same label
set and reports the seconds of the fit alone and the process's peak resident memory (ru_maxrss):
newsmon's ``train()`` (topic and stance, as shipped, no unlabelled articles) and the plain
``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)`` + ``LogisticRegression()``
on stance. One core each, so the figures do not depend on the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from newsmon.labels import Label, parse_label
from newsmon.models.training import document_text, train

DROP = 0.05


def label_set(path: Path, n: int, seed: int = 0) -> list[Label]:
    with path.open(encoding="utf-8") as lines:
        sample = [parse_label(json.loads(line)) for line in lines]
    rng = np.random.default_rng(seed)
    labels = []
    for copy, i in enumerate(rng.integers(0, len(sample), n)):
        words = sample[i].text.split()
        kept = [w for w, r in zip(words, rng.random(len(words)), strict=True) if r >= DROP]
        labels.append(replace(sample[i], id=f"{sample[i].id}-{copy}", text=" ".join(kept)))
    return labels


def fit(side: str, labels: list[Label]) -> dict:
    start = time.perf_counter()
    if side == "newsmon":
        model = train(labels, [])
        tasks = ("topic", "stance")
        chosen = {t: getattr(model, t).classifier.self_training_reason_ for t in tasks}
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2), LogisticRegression()
        )
        pipe.fit([document_text(x.title, x.text) for x in labels], [x.stance for x in labels])
        chosen = {}
    return {
        "seconds": time.perf_counter() - start,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "chosen": chosen,
    }


def child(side: str, path: Path, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, str(path), "--labels", str(n), "--side", side],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--labels", type=int, default=26_590)
    parser.add_argument("--side", choices=("newsmon", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.side:
        labels = label_set(args.file, args.labels)
        before_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with threadpool_limits(1):
            result = fit(args.side, labels)
        print(json.dumps({**result, "before_fit_mb": before_fit}))
        return
    reference = child("reference", args.file, args.labels)
    print(
        f"reference (TF-IDF + LR, stance): {reference['seconds']:.0f} s, "
        f"peak {reference['peak_mb']:.0f} MB ({reference['before_fit_mb']:.0f} MB before the fit)",
        flush=True,
    )
    newsmon = child("newsmon", args.file, args.labels)
    print(
        f"newsmon train() (topic and stance): {newsmon['seconds']:.0f} s, "
        f"peak {newsmon['peak_mb']:.0f} MB ({newsmon['before_fit_mb']:.0f} MB before the fit); "
        f"{newsmon['seconds'] / reference['seconds']:.2f}x the reference's time"
    )
    for task, reason in newsmon["chosen"].items():
        print(f"  {task}: {reason}")


if __name__ == "__main__":
    main()
