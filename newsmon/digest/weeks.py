"""ISO weeks in the configured time zone: the unit a digest covers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEK_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """'2026-W47' as an IsoWeek; ValueError with the expected form otherwise."""
        match = WEEK_PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not an ISO week; expected the form 2026-W47")
        year, week = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"{text!r}: {year} has no ISO week {week}") from None
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        year, week, _ = day.isocalendar()
        return cls(year, week)

    @classmethod
    def last_complete(cls, zone: ZoneInfo, now: datetime) -> IsoWeek:
        """The most recent week that has ended, by the calendar of `zone`."""
        return cls.containing(now.astimezone(zone).date()).previous()

    def has_ended(self, zone: ZoneInfo, now: datetime) -> bool:
        return now >= self.end(zone)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    def previous(self, weeks: int = 1) -> IsoWeek:
        return IsoWeek.containing(self.monday - timedelta(weeks=weeks))

    def start(self, zone: ZoneInfo) -> datetime:
        """Monday 00:00 local time, as an aware datetime (DST-safe: built from the local date)."""
        return datetime.combine(self.monday, time(), tzinfo=zone)

    def end(self, zone: ZoneInfo) -> datetime:
        """The next Monday 00:00 local time: the exclusive end of the week."""
        return datetime.combine(self.monday + timedelta(days=7), time(), tzinfo=zone)


def refusal(week: IsoWeek, zone: ZoneInfo, now: datetime, preview: bool) -> str | None:
    """Why `week` can have no digest at `now`, or None when it can.

    A digest covers a whole week, so it is due once the week has ended. The week under way may
    be previewed (rendered as it stands, neither mailed nor recorded); a week not begun has
    nothing to show.
    """
    if week.has_ended(zone, now):
        return None
    if now < week.start(zone):
        return (
            f"{week} has not begun yet (it begins {_moment(week.start(zone))}); "
            "a week's digest is due once the week has ended"
        )
    if preview:
        return None
    return (
        f"{week} has not ended yet (it ends {_moment(week.end(zone))}); its digest is due then. "
        "To preview the week so far without mailing or recording it, add --no-send --force"
    )


def _moment(moment: datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b %Y %H:%M} {moment.tzinfo}"
