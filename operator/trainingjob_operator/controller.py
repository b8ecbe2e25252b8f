"""The imperative shell: feeds watch state to the pure core and carries out its decisions.

One loop task does every admission (serially, so GPUs are never double-booked) and the one
periodic sweep for time-based transitions; per-job work runs under a per-job lock when an
event arrives. No per-object timers, daemons or polling; no GET or LIST in steady state.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
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
from trainingjob_operator.kube import Kube, NotLeaderError, PassingRefusalError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, TrainingJobStatus, Unreadable
from trainingjob_operator.nodes import NodeMemory, NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import dump_status
from trainingjob_operator.vocabulary import ADMITTED, Key, Phase

log = logging.getLogger(__name__)
RETRY_SECONDS = 5
WORKERS = 16  # jobs reconciled at once (each under its own lock)
IDLE_SECONDS = 3600.0  # nothing due and no election: sleep until woken
WRITERS = 32  # jobs whose writes are in flight at once, within one admission pass


class Store(Protocol):
    """What kopf's indexes offer: key -> the values indexed under it."""

    def __getitem__(self, key: Any) -> Iterable[Any]: ...
    def __contains__(self, key: object) -> bool: ...
    def __iter__(self) -> Any: ...


@dataclass
class Indexes:
    jobs: Store      # (ns, name) -> [TrainingJob | Unreadable], parsed once per event
    # (ns, job) -> [PodView] of that job's workers, and node name -> [PodView] of the
    # pods bound there that are workers or use GPUs: one index, keys of two shapes.
    pods: Store
    nodes: Store     # name -> [NodeView]


def _values(store: Store, key: Any) -> list[Any]:
    return list(store[key]) if key in store else []


def _first(store: Store, key: Any) -> Any:
    return next(iter(_values(store, key)), None)


