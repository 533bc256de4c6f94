"""The classifier on a small synthetic labelled set the tests write themselves."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from newsmon.config import TopicSettings
from newsmon.labels import Label
from newsmon.models.artifacts import ArtifactError, load, save
from newsmon.models.candidates import Candidate
from newsmon.models.classifier import TaskClassifier
from newsmon.models.evaluation import classification_metrics, learning_curve
from newsmon.models.features import (
    _SEPARATORS,
    TOKEN,
    NewsFeatures,
    PunctuationStyle,
    WordNgramTfidf,
    _tokens,
)
from newsmon.models.predict import predict
from newsmon.models.selection import choose, make_folds
from newsmon.models.selftraining import neighbour_graph, spread_labels
from newsmon.models.training import train

VOCAB = {
    "sport": [
        "match",
        "goal",
        "league",
        "striker",
        "coach",
        "season",
        "stadium",
        "fans",
        "injury",
        "transfer",
    ],
    "markets": [
        "shares",
        "bank",
        "inflation",
        "investors",
        "bonds",
        "earnings",
        "profit",
        "rates",
        "dividend",
    ],
    "none": [
        "recipe",
        "garden",
        "weather",
        "holiday",
        "museum",
        "painting",
        "film",
        "music",
        "travel",
        "cooking",
    ],
}
STANCE_WORDS = {
    "favor": ["welcome", "praise", "support", "hopeful", "progress", "success", "applaud"],
    "against": ["condemn", "criticise", "oppose", "failure", "warning", "reckless", "deplore"],
}
FILLER = ["the", "said", "on", "in", "of", "and", "with", "for", "today", "after", "before", "new"]
TOPICS = [
    TopicSettings(id="sport", name="Sport", target="Football", keywords=["league"]),
    TopicSettings(id="markets", name="Markets", target="Stocks", keywords=["shares"]),
]


def article(rng: np.random.Generator, topic: str, stance: str | None) -> str:
    words = list(rng.choice(VOCAB[topic], 30)) + list(rng.choice(FILLER, 30))
    if stance:
        words += list(rng.choice(STANCE_WORDS[stance], 12))
    rng.shuffle(words)
    return " ".join(words)


def corpus(n_per_class: int, seed: int = 0) -> list[Label]:
    """Labelled articles of two topics with two stances each, and off-topic ones."""
    rng = np.random.default_rng(seed)
    labels = []
    for topic in ("sport", "markets", "none"):
        for i in range(n_per_class):
            stance = None if topic == "none" else ("favor", "against")[i % 2]
            text = article(rng, topic, stance)
            labels.append(Label(f"{topic}-{seed}-{i}", f"{topic} {i}", text, topic, stance))
    return labels


def test_features_match_scikit_learn_tfidf() -> None:
    texts = [x.text for x in corpus(6)] + [
        "Unicode café façade, don't stop!",
        "a b c",
        # ASCII once its quotes, dashes and spaces are replaced: the split path, not the regex.
        "Kim’s “summit” — a 2-day\u00a0affair, 30°C… I said: Trump_Kim met.",
        "Kim’s “summit” — a 2-day affair… I said: Trump_Kim met in Hà Nội.",
    ]
    ours = WordNgramTfidf(min_df=2).fit(texts)
    reference = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit(texts)
    names = ours.get_feature_names_out()
    assert sorted(names) == sorted(reference.vocabulary_)
    order = [reference.vocabulary_[name] for name in names]
    expected = reference.transform(texts)[:, order].toarray()
    np.testing.assert_allclose(ours.transform(texts).toarray(), expected, atol=1e-12)


def test_max_features_caps_bigrams_too_keeping_the_most_frequent() -> None:
    # Three words, so few unigrams and many bigrams: the cap of three applies to the bigrams.
    texts = ["aa bb cc aa", "bb cc aa", "aa bb cc", "cc bb aa bb", "bb aa cc", "aa bb aa"]
    capped = WordNgramTfidf(min_df=2, max_features=3).fit(texts)
    uncapped = WordNgramTfidf(min_df=2).fit(texts)

    def bigrams(model: WordNgramTfidf) -> set[str]:
        return {name for name in model.get_feature_names_out() if " " in name}

    def df(bigram: str) -> int:
        return sum(f" {bigram} " in f" {text} " for text in texts)

    kept, dropped = bigrams(capped), bigrams(uncapped) - bigrams(capped)
    assert len(kept) == 3 and len(dropped) >= 1
    assert min(map(df, kept)) >= max(map(df, dropped))
    assert capped.transform(texts).shape[1] == len(capped.get_feature_names_out())


def test_words_are_the_token_patterns_words_on_either_path() -> None:
    # Every separator is a character the token pattern splits on, so replacing it changes
    # no token; and both paths give exactly the pattern's tokens.
    assert not [c for c in _SEPARATORS if re.fullmatch(r"\w", c)]
    texts = ["It's A-1, x_y Z9 b.", "Naïve café’s “a” b", "“Ok”—a\u00a0b c’d", "MIXED Case", ""]
    assert _tokens(texts) == [TOKEN.findall(text.lower()) for text in texts]


def test_learns_given_labels_and_reports_calibrated_confidence() -> None:
    labels, held_out = corpus(8), corpus(10, seed=1)
    unlabelled = [x.text for x in corpus(10, seed=2)]
    model = train(labels, unlabelled, TOPICS)
    assert model.topic.classes == ["markets", "none", "sport"]
    assert model.stance.classes == ["against", "favor"]
    result = predict(model, [x.title for x in held_out], [x.text for x in held_out])
    topic_f1 = classification_metrics([x.topic for x in held_out], result.topic)["macro_f1"]
    assert topic_f1 > 0.9
    assert all(0.3 < c <= 1 for c in result.topic_confidence)
    # Off-topic articles get no stance, and say why.
    for got, stance, note in zip(result.topic, result.stance, result.stance_note, strict=True):
        assert (stance is None) == (got == "none")
        assert note == ("no topic, so no stance" if got == "none" else None)
    truth, guess = model.topic.cv_predictions()
    assert len(truth) == len(labels) and set(guess) <= set(model.topic.classes)


def test_two_favor_seeds_give_no_stance_and_an_unconfident_keyword_topic() -> None:
    seeds = [x for x in corpus(4) if x.topic == "sport" and x.stance == "favor"]
    assert len(seeds) == 2
    unlabelled = ["league league match today", "recipe garden cooking today"]
    model = train(seeds, unlabelled, TOPICS)
    assert model.topic.classifier is None and model.stance.classifier is None
    assert model.stance.note == "only 'favor' has examples"
    assert "only 'sport' has examples" in model.topic.note
    result = predict(model, [None, None], unlabelled)
    assert result.topic == ["sport", "none"]
    assert result.topic_confidence == [None, None]
    assert result.topic_note[0].startswith("keyword rule (2 keyword mention(s)), no confidence")
    assert result.stance == [None, None]
    assert result.stance_note == ["only 'favor' has examples", "no topic, so no stance"]


def test_a_class_with_one_example_is_named_and_never_predicted() -> None:
    labels = [x for x in corpus(6) if x.topic != "none"]
    labels = [x for x in labels if x.stance == "favor"] + [
        next(x for x in labels if x.stance == "against")
    ]
    model = train(labels, [], TOPICS)
    assert model.stance.classifier is None
    assert model.stance.note == (
        "only 'favor' has examples; 'against' need at least 2 examples each, so are never predicted"
    )
    assert "no 'none' examples" in model.topic.note


def test_unlabelled_articles_help_with_two_labels_per_class() -> None:
    labels = [x for x in corpus(2, seed=3)]
    test = corpus(20, seed=4)
    pool = [x.text for x in corpus(40, seed=5)]

    def f1(rounds: int) -> float:
        model = train(labels, pool, self_training_rounds=rounds, calibration_folds=0)
        guess = model.topic.classifier.predict(model.features.transform([x.text for x in test]))
        return classification_metrics([x.topic for x in test], guess)["macro_f1"]

    assert f1(rounds=5) >= f1(rounds=0)
    assert f1(rounds=5) > 0.9


def test_artifact_round_trip_and_tampering_is_refused(tmp_path) -> None:
    model = train(corpus(4), [], TOPICS)
    saved = save(model, tmp_path)
    assert saved.card["artifact_sha256"] == saved.sha256
    assert saved.card["stance"]["label_counts"] == {"favor": 4, "against": 4}
    loaded = load(saved.path, saved.sha256)
    texts = [x.text for x in corpus(3, seed=9)]
    assert predict(loaded, [None] * 9, texts) == predict(model, [None] * 9, texts)
    saved.path.write_bytes(saved.path.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="does not match"):
        load(saved.path, saved.sha256)


def test_unlabelled_articles_are_used_only_when_cross_validation_says_they_help(
    tmp_path,
) -> None:
    labels, pool = corpus(4, seed=3), [x.text for x in corpus(40, seed=5)]
    model = train(labels, pool, TOPICS)
    for task in (model.topic, model.stance):
        classifier = task.classifier
        scores = classifier.cv_macro_f1_
        # These texts have no punctuation: no style block, so neither its view nor spreading.
        assert set(scores) == {
            "labelled_only",
            "centroid",
            "centroid_self_training",
            "self_training",
            "ensemble",
            "spreading",
        }
        assert scores["self_training"] is not None and scores["spreading"] is None
        assert scores["centroid_self_training"] is not None and scores["ensemble"] is not None
        # The best out-of-fold macro-F1 wins, or a candidate that learns from unlabelled
        # articles when it is within the noise of that (here: a tie), the ensemble first.
        tried = {name: f1 for name, f1 in scores.items() if f1 is not None}
        learners = {"centroid_self_training", "self_training", "ensemble"}
        best = max(tried.values())
        if scores["ensemble"] == best:
            assert classifier.method_ == "ensemble"
        elif classifier.method_ in learners - {"ensemble"}:
            assert scores[classifier.method_] == max(tried[name] for name in learners)
        elif classifier.method_ != "ensemble":
            assert scores[classifier.method_] > max(tried[name] for name in learners)
            assert scores[classifier.method_] == best
        assert classifier.self_training_ == (classifier.method_ in learners)
        assert "cross-validated macro-F1" in classifier.self_training_reason_
        # The confidences' out-of-fold predictions are those of the option chosen.
        truth, guess = task.cv_predictions()
        assert classification_metrics(truth, guess)["macro_f1"] == pytest.approx(
            scores[classifier.method_]
        )
    card = save(model, tmp_path).card
    assert card["topic"]["self_training"]["used"] == model.topic.classifier.self_training_
    assert card["topic"]["self_training"]["cross_validated_macro_f1"] == (
        model.topic.classifier.cv_macro_f1_
    )

    # Above max_self_training_classes no SVM learns from the unlabelled rows, and it says why;
    # the centroids, cheap with any number of classes, still may.
    X = model.features.transform([x.text for x in labels] + pool)
    y = np.array([x.topic for x in labels] + [None] * len(pool), dtype=object)
    capped = TaskClassifier(max_self_training_classes=2).fit(X, y)
    assert capped.method_ not in {"self_training", "spreading"}
    assert "not tried: 3 classes (more than 2)" in capped.self_training_reason_
    assert capped.cv_macro_f1_["self_training"] is None
    assert capped.cv_macro_f1_["ensemble"] is None
    assert capped.cv_macro_f1_["centroid_self_training"] is not None
    # Without unlabelled rows there is nothing to decide.
    alone = TaskClassifier().fit(X[: len(labels)], y[: len(labels)])
    assert alone.self_training_ is False
    assert alone.self_training_reason_.endswith("not tried: no unlabelled articles")


def test_punctuation_style_terms_keep_spacing_and_the_kind_of_neighbour() -> None:
    texts = ["He said , `` no '' .", "He said, “no.”", "She said , `` yes '' ."]
    style = PunctuationStyle(min_df=1).fit(texts)
    X = style.transform(texts).toarray()
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1)
    # The two spaced, ASCII-quoted texts share their terms; the typeset one shares none.
    assert X[0] @ X[2] == pytest.approx(1)
    assert X[0] @ X[1] == pytest.approx(0)
    # Text without punctuation, or with only unseen terms, is an empty row.
    assert style.transform(["no punctuation here", "odd ~~~ run"]).nnz == 0


def test_news_features_put_the_blocks_side_by_side() -> None:
    texts = [x.text + (" , ok ." if i % 2 else " -- ok!") for i, x in enumerate(corpus(4))]
    features = NewsFeatures(min_df=2).fit(texts)
    words, lead, style = (features.blocks_[name] for name in ("words", "lead", "style"))
    assert words == (0, features.words_.n_ngrams)
    assert lead == (words[1], features.words_.n_features)
    assert style == (lead[1], features.n_features)
    X = features.transform(texts[:5]).toarray()
    np.testing.assert_allclose(X[:, : lead[1]], features.words_.transform(texts[:5]).toarray())
    np.testing.assert_allclose(X[:, style[0] :], features.style_.transform(texts[:5]).toarray())


def test_the_lead_block_holds_the_first_words_only() -> None:
    texts = ["alpha beta gamma delta alpha", "delta gamma beta alpha beta"]
    words = WordNgramTfidf(min_df=1, lead=3).fit(texts)
    X = words.transform(texts)
    names = words.get_feature_names_out()
    lead = X[:, words.n_ngrams :]
    assert sorted(names[words.n_ngrams + lead[0].indices]) == [
        "lead: alpha",
        "lead: beta",
        "lead: gamma",
    ]
    assert sorted(names[words.n_ngrams + lead[1].indices]) == [
        "lead: beta",
        "lead: delta",
        "lead: gamma",
    ]
    np.testing.assert_allclose(np.linalg.norm(lead.toarray(), axis=1), 1)
    # Without a lead, the same n-gram columns and nothing after them.
    plain = WordNgramTfidf(min_df=1).fit(texts)
    assert plain.n_features == words.n_ngrams
    np.testing.assert_allclose(plain.transform(texts).toarray(), X[:, : words.n_ngrams].toarray())


def test_spreading_follows_the_neighbour_graph() -> None:
    # Two chains 0-1-2 and 3-4-5 (each row's nearest are its chain mates): one seed per chain.
    X = np.array([[1, 0.1], [1, 0.12], [1, 0.14], [0.1, 1], [0.12, 1], [0.14, 1]])
    graph = neighbour_graph(sp.csr_matrix(X / np.linalg.norm(X, axis=1, keepdims=True)), k=2)
    np.testing.assert_allclose(graph.toarray(), graph.T.toarray(), rtol=1e-6)
    spread = spread_labels(graph, np.array([0, -1, -1, 1, -1, -1]), 2)
    np.testing.assert_array_equal(spread.argmax(axis=1), [0, 0, 0, 1, 1, 1])


def house_style_corpus(n_per_house: int, seed: int) -> tuple[list[str], list[str]]:
    """Leaning follows the publisher, and each publisher has its own way of typing quotes and
    dashes; the words say nothing about the leaning."""
    rng = np.random.default_rng(seed)
    houses = {
        "left": [("“", "”", " — "), ("«", "»", " -- ")],
        "right": [("``", "''", " – "), ("‘", "’", " - ")],
    }
    words = [w for group in VOCAB.values() for w in group] + FILLER
    texts, leanings = [], []
    for leaning, styles in houses.items():
        for open_quote, close_quote, dash in styles:
            for _ in range(n_per_house):
                parts = []
                for _ in range(6):
                    sentence = " ".join(rng.choice(words, 8))
                    quote = " ".join(rng.choice(words, 4))
                    parts.append(f"{sentence}{dash}{open_quote}{quote}{close_quote}.")
                texts.append(" ".join(parts))
                leanings.append(leaning)
    return texts, leanings


def test_labels_spread_along_house_style_from_two_labels_per_class() -> None:
    texts, leanings = house_style_corpus(30, seed=0)
    test_texts, test_leanings = house_style_corpus(10, seed=1)
    features = NewsFeatures(min_df=2).fit(texts)
    X = features.transform(texts)
    # One labelled article per publisher, two per leaning; every other article is unlabelled.
    y = np.full(len(texts), None, dtype=object)
    for first in range(0, len(texts), 30):
        y[first] = leanings[first]
    model = TaskClassifier(blocks=features.blocks_, calibration_folds=2).fit(X, y)
    assert model.cv_macro_f1_["spreading"] is not None
    guess = model.predict(features.transform(test_texts))
    assert classification_metrics(test_leanings, guess)["macro_f1"] > 0.9
    # Whatever was chosen is one linear map of the features (two classes: one score column).
    X_test = features.transform(test_texts)
    linear = X_test @ model.weights_ + model.intercept_
    np.testing.assert_allclose(model.decision_function(X_test)[:, 1], linear[:, 0], rtol=1e-5)


def test_spreading_is_kept_when_it_beats_the_svm_on_its_view_within_thrice_the_noise() -> None:
    truth = np.repeat([0, 1, 2], 10)
    wrong_order = np.random.default_rng(0).permutation(len(truth))

    def scores(correct: int) -> np.ndarray:
        """One-hot out-of-fold scores, right on ``correct`` rows (errors spread over classes)."""
        guess = truth.copy()
        wrong = wrong_order[correct:]
        guess[wrong] = (truth[wrong] + 1) % 3
        return np.eye(3)[guess]

    words, style = Candidate("labelled_only", 0.0), Candidate("style", 1.0)
    spreading = Candidate("spreading", 1.0, unlabelled="spreading")

    def chosen(n_words: int, n_style: int, n_spreading: int) -> str:
        oof = {words: scores(n_words), style: scores(n_style), spreading: scores(n_spreading)}
        return choose(truth, oof).name

    # The SVM on words leads by between one and three times the noise (30 labels): spreading is
    # kept when it beats the same SVM on words and style, which the spread labels should improve,
    assert chosen(20, 13, 14) == "spreading"
    # and not when it does not (its spread labels did not help),
    assert chosen(20, 15, 14) == "labelled_only"
    # nor when the best leads by far more than the noise (topics, where style is no guide).
    assert chosen(28, 13, 14) == "labelled_only"


def blurred_corpus(
    n_per_class: int, seed: int, topics: tuple[str, ...] = ("sport", "markets", "none")
) -> tuple[list[str], list[str]]:
    """Short articles with ten of their topic's words and four of the other topics': a handful
    of labels leaves many of a topic's words unseen."""
    rng = np.random.default_rng(seed)
    texts, targets = [], []
    for topic in topics:
        others = [word for other in topics if other != topic for word in VOCAB[other]]
        for _ in range(n_per_class):
            words = [*rng.choice(VOCAB[topic], 10), *rng.choice(others, 4), *rng.choice(FILLER, 30)]
            rng.shuffle(words)
            texts.append(" ".join(words))
            targets.append(topic)
    return texts, targets


