"""Pure: the `list` command's rows, a table that fits the terminal, and its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.plugin.summary import (
    gpus,
    is_active,
    job_summary,
    queue_position,
    unreadable_summary,
    worker_counts,
)
from trainingjob_operator.plugin.timefmt import age
from trainingjob_operator.vocabulary import Reason

HEADERS = ("NAME", "PHASE", "REASON", "WORKERS", "GPUS", "QUEUE", "AGE")
ELLIPSIS = "…"
# Columns that may be cut to fit, in the order they give up space, and how narrow they go.
# NAME is never cut: it is what people copy into the next command.
SHRINK = (("REASON", 10), ("NAMESPACE", 10))

Job = TrainingJob | Unreadable


def select(jobs: Sequence[Job], include_finished: bool) -> list[Job]:
    return [j for j in jobs if include_finished or is_active(j)]


def row(job: Job, now: datetime) -> list[str]:
    if isinstance(job, Unreadable):
        return [job.metadata.name, job.phase or "-", Reason.UNREADABLE.value, "-", "-", "",
                age(job.metadata.creation_timestamp, now)]
    ready, total = worker_counts(job)
    position = queue_position(job)
    return [job.metadata.name, job.status.phase.value if job.status.phase else "-",
            job.status.reason or "", f"{ready}/{total}", str(gpus(job)),
            "" if position is None else str(position),
            age(job.metadata.creation_timestamp, now)]


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + ELLIPSIS


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> str:
    """Left-aligned columns like `kubectl get`: three spaces apart, two when that is too
    wide, then the SHRINK columns cut with an ellipsis until the lines fit `width` (a
    table that cannot fit even so is printed wider rather than lose more)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def total(gap: int) -> int:
        return sum(widths) + gap * (len(widths) - 1)

    gap = 3 if total(3) <= width else 2
    for name, narrowest in SHRINK:
        if name in headers and total(gap) > width:
            i = headers.index(name)
            widths[i] = max(narrowest, len(name), widths[i] - (total(gap) - width))
    lines = []
    for cells in [list(headers), *rows]:
        padded = [cut(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)]
        lines.append((" " * gap).join(padded).rstrip())
    return "\n".join(lines)


def list_table(jobs: Sequence[Job], now: datetime, width: int,
               all_namespaces: bool = False) -> str:
    rows = [row(j, now) for j in jobs]
    headers: tuple[str, ...] = HEADERS
    if all_namespaces:
        headers = ("NAMESPACE", *HEADERS)
        rows = [[j.metadata.namespace, *r] for j, r in zip(jobs, rows, strict=True)]
    return render(headers, rows, width)


def list_json(jobs: Sequence[Job], now: datetime) -> dict[str, Any]:
    return {"items": [unreadable_summary(j, now) if isinstance(j, Unreadable)
                      else job_summary(j, now) for j in jobs]}


def empty_message(namespace: str | None, include_finished: bool, hidden: int) -> str:
    """What to say when there is no row; `hidden` finished jobs were filtered out."""
    where = "in any namespace" if namespace is None else f"in namespace '{namespace}'"
    if include_finished:
        return f"No trainingjobs found {where}."
    tail = (f"; {hidden} finished {'job is' if hidden == 1 else 'jobs are'} hidden "
            "(--all shows them)" if hidden else " (--all shows finished ones too)")
    return f"No active trainingjobs {where}{tail}."
