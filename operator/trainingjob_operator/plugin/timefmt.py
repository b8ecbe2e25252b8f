"""Pure time formatting: ages the way kubectl prints them, durations, --timeout values."""

from __future__ import annotations

import re
from datetime import datetime

from trainingjob_operator.timeutil import parse_time


def human_duration(seconds: float) -> str:
    """kubectl's AGE format: 5s, 119s, 3m5s, 45m, 2h30m, 20h, 4d5h, 30d, 2y100d.

    Precise when short, coarser as it grows; up to 2 s into the future counts as now
    (clock skew between this machine and the API server)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def seconds_between(start: str | None, end: datetime | str | None) -> float | None:
    """Seconds from an RFC 3339 time to another (or to a datetime); None if either is missing."""
    begin = parse_time(start)
    finish = parse_time(end) if isinstance(end, str) or end is None else end
    if begin is None or finish is None:
        return None
    return (finish - begin).total_seconds()


def age(timestamp: str | None, now: datetime) -> str:
    seconds = seconds_between(timestamp, now)
    return "<unknown>" if seconds is None else human_duration(seconds)


_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_timeout(text: str) -> float:
    """A --timeout value in seconds: Go-style durations (90s, 10m, 1h30m, 2d) or plain
    seconds (600). Raises ValueError with the accepted forms."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if value and _PART.sub("", value) == "":
        return sum(float(n) * _UNIT[u] for n, u in _PART.findall(value))
    raise ValueError(f"invalid duration {text!r}: use e.g. 90s, 10m, 1h30m, 2d or seconds")
