"""Classify end to end: real DuckDB files, the CLI, and real Prefect flow runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from newsmon.cli import app
from newsmon.config import Config, load_config
from newsmon.flows.classify import classify_flow
from newsmon.labels import USER_FILE, write_labels
from newsmon.models.lifecycle import ModelState, ensure_model
from newsmon.warehouse.classify import current_model
from newsmon.warehouse.db import open_reader, open_warehouse, open_writer
from tests.test_classify_model import corpus

CONFIG = """
[warehouse]
path = "warehouse/test.duckdb"

[[topics]]
id = "sport"
name = "Sport"
target = "Football"
keywords = ["league"]

[[topics]]
id = "markets"
name = "Markets"
target = "Stocks"
keywords = ["shares"]
"""


def ensure(config: Config) -> ModelState:
    """ensure_model as the ingest flow calls it: with the current model read from the warehouse."""
    with open_warehouse(config) as con:
        current = current_model(con)
    return ensure_model(config, current)


def store_articles(database: Path, texts: list[str], first_id: int = 1) -> None:
    n = len(texts)
    batch = pa.table(
        {
            "article_id": list(range(first_id, first_id + n)),
            "canonical_url": [f"https://news.test/{first_id + i}" for i in range(n)],
            "title": [f"story {first_id + i}" for i in range(n)],
            "text": texts,
        }
    )
    with open_writer(database) as con:
        con.register("batch", batch)
        con.execute(
            """
            INSERT INTO articles (article_id, canonical_url, title, first_seen_at, fetched_at,
                                  site, text, word_count, content_hash, extraction)
            SELECT article_id, canonical_url, title, now(), now(), 'news.test', text, 50,
                   md5(text), 'trafilatura'
            FROM batch
            """
        )


def setup_project(write_config, tmp_path: Path) -> Path:
    config_path = write_config(CONFIG)
    write_labels(tmp_path / "seeds" / "labels.jsonl", corpus(6))
    store_articles(load_config(config_path).warehouse_path, [x.text for x in corpus(5, seed=7)])
    return config_path


def query(config_path: Path, sql: str) -> list[tuple]:
    with open_reader(load_config(config_path).warehouse_path) as con:
        return con.execute(sql).fetchall()


def newsmon(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "newsmon", "--config", str(config_path), *args],
        capture_output=True, text=True, timeout=300,
    )


def test_train_on_one_topic_says_what_it_cannot_predict(write_config, tmp_path: Path) -> None:
    # A fresh install's seeds: one topic, so topics come from the keyword rule.
    config_path = write_config(CONFIG)
    one_topic = [label for label in corpus(4) if label.topic == "sport"]
    write_labels(tmp_path / "seeds" / "labels.jsonl", one_topic)

    trained = CliRunner().invoke(
        app, ["-c", str(config_path), "model", "train", "--no-classify"]
    )

    assert trained.exit_code == 0, trained.output
    assert "keyword rule for markets, sport, no confidence" in trained.output
    assert "cannot: only 'sport' has examples" in trained.output
    assert "predicts against, favor" in trained.output


def test_evaluate_on_a_fresh_installs_two_seeds_says_what_it_cannot_score(
    write_config, tmp_path: Path
) -> None:
    config_path = write_config(CONFIG)
    two = [label for label in corpus(4) if label.topic == "sport"][:2]
    write_labels(tmp_path / "seeds" / "labels.jsonl", two)

    result = CliRunner().invoke(
        app, ["-c", str(config_path), "model", "evaluate", "--cv", "--curve", "--repeats", "1"]
    )

    assert result.exit_code == 0, result.output
    not_run = "learning curve not run: too few labels to hold some out to score on (2 in all)"
    assert result.output.count(not_run) == 2  # topic and stance
    assert "cannot: only 'sport' has examples" in result.output


def test_train_classify_and_retrain_keep_predictions_per_version(
    prefect_harness, write_config, tmp_path: Path
) -> None:
    config_path = setup_project(write_config, tmp_path)
    runner = CliRunner()
    trained = runner.invoke(app, ["-c", str(config_path), "model", "train", "--no-classify"])
    assert trained.exit_code == 0, trained.output
    assert "predicts against, favor" in trained.output
    (first,) = query(config_path, "SELECT model_version FROM model_versions WHERE is_current")
    card = json.loads(next((tmp_path / "models" / "versions").glob("*/card.json")).read_text())
    assert card["version"] == first[0] and card["topic"]["label_counts"]["none"] == 6

    outcome = classify_flow(config_path=str(config_path))
    assert outcome["classified"] == 15 and outcome["remaining"] == 0
    assert classify_flow(config_path=str(config_path))["classified"] == 0
    runs = query(config_path, "SELECT status, counts->>'classified' FROM runs ORDER BY started_at")
    assert runs == [("completed", "15"), ("completed", "0")]
    labels = query(config_path, "SELECT count(*), count(DISTINCT source) FROM labels")
    assert labels == [(18, 1)]

    # A new model re-classifies what is stored; the old version's predictions stay.
    retrained = runner.invoke(app, ["-c", str(config_path), "model", "train"])
    assert retrained.exit_code == 0, retrained.output
    assert "classified 15 stored article(s)" in retrained.output
    per_version = query(
        config_path,
        "SELECT model_version, count(*) FROM predictions GROUP BY ALL ORDER BY model_version",
    )
    assert [count for _, count in per_version] == [15, 15]
    current = query(config_path, "SELECT DISTINCT model_version FROM current_predictions")
    assert current == [(per_version[1][0],)]
    wrong = query(
        config_path,
        """SELECT count(*) FROM current_predictions
           WHERE topic IS NULL OR topic_confidence NOT BETWEEN 0 AND 1""",
    )
    assert wrong == [(0,)]


def test_classify_without_a_model_says_so(prefect_harness, write_config, tmp_path) -> None:
    config_path = setup_project(write_config, tmp_path)
    result = CliRunner().invoke(app, ["-c", str(config_path), "classify"])
    assert result.exit_code == 1
    assert "no model trained yet" in result.output
    # Seen before any flow starts (issue 23, item 14): no flow run, so no run is recorded.
    assert query(config_path, "SELECT count(*) FROM runs") == [(0,)]


def test_seeds_import_refuses_a_bad_file_whole(write_config, tmp_path: Path) -> None:
    config_path = setup_project(write_config, tmp_path)
    bad = tmp_path / "bad.jsonl"
    good_line = json.dumps(
        {"id": "x", "title": None, "text": "t", "topic": "sport", "stance": None}
    )
    bad.write_text(good_line + "\n" + '{"id": "y"}\n', encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["-c", str(config_path), "seeds", "import", str(bad)])
    assert result.exit_code == 2
    assert "line 2: missing 'title'" in result.output
    assert not (tmp_path / "seeds" / USER_FILE).exists()

    bad.write_text(good_line.replace("sport", "cooking") + "\n", encoding="utf-8")
    result = runner.invoke(app, ["-c", str(config_path), "seeds", "import", str(bad)])
    assert result.exit_code == 0, result.output
    assert "topics not in the config: cooking" in result.output
    assert query(config_path, "SELECT source FROM labels WHERE label_id = 'x'") == [("import",)]
    exported = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["-c", str(config_path), "label", "--export", str(exported)])
    assert result.exit_code == 0
    assert len(exported.read_text().splitlines()) == 19


def test_evaluate_json_reports_metrics_and_learning_curve(write_config, tmp_path: Path) -> None:
    config_path = setup_project(write_config, tmp_path)
    test_file = tmp_path / "test.jsonl"
    write_labels(test_file, corpus(4, seed=11))
    runner = CliRunner()
    trained = runner.invoke(app, ["-c", str(config_path), "model", "train", "--no-classify"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        app,
        ["-c", str(config_path), "model", "evaluate", "--test", str(test_file), "--json",
         "--curve", "--repeats", "1"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    topic = report["tasks"]["topic"]
    assert topic["metrics"]["n"] == 12 and topic["metrics"]["macro_f1"] > 0.8
    assert topic["metrics"]["confusion"]["labels"] == ["markets", "none", "sport"]
    assert [row["labels_per_class"] for row in topic["learning_curve"]] == [2, 10, 50]
    assert report["tasks"]["stance"]["metrics"]["n"] == 8


def test_importing_a_file_again_is_no_error_and_the_newer_label_wins(
    write_config, tmp_path: Path
) -> None:
    config_path = setup_project(write_config, tmp_path)
    records = [
        {"id": f"x{i}", "title": None, "text": f"league match {i}", "topic": "sport",
         "stance": None}
        for i in (1, 2)
    ]
    imported = tmp_path / "more.jsonl"
    imported.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    first = newsmon(config_path, "seeds", "import", str(imported))
    assert first.returncode == 0, first.stderr
    again = newsmon(config_path, "seeds", "import", str(imported))
    assert again.returncode == 0, again.stderr
    assert "2 new, 0 changed, 0 already there" in first.stdout
    assert "0 new, 0 changed, 2 already there" in again.stdout
    assert "seeds/ now holds 20" in again.stdout
    records[1]["topic"] = "markets"
    imported.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    changed = newsmon(config_path, "seeds", "import", str(imported))
    assert changed.returncode == 0, changed.stderr
    assert "0 new, 1 changed, 1 already there" in changed.stdout

    assert len((tmp_path / "seeds" / USER_FILE).read_text().splitlines()) == 2
    assert query(
        config_path, "SELECT label_id, topic FROM labels WHERE label_id LIKE 'x%' ORDER BY 1"
    ) == [("x1", "sport"), ("x2", "markets")]
    # The seeds stay usable: the next import and training read them.
    trained = newsmon(config_path, "model", "train", "--no-classify")
    assert trained.returncode == 0, trained.stderr
    assert "training on 20 label(s)" in trained.stdout


def test_evaluate_scores_the_model_just_trained_without_training(
    write_config, tmp_path: Path
) -> None:
    # seeds/ hold sport only; the other topics' labels come in a file for one training.
    config_path = write_config(CONFIG)
    labels = corpus(6)
    write_labels(tmp_path / "seeds" / "labels.jsonl", [x for x in labels if x.topic == "sport"])
    extra = tmp_path / "extra.jsonl"
    write_labels(extra, [x for x in labels if x.topic != "sport"])
    store_articles(load_config(config_path).warehouse_path, [x.text for x in corpus(5, seed=7)])
    trained = newsmon(config_path, "model", "train", "--seeds", str(extra), "--no-classify")
    assert trained.returncode == 0, trained.stderr
    [(version,)] = query(config_path, "SELECT model_version FROM model_versions WHERE is_current")
    test_file = tmp_path / "test.jsonl"
    write_labels(test_file, corpus(4, seed=11))

    scored = newsmon(config_path, "model", "evaluate", "--test", str(test_file), "--json")

    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert (report["method"], report["model_version"]) == ("test file", version)
    topic = report["tasks"]["topic"]
    assert topic["metrics"]["confusion"]["labels"] == ["markets", "none", "sport"]
    assert topic["metrics"]["n"] == 12 and topic["metrics"]["macro_f1"] > 0.8
    assert "learning_curve" not in topic  # opt-in: --curve
    assert report["tasks"]["stance"]["metrics"]["n"] == 8
    assert query(config_path, "SELECT count(*) FROM model_versions") == [(1,)]
    plain = newsmon(config_path, "model", "evaluate", "--test", str(test_file))
    assert plain.returncode == 0, plain.stderr
    assert f"model {version}" in plain.stdout


def test_evaluate_reads_a_versions_card_scores_a_named_version_or_cross_validates(
    write_config, tmp_path: Path
) -> None:
    config_path = setup_project(write_config, tmp_path)
    runner = CliRunner()

    def model(*args: str):
        return runner.invoke(app, ["-c", str(config_path), "model", *args])

    none_yet = model("evaluate")
    assert none_yet.exit_code == 2
    assert "no model trained yet" in none_yet.output
    assert model("train", "--no-classify").exit_code == 0
    [(first,)] = query(config_path, "SELECT model_version FROM model_versions")
    extra = tmp_path / "extra.jsonl"
    write_labels(extra, corpus(3, seed=5))
    assert model("train", "--no-classify", "--seeds", str(extra)).exit_code == 0
    [(second, card)] = query(
        config_path, "SELECT model_version, card FROM model_versions WHERE is_current"
    )
    test_file = tmp_path / "test.jsonl"
    write_labels(test_file, corpus(4, seed=11))

    # Neither option: the current version's cross-validated metrics, from its card.
    stored = model("evaluate", "--json")
    assert stored.exit_code == 0, stored.output
    report = json.loads(stored.output)
    assert (report["method"], report["model_version"]) == ("model card", second)
    assert report["tasks"]["topic"]["metrics"] == json.loads(card)["topic"]["cross_validated"]
    assert f"model {second}" in model("evaluate").output
    # --version: an older version, on the test file.
    older = model("evaluate", "--version", first, "--test", str(test_file), "--json")
    assert older.exit_code == 0, older.output
    assert json.loads(older.output)["model_version"] == first
    unknown = model("evaluate", "--version", "19990101T000000000000Z")
    assert unknown.exit_code == 2
    assert "no model version '19990101T000000000000Z'" in unknown.output
    # --cv: cross-validation of a model trained now from seeds/, saved nowhere.
    cv = model("evaluate", "--cv", "--json")
    assert cv.exit_code == 0, cv.output
    report = json.loads(cv.output)
    assert (report["method"], report["model_version"]) == ("cross-validation", None)
    assert report["tasks"]["topic"]["metrics"]["n"] == 18
    assert query(config_path, "SELECT count(*) FROM model_versions") == [(2,)]
    both = model("evaluate", "--cv", "--test", str(test_file))
    assert both.exit_code == 2
    assert "either --cv or --test" in both.output


CUSTOM_DIRS = """
[classify]
seeds_dir = "labelled"
models_dir = "artifacts/versions"
batch_size = 4
max_unlabelled = 3
"""


def test_train_and_record_and_ensure_model_use_the_configured_folders(
    prefect_harness, write_config, tmp_path: Path
) -> None:
    from newsmon.models.artifacts import load
    from newsmon.models.lifecycle import NoLabelsError, train_and_record

    config_path = write_config(CONFIG + CUSTOM_DIRS)
    config = load_config(config_path)
    store_articles(config.warehouse_path, [x.text for x in corpus(5, seed=7)])
    # No labels yet: nothing to train, and ensure_model says so rather than failing.
    assert ensure(config) is ModelState.NO_LABELS
    with pytest.raises(NoLabelsError, match="labelled"):
        train_and_record(config)

    write_labels(tmp_path / "labelled" / "labels.jsonl", corpus(6))
    extra = tmp_path / "extra.jsonl"
    write_labels(extra, corpus(2, seed=3))
    saved = train_and_record(config, extra_seed_files=[extra])
    assert saved.path.parent.parent == tmp_path / "artifacts" / "versions"
    assert saved.card["topic"]["label_counts"] == {"sport": 8, "markets": 8, "none": 8}
    assert saved.card["unlabelled_articles"] == 3  # [classify] max_unlabelled
    assert saved.card["topic"]["self_training"]["used"] in (True, False)
    assert saved.card["topic"]["self_training"]["reason"]
    assert query(config_path, "SELECT count(*) FROM labels") == [(24,)]
    rows = query(config_path, "SELECT model_version, artifact_path FROM model_versions")
    assert rows == [(saved.version, f"artifacts/versions/{saved.version}/model.joblib")]
    assert load(saved.path, saved.sha256).topic.classes == ["markets", "none", "sport"]
    # The analyst copy is published by open_warehouse.
    with open_reader(config.analyst_copy_path) as con:
        assert con.execute("SELECT count(*) FROM model_versions").fetchone() == (1,)

    # A usable current model: nothing to do.
    assert ensure(config) is ModelState.READY
    assert query(config_path, "SELECT count(*) FROM model_versions") == [(1,)]
    # Its artifact gone (models/ is rebuilt, not versioned): trained again from the seeds.
    saved.path.unlink()
    assert ensure(config) is ModelState.TRAINED
    current = query(
        config_path, "SELECT model_version, artifact_path FROM model_versions WHERE is_current"
    )
    assert current[0][0] != saved.version
    assert (tmp_path / current[0][1]).is_file()
    assert query(config_path, "SELECT count(*) FROM labels") == [(18,)]  # seeds only now

    outcome = classify_flow(config_path=str(config_path))
    assert outcome["classified"] == 15
    batches = query(config_path, "SELECT count(*) FROM predictions")
    assert batches == [(15,)]


def test_ensure_model_trains_when_the_warehouse_has_no_model(write_config, tmp_path) -> None:
    config_path = setup_project(write_config, tmp_path)
    config = load_config(config_path)
    assert query(config_path, "SELECT count(*) FROM model_versions") == [(0,)]
    assert ensure(config) is ModelState.TRAINED
    assert query(config_path, "SELECT count(*) FROM model_versions WHERE is_current") == [(1,)]
    assert ensure(config) is ModelState.READY
    assert query(config_path, "SELECT count(*) FROM model_versions") == [(1,)]


def test_pair_labels_import_without_a_topic_and_training_still_works(
    write_config, tmp_path: Path
) -> None:
    config_path = setup_project(write_config, tmp_path)
    pairs = tmp_path / "pairs.jsonl"
    claim = "The league will cancel the season"
    pairs.write_text("".join(json.dumps(
        {"id": f"p{n}", "title": None, "text": body, "topic": None, "stance": stance,
         "target": claim, "source": None, "split": "train"}) + "\n"
        for n, (body, stance) in enumerate([
            ("The league confirmed it will cancel the season.", "agree"),
            ("The league denied reports it would cancel the season.", "disagree"),
            ("Some say the league may cancel the season, reports claim.", "discuss"),
            ("A new phone was released on Tuesday.", "unrelated"),
        ])), encoding="utf-8")

    imported = newsmon(config_path, "seeds", "import", str(pairs))
    assert imported.returncode == 0, imported.stderr
    assert "imported 4 label(s): 4 new" in imported.stdout
    assert query(config_path, "SELECT count(*), count(DISTINCT target) FROM labels "
                              "WHERE topic IS NULL") == [(4, 1)]
    trained = newsmon(config_path, "model", "train")
    assert trained.returncode == 0, trained.stderr
    # The pairs' stances are toward their claim, not toward a topic's target.
    (card,) = query(config_path, "SELECT card FROM model_versions")[0]
    assert not {"agree", "disagree", "discuss", "unrelated"} & set(
        json.loads(card)["stance"]["label_counts"])


def test_a_current_model_an_older_newsmon_saved_is_retrained(write_config, tmp_path) -> None:
    import hashlib
    import pickle

    config_path = setup_project(write_config, tmp_path)
    config = load_config(config_path)
    assert ensure(config) is ModelState.TRAINED
    (path, version) = query(config_path, "SELECT artifact_path, model_version FROM model_versions")[0]
    # What an earlier release left: a pickle naming a class that has since gone, recorded as
    # current with its true hash (so only loading it tells).
    artifact = config.resolve(Path(path))
    artifact.write_bytes(pickle.dumps(1).replace(b"K\x01", b"cnewsmon.models.selftraining\nSelfTrainingSVM\n)\x81"))
    with open_warehouse(config) as con:
        con.execute("UPDATE model_versions SET artifact_sha256 = ?",
                    [hashlib.sha256(artifact.read_bytes()).hexdigest()])

    assert ensure(config) is ModelState.TRAINED
    current = query(config_path, "SELECT model_version FROM model_versions WHERE is_current")
    assert current != [(version,)]
