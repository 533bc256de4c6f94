"""Gather one week from the warehouse into plain data: what the templates and charts show.

Nothing here formats or draws; everything here comes from the warehouse alone (the queries
are in newsmon.warehouse.digest), so a digest can be rendered again for any past week.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import duckdb

from newsmon.config import Config
from newsmon.digest.stories import OPENING_CHARS, StoryCandidate, group_stories, lede
from newsmon.digest.weeks import IsoWeek
from newsmon.warehouse import digest as queries

# Weeks in the stance-share chart, this one included.
CHART_WEEKS = 8
TOP_STORIES = 5
# Stories listed from the week's articles outside the configured topics (not yet classified,
# or on none of them), and how many of those articles are read to find them.
OTHER_STORIES = 10
OTHER_POOL = 2000
TOP_OUTLETS = 5
NEEDS_REVIEW = 5
# An article needs review when the model's least sure prediction on it is below this: a
# 3-way stance call at 0.75 already leaves a quarter to the other labels.
REVIEW_BELOW = 0.75
# A feed that failed less than this share of its fetches and works at the end of the week had
# passing trouble: it is named in one line, not given a row in the failures table.
PASSING_TROUBLE_SHARE = 0.1
# Characters of text fetched for a lede: enough to get past the leftovers that often precede
# the prose ("Skip to content", the title again, a byline), without pulling whole articles out.
LEDE_SOURCE_CHARS = 1500
# Stances in this order first (the usual labels); any other label the model has follows.
KNOWN_STANCES = ("favor", "against", "neutral", "off-topic")
# The daily series of articles that have no current prediction yet.
UNCLASSIFIED = "Unclassified"


@dataclass(frozen=True)
class Article:
    article_id: int
    title: str
    url: str
    outlet: str
    dated_at: datetime  # in the digest's time zone
    topic: str | None  # None: no prediction from the current model yet
    topic_confidence: float | None
    stance: str | None  # None: the model could not tell
    stance_confidence: float | None

    @property
    def confidence(self) -> float:
        """How sure the model was of this article overall: its least sure prediction."""
        values = [v for v in (self.topic_confidence, self.stance_confidence) if v is not None]
        return min(values) if values else 0.0

    @property
    def classified(self) -> bool:
        return self.topic is not None


@dataclass(frozen=True)
class Story:
    """Coverage of one story: the first article to report it, then the others by date."""

    articles: list[Article]
    lede: str

    @property
    def lead(self) -> Article:
        return self.articles[0]

    @property
    def outlets(self) -> list[str]:
        return list(dict.fromkeys(a.outlet for a in self.articles))

    @property
    def classified(self) -> bool:
        """Whether the model has judged every article of the story (all off-topic, then)."""
        return all(a.classified for a in self.articles)


@dataclass(frozen=True)
class StanceCount:
    stance: str | None
    count: int
    share: float
    previous_share: float | None  # None when the week before had no articles on the topic


@dataclass(frozen=True)
class TopicReport:
    id: str
    name: str
    target: str
    count: int
    previous_count: int
    stances: list[StanceCount]
    stories: list[Story]
    outlets: list[tuple[str, int]]
    needs_review: list[Article]
    # Stance counts per week over the chart's weeks, oldest first.
    weekly_stances: list[tuple[IsoWeek, dict[str | None, int]]]
    claim: str | None = None  # the claim the current model's stances are toward
    stance_source: str | None = None  # how they were obtained; None without a model


@dataclass(frozen=True)
class FeedFailure:
    url: str
    name: str | None
    failures: int
    attempts: int
    last_error: str | None
    still_failing: bool


def _passing_trouble(feed: FeedFailure) -> bool:
    return not feed.still_failing and feed.failures < PASSING_TROUBLE_SHARE * feed.attempts


@dataclass(frozen=True)
class ModelInfo:
    version: str
    trained_at: datetime
    topic_macro_f1: float | None
    stance_macro_f1: float | None
    card: dict  # the model card (models.artifacts.model_card)


def _claim_score(claims: Mapping) -> str:
    held_out = claims.get("held_out_bodies")
    if not held_out:
        return "not scored: too few bodies to hold some out"
    pairs = f"{held_out['n']:,} pairs of held-out bodies"
    if "fnc_score" in held_out:
        return f"FNC-1 score {held_out['fnc_score']:.1f} on {pairs}"
    return f"macro-F1 {held_out['macro_f1']:.2f} on {pairs}"


def _labels_score(stance: Mapping) -> str:
    cv = stance.get("cross_validated")
    return f"macro-F1 {cv['macro_f1']:.2f}, cross-validated" if cv else "not cross-validated"


def stance_source(card: Mapping, topic_id: str) -> str:
    """How a topic's stances were obtained, and how well that scored, as the digest says it."""
    claims, stance = card.get("claims") or {}, card.get("stance") or {}
    by_claim = topic_id in (card.get("topic_claims") or {}) and bool(claims.get("predicts"))
    by_labels = bool(stance.get("predicts"))
    if by_claim and by_labels:
        return (f"Stance toward the claim: the claim model ({_claim_score(claims)}) and the "
                f"topic's stance labels ({_labels_score(stance)}), averaged.")
    if by_claim:
        return f"Stance toward the claim: the claim model ({_claim_score(claims)})."
    if by_labels:
        return f"Stance toward the target: the stance labels ({_labels_score(stance)})."
    return f"No stance yet: {stance.get('cannot') or 'no stance labels'}."


