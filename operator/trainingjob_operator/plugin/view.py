"""Pure: the `view` command: one job in full, with its workers and its history, as text
wrapped to the terminal width or as JSON."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainingjob_operator.models import HistoryEntry, TrainingJob, Unreadable
from trainingjob_operator.plugin.summary import (
    WorkerPod,
    gpus,
    is_active,
    job_summary,
    unreadable_summary,
    worker_counts,
)
from trainingjob_operator.plugin.timefmt import age, human_duration, seconds_between
from trainingjob_operator.vocabulary import ADMITTED, Phase, pod_name

LABEL = 11  # "Namespace: "


@dataclass(frozen=True)
class Step:
    """A history entry and how long the job stayed in that phase: until the next entry, or
    until now ("so far") for the last entry of an active job; None for the final phase."""

    entry: HistoryEntry
    seconds: float | None
    ongoing: bool

    def duration(self) -> str:
        if self.seconds is None:
            return ""
        return human_duration(self.seconds) + (" so far" if self.ongoing else "")


def steps(job: TrainingJob, now: datetime) -> list[Step]:
    history = job.status.history
    out = []
    for i, entry in enumerate(history):
        if i + 1 < len(history):
            out.append(Step(entry, seconds_between(entry.time, history[i + 1].time), False))
        elif is_active(job):
            out.append(Step(entry, seconds_between(entry.time, now), True))
        else:
            out.append(Step(entry, None, False))
    return out


def _field(label: str, value: str, width: int) -> list[str]:
    """`Label:     value`, the value wrapped under itself to `width` (a word longer than
    a line, such as an image name, is kept whole)."""
    head = f"{label + ':':<{LABEL}}" if label else " " * LABEL
    lines = []
    for n, paragraph in enumerate(value.splitlines() or [""]):
        lines += textwrap.wrap(paragraph, width=max(width, LABEL + 20),
                               initial_indent=head if n == 0 else " " * LABEL,
                               subsequent_indent=" " * LABEL, break_long_words=False,
                               break_on_hyphens=False) or [head.rstrip()]
    return lines


def _when(timestamp: str | None, now: datetime, since: str | None = None) -> str:
    if not timestamp:
        return "-"
    if since is not None:
        took = seconds_between(since, timestamp)
        return timestamp if took is None else f"{timestamp} (total {human_duration(took)})"
    return f"{timestamp} ({age(timestamp, now)} ago)"


def _queue_lines(job: TrainingJob, now: datetime, width: int) -> list[str]:
    queue = job.status.queue
    if job.status.phase is not Phase.PENDING:
        return []
    if queue is None:
        return _field("Queue", "not ranked yet: the operator places new jobs within seconds",
                      width)
    if queue.position is None:
        place = "not ranked yet"
    else:
        place = f"position {queue.position} in the cluster"
        if queue.namespace_position is not None:
            place += f", {queue.namespace_position} in namespace {job.metadata.namespace}"
    largest = ("" if queue.largest_node_gpus is None
               else f" (largest node: {queue.largest_node_gpus})")
    lines = _field("Queue", place, width)
    lines += _field("", f"needs {queue.gpus_needed} GPUs, {queue.gpus_free} free on the nodes "
                        f"it may use{largest}", width)
    if queue.updated_time:
        lines.append(" " * LABEL + f"updated {age(queue.updated_time, now)} ago")
    return lines


def _outcome_lines(job: TrainingJob, width: int) -> list[str]:
    """What a finished job produced, or the container that ended it and its last output."""
    lines: list[str] = []
    result, failure = job.status.result, job.status.failure
    if result is not None and result.model:
        lines += _field("Model", result.model, width)
    if result is not None and result.metrics:
        lines += _field("Metrics", ", ".join(f"{k}={v:g}" for k, v in result.metrics.items()),
                        width)
    if failure is not None:
        code = "" if failure.exit_code is None else f", exit code {failure.exit_code}"
        why = f" ({failure.reason})" if failure.reason else ""
        lines += _field("Failure", f"worker {failure.worker}, pod {failure.pod}, container "
                        f"{failure.container}{code}{why}", width)
        if failure.output:
            lines.append(" " * LABEL + "last output:")
            lines += [" " * (LABEL + 2) + line for line in failure.output.splitlines()]
    return lines


def _worker_lines(job: TrainingJob, pods: Sequence[WorkerPod]) -> list[str]:
    status = job.status
    ready, total = worker_counts(job)
    lines = [f"{'Workers:':<{LABEL}}{ready}/{total} ready"]
    reserved = status.reservation.nodes if status.reservation else []
    rows = [[str(p.index) if p.index is not None else "?", p.pod, p.node or "-",
             p.state + ("" if p.attempt in (None, status.attempt) else
                        f" (attempt {p.attempt})")] for p in pods]
    if status.phase in ADMITTED:
        have = {p.index for p in pods}
        for i in range(job.spec.workers):
            if i not in have:
                node = f"{reserved[i]} (reserved)" if i < len(reserved) else "-"
                rows.append([str(i), pod_name(job.metadata.name, i), node, "(no pod yet)"])
        rows.sort(key=lambda r: int(r[0]) if r[0].isdigit() else 1 << 30)
    if not rows:
        if status.phase is Phase.PENDING or status.phase is None:
            why = "no pods yet: the job waits in the GPU queue"
        else:
            why = "no pods left: none of its workers started, or their pods were deleted"
        return [*lines, f"  {why}"]
    headers = ["WORKER", "POD", "NODE", "STATE"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    for r in [headers, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
                     + "  " + r[3])
    return lines


def _history_lines(job: TrainingJob, now: datetime, width: int) -> list[str]:
    if not job.status.history:
        return ["History:   none yet (the operator has not seen this job)"]
    all_steps = steps(job, now)
    cells = [(s.entry.time, s.entry.phase.value, s.duration()) for s in all_steps]
    widths = [max(len(h), *(len(c[i]) for c in cells))
              for i, h in enumerate(("TIME", "PHASE", "DURATION"))]
    lines = ["History:", "  " + "  ".join(h.ljust(w) for h, w in zip(
        ("TIME", "PHASE", "DURATION"), widths, strict=True)) + "  REASON"]
    attempts = {s.entry.attempt for s in all_steps} - {None}
    last_attempt: int | None = None
    for row, step in zip(cells, all_steps, strict=True):
        if len(attempts) > 1 and step.entry.attempt != last_attempt:
            lines.append(f"  attempt {step.entry.attempt}:")
            last_attempt = step.entry.attempt
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     + "  " + step.entry.reason)
        if step.entry.message:
            lines += textwrap.wrap(step.entry.message, width=max(width, 40),
                                   initial_indent=" " * 6, subsequent_indent=" " * 6,
                                   break_long_words=False, break_on_hyphens=False)
    return lines


def view_text(job: TrainingJob, pods: Sequence[WorkerPod], now: datetime, width: int) -> str:
    status, spec, meta = job.status, job.spec, job.metadata
    lines = [f"{'Name:':<{LABEL}}{meta.name}", f"{'Namespace:':<{LABEL}}{meta.namespace}",
             f"{'Phase:':<{LABEL}}{status.phase.value if status.phase else '- (not seen yet)'}"]
    if status.reason:
        lines.append(f"{'Reason:':<{LABEL}}{status.reason}")
    if status.message:
        lines += _field("Message", status.message, width)
    lines += _outcome_lines(job, width)
    if spec.stop and is_active(job):
        lines += _field("Stop", "requested: workers get SIGTERM and "
                        f"{spec.termination_grace_period_seconds}s to exit", width)
    lines.append(f"{'Attempt:':<{LABEL}}{status.attempt} of at most {spec.retries.limit + 1} "
                 f"(retries.limit {spec.retries.limit})")
    lines.append(f"{'Priority:':<{LABEL}}{spec.priority}")
    plural = "s" if spec.workers != 1 else ""
    per = (f"{spec.workers} worker{plural} x {spec.gpus_per_worker} {spec.gpu_resource}"
           if spec.gpus_per_worker else "CPU-only")
    lines.append(f"{'GPUs:':<{LABEL}}{gpus(job)} ({per})")
    lines += _queue_lines(job, now, width)
    lines.append(f"{'Created:':<{LABEL}}{_when(meta.creation_timestamp, now)}")
    lines.append(f"{'Started:':<{LABEL}}{_when(status.start_time, now)}")
    if not is_active(job):
        lines.append(f"{'Finished:':<{LABEL}}"
                     f"{_when(status.completion_time, now, since=meta.creation_timestamp)}")
    lines += ["", *_worker_lines(job, pods), "", *_history_lines(job, now, width)]
    return "\n".join(lines)


def view_json(job: TrainingJob, pods: Sequence[WorkerPod], now: datetime) -> dict[str, Any]:
    return {**job_summary(job, now),
            "history": [{"time": s.entry.time, "phase": s.entry.phase.value,
                         "reason": s.entry.reason, "message": s.entry.message,
                         "attempt": s.entry.attempt,
                         "seconds": None if s.seconds is None else int(s.seconds),
                         "ongoing": s.ongoing} for s in steps(job, now)],
            "pods": [p.as_json() for p in pods]}


def unreadable_text(job: Unreadable, now: datetime, width: int) -> str:
    summary = unreadable_summary(job, now)
    lines = [f"{'Name:':<{LABEL}}{job.metadata.name}",
             f"{'Namespace:':<{LABEL}}{job.metadata.namespace}",
             f"{'Phase:':<{LABEL}}{job.phase or '-'}"]
    lines += _field("Problem", str(summary["message"]), width)
    lines += _field("", "kubectl get trainingjob -o yaml shows the stored object", width)
    return "\n".join(lines)