@pytest.mark.parametrize("topics", [("sport", "markets", "none"), ("sport", "markets")])
def test_the_ensemble_is_kept_within_the_noise_and_beats_the_plain_svm(
    topics: tuple[str, ...],
) -> None:
    labelled, targets = blurred_corpus(3, seed=1, topics=topics)
    pool, _ = blurred_corpus(60, seed=2, topics=topics)
    test, truth = blurred_corpus(100, seed=3, topics=topics)
    features = NewsFeatures(min_df=2).fit(labelled + pool)
    X, X_test = features.transform(labelled + pool), features.transform(test)
    y = np.array(targets + [None] * len(pool), dtype=object)
    model = TaskClassifier(blocks=features.blocks_).fit(X, y)
    plain = TaskClassifier(rounds=0, calibration_folds=0, blocks=features.blocks_).fit(X, y)

    assert model.method_ == "ensemble" and model.self_training_
    f1 = classification_metrics(truth, model.predict(X_test))["macro_f1"]
    assert f1 > 0.95
    assert f1 > classification_metrics(truth, plain.predict(X_test))["macro_f1"] + 0.1
    # Still one linear map of the features; with two classes one score column, as an SVM's.
    assert model.weights_.shape[1] == (1 if len(topics) == 2 else len(topics))
    linear = X_test @ model.weights_ + model.intercept_
    scores = model.decision_function(X_test)
    np.testing.assert_allclose(scores[:, -linear.shape[1] :], linear, rtol=1e-5, atol=1e-6)
    assert model.predict_proba(X_test).shape == (len(test), len(topics))


