from __future__ import annotations

import pytest
from trainingjob_operator.plugin.timefmt import age, human_duration, parse_timeout, seconds_between

from tests.unit.plugin.jobs import NOW


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (185, "3m5s"), (599, "9m59s"), (600, "10m"), (45 * 60 + 59, "45m"), (179 * 60, "179m"),
    (3 * 3600, "3h"), (2 * 3600 + 30 * 60, "150m"), (7 * 3600 + 59 * 60, "7h59m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (4 * 86400 + 5 * 3600, "4d5h"),
    (8 * 86400, "8d"), (400 * 86400, "400d"), (730 * 86400, "2y"),
    (830 * 86400, "2y100d"), (3000 * 86400, "8y"),
])
def test_human_duration_matches_kubectl_age(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_and_seconds_between() -> None:
    assert age("2026-01-01T11:59:55Z", NOW) == "5s"
    assert age("2026-01-01T09:00:00Z", NOW) == "3h"
    assert age(None, NOW) == "<unknown>"
    assert seconds_between("2026-01-01T11:00:00Z", "2026-01-01T11:01:30Z") == 90
    assert seconds_between(None, NOW) is None


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("500ms", 0.5),
    ("0", 0), ("1.5h", 5400)])
def test_parse_timeout(text: str, seconds: float) -> None:
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5s", "m", "5 m"])
def test_parse_timeout_refuses_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 90s, 10m"):
        parse_timeout(text)
