"""Pure: the soak's Markdown report and its list of failed checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tests.soak import plan
from tests.soak.checks import TOLERANCE, Flatness, JobVerdicts, warmup

Counts = Mapping[str, float]
TOP_RATES = 12


@dataclass(frozen=True)
class Capacity:
    samples: int
    over: list[str]
    twice: list[str]  # a worker of one attempt created more than once
    unschedulable: int  # pods the scheduler marked Unschedulable (reported, not a check)
    peak_gpus: int
    errors: int


@dataclass(frozen=True)
class Soak:
    duration: float
    interval: float
    commit: str
    flat: Sequence[Flatness]  # gated: RSS and tasks
    informative: Sequence[Flatness]  # reported: open fds
    jobs: JobVerdicts
    capacity: Capacity
    flaps: Sequence[plan.Flap]
    rates_early: Counts
    rates_late: Counts
    leftover_pods: list[str] = field(default_factory=list)
    drain_seconds: float = 0.0
    operator_exit: int | None = None  # set if the operator died during the soak
    counters: Counts = field(default_factory=dict)  # the operator's own, e.g. retries


def failures(s: Soak) -> list[str]:
    out = [f"{f.name} not flat: a window mean reached {f.peak:.1f}, more than "
           f"{100 * (1 + TOLERANCE):.0f} % of the baseline {f.baseline:.1f}"
           for f in s.flat if not f.ok]
    if s.operator_exit is not None:
        out.append(f"the operator exited with {s.operator_exit} during the soak")
    if s.jobs.wrong:
        out.append(f"{len(s.jobs.wrong)} jobs ended otherwise than planned: "
                   + "; ".join(s.jobs.wrong[:5]))
    if s.jobs.stuck:
        out.append(f"{len(s.jobs.stuck)} jobs stuck past their deadline: "
                   + "; ".join(s.jobs.stuck[:5]))
    c = s.capacity
    if c.samples < 10:
        out.append(f"capacity sampled only {c.samples} times ({c.errors} failed reads)")
    if c.over:
        out.append("capacity invariant broken: " + "; ".join(c.over[:5]))
    if c.twice:
        out.append("a worker of one attempt was created twice: " + "; ".join(c.twice[:5]))
    if s.leftover_pods:
        out.append(f"{len(s.leftover_pods)} pods left after the jobs were gone: "
                   + ", ".join(s.leftover_pods[:5]))
    return out


def _seconds(value: float) -> str:
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _flat_row(f: Flatness, gated: bool) -> str:
    verdict = ("ok" if f.ok else "FAIL") if gated else ("ok" if f.ok else "over 10 %") + \
        " (reported)"
    return (f"| {f.name} | {f.start:.0f} | {f.baseline:.0f} | {f.end:.0f} | {f.peak:.0f} | "
            f"{f.highest:.0f} | {100 * f.growth:+.1f} % | {verdict} |")


def _rates(early: Counts, late: Counts) -> list[str]:
    keys = sorted(set(early) | set(late), key=lambda k: -max(early.get(k, 0), late.get(k, 0)))
    rows = [f"| {k} | {early.get(k, 0.0):.2f} | {late.get(k, 0.0):.2f} |"
            for k in keys[:TOP_RATES]]
    rows.append(f"| all ({len(keys)} verb/resource pairs) | {sum(early.values()):.2f} | "
                f"{sum(late.values()):.2f} |")
    return rows


def markdown(s: Soak) -> str:
    j, c = s.jobs, s.capacity
    failed = failures(s)
    long_flaps = sum(1 for f in s.flaps if f.seconds > 60)
    lines = [
        f"**Soak: {_seconds(s.duration)} of jobs (one every {s.interval:g} s), then "
        f"{_seconds(s.drain_seconds)} to drain; commit {s.commit}**", "",
        f"Warm-up {_seconds(warmup(s.duration))}; baseline = the mean of the first window "
        f"after it, flat = every later window mean within 10 % of it.", "",
        "| operator | first sample | baseline | last window | highest window | highest sample "
        "| growth | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *(_flat_row(f, True) for f in s.flat), *(_flat_row(f, False) for f in s.informative),
        "",
        "| outcome | jobs | ended as planned and deleted in time | slowest to its end, s |",
        "|---|---|---|---|",
        *(f"| {name} | {j.created.get(name, 0)} | {j.ended.get(name, 0)} | "
          f"{j.slowest.get(name, 0):.0f} |" for name in plan.OUTCOMES),
        f"| all | {sum(j.created.values())} | {sum(j.ended.values())} | |", "",
        f"Node flaps: {len(s.flaps)} ({len(s.flaps) - long_flaps} of "
        f"{plan.FLAP_SECONDS[0]:.0f} s, {long_flaps} of {plan.FLAP_SECONDS[1]:.0f} s). "
        f"Capacity: {c.samples} snapshots ({c.errors} failed reads), at most "
        f"{c.peak_gpus} GPUs committed, over-commitments {len(c.over)}, workers created "
        f"twice {len(c.twice)}, pods marked Unschedulable {c.unschedulable} (reported). "
        "The operator counted: " + ", ".join(f"{k} {v:.0f}" for k, v in s.counters.items())
        + ".", "",
        "| API requests/s (verb resource) | first window after warm-up | last window |",
        "|---|---|---|", *_rates(s.rates_early, s.rates_late), "",
        "PASS" if not failed else "FAIL:\n" + "\n".join(f"- {f}" for f in failed)]
    return "\n".join(lines)
