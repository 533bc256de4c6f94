"""The claim-stance model on generated (claim, body) pairs: no corpus is read."""

from __future__ import annotations

import random

import joblib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from newsmon.models.artifacts import sha256_of
from newsmon.models.claims import ClaimStanceModel, fnc_score

STANCES = ("agree", "disagree", "discuss", "unrelated")
SUBJECTS = [
    "mayor",
    "minister",
    "senator",
    "company",
    "union",
    "council",
    "army",
    "court",
    "bank",
    "school",
]
VERBS = [
    "approved",
    "banned",
    "closed",
    "opened",
    "sold",
    "bought",
    "cancelled",
    "signed",
    "raised",
    "cut",
]
OBJECTS = [
    "bridge",
    "tax",
    "deal",
    "plant",
    "airport",
    "treaty",
    "budget",
    "law",
    "stadium",
    "pipeline",
]
PLACES = [
    "Arden",
    "Belmont",
    "Corvale",
    "Dunmore",
    "Elkton",
    "Fairhaven",
    "Glenrock",
    "Harwick",
    "Ivydale",
    "Jasper",
]
FILLER = [
    "the",
    "week",
    "people",
    "local",
    "news",
    "officials",
    "town",
    "residents",
    "plans",
    "year",
    "meeting",
]


def _story(i: int) -> tuple[str, list[str]]:
    """A claim and words that stories about it share."""
    s, v, o, p = SUBJECTS[i % 10], VERBS[(i * 3) % 10], OBJECTS[(i * 7) % 10], PLACES[i % 10]
    return f"The {p} {s} {v} the {o}", [p, s, v, o]


def _body(stance: str, claim: str, words: list[str], other: list[str], rng: random.Random) -> str:
    def filler(topic: list[str]) -> str:
        return " ".join(rng.choice(topic + FILLER) for _ in range(12)) + "."

    if stance == "agree":
        core = f"Officials confirmed today that {claim.lower()}. It is official and verified."
    elif stance == "disagree":
        core = f"The report that {claim.lower()} is false. Officials denied it; it was a hoax."
    elif stance == "discuss":
        core = f"According to unverified reports, {claim.lower()}, it was reportedly claimed."
    else:
        return f"{filler(other)} {filler(other)} {filler(other)}"
    return f"{filler(words)} {core} {filler(words)}"


