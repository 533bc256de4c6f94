"""The import format, seeds/, and the labelling loop's key handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsmon.labels import (
    USER_FILE,
    LabelChanges,
    LabelFileError,
    LabelSession,
    add_user_labels,
    load_seeds,
    press,
    read_labels,
    write_labels,
)

REPO_SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def good(i: int, **changes: object) -> dict:
    record = {"id": f"a{i}", "title": f"t{i}", "text": "body text", "topic": "x", "stance": None}
    return {**record, **changes}


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_reads_import_format_and_ignores_corpus_extras(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "in.jsonl",
        [good(1, stance="favor", url="https://e.org/1", split="train"), good(2, topic="none")],
    )
    labels = read_labels(path)
    assert [(x.id, x.topic, x.stance, x.url) for x in labels] == [
        ("a1", "x", "favor", "https://e.org/1"),
        ("a2", "none", None, None),
    ]


def test_bad_lines_refuse_the_whole_file_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(good(1)),
                "{not json",
                json.dumps(good(3, topic="")),
                json.dumps(good(4, topic="none", stance="favor")),
                json.dumps({k: v for k, v in good(5).items() if k != "stance"}),
                json.dumps(good(1)),
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(LabelFileError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert "5 bad line(s), nothing imported" in message
    for expected in (
        "line 2: not valid JSON",
        "line 3: 'topic' must be a non-empty string",
        "line 4: topic 'none' has no target",
        "line 5: missing 'stance'",
        "line 6: id 'a1' repeats line 1",
    ):
        assert expected in message


def test_text_file_is_only_allowed_for_seeds(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("seed body", encoding="utf-8")
    record = {k: v for k, v in good(1).items() if k != "text"} | {"text_file": "doc.txt"}
    path = write_jsonl(tmp_path / "labels.jsonl", [record])
    with pytest.raises(LabelFileError, match="missing 'text'"):
        read_labels(path)
    assert read_labels(path, allow_text_file=True)[0].text == "seed body"


def test_shipped_seeds_are_the_two_favor_documents() -> None:
    seeds = load_seeds(REPO_SEEDS)
    assert sorted(x.id for x in seeds) == [
        "seed:000_0f2c97cf1683242c",
        "seed:002_086232d862388fa4",
    ]
    assert {(x.topic, x.stance, x.origin) for x in seeds} == {
        ("us-dprk-diplomacy", "favor", "seed")
    }
    assert all("Hanoi" in x.text for x in seeds)


def test_user_labels_append_and_override_by_id(tmp_path: Path) -> None:
    write_labels(tmp_path / "labels.jsonl", read_labels(write_jsonl(tmp_path / "s", [good(1)])))
    first = read_labels(write_jsonl(tmp_path / "u1", [good(1, topic="y"), good(2)]))
    add_user_labels(tmp_path, first, origin="import")
    add_user_labels(tmp_path, read_labels(write_jsonl(tmp_path / "u2", [good(3)])), "labelled")
    labels = {x.id: x for x in load_seeds(tmp_path)}
    assert labels["a1"].topic == "y"  # the user's later label wins over the seed
    assert [labels[i].origin for i in ("a2", "a3")] == ["import", "labelled"]
    assert len((tmp_path / USER_FILE).read_text().splitlines()) == 3


def test_adding_labels_again_skips_the_same_and_replaces_the_changed(tmp_path: Path) -> None:
    first = read_labels(write_jsonl(tmp_path / "u1", [good(1), good(2)]))
    assert add_user_labels(tmp_path, first, origin="import") == LabelChanges(added=2)
    before = (tmp_path / USER_FILE).read_bytes()
    # The same file again: nothing to do, and the file is left as it was.
    assert add_user_labels(tmp_path, first, origin="import") == LabelChanges(unchanged=2)
    assert (tmp_path / USER_FILE).read_bytes() == before
    # A changed label replaces its line (the newer wins); a new one is added.
    again = read_labels(write_jsonl(tmp_path / "u2", [good(1), good(2, topic="y"), good(3)]))
    changes = add_user_labels(tmp_path, again, origin="labelled")
    assert changes == LabelChanges(added=1, changed=1, unchanged=1)
    lines = [json.loads(line) for line in (tmp_path / USER_FILE).read_text().splitlines()]
    assert [(x["id"], x["topic"], x["origin"]) for x in lines] == [
        ("a1", "x", "import"),
        ("a2", "y", "labelled"),
        ("a3", "x", "labelled"),
    ]


def test_a_user_file_with_repeated_ids_still_loads_the_later_label(tmp_path: Path) -> None:
    # user_labels.jsonl as the appending import of earlier releases left it; the next
    # import rewrites it with one line per id.
    write_jsonl(tmp_path / USER_FILE, [good(1), good(2), good(1, topic="y")])
    assert {x.id: x.topic for x in load_seeds(tmp_path)} == {"a1": "y", "a2": "x"}
    add_user_labels(tmp_path, read_labels(write_jsonl(tmp_path / "u", [good(3)])), "import")
    assert len((tmp_path / USER_FILE).read_text().splitlines()) == 3


def session(n: int = 3) -> LabelSession:
    return LabelSession(topics=["dprk", "trade"], stances=["favor"], n_articles=n)


def test_keys_pick_topic_then_stance_and_skip() -> None:
    s = session()
    for key in "1" + "1" + "s" + "2x":
        press(s, key)
    assert s.decisions == [(0, "dprk", "favor"), (2, "trade", None)]
    assert s.finished


def test_none_topic_needs_no_stance_and_unknown_keys_do_nothing() -> None:
    s = session()
    for key in "z90":
        press(s, key)
    assert s.decisions == [(0, "none", None)]
    assert s.position == 1 and not s.choosing_stance


def test_undo_returns_to_the_previous_article_and_drops_its_label() -> None:
    s = session()
    for key in "11" + "s" + "u" + "u":
        press(s, key)
    assert s.decisions == []
    assert s.position == 0
    press(s, "2")
    press(s, "u")  # in the stance step, u goes back to the topic choice
    assert not s.choosing_stance and s.position == 0


def test_new_stance_is_asked_for_then_offered_again_and_q_quits() -> None:
    s = session()
    press(s, "1")
    assert press(s, "n") == "name-stance"
    s.name_stance(" against ")
    assert s.stances == ["favor", "against"]
    press(s, "1")
    press(s, "2")
    press(s, "q")
    assert s.decisions == [(0, "dprk", "against"), (1, "dprk", "against")]
    assert s.finished and s.position == 2


def test_labels_added_by_two_processes_at_once_are_all_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    adder = (
        "import sys\n"
        "from pathlib import Path\n"
        "from newsmon.labels import Label, add_user_labels\n"
        "for n in range(40):\n"
        "    label = Label(f'{sys.argv[2]}-{n}', 't', 'text', 'topic', None)\n"
        "    add_user_labels(Path(sys.argv[1]), [label], 'import')\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", adder, str(seeds), name])
                 for name in ("a", "b")]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    from newsmon.labels import load_seeds

    assert sorted(label.id for label in load_seeds(seeds)) == sorted(
        f"{name}-{n}" for name in ("a", "b") for n in range(40))


def test_a_pair_label_carries_its_claim_and_needs_no_topic(tmp_path: Path) -> None:
    # An FNC-1 line as it comes: the claim in `target`, no topic, the body's stance toward it.
    fnc = {"id": "p1", "title": None, "text": "The report was denied by officials.",
           "topic": None, "stance": "disagree", "target": "Officials confirmed the report",
           "source": None, "split": "train"}
    path = write_jsonl(tmp_path / "pairs.jsonl", [fnc, good(2, target="A claim", stance="agree")])
    pair, both = read_labels(path)
    assert (pair.topic, pair.target, pair.stance) == (None, "Officials confirmed the report",
                                                      "disagree")
    assert (both.topic, both.target) == ("x", "A claim")
    assert pair.to_json()["target"] == "Officials confirmed the report"
    # The claim is part of what a label says: the same id with another claim is a correction.
    assert pair.content() != read_labels(write_jsonl(
        tmp_path / "other.jsonl", [{**fnc, "target": "Another claim"}]))[0].content()


def test_a_label_needs_a_topic_or_a_claim_and_a_claim_needs_a_stance(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [
        good(1, topic=None),
        good(2, topic=None, target="A claim", stance=None),
        good(3, target=""),
    ])
    with pytest.raises(LabelFileError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert "line 1: 'topic' must be a non-empty string, or give 'target'" in message
    assert "line 2: a label with a 'target' needs its 'stance' toward it" in message
    assert "line 3: 'target' must be a non-empty string or null" in message


def test_written_labels_keep_the_mode_a_file_written_in_place_would_have(tmp_path: Path) -> None:
    import os
    import stat

    fresh = tmp_path / "fresh.jsonl"
    write_labels(fresh, [])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    shared = tmp_path / "shared.jsonl"
    shared.write_text("")
    shared.chmod(0o664)
    write_labels(shared, [])
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
