"""A schedule's rule in words, for people: ``0 9 * * 1-5`` is "at 09:00 on Monday to
Friday", ``everyMs`` 90000 is "every 1 min 30 s". Fields it cannot put better are
said as they are. Depends on nothing."""

from __future__ import annotations

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["", "January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]


def every_words(every_ms: int) -> str:
    parts = []
    rest = every_ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000), ("ms", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return "every " + " ".join(parts)


def _list(field: str, names: list[str] | None = None) -> str | None:
    """A field of numbers, ranges and steps in words; None for anything else."""
    words = []
    for part in field.split(","):
        step = None
        if "/" in part:
            part, step = part.split("/", 1)
            if not step.isdigit():
                return None
        if part == "*":
            text = "every value"
        elif "-" in part:
            low, high = part.split("-", 1)
            if not (low.isdigit() and high.isdigit()):
                return None
            text = f"{_name(low, names)} to {_name(high, names)}"
        elif part.isdigit():
            text = _name(part, names)
        else:
            return None
        words.append(text if step is None else f"every {step} from {text}".replace(" from every value", ""))
    return ", ".join(words)


def _name(number: str, names: list[str] | None) -> str:
    if names is None:
        return number
    index = int(number)
    return names[index] if 0 <= index < len(names) else number


def cron_words(expr: str) -> str:
    minute, hour, day, month, weekday = expr.split()
    if minute.isdigit() and hour.isdigit():
        when = f"at {int(hour):02d}:{int(minute):02d}"
    elif minute.startswith("*/") and hour == "*":
        when = f"every {minute[2:]} minutes"
    elif minute == "*" and hour == "*":
        when = "every minute"
    elif minute.isdigit() and hour == "*":
        when = f"at minute {minute} of every hour"
    elif minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
        when = f"at minute {minute} of every {hour[2:]} hours"
    else:
        when = f"at minute {_list(minute) or minute} of hour {_list(hour) or hour}"
    parts = [when]
    if day != "*":
        parts.append(f"on day {_list(day) or day} of the month")
    if month != "*":
        parts.append(f"in {_list(month, _MONTHS) or month}")
    if weekday != "*":
        parts.append(f"on {_list(weekday, _DAYS) or weekday}")
    return " ".join(parts)


def rule_words(cron: str | None, every_ms: int | None, timezone: str) -> str:
    if cron:
        return f"{cron_words(cron)} ({timezone})"
    return every_words(every_ms or 0)
