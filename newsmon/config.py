"""The one place newsmon's settings are read, checked and given their defaults.

A config is a TOML file (default ``newsmon.toml`` in the working directory, or ``--config FILE``
or ``NEWSMON_CONFIG``). Relative paths in it are taken relative to the file itself, so a project
can be moved or cloned without editing it. Every default below says why it is what it is.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
)

from newsmon.credentials import SiteLogin, redact_url
from newsmon.warehouse.analyst import default_copy_path

DEFAULT_CONFIG_NAME = "newsmon.toml"
CONFIG_ENV_VAR = "NEWSMON_CONFIG"
MiB = 1024 * 1024


class ConfigError(Exception):
    """A config file that cannot be used: the message names the file, key and what was expected."""


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// URL")
    return value


class WarehouseSettings(_Section):
    path: Path = Path("warehouse/newsmon.duckdb")
    # Analysts open this copy, never the live file: DuckDB allows one writer or many readers,
    # so a session left open on the live file would stop the scheduled runs.
    analyst_copy: Path | None = None
    digests_dir: Path | None = None
    # Seconds a run waits for another run that holds the writer lock before it gives up.
    lock_timeout_seconds: float = Field(default=1800, gt=0)


class FetchSettings(_Section):
    # Off by default so that a feed cannot make newsmon request internal services (SSRF).
    allow_private_addresses: StrictBool = False
    user_agent: str = "newsmon/0.1 (news monitoring; +https://github.com/newsmon/newsmon)"
    # Connect/read timeout for one socket operation; the deadline bounds the whole response,
    # because a server that drips one byte a second never trips a read timeout.
    timeout_seconds: float = Field(default=15, gt=0)
    deadline_seconds: float = Field(default=45, gt=0)
    max_feed_bytes: int = Field(default=10 * MiB, gt=0)
    # Real article pages are 30-300 KB; 5 MiB leaves room for inline-heavy pages while keeping
    # trafilatura (whose time and memory grow with input) well away from pathological sizes.
    max_page_bytes: int = Field(default=5 * MiB, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    # Retries happen only on timeouts, 429 and 5xx; anything else will not improve by asking again.
    retries: int = Field(default=2, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0)
    concurrency: int = Field(default=16, gt=0)
    # Outlets rate-limit crawlers; two at a time per host is polite and still overlaps latency.
    per_host_concurrency: int = Field(default=2, gt=0)
    # A host that let this many requests time out is skipped for the rest of the run (its pages
    # wait for the next run, no attempt used): a host that accepts connections and never
    # answers would otherwise hold connection slots for a deadline per page.
    host_timeouts_per_run: int = Field(default=2, gt=0)
    # Some servers send the same ETag for a changed feed; an unconditional fetch every N polls
    # catches what they hide (hourly polling: once a day).
    full_fetch_every: int = Field(default=24, ge=1)
    # A failing feed waits 2^failures polls (capped) before it is tried again.
    max_backoff_hours: float = Field(default=24, gt=0)


class ExtractSettings(_Section):
    # trafilatura is not thread-safe: it runs in worker processes, one per core by default.
    workers: int | None = Field(default=None, gt=0)
    # Workers are replaced after this many pages, because trafilatura's memory grows over pages.
    pages_per_worker: int = Field(default=500, gt=0)
    # trafilatura has no timeout of its own; a worker past this is killed and the page parked.
    timeout_seconds: float = Field(default=60, gt=0)
    # Pages above this are cut before extraction (a 50 MiB page took about a minute and 1.5 GB).
    max_input_bytes: int = Field(default=3 * MiB, gt=0)


class IngestSettings(_Section):
    # Articles per batch: one batch is one download round, one extraction round and one
    # transaction, so a crash loses at most one batch of work and nothing already stored.
    # Each batch also costs two Prefect task runs and their API calls: at 64 that bookkeeping
    # took a third more CPU than at 128 (bench/ingest.py).
    batch_size: int = Field(default=128, gt=0)
    # A page that failed this many runs in a row is parked with its reason instead of retried.
    max_page_attempts: int = Field(default=3, ge=1)
    # New entries taken from one feed per poll, newest first; the rest wait for later polls.
    # Real feeds list 10-100 items and a busy outlet's sitemap-like feed a few hundred, while a
    # hostile or broken one listing 100,000 would otherwise send newsmon to 100,000 pages.
    max_new_entries_per_poll: int = Field(default=500, ge=1)
    # Simhash distance (of 64 bits) within which two texts count as one story copied with edits.
    # Measured on 300-word texts: one sentence rewritten moves 6-8 bits (at most 14), unrelated
    # texts stay 21 or more apart.
    near_duplicate_bits: int = Field(default=8, ge=0, le=16)
    # Short texts' simhashes are too unstable for that: below this many words only an exact
    # text match counts.
    near_duplicate_min_words: int = Field(default=150, ge=1)
    # Extracted text shorter than this is navigation or a teaser, not the article: the feed's
    # own text is used instead when it is longer.
    min_article_words: int = Field(default=25, ge=0)


class ClassifySettings(_Section):
    seeds_dir: Path = Path("seeds")
    models_dir: Path = Path("models/versions")
    # One batch = one transaction and one Prefect task: about a second of prediction.
    batch_size: int = Field(default=1000, gt=0)
    # Self-training reads the most recent unlabelled articles; more costs time for little gain.
    max_unlabelled: int = Field(default=20_000, ge=0)


class FeedSettings(_Section):
    # A private feed's URL may carry its login (https://user:password@host/feed.xml). It is kept
    # as written only here, as a secret; everything else sees `url`, with the password hidden,
    # and the fetcher gets the login itself (`login`) for that site's requests alone.
    url_as_written: SecretStr = Field(alias="url", repr=False)
    name: str | None = None

    @field_validator("url_as_written", mode="before")
    @classmethod
    def _http_url(cls, value: object) -> object:
        return _check_http_url(value) if isinstance(value, str) else value

    @property
    def url(self) -> str:
        """The feed's URL as shown and stored: any password in it is ``***``."""
        return redact_url(self.url_as_written.get_secret_value())

    @property
    def login(self) -> SiteLogin | None:
        """The user and password written into the feed's URL, for requests to its site."""
        return SiteLogin.from_url(self.url_as_written.get_secret_value())


