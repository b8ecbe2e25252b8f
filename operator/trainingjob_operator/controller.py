"""The imperative shell: feeds watch state to the pure core and carries out its decisions.

One loop task does every admission (serially, so GPUs are never double-booked) and the one
periodic sweep for time-based transitions; per-job work runs under a per-job lock when an
event arrives. No per-object timers, daemons or polling; no GET or LIST in steady state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trainingjob_operator import capacity, lifecycle, nodes, queue, render, waiting
from trainingjob_operator.decision import (
    STOP_DEADLINE_SECONDS,
    Action,
    CreatePod,
    CreateService,
    Decision,
    DeleteJob,
    DeletePod,
    StopPod,
)
from trainingjob_operator.kube import Kube, NotLeaderError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, TrainingJobStatus, Unreadable
from trainingjob_operator.nodes import NodeMemory, NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import dump_status
from trainingjob_operator.vocabulary import ADMITTED, Key, Phase

log = logging.getLogger(__name__)
RETRY_SECONDS = 5


class Store(Protocol):
    """What kopf's indexes offer: key -> the values indexed under it."""

    def __getitem__(self, key: Any) -> Iterable[Any]: ...
    def __contains__(self, key: object) -> bool: ...
    def __iter__(self) -> Any: ...


@dataclass
class Indexes:
    jobs: Store      # (ns, name) -> [TrainingJob | Unreadable], parsed once per event
    pods: Store      # (ns, job) -> [PodView] of that job's workers
    usage: Store     # node -> [PodView] of pods there that are workers or use GPUs
    nodes: Store     # name -> [NodeView]


def _values(store: Store, key: Any) -> list[Any]:
    return list(store[key]) if key in store else []


def _first(store: Store, key: Any) -> Any:
    return next(iter(_values(store, key)), None)