def test_folds_group_by_source_so_house_style_does_not_look_like_stance() -> None:
    # Leaning follows the publisher, and each publisher types quotes its own way: with random
    # folds the style SVM recognises the publisher and looks perfect; with folds grouped by
    # source it meets unseen publishers, where house style says nothing.
    n = 20
    texts, leanings = house_style_corpus(n, seed=0)
    sources = [f"house {i // n}" for i in range(len(texts))]
    features = NewsFeatures(min_df=2).fit(texts)
    X, y = features.transform(texts), np.array(leanings, dtype=object)
    grouped = TaskClassifier(rounds=0, blocks=features.blocks_).fit(X, y, groups=sources)
    random = TaskClassifier(rounds=0, blocks=features.blocks_).fit(X, y)
    assert "grouped by source" in grouped.cv_folds_ and "random" in random.cv_folds_
    assert random.cv_macro_f1_["style"] > 0.9
    assert grouped.cv_macro_f1_["style"] < 0.7
    assert "grouped by source" in grouped.self_training_reason_


def test_no_source_is_on_both_sides_of_a_fold_and_big_label_sets_are_drawn() -> None:
    codes = np.repeat([0, 1, 2], 40)
    sources = [f"outlet {i % 12}" for i in range(len(codes))]
    sources[:5] = [None] * 5  # unknown: each its own group
    folds = make_folds(codes, sources, folds=5, seed=0, max_labels=60)
    assert folds is not None and "grouped by source" in folds.how
    assert "on 60 of 120 labels" in folds.how and len(folds.rows) == 60
    for train_part, test_part in folds.splits:
        seen = {sources[folds.rows[i]] for i in train_part} - {None}
        assert seen.isdisjoint({sources[folds.rows[i]] for i in test_part})
        assert set(codes[folds.rows[train_part]]) == {0, 1, 2}
    # One source per class: holding any out loses a class, so the folds are random.
    one_each = [f"outlet {c}" for c in codes]
    assert "random folds" in make_folds(codes, one_each, 5, 0, 1000).how
    assert "random folds" in make_folds(codes, None, 5, 0, 1000).how


def test_training_records_its_time_and_memory_in_the_card(tmp_path) -> None:
    model = train(corpus(4), [], TOPICS)
    assert model.train_seconds is not None and model.train_seconds > 0
    assert model.peak_memory_mb is not None and model.peak_memory_mb > 10
    card = save(model, tmp_path).card
    assert card["training"]["seconds"] == model.train_seconds
    assert card["training"]["peak_memory_mb"] == model.peak_memory_mb


def test_the_learning_curve_is_silent_and_stops_at_its_time_budget() -> None:
    labels = corpus(6)

    def slow_trainer(chosen, unlabelled, test):
        warnings.warn("number of unique classes is greater than 50%", UserWarning, stacklevel=1)
        time.sleep(0.2)
        return [chosen[0].topic] * len(test)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = learning_curve(
            "topic", labels, labels, [], {"t": slow_trainer}, sizes=(2, 3), max_seconds=0.1
        )
    assert caught == []
    assert [row["labels_per_class"] for row in rows] == [2]
    assert rows[0]["draws"] == 1 and "time budget" in rows[0]["stopped"]
