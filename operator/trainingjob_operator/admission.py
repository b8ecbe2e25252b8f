"""The admission pass: admit what fits, say why the rest waits.

It runs serially (GPUs are never double-booked), only when capacity or the queue may have
changed, or when a time it set itself comes (a backfill window closes, writes the budget
held back). Each job's own step (its spec checked, its placement, its messages, its
admission) is isolated: one that raises ends that job InvalidSpec and the pass goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trainingjob_operator import capacity, lifecycle, queue, waiting
from trainingjob_operator.clock import Clock
from trainingjob_operator.decision import Decision
from trainingjob_operator.isolation import Broken, Faults, key_of
from trainingjob_operator.kube import NotLeaderError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.settings import Settings
from trainingjob_operator.views import Views
from trainingjob_operator.vocabulary import ADMITTED, Key, Phase
from trainingjob_operator.workqueue import RETRY_SECONDS, WorkQueue
from trainingjob_operator.writer import Writer

log = logging.getLogger(__name__)
WRITERS = 32  # jobs whose writes are in flight at once, within one pass


async def _each(calls: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Run the calls (each one job's writes) with at most WRITERS at a time: decisions were
    all made before, so only the API's round trips overlap."""
    gate = asyncio.Semaphore(WRITERS)

    async def one(call: Coroutine[Any, Any, object]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


@dataclass
class Admission:
    views: Views
    writer: Writer
    faults: Faults
    work: WorkQueue
    settings: Settings
    clock: Clock
    metrics: Metrics
    # Jobs the queue may have to decide on (Pending, or new), kept as their events come:
    # with none, a pass costs nothing.
    queued: set[Key] = field(default_factory=set)
    grants: dict[Key, capacity.Granted] = field(default_factory=dict)
    # When the queue must be looked at again with no event.
    next_pass: datetime | None = None
    budget: waiting.WriteBudget = field(default_factory=waiting.WriteBudget)

    def __post_init__(self) -> None:
        self.budget = waiting.WriteBudget(0.0, self.clock.monotonic())

    def track(self, key: Key, job: TrainingJob | Unreadable | None) -> bool:
        """Keep `queued` up to date from a job's event; whether the job just joined it (a
        new job, or one Pending again), which a pass must take up."""
        if isinstance(job, TrainingJob) and not job.metadata.deletion_timestamp and \
                (job.status.phase is Phase.PENDING or job.status.phase is None):
            joined = key not in self.queued
            self.queued.add(key)
            return joined
        self.queued.discard(key)
        return False

    def forget(self, key: Key) -> None:
        self.queued.discard(key)
        self.grants.pop(key, None)

    def due(self, now: datetime) -> bool:
        return self.next_pass is not None and self.next_pass <= now

    def pass_at(self, when: datetime | None) -> None:
        if when is not None and (self.next_pass is None or when < self.next_pass):
            self.next_pass = when

    async def run(self) -> None:
        self.next_pass = None
        jobs = self.views.jobs.live()
        self.metrics.census(jobs.values())
        self.grants = capacity.still_granted(self.grants, jobs)
        if not self.queued:
            return
        now = self.clock.now()
        broken: Broken = {}

        def queues(j: TrainingJob) -> bool:
            return ((j.status.phase is Phase.PENDING and not j.spec.stop)
                    or lifecycle.new_in_queue(j, self.settings))
        pending = {k: j for k, j in jobs.items()
                   if k not in self.grants and not self.writer.stale(k, j)
                   and self.faults.guard(j, "check its spec", queues, broken, now)}
        if pending:
            await self._queue(jobs, pending, broken, now)
        await _each(self._locked(job, decision, now) for job, decision in broken.values())

    async def _queue(self, jobs: dict[Key, TrainingJob], pending: dict[Key, TrainingJob],
                     broken: Broken, now: datetime) -> None:
        all_nodes = self.views.nodes.all()
        pods = {k: self.views.pods.of_job(k) for k, j in jobs.items()
                if j.status.phase in ADMITTED}
        free = capacity.free_gpus(jobs, self.grants, pods, all_nodes, self.views.pods.bound())
        window = timedelta(seconds=self.settings.backfill_window_seconds)
        node_set = self.settings.worker_node_selector

        def alone(key: Key) -> Callable[[TrainingJob], queue.Plan]:
            """The job planned on its own: its placement read and tried on every node."""
            return lambda j: queue.plan([queue.candidate(key, j, node_set)], all_nodes, free,
                                        now, window)

        def candidate(key: Key) -> Callable[[TrainingJob], queue.Candidate]:
            return lambda j: queue.candidate(key, j, node_set)
        step = "place its workers (spec.template.spec nodeSelector, affinity, tolerations)"
        candidates = [c for k, j in pending.items()
                      if (c := self.faults.guard(j, step, candidate(k), broken, now))
                      is not None]
        try:
            plan = queue.plan(candidates, all_nodes, free, now, window)
        except Exception:  # some job's placement breaks the plan: find it, plan the rest
            candidates = [c for c in candidates
                          if self.faults.guard(pending[c.key], step, alone(c.key), broken, now)]
            plan = queue.plan(candidates, all_nodes, free, now, window)
        self.pass_at(min((c.waiting_since + window for c in candidates
                           if c.waiting_since and c.waiting_since + window > now),
                          default=None))
        await _each(self._admit(key, pending[key], placement, broken, now)
                    for key, placement in plan.admit.items())

        def queued(w: queue.Waiting) -> Callable[[TrainingJob], Decision]:
            return lambda j: lifecycle.queued(j, w.reason, waiting.waiting_message(j, w),
                                              waiting.queue_info(w, now), now, self.settings)
        first: list[tuple[TrainingJob, Decision]] = []
        for w in plan.waiting:
            job = pending[w.key]
            if job.status.phase is None:
                decision = self.faults.guard(job, "say why it waits", queued(w), broken, now)
                if decision is not None:
                    first.append((job, decision))
        await _each(self._locked(job, decision, now) for job, decision in first)
        await self._explain(pending, [w for w in plan.waiting
                                      if pending[w.key].status.phase is not None], broken, now)

    async def _admit(self, key: Key, job: TrainingJob, placement: list[str], broken: Broken,
                     now: datetime) -> None:
        decision = self.faults.guard(job, "admit it", lambda j: lifecycle.admit(
            j, placement, now, self.settings), broken, now)
        if decision is None:
            return
        version = await self._locked(job, decision, now)
        if version is not None:
            self.grants[key] = capacity.granted(job, version, placement)

    async def _locked(self, job: TrainingJob, decision: Decision, now: datetime) -> str | None:
        """Apply under the job's lock. An API failure is not the job's fault, and no reason
        to stop the pass for the others: the job is reconciled again in RETRY_SECONDS."""
        key = key_of(job)
        async with self.work.lock(key):
            try:
                return await self.writer.apply(job, decision, now)
            except NotLeaderError:
                return None
            except Exception:
                log.exception("writing %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
                self.work.retry(key)
                self.pass_at(now + timedelta(seconds=RETRY_SECONDS))
                return None

    async def _explain(self, pending: dict[Key, TrainingJob], waits: Iterable[queue.Waiting],
                       broken: Broken, now: datetime) -> None:
        """Write why each job waits and where it stands, within the cluster-wide budget:
        the rest waits for the next pass."""
        waits = list(waits)
        try:
            due = waiting.queue_writes(pending, waits, now, self.settings)
        except Exception:  # some job's message cannot be made: leave it out
            def says(w: queue.Waiting) -> Callable[[TrainingJob], Decision]:
                return lambda j: waiting.waiting(j, w, now, self.settings)
            waits = [w for w in waits if self.faults.guard(pending[w.key], "say why it waits",
                                                           says(w), broken, now) is not None]
            due = waiting.queue_writes(pending, waits, now, self.settings)
        self.pass_at(waiting.next_refresh(pending, waits, now, self.settings))
        allowed, self.budget = self.budget.spend(len(due), self.clock.monotonic(),
                                                 self.settings.queue_writes_per_second)
        if allowed < len(due):
            self.pass_at(now + timedelta(seconds=1))
        await _each(self._locked(job, decision, now) for job, decision in due[:allowed])