def _pairs(stories: range, per_stance: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(seed)
    claims, bodies, stances = [], [], []
    for i in stories:
        claim, words = _story(i)
        for stance in STANCES:
            for _ in range(per_stance):
                other = _story(i + 1 + rng.randrange(9))[1]
                claims.append(claim)
                bodies.append(_body(stance, claim, words, other, rng))
                stances.append(stance)
    return claims, bodies, stances


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Boosting's OpenMP threads wait for each other by spinning: on a busy machine two threads
    # fit ten times slower than one.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def fitted(one_thread) -> ClaimStanceModel:
    return ClaimStanceModel(max_iter=60, n_components=20, n_shown=20).fit(
        *_pairs(range(12), 3, seed=0)
    )


def test_learns_stance_toward_claims_of_unseen_stories(fitted: ClaimStanceModel) -> None:
    claims, bodies, stances = _pairs(range(12, 18), 2, seed=1)
    predicted = fitted.predict(claims, bodies)
    accuracy = np.mean(predicted == np.array(stances))
    assert accuracy > 0.75, accuracy  # chance is 0.25
    assert fnc_score(stances, predicted) > 75


def test_probabilities_are_rows_over_the_classes(fitted: ClaimStanceModel) -> None:
    claims, bodies, _ = _pairs(range(12, 14), 1, seed=2)
    proba = fitted.predict_proba(claims, bodies)
    assert list(fitted.classes_) == sorted(STANCES)
    assert proba.shape == (len(claims), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.note_ is None


def test_a_subset_of_stances_without_unrelated_is_learned_in_one_stage() -> None:
    claims, bodies, stances = _pairs(range(10), 3, seed=5)
    chosen = [i for i, s in enumerate(stances) if s in ("agree", "disagree")]
    model = ClaimStanceModel(max_iter=30, n_components=10, n_shown=5).fit(
        *([x[i] for i in chosen] for x in (claims, bodies, stances))
    )
    assert model.relatedness_ is None and list(model.classes_) == ["agree", "disagree"]
    test_claims, test_bodies, truth = _pairs(range(10, 14), 1, seed=6)
    pairs = [i for i, s in enumerate(truth) if s in ("agree", "disagree")]
    predicted = model.predict([test_claims[i] for i in pairs], [test_bodies[i] for i in pairs])
    assert np.mean(predicted == np.array([truth[i] for i in pairs])) >= 0.75


def test_a_class_with_one_example_is_not_learned_and_the_note_says_so() -> None:
    claims, bodies, stances = _pairs(range(6), 2, seed=3)
    claims.append("The court closed the bridge")
    bodies.append("Nobody knows yet; we asked the court about the bridge.")
    stances.append("unsure")
    model = ClaimStanceModel(max_iter=20, n_components=10).fit(claims, bodies, stances)
    assert "unsure" not in model.classes_
    assert "'unsure'" in model.note_ and "never predicted" in model.note_
    assert set(model.predict(claims[:8], bodies[:8])) <= set(STANCES)


def test_fewer_than_two_learnable_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot learn stance toward claims: only 'agree' has "
                                         "examples; 'x' need at least 2 examples each"):
        ClaimStanceModel().fit(["a claim"] * 3, ["one", "two", "three"], ["agree"] * 2 + ["x"])


def test_fnc_score_of_known_predictions() -> None:
    truth = ["agree", "unrelated", "discuss", "disagree"]
    predicted = ["agree", "unrelated", "disagree", "unrelated"]
    # 1 + 0.25 + 0.25 + 0 of a best 1 + 0.25 + 1 + 1
    assert fnc_score(truth, predicted) == pytest.approx(100 * 1.5 / 3.25)
    assert fnc_score(truth, truth) == 100.0


def test_saves_and_loads_as_newsmon_artifacts_do(fitted: ClaimStanceModel, tmp_path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path, compress=3)
    digest = sha256_of(path)
    loaded = joblib.load(path)
    claims, bodies, _ = _pairs(range(12, 13), 1, seed=4)
    assert sha256_of(path) == digest
    np.testing.assert_allclose(
        loaded.predict_proba(claims, bodies), fitted.predict_proba(claims, bodies)
    )


def test_groups_keep_their_pairs_together_when_confidence_is_fitted() -> None:
    claims, bodies, stances = _pairs(range(24), 1, seed=7)
    model = ClaimStanceModel(max_iter=20, n_components=10, n_shown=5)
    model.fit(claims, bodies, stances, groups=claims)  # one group per story
    assert 0.05 <= model.temperature_ <= 20
    with pytest.raises(ValueError, match="but 2 groups"):
        model.fit(claims, bodies, stances, groups=["a", "b"])


def test_a_topic_with_a_claim_gets_its_stance_from_the_claim_model(one_thread) -> None:
    from newsmon.config import TopicSettings
    from newsmon.labels import Label
    from newsmon.models.artifacts import model_card
    from newsmon.models.predict import predict
    from newsmon.models.training import train

    claims, bodies, stances = _pairs(range(1, 13), 3, seed=3)
    labels = [Label(f"p{n}", None, body, None, stance, target=claim)
              for n, (claim, body, stance) in enumerate(zip(claims, bodies, stances, strict=True))]
    # A topic the pairs never mention: its claim gets a stance before anyone labels for it.
    claim, words = _story(0)
    topic = TopicSettings(id="t0", name="T0", target="it", keywords=[words[0]], claim=claim)
    model = train(labels, [], [topic])

    rng = random.Random(5)
    other = _story(7)[1]
    articles = [_body(stance, claim, words, other, rng) + f" {words[0]}."
                for stance in ("agree", "disagree", "discuss")]
    result = predict(model, [None] * 3, articles)
    assert result.topic == ["t0", "t0", "t0"]
    assert result.stance == ["favor", "against", "neutral"]
    assert result.stance_note == ["toward the topic's claim: claim model"] * 3
    assert all(0 < c <= 1 for c in result.stance_confidence)
    card = model_card(model, "v")
    assert card["topic_claims"] == {"t0": claim}
    assert card["claims"]["held_out_bodies"]["fnc_score"] > 50
    assert set(card["claims"]["predicts"]) == set(STANCES)


def test_a_topic_claim_without_pair_labels_says_why_it_is_unused() -> None:
    from newsmon.config import TopicSettings
    from newsmon.labels import Label
    from newsmon.models.predict import predict
    from newsmon.models.training import train

    labels = [Label(f"a{n}", None, f"the harbour {word} story {n}", "t0", stance)
              for n, (word, stance) in enumerate([("good", "favor"), ("great", "favor"),
                                                  ("bad", "against"), ("awful", "against")])]
    topic = TopicSettings(id="t0", name="T0", target="it", keywords=["harbour"],
                          claim="The harbour should be rebuilt")
    result = predict(train(labels, [], [topic]), [None], ["the harbour good story, harbour again"])
    assert result.topic == ["t0"]
    assert "the topic's claim is not used: no pair labels (with a target) yet" in (
        result.stance_note[0])


def test_evaluate_scores_pairs_with_the_fnc_labels_and_score(write_config, tmp_path) -> None:
    import json
    import subprocess
    import sys

    from newsmon.labels import Label, write_labels

    def pair_labels(stories: range, seed: int, prefix: str) -> list[Label]:
        claims, bodies, stances = _pairs(stories, 3, seed=seed)
        return [Label(f"{prefix}{n}", None, body, None, stance, target=claim)
                for n, (claim, body, stance) in enumerate(zip(claims, bodies, stances,
                                                              strict=True))]

    config = write_config('[warehouse]\npath = "wh/w.duckdb"\n')
    write_labels(tmp_path / "seeds" / "labels.jsonl", pair_labels(range(12), 1, "p"))
    test_file = tmp_path / "test.jsonl"
    write_labels(test_file, pair_labels(range(20, 26), 2, "t"))
    environment = {"OMP_NUM_THREADS": "1"}  # see one_thread

    def newsmon(*args: str) -> subprocess.CompletedProcess:
        import os

        return subprocess.run([sys.executable, "-m", "newsmon", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, **environment})

    trained = newsmon("model", "train")
    assert trained.returncode == 0, trained.stderr
    assert "claim stance pair labels (agree: 36, disagree: 36, discuss: 36, unrelated: 36)" in (
        trained.stdout)
    assert "predicts agree, disagree, discuss, unrelated; on held-out bodies: macro-F1" in (
        trained.stdout)
    evaluated = newsmon("model", "evaluate", "--test", str(test_file), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    stance = json.loads(evaluated.stdout)["tasks"]["stance"]["metrics"]
    assert stance["confusion"]["labels"][:4] == sorted(STANCES)
    assert stance["n"] == 6 * 3 * 4
    assert 50 < stance["fnc_score"] <= 100
    card = newsmon("model", "evaluate")
    assert card.returncode == 0, card.stderr
    assert "claim stance (model card)" in card.stdout
    assert "FNC-1 score=" in card.stdout
