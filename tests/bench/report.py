"""Pure: one run's figures, their medians over repeats, and the table with ratios."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COLUMNS = ("events", "status", "pods", "services", "endpoints")


@dataclass(frozen=True)
class Run:
    peer: str
    seconds: float
    jobs: int
    writes: Mapping[str, float]  # per job, by column (apimetrics.grouped)
    cpu_seconds: float | None = None  # the peer's own controller process over the run
    peak_rss_mib: float | None = None
    states: Mapping[str, int] = field(default_factory=dict)  # terminal state -> jobs

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds


def _median(values: Sequence[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return statistics.median(real) if real else None


def median_run(runs: Sequence[Run]) -> Run:
    """The medians of repeats of one peer on one workload, figure by figure."""
    columns = {c for r in runs for c in r.writes}
    states: dict[str, int] = {}
    for r in runs:
        for k, v in r.states.items():
            states[k] = states.get(k, 0) + v
    return Run(runs[0].peer, statistics.median(r.seconds for r in runs), runs[0].jobs,
               {c: statistics.median(r.writes.get(c, 0.0) for r in runs) for c in columns},
               _median([r.cpu_seconds for r in runs]), _median([r.peak_rss_mib for r in runs]),
               states)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(workload: str, runs: Sequence[Run], ours: str) -> str:
    """A Markdown table: one row per peer (medians), ratios of our figures to each peer's."""
    head = ("| peer | time s | jobs/s | writes/job | " + " | ".join(COLUMNS)
            + " | controller CPU s | peak RSS MiB | time ratio (ours/peer) |")
    lines = [f"**{workload}**", "", head, "|" + "---|" * (head.count("|") - 1)]
    mine = next((r for r in runs if r.peer == ours), None)
    for r in runs:
        ratio = "-" if mine is None or r.peer == ours else f"{mine.seconds / r.seconds:.2f}"
        lines.append(
            f"| {r.peer} | {r.seconds:.1f} | {r.jobs_per_second:.1f} | "
            f"{sum(r.writes.values()):.1f} | "
            + " | ".join(_num(r.writes.get(c, 0.0)) for c in COLUMNS)
            + f" | {_num(r.cpu_seconds)} | {_num(r.peak_rss_mib, 0)} | {ratio} |")
    return "\n".join(lines)