@dataclass
class Controller:
    kube: Kube
    settings: Settings
    indexes: Indexes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    recheck: dict[Key, datetime] = field(default_factory=dict)
    grants: dict[Key, capacity.Granted] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    node_memory: NodeMemory = field(default_factory=NodeMemory)
    budget: waiting.WriteBudget = field(
        default_factory=lambda: waiting.WriteBudget(0.0, time.monotonic()))
    # Only the leader decides and writes; a standby's handlers and loop do nothing.
    leading: Callable[[], bool] = lambda: True

    def attach(self, indexes: Indexes) -> None:
        if self.indexes is None:
            self.indexes = indexes
            self.ready.set()

    def forget(self, key: Key) -> None:
        self.locks.pop(key, None)
        self.recheck.pop(key, None)
        self.grants.pop(key, None)
        self.wake.set()

    # -- reading the indexes ---------------------------------------------------------------
    def _job(self, key: Key) -> TrainingJob | Unreadable | None:
        assert self.indexes is not None
        found: TrainingJob | Unreadable | None = _first(self.indexes.jobs, key)
        return found

    def _pods(self, key: Key) -> list[PodView]:
        assert self.indexes is not None
        return _values(self.indexes.pods, key)

    def _nodes(self) -> list[NodeView]:
        assert self.indexes is not None
        return [n for n in (_first(self.indexes.nodes, k) for k in self.indexes.nodes) if n]

    def _jobs(self) -> dict[Key, TrainingJob]:
        """Every readable job not being deleted."""
        assert self.indexes is not None
        jobs: dict[Key, TrainingJob] = {}
        for key in list(self.indexes.jobs):
            job = self._job(key)
            if isinstance(job, TrainingJob) and not job.metadata.deletion_timestamp:
                jobs[key] = job
        return jobs

    def _snapshot(self, job: TrainingJob, pods: list[PodView], now: datetime) -> nodes.Snapshot:
        """The job's nodes as the index and the node memory show them."""
        assert self.indexes is not None
        names = nodes.job_nodes(job, pods)
        found = {n: v for n in names if (v := _first(self.indexes.nodes, n)) is not None}
        snap, self.node_memory = nodes.snapshot(self.node_memory, names, found, now)
        return snap

    # -- one job ---------------------------------------------------------------------------
    async def node_trouble(self, name: str, deleted: bool) -> None:
        """A node went NotReady or away: judge the jobs that run or are reserved there."""
        assert self.indexes is not None
        if deleted:
            self.node_memory = self.node_memory.node_deleted(name)
        if not self.leading():
            return  # a standby only keeps track; the leader judges the jobs
        keys = {(p.namespace, p.job) for p in _values(self.indexes.usage, name)
                if p.job and not p.finished}  # finished jobs keep their pods: skip those
        for key in list(self.indexes.jobs):
            job = self._job(key)
            if isinstance(job, TrainingJob) and job.status.phase in ADMITTED and \
                    job.status.reservation and name in job.status.reservation.nodes:
                keys.add(key)
        for key in sorted(keys):
            await self.reconcile(key)

    async def resync(self) -> None:
        """Just elected: re-decide every job, since a standby acted on no event."""
        await self.ready.wait()
        assert self.indexes is not None
        keys = list(self.indexes.jobs)
        log.info("leader: re-deciding %d TrainingJobs", len(keys))
        for key in keys:
            await self.reconcile(key)
        self.wake.set()

    async def reconcile(self, key: Key) -> None:
        if self.indexes is None or not self.leading():
            return
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            job = self._job(key)
            if job is None or job.metadata.deletion_timestamp:
                return  # garbage collection removes the pods; nothing to decide
            now = datetime.now(UTC)
            if isinstance(job, Unreadable):
                decision = lifecycle.unreadable(job, now)
            else:
                pods = self._pods(key)
                decision = lifecycle.decide(job, pods, now, self.settings,
                                            self._snapshot(job, pods, now))
            if decision.recheck_at is not None:
                self.recheck[key] = decision.recheck_at
            else:
                self.recheck.pop(key, None)
            try:
                await self.apply(job, decision, now)
            except NotLeaderError:
                return  # the lease lapsed mid-decision: the next leader re-decides
            except Exception:  # the API failed us: try again from fresh state soon
                log.exception("reconciling %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
                self.recheck[key] = now + timedelta(seconds=RETRY_SECONDS)

    async def apply(self, job: TrainingJob | Unreadable, decision: Decision,
                    now: datetime) -> str | None:
        """The one way a decision reaches the API. Status first, under the resourceVersion
        precondition, then the actions, then the Event, then the queue's wake-up: a decision
        made on stale state is refused before it can touch a pod, and a crash between the
        steps leaves a status from which the next reconcile finishes the actions. Returns
        the resourceVersion written, None when nothing was."""
        written = None
        if decision.status is not None:
            written = await self.kube.patch_status(job.metadata, dump_status(decision.status))
            if written is None:
                return None  # stale decision: the next event re-decides from fresh state
            old = job.status if isinstance(job, TrainingJob) else TrainingJobStatus()
            self.metrics.transition(old, decision.status, now)
            if isinstance(job, TrainingJob):
                job = job.model_copy(update={
                    "status": decision.status,
                    "metadata": job.metadata.model_copy(update={"resource_version": written})})
        for action in decision.actions:
            assert isinstance(job, TrainingJob), "an unreadable job gets no actions"
            rejected = await self._act(job, action)
            if rejected is not None:
                await self._announce(job, decision)
                assert isinstance(action, CreatePod)
                await self.apply(job, lifecycle.pod_rejected(
                    job, action.index, rejected, now, self.settings), now)
                return written
        await self._announce(job, decision)
        return written

    async def _act(self, job: TrainingJob, action: Action) -> str | None:
        """Carry out one action; the API's refusal of a worker pod, for the job to report."""
        ns = job.metadata.namespace
        if isinstance(action, DeletePod):
            await self.kube.delete_pod(ns, action.name, action.grace_seconds)
        elif isinstance(action, StopPod):  # its GPUs free when it is Failed
            await self.kube.stop_pod(ns, action.name, action.uid, STOP_DEADLINE_SECONDS)
        elif isinstance(action, CreateService):
            created = await self.kube.create(render.workers_service(job, self.settings))
            if not created.ok:
                log.warning("service of %s/%s rejected: %s", ns, job.metadata.name,
                            created.rejected)
        elif isinstance(action, DeleteJob):
            log.info("deleting %s/%s: its ttlSecondsAfterFinished is over", ns,
                     job.metadata.name)
            await self.kube.delete_trainingjob(job.metadata, action.resource_version)
        elif isinstance(action, CreatePod):
            created = await self.kube.create(
                render.worker_pod(job, action.index, action.node, self.settings))
            if not created.ok:
                return created.rejected or ""
        return None

    async def _announce(self, job: TrainingJob | Unreadable, decision: Decision) -> None:
        for e in decision.events if decision.status is not None else ():
            await self.kube.event(job.metadata, e.type, e.reason, e.message)
        if decision.wakes_queue:
            self.wake.set()

    # -- the queue -------------------------------------------------------------------------
    async def admission_pass(self) -> None:
        assert self.indexes is not None
        jobs = self._jobs()
        self.metrics.census(jobs.values())
        self.grants = capacity.still_granted(self.grants, jobs)
        pending = {k: j for k, j in jobs.items()
                   if j.status.phase is Phase.PENDING and not j.spec.stop and k not in self.grants}
        if not pending:
            return
        all_nodes = self._nodes()
        usage = [p for n in self.indexes.usage for p in self.indexes.usage[n]]
        pods = {k: self._pods(k) for k, j in jobs.items() if j.status.phase in ADMITTED}
        free = capacity.free_gpus(jobs, self.grants, pods, all_nodes, usage)
        now = datetime.now(UTC)
        plan = queue.plan([queue.candidate(k, j) for k, j in pending.items()], all_nodes, free,
                          now, timedelta(seconds=self.settings.backfill_window_seconds))
        for key, placement in plan.admit.items():
            job = pending[key]
            async with self.locks.setdefault(key, asyncio.Lock()):
                version = await self.apply(job, lifecycle.admit(job, placement, now,
                                                                self.settings), now)
                if version is not None:
                    self.grants[key] = capacity.granted(job, version, placement)
        await self._explain(pending, plan.waiting, now)

    async def _explain(self, pending: dict[Key, TrainingJob], waits: Iterable[queue.Waiting],
                       now: datetime) -> None:
        """Write why each job waits and where it stands, within the cluster-wide budget:
        the rest waits for the next pass."""
        due = waiting.queue_writes(pending, waits, now, self.settings)
        allowed, self.budget = self.budget.spend(len(due), time.monotonic(),
                                                 self.settings.queue_writes_per_second)
        for job, decision in due[:allowed]:
            await self.apply(job, decision, now)

    async def sweep(self) -> None:
        now = datetime.now(UTC)
        for key, when in list(self.recheck.items()):
            if when <= now:
                self.recheck.pop(key, None)
                await self.reconcile(key)

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.sweep_seconds)
            self.wake.clear()
            leading = self.leading()
            self.metrics.leader.set(int(leading))
            if not leading:
                self.metrics.census(())  # the leader reports the jobs; a standby reports none
                continue
            try:
                await self.admission_pass()
                await self.sweep()
            except Exception:  # one bad pass must not end the loop
                log.exception("admission/sweep pass failed; retrying on the next tick")