class TopicSettings(_Section):
    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: str
    target: str
    keywords: list[str] = []
    # A statement the topic's articles can agree or disagree with ("Summit diplomacy with North
    # Korea should continue"). With one, the topic's stance is toward it: favor, against,
    # neutral or off-topic, from the claim model (trained on pair labels, those with a target),
    # with the topic's own stance labels too where it has them. Read when the model is trained.
    claim: Annotated[str, Field(min_length=1)] | None = None


class ScheduleSettings(_Section):
    ingest_cron: str = "0 * * * *"
    digest_cron: str = "0 7 * * 1"


class EmailSettings(_Section):
    host: str = "localhost"
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    # The password is never read from this file: it comes from this environment variable or
    # from the Prefect Secret block named below.
    password_env: str = "NEWSMON_SMTP_PASSWORD"
    password_block: str | None = None
    sender: str = Field(default="newsmon@localhost", alias="from")
    to: list[str] = []
    subject_prefix: str = "[newsmon]"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Config(_Section):
    timezone: str = "UTC"
    warehouse: WarehouseSettings = WarehouseSettings()
    fetch: FetchSettings = FetchSettings()
    extract: ExtractSettings = ExtractSettings()
    ingest: IngestSettings = IngestSettings()
    classify: ClassifySettings = ClassifySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    email: EmailSettings = EmailSettings()
    feeds: list[FeedSettings] = []
    topics: list[TopicSettings] = []
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name such as 'Europe/Berlin'") from None
        return value

    @field_validator("topics")
    @classmethod
    def _unique_topic_ids(cls, topics: list[TopicSettings]) -> list[TopicSettings]:
        ids = [topic.id for topic in topics]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"topic ids must be unique; repeated: {', '.join(duplicates)}")
        return topics

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.resolve(self.warehouse.path)

    @property
    def analyst_copy_path(self) -> Path:
        if self.warehouse.analyst_copy:
            return self.resolve(self.warehouse.analyst_copy)
        return default_copy_path(self.warehouse_path)

    @property
    def digests_path(self) -> Path:
        if self.warehouse.digests_dir:
            return self.resolve(self.warehouse.digests_dir)
        return self.warehouse_path.parent / "digests"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _describe(error: dict) -> str:
    key = ""
    for part in error["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelt, or in the wrong [section]?)"
    elif "input" in error and error["type"] != "missing":
        shown = error["input"]
        message += f" (got {redact_url(shown) if isinstance(shown, str) else shown!r})"
    return f"{key or '(top level)'}: {message}"


def parse_config(data: dict, source: Path | None = None) -> Config:
    """Validate a config mapping; errors name the source file and every offending key."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        where = str(source) if source else "config"
        details = "\n".join(f"  {_describe(e)}" for e in exc.errors())
        raise ConfigError(f"{where}: invalid configuration:\n{details}") from None
    return config.model_copy(update={"source": source.resolve() if source else None})


def config_path(explicit: Path | None = None) -> Path:
    """Which config file to read: the explicit one, else $NEWSMON_CONFIG, else ./newsmon.toml."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV_VAR):
        return Path(os.environ[CONFIG_ENV_VAR])
    return Path.cwd() / DEFAULT_CONFIG_NAME


def load_config(explicit: Path | None = None) -> Config:
    path = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (pass --config FILE or set {CONFIG_ENV_VAR})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)