@dataclass(frozen=True)
class DigestReport:
    week: IsoWeek
    timezone: str
    total: int
    previous_total: int
    off_topic: int
    unclassified: int
    topics: list[TopicReport]
    # Top stories among the articles on none of the topics: not yet classified (those first),
    # or predicted off-topic. Readers see the week's coverage before the model has judged it.
    other_stories: list[Story]
    # Articles per day of the week, per topic name, plus UNCLASSIFIED.
    daily: dict[str, list[int]]
    feeds_fetched: int
    feed_failures: list[FeedFailure]
    model: ModelInfo | None

    @property
    def failing_feeds(self) -> list[FeedFailure]:
        """Feeds still failing at the end of the week, or failing often: worth a look."""
        return [f for f in self.feed_failures if not _passing_trouble(f)]

    @property
    def troubled_feeds(self) -> list[FeedFailure]:
        """Feeds that failed now and then and recovered."""
        return [f for f in self.feed_failures if _passing_trouble(f)]

    @property
    def empty(self) -> bool:
        return self.total == 0

    @property
    def first_day(self) -> date:
        return self.week.monday

    @property
    def last_day(self) -> date:
        return self.week.days[-1]


def stance_order(stances: Iterable[str | None]) -> list[str | None]:
    """Known stances first, then other labels alphabetically, 'unknown' (None) last."""
    present = set(stances)
    known = [s for s in KNOWN_STANCES if s in present]
    others = sorted(s for s in present if s is not None and s not in KNOWN_STANCES)
    return known + others + ([None] if None in present else [])


def _range(week: IsoWeek, zone: ZoneInfo, weeks_back: int = 0) -> dict[str, object]:
    return {"from": week.previous(weeks_back).start(zone), "to": week.end(zone)}


def _stance_counts(
    this_week: Mapping[str | None, int], last_week: Mapping[str | None, int]
) -> list[StanceCount]:
    total, previous_total = sum(this_week.values()), sum(last_week.values())
    return [
        StanceCount(
            stance=stance,
            count=this_week.get(stance, 0),
            share=this_week.get(stance, 0) / total if total else 0.0,
            previous_share=last_week.get(stance, 0) / previous_total if previous_total else None,
        )
        for stance in stance_order([*this_week, *last_week])
    ]


def _stories(
    con: duckdb.DuckDBPyConnection,
    week_start: datetime,
    articles: list[Article],
    openings: Mapping[int, str],
    simhashes: Mapping[int, int | None],
    near_bits: int,
    limit: int = TOP_STORIES,
    unclassified_first: bool = False,
) -> list[Story]:
    """The top stories: most outlets first, then most articles, then earliest.

    With `unclassified_first`, stories with an article the model has not judged yet come
    before those it judged off-topic.
    """
    candidates = [
        StoryCandidate(a.title, openings[a.article_id], simhashes[a.article_id], a.dated_at)
        for a in articles
    ]
    groups = [[articles[i] for i in group] for group in group_stories(candidates, near_bits)]
    groups.sort(
        key=lambda g: (
            unclassified_first and all(a.classified for a in g),
            -len({a.outlet for a in g}),
            -len(g),
            g[0].dated_at,
        )
    )
    top = groups[:limit]
    if not top:
        return []
    texts = dict(
        con.execute(
            queries.ARTICLE_TEXTS,
            {
                "from": week_start,
                "ids": [group[0].article_id for group in top],
                "text_chars": LEDE_SOURCE_CHARS,
            },
        ).fetchall()
    )
    return [Story(group, lede(texts.get(group[0].article_id), group[0].title)) for group in top]


