"""Labelled examples: the JSON Lines import format, its validation, and the seeds/ folder.

One JSON object a line: ``{"id", "title", "text", "topic", "stance"}`` plus optional ``"url"``,
``"published"``, ``"source"`` (the publisher) and ``"target"``. ``stance`` may be null (a
topic-only label) and ``topic`` may be ``"none"`` (about none of the topics). A label with a
``target`` is a pair label: its ``stance`` (``agree``, ``disagree``, ``discuss``, ``unrelated``)
is the text's stance toward that claim, and it needs no topic. Other keys (a corpus's
``split``) are accepted and ignored, so labelled corpora in this format import as they are.

seeds/ is the labelled baseline and the source of truth: ``labels.jsonl`` holds the shipped seed
labels (whose text may be a ``text_file`` beside it, so the seed documents stay as given) and
``user_labels.jsonl`` everything users added, so labels survive a warehouse rebuild.

The id is a label's identity: there is one label per id, and a label given again under the same
id is the same label (skipped) or, if anything in it differs, a correction (it replaces the
older one). ``newsmon label`` uses the article's URL as the id; an imported file uses its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from newsmon.config import Config
from newsmon.files import replacing

NO_TOPIC = "none"
SEED_FILE = "labels.jsonl"
USER_FILE = "user_labels.jsonl"
# Where a label came from; the warehouse's labels.source column.
ORIGINS = ("seed", "import", "labelled")
_OPTIONAL_TEXT = ("url", "published", "source")
# Errors listed per refused file: enough to fix a systematic mistake, short enough to read.
MAX_ERRORS_SHOWN = 20


class LabelFileError(ValueError):
    """A label file that was refused whole; the message lists each bad line and why."""


@dataclass(frozen=True)
class Label:
    id: str
    title: str | None
    text: str
    topic: str | None  # None only for a pair label (one with a target)
    stance: str | None
    url: str | None = None
    published: str | None = None
    source: str | None = None
    origin: str = "import"
    labelled_at: str | None = None
    target: str | None = None  # the claim a pair label's stance is toward

    def content(self) -> tuple:
        """What the label says: equal content under one id is the same label, wherever and
        whenever it was made."""
        return (self.id, self.title, self.text, self.topic, self.stance, self.url,
                self.published, self.source, self.target)

    def to_json(self) -> dict:
        """The import format (plus origin and labelled_at, which the import ignores)."""
        required = ("id", "title", "text", "topic", "stance")
        return {k: v for k, v in asdict(self).items() if v is not None or k in required}


def _optional_string(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string or null")
    return value


def _required_string(record: dict, key: str) -> str:
    if key not in record:
        raise ValueError(f"missing '{key}'")
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        hint = ", or give 'target' (the claim of a pair label)" if key == "topic" else ""
        raise ValueError(f"'{key}' must be a non-empty string{hint}")
    return value.strip()


def parse_label(record: object, base_dir: Path | None = None, origin: str = "import") -> Label:
    """One label, validated; with ``base_dir``, a ``text_file`` there may replace text."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    for key in ("id", "title", "topic", "stance"):
        if key not in record:
            raise ValueError(f"missing '{key}'")
    if base_dir is not None and "text_file" in record and "text" not in record:
        name = _required_string(record, "text_file")
        if Path(name).name != name:
            raise ValueError("'text_file' must be a file name in the same folder")
        try:
            text = (base_dir / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read text_file {name!r}: {exc}") from None
    else:
        text = _required_string(record, "text")
    target = record.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise ValueError("'target' must be a non-empty string or null")
    if target is None:
        topic = _required_string(record, "topic")
    else:
        target = target.strip()
        if record["topic"] is not None and (
            not isinstance(record["topic"], str) or not record["topic"].strip()
        ):
            raise ValueError("'topic' must be a non-empty string or null")
        topic = record["topic"].strip() if record["topic"] is not None else None
        if record["stance"] is None:
            raise ValueError("a label with a 'target' needs its 'stance' toward it")
    stance = record["stance"]
    if stance is not None:
        stance = _required_string(record, "stance")
        if topic == NO_TOPIC and target is None:
            raise ValueError(f"topic '{NO_TOPIC}' has no target, so its stance must be null")
    record_origin = record.get("origin", origin)
    if record_origin not in ORIGINS:
        raise ValueError(f"'origin' must be one of {', '.join(ORIGINS)}")
    return Label(
        id=_required_string(record, "id"),
        title=_optional_string(record, "title"),
        text=text,
        topic=topic,
        stance=stance,
        **{key: _optional_string(record, key) for key in _OPTIONAL_TEXT},
        origin=record_origin,
        labelled_at=_optional_string(record, "labelled_at"),
        target=target,
    )


def read_labels(
    path: Path, origin: str = "import", allow_text_file: bool = False, later_wins: bool = False
) -> list[Label]:
    """Every label in a JSONL file, or LabelFileError naming each bad line: never part of a file.

    A repeated id is a bad line, unless ``later_wins``: then the later line replaces the earlier
    (user_labels.jsonl as earlier releases appended to it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read: {exc}") from None
    labels: list[Label] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    position: dict[str, int] = {}
    base_dir = path.parent if allow_text_file else None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            label = parse_label(json.loads(line), base_dir, origin)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if label.id in first_line:
            if later_wins:
                labels[position[label.id]] = label
            else:
                errors.append(
                    f"line {number}: id {label.id!r} repeats line {first_line[label.id]}"
                )
            continue
        first_line[label.id] = number
        position[label.id] = len(labels)
        labels.append(label)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > len(shown):
            shown.append(f"... and {len(errors) - len(shown)} more")
        raise LabelFileError(
            f"{path}: {len(errors)} bad line(s), nothing imported:\n  " + "\n  ".join(shown)
        )
    return labels


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    """Write labels in the import format. The file is written beside ``path`` and renamed over
    it, so a reader, or a crash, sees the old file or the new one, never part of either."""
    lines = [json.dumps(label.to_json(), ensure_ascii=False) + "\n" for label in labels]
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as out:
        out.write("".join(lines).encode("utf-8"))
    return len(lines)


def load_seeds(seeds_dir: Path) -> list[Label]:
    """The shipped seed labels, then the users' labels; a later label of the same id wins."""
    by_id: dict[str, Label] = {}
    seed_file, user_file = seeds_dir / SEED_FILE, seeds_dir / USER_FILE
    if seed_file.exists():
        for label in read_labels(seed_file, origin="seed", allow_text_file=True):
            by_id[label.id] = label
    if user_file.exists():
        for label in read_labels(user_file, origin="import", later_wins=True):
            by_id[label.id] = label
    return list(by_id.values())


@dataclass(frozen=True)
class LabelChanges:
    """What adding labels did: ids not seen before, corrections of a label, and labels that
    were there already (skipped)."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0


def add_user_labels(seeds_dir: Path, labels: Sequence[Label], origin: str) -> LabelChanges:
    """Add labels to seeds/user_labels.jsonl, stamped with their origin and time; one label per
    id, the newer replacing the older (see the module's docstring).

    seeds/ is read, and refused with LabelFileError if any file in it is bad, before anything is
    written; the file is then replaced whole (write_labels), so nothing is left half done. A
    lock file beside it makes two commands adding labels at once take turns, so neither
    rewrites the file over the other's labels.
    """
    user_file = seeds_dir / USER_FILE
    with FileLock(str(seeds_dir / f".{USER_FILE}.lock")):
        return _merge_user_labels(seeds_dir, user_file, labels, origin)


def _merge_user_labels(
    seeds_dir: Path, user_file: Path, labels: Sequence[Label], origin: str
) -> LabelChanges:
    known = {label.id: label for label in load_seeds(seeds_dir)}
    user = (
        {x.id: x for x in read_labels(user_file, later_wins=True)} if user_file.exists() else {}
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    added = changed = unchanged = 0
    for label in labels:
        before = known.get(label.id)
        if before is not None and before.content() == label.content():
            unchanged += 1
            continue
        if before is None:
            added += 1
        else:
            changed += 1
        stamped = replace(label, origin=origin, labelled_at=label.labelled_at or now)
        # A replaced id keeps its line's place: the dict keeps first-insertion order.
        known[label.id] = user[label.id] = stamped
    if added or changed:
        write_labels(user_file, user.values())
    return LabelChanges(added, changed, unchanged)


def seeds_dir(config: Config) -> Path:
    """The configured seeds folder (``[classify] seeds_dir``, default seeds/ beside the config
    file): the project's labelled baseline."""
    return config.resolve(config.classify.seeds_dir)


def all_labels(config: Config, extra_files: Sequence[Path] = ()) -> list[Label]:
    """seeds/ plus labelled files given for one command; a later label of the same id wins."""
    by_id = {label.id: label for label in load_seeds(seeds_dir(config))}
    for path in extra_files:
        by_id.update((label.id, label) for label in read_labels(path))
    return list(by_id.values())


@dataclass
class LabelSession:
    """The labelling loop's state, driven by single key presses (see ``press``).

    Topic step: 1-9 pick a topic, 0 'none', s skip, u undo the last label, q quit.
    Stance step: 1-9 pick a stance, x no stance (topic only), n a new stance name, u back, q quit.
    """

    topics: list[str]
    stances: list[str]
    n_articles: int
    position: int = 0
    topic: str | None = None  # chosen, waiting for the stance
    decisions: list[tuple[int, str, str | None]] = field(default_factory=list)
    finished: bool = False

    @property
    def choosing_stance(self) -> bool:
        return self.topic is not None

    def _decide(self, stance: str | None) -> None:
        assert self.topic is not None
        self.decisions.append((self.position, self.topic, stance))
        self.topic = None
        self._advance()

    def _advance(self) -> None:
        self.position += 1
        self.finished = self.position >= self.n_articles

    def name_stance(self, name: str) -> None:
        """The stance typed after 'n': a label newsmon has not seen before."""
        name = name.strip()
        if self.choosing_stance and name:
            if name not in self.stances:
                self.stances.append(name)
            self._decide(name)


def press(session: LabelSession, key: str) -> str | None:
    """Apply one key; returns "name-stance" when the caller must ask for a new stance name."""
    key = key.lower()
    if key == "q":
        session.finished = True
    elif session.choosing_stance:
        if key.isdigit() and 1 <= int(key) <= len(session.stances):
            session._decide(session.stances[int(key) - 1])
        elif key == "x":
            session._decide(None)
        elif key == "n":
            return "name-stance"
        elif key == "u":
            session.topic = None
    elif key == "0":
        session.topic = NO_TOPIC
        session._decide(None)
    elif key.isdigit() and 1 <= int(key) <= len(session.topics):
        session.topic = session.topics[int(key) - 1]
    elif key == "s":
        session._advance()
    elif key == "u" and session.position > 0:
        if session.decisions and session.decisions[-1][0] == session.position - 1:
            session.decisions.pop()
        session.position -= 1
        session.finished = False
    return None