async def _each(calls: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Run the calls (each one job's writes) with at most WRITERS at a time: decisions were
    all made before, so only the API's round trips overlap."""
    gate = asyncio.Semaphore(WRITERS)

    async def one(call: Coroutine[Any, Any, object]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


@dataclass
class Controller:
    kube: Kube
    settings: Settings
    indexes: Indexes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by each informer once its first list is in (informer.py).
    synced: list[asyncio.Event] = field(default_factory=list)
    # Jobs to reconcile, each at most once in `work` (events that come while it waits there
    # are taken by that one reconcile); WORKERS tasks take them in turn.
    dirty: set[Key] = field(default_factory=set)
    node_views: dict[str, NodeView] = field(default_factory=dict)
    work: asyncio.Queue[Key] = field(default_factory=asyncio.Queue)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    recheck: dict[Key, datetime] = field(default_factory=dict)
    # The resourceVersion each job had when this process last wrote its status: while the
    # index still shows it, the index has not seen that write, and deciding would be on
    # stale state (refused by the precondition anyway); the write's own event comes next.
    superseded: dict[Key, str] = field(default_factory=dict)
    # Jobs the queue may have to decide on (Pending, or new), kept as their events come: with
    # none, a pass costs nothing. `due` orders `recheck` by time (stale entries are skipped).
    queued: set[Key] = field(default_factory=set)
    due: list[tuple[datetime, Key]] = field(default_factory=list)
    # When the queue must be looked at again with no event: a backfill window closes, or
    # writes the budget held back.
    next_pass: datetime | None = None
    grants: dict[Key, capacity.Granted] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    node_memory: NodeMemory = field(default_factory=NodeMemory)
    budget: waiting.WriteBudget = field(
        default_factory=lambda: waiting.WriteBudget(0.0, time.monotonic()))
    # Only the leader decides and writes; a standby's handlers and loop do nothing.
    leading: Callable[[], bool] = lambda: True

    async def become_ready(self) -> None:
        """Ready once every informer's first list is in: no decision is made on a partial
        picture."""
        for synced in self.synced:
            await synced.wait()
        self.ready.set()

    def node_changed(self, name: str, view: NodeView | None) -> bool:
        """Whether the node differs from the last time it was seen in what the queue reads
        (capacity, labels, taints, readiness; None: deleted): heartbeats change nothing."""
        before = self.node_views.pop(name, None)
        if view is not None:
            self.node_views[name] = view
        return view is None or before != view

    def enqueue(self, key: Key) -> None:
        if key not in self.dirty:
            self.dirty.add(key)
            self.work.put_nowait(key)

    async def worker(self) -> None:
        await self.ready.wait()
        while True:
            key = await self.work.get()
            self.dirty.discard(key)
            await self.reconcile(key)
            self.wake.set()

    async def pod_changed(self, pod: PodView) -> None:
        """A pod changed: its job is reconciled; any GPU pod's change may free capacity."""
        if pod.job:
            self.enqueue((pod.namespace, pod.job))
        elif pod.requests:
            self.wake.set()

    def forget(self, key: Key) -> None:
        self.locks.pop(key, None)
        self.superseded.pop(key, None)
        self.queued.discard(key)
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

    def _schedule(self, key: Key, when: datetime) -> None:
        if self.recheck.get(key) != when:  # else that entry is in the heap already
            self.recheck[key] = when
            heapq.heappush(self.due, (when, key))

    def _queued(self, key: Key, job: TrainingJob | Unreadable) -> None:
        if isinstance(job, TrainingJob) and (job.status.phase is Phase.PENDING
                                             or job.status.phase is None):
            self.queued.add(key)
        else:
            self.queued.discard(key)

    def _stale(self, key: Key, job: TrainingJob | Unreadable) -> bool:
        seen = self.superseded.get(key)
        if seen is not None and seen != job.metadata.resource_version:
            del self.superseded[key]  # the index caught up
            return False
        return seen is not None

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
        keys = {(p.namespace, p.job) for p in _values(self.indexes.pods, name)
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
            self.enqueue(key)
        self.wake.set()

    async def reconcile(self, key: Key) -> None:
        if self.indexes is None or not self.ready.is_set() or not self.leading():
            return
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            job = self._job(key)
            if job is None or job.metadata.deletion_timestamp:
                self.queued.discard(key)
                return  # garbage collection removes the pods; nothing to decide
            self._queued(key, job)
            if self._stale(key, job):
                return
            now = datetime.now(UTC)
            if isinstance(job, Unreadable):
                decision = lifecycle.unreadable(job, now)
            else:
                pods = self._pods(key)
                decision = lifecycle.decide(job, pods, now, self.settings,
                                            self._snapshot(job, pods, now))
            if decision.recheck_at is not None:
                self._schedule(key, decision.recheck_at)
            else:
                self.recheck.pop(key, None)
            try:
                await self.apply(job, decision, now)
            except NotLeaderError:
                return  # the lease lapsed mid-decision: the next leader re-decides
            except Exception:  # the API failed us: try again from fresh state soon
                log.exception("reconciling %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
                self._schedule(key, now + timedelta(seconds=RETRY_SECONDS))

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
            self.superseded[(job.metadata.namespace, job.metadata.name)] = \
                job.metadata.resource_version
            old = job.status if isinstance(job, TrainingJob) else TrainingJobStatus()
            self.metrics.transition(old, decision.status, now)
            if isinstance(job, TrainingJob):
                job = job.model_copy(update={
                    "status": decision.status,
                    "metadata": job.metadata.model_copy(update={"resource_version": written})})
        for action in decision.actions:
            assert isinstance(job, TrainingJob), "an unreadable job gets no actions"
            try:
                rejected = await self._act(job, action)
            except PassingRefusalError as err:  # the status stands: its next reconcile acts again
                key = (job.metadata.namespace, job.metadata.name)
                log.warning("%s/%s: %s; trying again in %ss", *key, err, RETRY_SECONDS)
                self._schedule(key, now + timedelta(seconds=RETRY_SECONDS))
                break
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
            if created.passing:
                raise PassingRefusalError(created.rejected or "")
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
        self.next_pass = None
        jobs = self._jobs()
        self.metrics.census(jobs.values())
        self.grants = capacity.still_granted(self.grants, jobs)
        if not self.queued:
            return
        pending = {k: j for k, j in jobs.items() if k not in self.grants and not self._stale(k, j)
                   and ((j.status.phase is Phase.PENDING and not j.spec.stop)
                        or lifecycle.new_in_queue(j))}
        if not pending:
            return
        all_nodes = self._nodes()
        usage = [p for n in self.indexes.pods if isinstance(n, str)
                 for p in self.indexes.pods[n]]
        pods = {k: self._pods(k) for k, j in jobs.items() if j.status.phase in ADMITTED}
        free = capacity.free_gpus(jobs, self.grants, pods, all_nodes, usage)
        now = datetime.now(UTC)
        window = timedelta(seconds=self.settings.backfill_window_seconds)
        candidates = [queue.candidate(k, j) for k, j in pending.items()]
        plan = queue.plan(candidates, all_nodes, free, now, window)
        self._pass_at(min((c.waiting_since + window for c in candidates
                           if c.waiting_since and c.waiting_since + window > now),
                          default=None))
        await _each(self._admit(key, pending[key], placement, now)
                    for key, placement in plan.admit.items())
        new = [w for w in plan.waiting if pending[w.key].status.phase is None]
        await _each(self._locked(pending[w.key], lifecycle.queued(
            pending[w.key], w.reason, waiting.waiting_message(pending[w.key], w),
            waiting.queue_info(w, now), now, self.settings), now) for w in new)
        await self._explain(pending, [w for w in plan.waiting
                                      if pending[w.key].status.phase is not None], now)

    async def _admit(self, key: Key, job: TrainingJob, placement: list[str],
                     now: datetime) -> None:
        version = await self._locked(job, lifecycle.admit(job, placement, now, self.settings),
                                     now)
        if version is not None:
            self.grants[key] = capacity.granted(job, version, placement)

    async def _locked(self, job: TrainingJob, decision: Decision, now: datetime) -> str | None:
        key = (job.metadata.namespace, job.metadata.name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            return await self.apply(job, decision, now)

    async def _explain(self, pending: dict[Key, TrainingJob], waits: Iterable[queue.Waiting],
                       now: datetime) -> None:
        """Write why each job waits and where it stands, within the cluster-wide budget:
        the rest waits for the next pass."""
        due = waiting.queue_writes(pending, waits, now, self.settings)
        allowed, self.budget = self.budget.spend(len(due), time.monotonic(),
                                                 self.settings.queue_writes_per_second)
        if allowed < len(due):
            self._pass_at(now + timedelta(seconds=1))
        await _each(self._locked(job, decision, now) for job, decision in due[:allowed])

    def _pass_at(self, when: datetime | None) -> None:
        if when is not None and (self.next_pass is None or when < self.next_pass):
            self.next_pass = when

    async def sweep(self) -> None:
        now = datetime.now(UTC)
        while self.due and self.due[0][0] <= now:
            when, key = heapq.heappop(self.due)
            if self.recheck.get(key) == when:
                del self.recheck[key]
                await self.reconcile(key)

    def _sleep(self) -> float:
        """Seconds until something is due: a recheck, a queue pass, or (with leader election,
        whose lease is renewed that often anyway) the next look at the leader gauge. At rest
        with neither, the loop sleeps until an event wakes it."""
        times = [t for t in (self.due[0][0] if self.due else None, self.next_pass) if t]
        seconds = [(min(times) - datetime.now(UTC)).total_seconds()] if times else []
        if self.settings.leader_elect:
            seconds.append(self.settings.sweep_seconds)
        return max(0.0, min(seconds, default=IDLE_SECONDS))

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self._sleep())
            woken = self.wake.is_set()
            self.wake.clear()
            leading = self.leading()
            self.metrics.leader.set(int(leading))
            if not leading:
                self.metrics.census(())  # the leader reports the jobs; a standby reports none
                continue
            try:
                if woken or (self.next_pass and self.next_pass <= datetime.now(UTC)):
                    await self.admission_pass()
                await self.sweep()
            except Exception:  # one bad pass must not end the loop
                log.exception("admission/sweep pass failed; retrying on the next tick")
                self._pass_at(datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS))
            # Events that arrive meanwhile are taken together by the next pass.
            await asyncio.sleep(self.settings.admission_interval_seconds)
