"""When recurring schedules fire: pure functions of the rule and a time.

Cron rules are read in the schedule's IANA time zone, as wall-clock times, and
each matching wall-clock time fires exactly once:

* a wall time the clock skips when daylight saving starts (02:30 in Europe/Berlin
  on the last Sunday of March) fires once, at the instant it would have had without
  the change (03:30 summer time): a daily job is never lost;
* a wall time the clock passes twice when daylight saving ends (02:30 on the last
  Sunday of October) fires once, at its first occurrence: a daily job never runs twice.

Fire instants are strictly increasing, so two wall times that land on the same
instant fire once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter


class RuleError(ValueError):
    pass


# Names the zone database of a host may hold that are not zones of their own: the
# host's setting, not something a schedule may name.
_HOST_NAMES = frozenset({"localtime", "posixrules"})


@cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone a schedule may name (the list in ``/openapi.json``)."""
    return tuple(sorted(available_timezones() - _HOST_NAMES))


def check_zone(name: str) -> str:
    """``name`` if it is one of ``time_zones()`` (RuleError otherwise)."""
    if name not in _zone_set():
        raise RuleError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    return name


@cache
def _zone_set() -> frozenset[str]:
    return frozenset(time_zones())


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin") from None


def check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 5:
        raise RuleError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}: {expr!r}"
        )
    if not croniter.is_valid(expr):
        raise RuleError(f"invalid cron expression {expr!r}")
    try:  # a valid rule that names no real day (0 0 30 2 *) would never fire
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, ValueError):
        raise RuleError(f"cron expression {expr!r} never fires (no such date)") from None
    return " ".join(fields)


def _instant_ms(local: datetime, zone: ZoneInfo) -> int:
    # fold=0: an ambiguous wall time is its first occurrence; a skipped one is read
    # with the offset in force before the change (02:30 CET = 03:30 CEST).
    return int(local.replace(tzinfo=zone, fold=0).timestamp() * 1000)


def next_cron_ms(expr: str, zone: ZoneInfo, after_ms: int) -> int:
    """The first fire instant strictly after ``after_ms``."""
    local_after = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone).replace(tzinfo=None)
    # After a fall-back the wall clock repeats an hour: wall times that match may map
    # to instants we have passed; they are skipped, so nothing fires twice.
    it = croniter(expr, local_after)
    while True:
        candidate = _instant_ms(it.get_next(datetime), zone)
        if candidate > after_ms:
            return candidate


def next_every_ms(anchor_ms: int, every_ms: int, after_ms: int) -> int:
    """The first instant ``anchor + k * every`` (k >= 1) strictly after ``after_ms``."""
    if after_ms < anchor_ms:
        return anchor_ms + every_ms
    k = (after_ms - anchor_ms) // every_ms + 1
    return anchor_ms + k * every_ms


def fire_times(
    *, cron: str | None, zone: ZoneInfo, every_ms: int | None, anchor_ms: int,
    from_ms: int, until_ms: int, limit: int,
) -> tuple[list[int], int]:
    """Fire instants in ``[from_ms, until_ms]`` (at most the last ``limit`` of them), and
    the first instant after ``until_ms``. ``from_ms`` is the schedule's due time."""
    due: list[int] = []
    current = from_ms
    while current <= until_ms:
        due.append(current)
        if len(due) > limit:
            due.pop(0)
        current = (
            next_cron_ms(cron, zone, current) if cron
            else next_every_ms(anchor_ms, every_ms or 0, current)
        )
    return due, current
