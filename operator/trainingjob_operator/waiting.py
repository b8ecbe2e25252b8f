"""Pure: what a Pending job says while it waits, and how often the queue may say it.

With 10,000 Pending jobs one admission would otherwise rewrite 10,000 statuses: a job's
numbers are refreshed at most every `queue_refresh_seconds`, and all the refreshes together
stay within a cluster-wide write budget, changed reasons first, then from the head of the
queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from trainingjob_operator.decision import Decision
from trainingjob_operator.models import QueueInfo, TrainingJob
from trainingjob_operator.queue import Waiting
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import refresh
from trainingjob_operator.timeutil import format_time, parse_time
from trainingjob_operator.vocabulary import Key, Reason

BURST_SECONDS = 5  # the budget saves up at most this many seconds of writes


def queued_message(job: TrainingJob) -> str:
    spec = job.spec
    return (f"queued: needs {job.total_gpus} GPUs ({spec.workers} workers x "
            f"{spec.gpus_per_worker} {spec.gpu_resource})")


def waiting_message(job: TrainingJob, w: Waiting) -> str:
    spec = job.spec
    gang = (f"{w.needed} GPUs ({spec.workers} workers x {spec.gpus_per_worker} "
            f"{spec.gpu_resource})")
    if w.reason is Reason.NO_NODE_FITS and w.detail.startswith("no node"):
        return (f"no node can hold one worker: {w.detail}; fix the node constraints in "
                "spec.template.spec or add such nodes")
    if w.reason is Reason.NO_NODE_FITS:
        where = f" {w.detail}" if w.detail else ""
        return (f"no node can hold one worker: each needs {spec.gpus_per_worker} "
                f"{spec.gpu_resource}, the largest node{where} has {w.largest_node}; lower "
                "spec.gpusPerWorker or add larger nodes")
    if w.reason is Reason.GANG_TOO_LARGE:
        return (f"the gang can never fit the cluster as it is: needs {gang}; {w.detail}; "
                "lower spec.workers or spec.gpusPerWorker, or add nodes")
    if w.reason is Reason.QUEUED_BEHIND_HIGHER_PRIORITY:
        return f"queued: needs {gang}, {w.free} free, but {w.detail}"
    return f"waiting for capacity: needs {gang}, {w.free} free on the nodes it may use"


def queue_info(w: Waiting, now: datetime) -> QueueInfo:
    return QueueInfo(position=w.position, namespace_position=w.namespace_position,
                     gpus_needed=w.needed, gpus_free=w.free, largest_node_gpus=w.largest_node,
                     updated_time=format_time(now))


def waiting(job: TrainingJob, w: Waiting, now: datetime, settings: Settings) -> Decision:
    """The Pending status that says why the job waits and where it stands; no status when
    the current one still does. Same reason, new numbers: at most one write per refresh."""
    old = job.status
    last = parse_time(old.queue.updated_time) if old.queue else None
    fresh = last is not None and now - last < timedelta(seconds=settings.queue_refresh_seconds)
    if old.reason == w.reason and fresh:
        return Decision()  # checked first: with 10,000 Pending jobs most passes end here
    message = waiting_message(job, w)
    queue = queue_info(w, now)
    if old.reason == w.reason and old.message == message and \
            old.observed_generation == job.metadata.generation and old.queue is not None and \
            old.queue.model_copy(update={"updated_time": None}) == \
            queue.model_copy(update={"updated_time": None}):
        return Decision()  # the same numbers for the same spec: nothing to say
    return Decision(refresh(job, w.reason, message, now, queue=queue))


def _numbers(q: QueueInfo) -> tuple[int | None, ...]:
    return (q.position, q.namespace_position, q.gpus_needed, q.gpus_free, q.largest_node_gpus)


def next_refresh(pending: Mapping[Key, TrainingJob], waiting_jobs: Iterable[Waiting],
                 now: datetime, settings: Settings) -> datetime | None:
    """When the earliest refresh held back by `waiting` comes due: a job whose numbers
    moved within queue_refresh_seconds of its last write. The queue looks again then, since
    no event may come to say so (only numbers are compared: no message is built)."""
    every = timedelta(seconds=settings.queue_refresh_seconds)
    due: list[datetime] = []
    for w in waiting_jobs:
        old = pending[w.key].status
        last = parse_time(old.queue.updated_time) if old.queue else None
        if old.queue is not None and last is not None and now - last < every and \
                old.reason == w.reason and _numbers(old.queue) != _numbers(queue_info(w, now)):
            due.append(last + every)
    return min(due, default=None)


def queue_writes(pending: Mapping[Key, TrainingJob], waiting_jobs: Iterable[Waiting],
                 now: datetime, settings: Settings) -> list[tuple[TrainingJob, Decision]]:
    """The waiting statuses due, most important first: a changed reason before new numbers,
    then by place in the queue."""
    due = []
    for w in waiting_jobs:
        job = pending[w.key]
        decision = waiting(job, w, now, settings)
        if decision.status is not None:
            due.append((decision.status.reason == job.status.reason, w.position, job, decision))
    due.sort(key=lambda d: (d[0], d[1]))
    return [(job, decision) for _, _, job, decision in due]


@dataclass(frozen=True)
class WriteBudget:
    """A token bucket over a monotonic clock: `rate` writes a second, saved up for at most
    BURST_SECONDS."""

    tokens: float = 0.0
    at: float = 0.0

    def spend(self, wanted: int, clock: float, rate: float) -> tuple[int, WriteBudget]:
        """How many of `wanted` writes may go now, and the budget left."""
        tokens = min(rate * BURST_SECONDS, self.tokens + (clock - self.at) * rate)
        allowed = min(wanted, int(tokens))
        return allowed, WriteBudget(tokens - allowed, clock)
