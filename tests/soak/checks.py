"""Pure: the soak's verdicts from its samples.

Flat: after the warm-up (a fifth of the run, at most five minutes), a baseline is the mean of
the samples in the first window (a tenth of the rest, at least a minute); every later window's
mean (rolling, one sample at a time) must stay within TOLERANCE of it. A window mean rides
out one busy sample (a burst of jobs ending together) and still sees a rise that lasts; a
leak shows as the last window above the baseline.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.bench import apimetrics
from tests.soak.plan import GONE, TTL_SECONDS, Tracked

Counts = Mapping[str, float]

TOLERANCE = 0.10
WARMUP_FRACTION, WARMUP_LIMIT = 0.2, 300.0
WINDOW_FRACTION, WINDOW_MIN = 0.1, 60.0


@dataclass(frozen=True)
class Sample:
    at: float  # soak seconds
    rss_mib: float
    fds: int
    tasks: float


def warmup(duration: float) -> float:
    return min(WARMUP_FRACTION * duration, WARMUP_LIMIT)


@dataclass(frozen=True)
class Flatness:
    name: str
    start: float  # the first sample
    baseline: float
    end: float  # the mean of the last window
    peak: float  # the highest window mean after the warm-up
    highest: float  # the highest single sample after the warm-up
    ok: bool

    @property
    def growth(self) -> float:
        return self.end / self.baseline - 1 if self.baseline else 0.0


def flatness(name: str, points: Sequence[tuple[float, float]], duration: float,
             tolerance: float = TOLERANCE) -> Flatness:
    """points: (soak seconds, value) in time order, over the steady part of the soak
    (0..duration)."""
    if not points:
        raise ValueError(f"no samples of {name}")
    after = [(t, v) for t, v in points if t >= warmup(duration)]
    window = max(WINDOW_MIN, WINDOW_FRACTION * (duration - warmup(duration)))
    if len(after) < 2:
        raise ValueError(f"too few samples of {name} after the warm-up: {len(after)}")
    means = []
    for i, (t, _) in enumerate(after):
        if t - after[0][0] < window:
            continue  # the first window is the baseline itself
        means.append(statistics.fmean(v for u, v in after[:i + 1] if u > t - window))
    base = statistics.fmean(v for t, v in after if t - after[0][0] < window)
    means = means or [base]
    limit = base * (1 + tolerance)
    return Flatness(name, points[0][1], base, means[-1], max(means),
                    max(v for _, v in after), max(means) <= limit)


@dataclass(frozen=True)
class JobVerdicts:
    created: dict[str, int]  # per outcome
    ended: dict[str, int]  # ended as expected and gone in time, per outcome
    wrong: list[str]  # "name: ended X, expected Y"
    stuck: list[str]  # "name: ..., due by ..."
    slowest: dict[str, float]  # per outcome: most seconds from create to the expected end


def judge_jobs(tracked: Iterable[Tracked]) -> JobVerdicts:
    """Every job must have ended as expected by its deadline, and be gone (deleted by the
    TTL, or by the soak) by then plus the TTL."""
    created: dict[str, int] = {}
    ended: dict[str, int] = {}
    slowest: dict[str, float] = {}
    wrong, stuck = [], []
    for t in sorted(tracked, key=lambda t: t.plan.name):
        o, name = t.plan.outcome, t.plan.name
        created[o.name] = created.get(o.name, 0) + 1
        if t.wrong is not None:
            wrong.append(f"{name}: {t.wrong}, expected {o.expect}")
            continue
        due = t.plan.deadline
        gone_by = due + (0 if o.expect == GONE else TTL_SECONDS)
        if t.ended is None or t.ended > due:
            stuck.append(f"{name}: {t.last} at {t.ended or 'the end'}, due {o.expect} by "
                         f"{due:.0f}s")
        elif t.gone is None or t.gone > gone_by:
            stuck.append(f"{name}: {o.expect} at {t.ended:.0f}s but not deleted by "
                         f"{gone_by:.0f}s")
        else:
            ended[o.name] = ended.get(o.name, 0) + 1
            slowest[o.name] = max(slowest.get(o.name, 0.0), t.ended - t.plan.created)
    return JobVerdicts(created, ended, wrong, stuck, slowest)


def by_verb_resource(metrics_text: str) -> dict[str, float]:
    """The API server's requests so far, as "VERB resource[/subresource]" -> count."""
    out: dict[str, float] = {}
    for labels, value in apimetrics.requests(metrics_text):
        if labels.get("resource"):
            key = f"{labels.get('verb', '?')} {apimetrics.resource(labels)}"
            out[key] = out.get(key, 0.0) + value
    return out


def _nearest(readings: Sequence[tuple[float, Counts]], at: float) -> tuple[float, Counts]:
    return min(readings, key=lambda r: abs(r[0] - at))


def window_rates(readings: Sequence[tuple[float, Counts]],
                 duration: float) -> tuple[Counts, Counts]:
    """Requests per second in the first window after the warm-up and in the last window of
    the steady part, from (soak seconds, counters) readings."""
    start = warmup(duration)
    window = max(WINDOW_MIN, WINDOW_FRACTION * (duration - start))
    out = []
    for a, b in ((start, start + window), (duration - window, duration)):
        (t0, c0), (t1, c1) = _nearest(readings, a), _nearest(readings, b)
        out.append(rates(c0, c1, t1 - t0) if t1 > t0 else {})
    return out[0], out[1]


def rates(first: Counts, second: Counts, seconds: float) -> dict[str, float]:
    """Requests per second between two readings of the same counters."""
    return {k: (v - first.get(k, 0.0)) / seconds for k, v in second.items()
            if v - first.get(k, 0.0) > 0}
