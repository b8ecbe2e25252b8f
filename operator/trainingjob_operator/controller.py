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
from typing import Any, Protocol, TypeVar

from trainingjob_operator import capacity, faults, lifecycle, nodes, queue, render, waiting
from trainingjob_operator.decision import (
    STOP_DEADLINE_SECONDS,
    Action,
    CreatePod,
    CreateService,
    Decision,
    DeleteJob,
    DeletePod,
    Event,
    StopPod,
)
from trainingjob_operator.kube import (
    Created,
    Kube,
    NotLeaderError,
    PassingRefusalError,
    StatusRefusedError,
)
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, TrainingJobStatus, Unreadable
from trainingjob_operator.nodes import NodeMemory, NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import dump_status
from trainingjob_operator.vocabulary import ADMITTED, EventType, Key, Phase, Reason

log = logging.getLogger(__name__)
RETRY_SECONDS = 5
WORKERS = 16  # jobs reconciled at once (each under its own lock)
IDLE_SECONDS = 3600.0  # nothing due and no election: sleep until woken
WRITERS = 32  # jobs whose writes are in flight at once, within one admission pass
# A create answered with an error that is neither surely the object's nor the cluster's (a
# 500, an unknown 4xx; kube.answer) is tried this many times in a row, the waits doubling
# from RETRY_SECONDS up to RETRY_MAX_SECONDS, before the job ends with the API's message.
CREATE_TRIES = 5
RETRY_MAX_SECONDS = 60
T = TypeVar("T")
# One job's pass of the queue: (job, the decision that ends it) for the jobs whose own step
# raised (Controller._guard).
Broken = dict[Key, tuple[TrainingJob, Decision]]


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
    # Jobs whose own data made a step raise, with the resourceVersion whose traceback was
    # logged: once per version, never every pass.
    faulted: dict[Key, str] = field(default_factory=dict)
    # Creates in a row answered with a flaky error, per job (reset by a create that works).
    create_failures: dict[Key, int] = field(default_factory=dict)

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
            await self._isolated(key)
            self.wake.set()

    async def pod_changed(self, pod: PodView) -> None:
        """A pod changed: its job is reconciled; any GPU pod's change may free capacity."""
        if pod.job:
            self.enqueue((pod.namespace, pod.job))
        elif pod.requests:
            self.wake.set()

    def forget(self, key: Key) -> None:
        self.locks.pop(key, None)
        self.faulted.pop(key, None)
        self.create_failures.pop(key, None)
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
            await self._isolated(key)

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
            pods = self._pods(key)
            if isinstance(job, Unreadable):
                decision = lifecycle.unreadable(job, pods, now)
            else:
                decision = self._decide(job, pods, now)
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

    async def _isolated(self, key: Key) -> None:
        """reconcile(key), which answers its own job's faults and the API's; whatever else
        goes wrong there is one job's, and must not end a worker task, a node's or the
        sweep's other jobs."""
        try:
            await self.reconcile(key)
        except Exception:
            log.exception("reconciling %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
            self._schedule(key, datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS))

    def _decide(self, job: TrainingJob, pods: list[PodView], now: datetime) -> Decision:
        """decide(), isolated: a job whose own data makes it raise ends InvalidSpec."""
        def step(j: TrainingJob) -> Decision:
            return lifecycle.decide(j, pods, now, self.settings, self._snapshot(j, pods, now))
        try:
            return step(job)
        except Exception as err:
            return self._fault(job, "decide its next step", err, step, pods, now)

    def _fault(self, job: TrainingJob, step: str, err: Exception,
               again: Callable[[TrainingJob], object], pods: list[PodView],
               now: datetime) -> Decision:
        """The decision that ends a job whose own data made `step` raise (`again` runs that
        step on a variant of the job, to find the field to blame). The traceback is logged
        once per resourceVersion of the job."""
        key = (job.metadata.namespace, job.metadata.name)
        if self.faulted.get(key) != job.metadata.resource_version:
            self.faulted[key] = job.metadata.resource_version
            log.error("%s/%s: could not %s; the job ends InvalidSpec", *key, step,
                      exc_info=err)
        try:
            problem = faults.message(step, faults.blame(job, again), err)
            return lifecycle.unusable(job, pods, problem, now, self.settings)
        except Exception:  # not even its end can be decided: leave it, logged once above
            return Decision()

    def _guard(self, job: TrainingJob, step: str, run: Callable[[TrainingJob], T],
               broken: Broken, now: datetime) -> T | None:
        """`run(job)`, one job's step of a queue pass; None when the job's own data made it
        raise: the job is then in `broken` with the decision that ends it, and the pass goes
        on with the others."""
        try:
            return run(job)
        except Exception as err:
            key = (job.metadata.namespace, job.metadata.name)
            broken[key] = (job, self._fault(job, step, err, run, self._pods(key), now))
            return None

    async def apply(self, job: TrainingJob | Unreadable, decision: Decision,
                    now: datetime) -> str | None:
        """The one way a decision reaches the API. Status first, under the resourceVersion
        precondition, then the actions, then the Event, then the queue's wake-up: a decision
        made on stale state is refused before it can touch a pod, and a crash between the
        steps leaves a status from which the next reconcile finishes the actions. Returns
        the resourceVersion written, None when nothing was."""
        written = None
        if decision.status is not None:
            try:
                written = await self.kube.patch_status(job.metadata,
                                                       dump_status(decision.status))
            except StatusRefusedError as err:
                await self._unrecordable(job, decision, str(err))
                return None
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
            try:
                ended = await self._act(job, action, now)
            except PassingRefusalError as err:  # the status stands: its next reconcile acts again
                key = (job.metadata.namespace, job.metadata.name)
                wait = min(RETRY_MAX_SECONDS,
                           RETRY_SECONDS * 2 ** max(0, self.create_failures.get(key, 0) - 1))
                log.warning("%s/%s: %s; trying again in %ss", *key, err, wait)
                self._schedule(key, now + timedelta(seconds=wait))
                break
            if ended is not None:  # the API refused what the job needs, or it cannot render
                assert isinstance(job, TrainingJob)
                await self._announce(job, decision)
                await self.apply(job, ended, now)
                return written
        await self._announce(job, decision)
        return written

    async def _unrecordable(self, job: TrainingJob | Unreadable, decision: Decision,
                            why: str) -> None:
        """The API server refuses any status for this stored object (StatusRefusedError): say
        so once per resourceVersion, in the log and in an Event (a separate object, always
        writable), and free what the job holds (its pods deleted or stopped, never created).
        It is not tried again: only a new object, or a fixed CRD, can change the answer."""
        key = (job.metadata.namespace, job.metadata.name)
        if self.faulted.get(key) == job.metadata.resource_version:
            return
        self.faulted[key] = job.metadata.resource_version
        log.error("%s/%s: the API server refuses its status (%s); delete the TrainingJob and "
                  "create it again", *key, why)
        for action in decision.actions:
            if isinstance(action, DeletePod | StopPod):
                await self._act(job, action, datetime.now(UTC))
        for e in decision.events or (Event(EventType.WARNING, Reason.INVALID_SPEC,
                                           str(decision.status.message if decision.status
                                               else "")),):
            await self.kube.event(job.metadata, EventType.WARNING, e.reason,
                                  f"{e.message}; the API server refuses this job's status "
                                  f"({why}): delete the TrainingJob and create it again")
        if decision.wakes_queue:
            self.wake.set()

    async def _act(self, job: TrainingJob | Unreadable, action: Action,
                   now: datetime) -> Decision | None:
        """Carry out one action; the decision that ends the job when the API refused what it
        needs (or its pods cannot be rendered). PassingRefusalError: the same later."""
        ns = job.metadata.namespace
        if isinstance(action, DeletePod):  # the one action an unreadable job gets
            await self.kube.delete_pod(ns, action.name, action.grace_seconds)
            return None
        assert isinstance(job, TrainingJob), "an unreadable job gets only DeletePod"
        if isinstance(action, StopPod):  # its GPUs free when it is Failed
            await self.kube.stop_pod(ns, action.name, action.uid, STOP_DEADLINE_SECONDS)
        elif isinstance(action, DeleteJob):
            log.info("deleting %s/%s: its ttlSecondsAfterFinished is over", ns,
                     job.metadata.name)
            await self.kube.delete_trainingjob(job.metadata, action.resource_version)
        elif isinstance(action, CreateService):
            def service(j: TrainingJob) -> dict[str, Any]:
                return render.workers_service(j, self.settings)
            return await self._create(job, "render the workers' Service", service, None, now)
        elif isinstance(action, CreatePod):
            index, node = action.index, action.node

            def pod(j: TrainingJob) -> dict[str, Any]:
                return render.worker_pod(j, index, node, self.settings)
            return await self._create(job, f"render worker {index}'s pod", pod, index, now)
        return None

    async def _create(self, job: TrainingJob, step: str,
                      manifest: Callable[[TrainingJob], dict[str, Any]], worker: int | None,
                      now: datetime) -> Decision | None:
        """Render and create a worker pod (`worker`) or the Service (None); every answer of
        the API ends somewhere: created, a refusal (the job ends with it), a name taken by a
        foreign object, or a retry (bounded unless the failure is the cluster's)."""
        key = (job.metadata.namespace, job.metadata.name)
        try:
            body = manifest(job)
        except Exception as err:
            return self._fault(job, step, err, manifest, self._pods(key), now)
        created: Created = await self.kube.create(body)
        if created.ok:
            self.create_failures.pop(key, None)
            return None
        why = created.rejected or ""
        if created.taken:
            return lifecycle.name_taken(job, body["kind"], body["metadata"]["name"],
                                        created.owner_uid, now, self.settings)
        if created.passing:
            raise PassingRefusalError(why)
        if created.flaky:
            tries = self.create_failures[key] = self.create_failures.get(key, 0) + 1
            if tries < CREATE_TRIES:
                raise PassingRefusalError(f"{why} (try {tries} of {CREATE_TRIES})")
            self.create_failures.pop(key, None)
            why = f"{why} (answered so {tries} times in a row)"
        if worker is None:
            return lifecycle.service_rejected(job, why, now, self.settings)
        return lifecycle.pod_rejected(job, worker, why, now, self.settings)

    async def _announce(self, job: TrainingJob | Unreadable, decision: Decision) -> None:
        for e in decision.events if decision.status is not None else ():
            await self.kube.event(job.metadata, e.type, e.reason, e.message)
        if decision.wakes_queue:
            self.wake.set()

    # -- the queue -------------------------------------------------------------------------
    async def admission_pass(self) -> None:
        """Admit what fits, say why the rest waits. Each job's own step (its spec checked,
        its placement, its messages, its admission) is isolated: one that raises ends that
        job InvalidSpec (`broken`) and the pass goes on with the others."""
        assert self.indexes is not None
        self.next_pass = None
        jobs = self._jobs()
        self.metrics.census(jobs.values())
        self.grants = capacity.still_granted(self.grants, jobs)
        if not self.queued:
            return
        now = datetime.now(UTC)
        broken: Broken = {}

        def queues(j: TrainingJob) -> bool:
            return ((j.status.phase is Phase.PENDING and not j.spec.stop)
                    or lifecycle.new_in_queue(j, self.settings))
        pending = {k: j for k, j in jobs.items() if k not in self.grants and not self._stale(k, j)
                   and self._guard(j, "check its spec", queues, broken, now)}
        if pending:
            await self._queue(jobs, pending, broken, now)
        await _each(self._locked(job, decision, now) for job, decision in broken.values())

    async def _queue(self, jobs: dict[Key, TrainingJob], pending: dict[Key, TrainingJob],
                     broken: Broken, now: datetime) -> None:
        assert self.indexes is not None
        all_nodes = self._nodes()
        usage = [p for n in self.indexes.pods if isinstance(n, str)
                 for p in self.indexes.pods[n]]
        pods = {k: self._pods(k) for k, j in jobs.items() if j.status.phase in ADMITTED}
        free = capacity.free_gpus(jobs, self.grants, pods, all_nodes, usage)
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
                      if (c := self._guard(j, step, candidate(k), broken, now)) is not None]
        try:
            plan = queue.plan(candidates, all_nodes, free, now, window)
        except Exception:  # some job's placement breaks the plan: find it, plan the rest
            candidates = [c for c in candidates
                          if self._guard(pending[c.key], step, alone(c.key), broken, now)]
            plan = queue.plan(candidates, all_nodes, free, now, window)
        self._pass_at(min((c.waiting_since + window for c in candidates
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
                decision = self._guard(job, "say why it waits", queued(w), broken, now)
                if decision is not None:
                    first.append((job, decision))
        await _each(self._locked(job, decision, now) for job, decision in first)
        await self._explain(pending, [w for w in plan.waiting
                                      if pending[w.key].status.phase is not None], broken, now)

    async def _admit(self, key: Key, job: TrainingJob, placement: list[str], broken: Broken,
                     now: datetime) -> None:
        decision = self._guard(job, "admit it", lambda j: lifecycle.admit(
            j, placement, now, self.settings), broken, now)
        if decision is None:
            return
        version = await self._locked(job, decision, now)
        if version is not None:
            self.grants[key] = capacity.granted(job, version, placement)

    async def _locked(self, job: TrainingJob, decision: Decision, now: datetime) -> str | None:
        """Apply under the job's lock. An API failure is not the job's fault, and no reason
        to stop the pass for the others: the job is reconciled again in RETRY_SECONDS."""
        key = (job.metadata.namespace, job.metadata.name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            try:
                return await self.apply(job, decision, now)
            except NotLeaderError:
                return None
            except Exception:
                log.exception("writing %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
                self._schedule(key, now + timedelta(seconds=RETRY_SECONDS))
                self._pass_at(now + timedelta(seconds=RETRY_SECONDS))
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
            waits = [w for w in waits if self._guard(pending[w.key], "say why it waits",
                                                     says(w), broken, now) is not None]
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
                await self._isolated(key)

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