def gather(con: duckdb.DuckDBPyConnection, config: Config, week: IsoWeek) -> DigestReport:
    """Everything the digest for `week` shows, read from the warehouse."""
    zone = config.zone
    topics = {t.id: t for t in config.topics}
    chart_weeks = [week.previous(n) for n in reversed(range(CHART_WEEKS))]
    previous = week.previous()

    # week -> topic -> stance -> articles. Topic None: unclassified; 'none' (or an id no longer
    # configured): off-topic.
    weekly: dict[IsoWeek, dict[str | None, Counter]] = defaultdict(lambda: defaultdict(Counter))
    rows = con.execute(
        queries.WEEKLY_COUNTS, {**_range(week, zone, CHART_WEEKS - 1), "zone": config.timezone}
    ).fetchall()
    for week_start, classified, topic, stance, count in rows:
        key = topic if classified else None
        weekly[IsoWeek.containing(week_start)][key][stance] += count

    def total(of: IsoWeek) -> int:
        return sum(sum(c.values()) for c in weekly[of].values())

    def off_topic(of: IsoWeek) -> int:
        return sum(
            sum(c.values()) for t, c in weekly[of].items() if t is not None and t not in topics
        )

    day_index = {day: i for i, day in enumerate(week.days)}
    daily: dict[str, list[int]] = {t.name: [0] * 7 for t in config.topics}
    daily[UNCLASSIFIED] = [0] * 7
    for day, classified, topic, count in con.execute(
        queries.DAILY_COUNTS, {**_range(week, zone), "zone": config.timezone}
    ).fetchall():
        if not classified:
            daily[UNCLASSIFIED][day_index[day]] += count
        elif topic in topics:
            daily[topics[topic].name][day_index[day]] += count

    openings: dict[int, str] = {}
    simhashes: dict[int, int | None] = {}

    def read_articles(query: str, **parameters: object) -> list[Article]:
        """The query's articles; their openings and simhashes go to the dicts above."""
        found = []
        cursor = con.execute(
            query,
            {
                **_range(week, zone),
                "topics": list(topics),
                "text_chars": OPENING_CHARS,
                **parameters,
            },
        )
        for (
            article_id,
            title,
            url,
            outlet,
            dated_at,
            simhash,
            topic,
            topic_conf,
            stance,
            stance_conf,
            opening,
        ) in cursor.fetchall():
            found.append(
                Article(
                    article_id,
                    title or "(untitled)",
                    url,
                    outlet or "",
                    dated_at.astimezone(zone),
                    topic,
                    topic_conf,
                    stance,
                    stance_conf,
                )
            )
            openings[article_id] = opening or ""
            simhashes[article_id] = simhash
        return found

    by_topic: dict[str | None, list[Article]] = defaultdict(list)
    for article in read_articles(queries.TOPIC_ARTICLES):
        by_topic[article.topic].append(article)
    # The pool comes unclassified first; stories are grouped and led in date order.
    others = sorted(
        read_articles(queries.OTHER_ARTICLES, pool=OTHER_POOL),
        key=lambda a: (a.dated_at, a.article_id),
    )

    model_row = con.execute(queries.CURRENT_MODEL).fetchone()
    model = ModelInfo(*model_row[:4], json.loads(model_row[4] or "{}")) if model_row else None
    topic_reports = []
    for topic in config.topics:
        articles = by_topic.get(topic.id, [])
        this_week, last_week = weekly[week][topic.id], weekly[previous][topic.id]
        topic_reports.append(
            TopicReport(
                id=topic.id,
                name=topic.name,
                target=topic.target,
                count=sum(this_week.values()),
                previous_count=sum(last_week.values()),
                stances=_stance_counts(this_week, last_week),
                stories=_stories(
                    con,
                    week.start(zone),
                    articles,
                    openings,
                    simhashes,
                    config.ingest.near_duplicate_bits,
                ),
                outlets=Counter(a.outlet for a in articles).most_common(TOP_OUTLETS),
                needs_review=sorted(
                    (a for a in articles if a.confidence < REVIEW_BELOW),
                    key=lambda a: (a.confidence, a.article_id),
                )[:NEEDS_REVIEW],
                weekly_stances=[(w, dict(weekly[w][topic.id])) for w in chart_weeks],
                claim=(model.card.get("topic_claims") or {}).get(topic.id) if model else None,
                stance_source=stance_source(model.card, topic.id) if model else None,
            )
        )

    feeds = con.execute(queries.FEED_FETCHES, _range(week, zone)).fetchall()
    failures = [
        FeedFailure(url, name, failed, attempts, last_error, bool(last_failed))
        for url, name, attempts, failed, last_error, last_failed in feeds
        if failed
    ]
    return DigestReport(
        week=week,
        timezone=config.timezone,
        total=total(week),
        previous_total=total(previous),
        off_topic=off_topic(week),
        unclassified=sum(weekly[week][None].values()),
        topics=topic_reports,
        other_stories=_stories(
            con,
            week.start(zone),
            others,
            openings,
            simhashes,
            config.ingest.near_duplicate_bits,
            limit=OTHER_STORIES,
            unclassified_first=True,
        ),
        daily=daily,
        feeds_fetched=len(feeds),
        feed_failures=failures,
        model=model,
    )
