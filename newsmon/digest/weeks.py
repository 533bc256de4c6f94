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
