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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trainingjob_operator import admission, lifecycle, render
from trainingjob_operator.kube import Kube, NotLeaderError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, TrainingJobStatus, Unreadable
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.timeutil import format_time
from trainingjob_operator.vocabulary import ADMITTED, FAILED_PHASES, Key, Phase

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


def dump_status(status: TrainingJobStatus) -> dict[str, Any]:
    out: dict[str, Any] = status.model_dump(by_alias=True, mode="json", exclude={"kopf"})
    return out


@dataclass
class Granted:
    """An admission written but not yet seen in the index: still counts as reserved."""

    resource_version: str
    attempt: int
    resource: str
    per_worker: int
    nodes: list[str]


@dataclass
class Controller:
    kube: Kube
    settings: Settings
    indexes: Indexes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    recheck: dict[Key, datetime] = field(default_factory=dict)
    granted: dict[Key, Granted] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    # Nodes seen DELETED (lost at once) and nodes missing from the index without a DELETED
    # event (e.g. removed while the operator was down): those count as NotReady since first
    # missed, so a watch that is a moment behind never fails a gang.
    deleted_nodes: set[str] = field(default_factory=set)
    missing_nodes: dict[str, datetime] = field(default_factory=dict)
    queue_tokens: float = 0.0
    queue_tokens_at: float = field(default_factory=time.monotonic)
    # Only the leader decides and writes; a standby's handlers and loop do nothing.
    leading: Callable[[], bool] = lambda: True

    def attach(self, indexes: Indexes) -> None:
        if self.indexes is None:
            self.indexes = indexes
            self.ready.set()

    def forget(self, key: Key) -> None:
        self.locks.pop(key, None)
        self.recheck.pop(key, None)
        self.granted.pop(key, None)
        self.wake.set()

    # -- one job ---------------------------------------------------------------------------
    def _job(self, key: Key) -> TrainingJob | Unreadable | None:
        assert self.indexes is not None
        found: TrainingJob | Unreadable | None = _first(self.indexes.jobs, key)
        return found

    def _pods(self, key: Key) -> list[PodView]:
        assert self.indexes is not None
        return _values(self.indexes.pods, key)

    def node(self, name: str) -> NodeView | None:
        """The node as the index shows it; None when it is known to be deleted."""
        assert self.indexes is not None
        view: NodeView | None = _first(self.indexes.nodes, name)
        if view is not None:
            self.deleted_nodes.discard(name)
            self.missing_nodes.pop(name, None)
            return view
        if name in self.deleted_nodes:
            return None
        since = self.missing_nodes.setdefault(name, datetime.now(UTC))
        return NodeView(name, {}, False, ready=False, ready_since=format_time(since))

    async def node_trouble(self, name: str, deleted: bool) -> None:
        """A node went NotReady or away: judge the jobs that run or are reserved there."""
        assert self.indexes is not None
        if deleted:
            self.deleted_nodes.add(name)
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
            if job is None:
                return
            if isinstance(job, Unreadable):
                await self._invalid(job)
                return
            if job.metadata.deletion_timestamp:
                return  # garbage collection removes the pods; nothing to decide
            now = datetime.now(UTC)
            decision = lifecycle.decide(job, self._pods(key), now, self.settings, self.node)
            try:
                await self.execute(job, decision, now)
            except NotLeaderError:
                return  # the lease lapsed mid-decision: the next leader re-decides
            except Exception:  # the API failed us: try again from fresh state soon
                log.exception("reconciling %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
                self.recheck[key] = now + timedelta(seconds=RETRY_SECONDS)

    async def _invalid(self, job: Unreadable) -> None:
        """An object the models cannot read ends in DeployFailed/InvalidSpec, once,
        instead of crashing the operator."""
        if job.phase:
            return
        status, message = lifecycle.unreadable(job.problems, datetime.now(UTC),
                                               job.metadata.generation)
        if await self.kube.patch_status(job.metadata, status):
            await self.kube.event(job.metadata, "Warning", "InvalidSpec", message)

    async def execute(self, job: TrainingJob, decision: lifecycle.Decision,
                      now: datetime) -> None:
        """Status first, then actions: a decision made on stale state is refused by the
        resourceVersion precondition before it can touch a pod, and a crash between the
        two leaves a status from which the next reconcile finishes the actions."""
        key = (job.metadata.namespace, job.metadata.name)
        if decision.recheck_at is not None:
            self.recheck[key] = decision.recheck_at
        else:
            self.recheck.pop(key, None)
        if decision.status is not None:
            written = await self.kube.patch_status(job.metadata, dump_status(decision.status))
            if written is None:
                return  # stale decision: the next event re-decides from fresh state
            self.metrics.transition(job.status, decision.status, now)
            job = job.model_copy(update={
                "status": decision.status,
                "metadata": job.metadata.model_copy(update={"resource_version": written})})
        for action in decision.actions:
            if isinstance(action, lifecycle.DeletePod):
                await self.kube.delete_pod(job.metadata.namespace, action.name,
                                           action.grace_seconds)
                self.wake.set()
            elif isinstance(action, lifecycle.StopPod):  # its GPUs free when it is Failed
                await self.kube.stop_pod(job.metadata.namespace, action.name, action.uid,
                                         lifecycle.STOP_DEADLINE_SECONDS)
            elif isinstance(action, lifecycle.CreateService):
                created = await self.kube.create(render.workers_service(job, self.settings))
                if not created.ok:
                    log.warning("service of %s/%s rejected: %s", *key, created.rejected)
            else:
                pod = render.worker_pod(job, action.index, action.node, self.settings)
                created = await self.kube.create(pod)
                if not created.ok:
                    await self._announce(job, decision)
                    rejected = lifecycle.pod_rejected(job, action.index, created.rejected or "",
                                                      now, self.settings)
                    return await self.execute(job, rejected, now)
        await self._announce(job, decision)

    async def _announce(self, job: TrainingJob, decision: lifecycle.Decision) -> None:
        """The Event of a transition that was written; wake the queue if capacity moved."""
        if decision.status is None:
            return
        if decision.event is not None:
            await self.kube.event(job.metadata, decision.event.type, decision.event.reason,
                                  decision.event.message)
        if decision.status.phase in (Phase.PENDING, *FAILED_PHASES,
                                     Phase.COMPLETED, Phase.STOPPED):
            self.wake.set()

    # -- the queue -------------------------------------------------------------------------
    def _capacity(self, jobs: Mapping[Key, TrainingJob]) -> dict[str, dict[str, int]]:
        """Free GPUs per resource and node: allocatable - bound pods - reservations."""
        assert self.indexes is not None
        nodes = [_first(self.indexes.nodes, n) for n in self.indexes.nodes]
        usage_pods = [p for n in self.indexes.usage for p in self.indexes.usage[n]]
        reserved: dict[str, dict[str, int]] = {}
        for key, job in jobs.items():
            g = self.granted.get(key)
            if g is not None:
                for node in g.nodes:
                    pool = reserved.setdefault(g.resource, {})
                    pool[node] = pool.get(node, 0) + g.per_worker
                continue
            res = job.status.reservation
            if job.status.phase not in ADMITTED or res is None or \
                    res.attempt != job.status.attempt:
                continue
            bound = {p.index for p in self._pods(key)
                     if p.attempt == res.attempt and p.node_name}
            pool = reserved.setdefault(job.spec.gpu_resource, {})
            for index, node in enumerate(res.nodes):
                if index not in bound:
                    pool[node] = pool.get(node, 0) + job.spec.gpus_per_worker
        resources = {j.spec.gpu_resource for j in jobs.values()}
        return {r: admission.free(r, [n for n in nodes if n], admission.used(r, usage_pods),
                                  reserved.get(r, {})) for r in resources}

    def _prune_granted(self, jobs: Mapping[Key, TrainingJob]) -> None:
        """Forget admissions the index now shows (or that no longer apply)."""
        for key, g in list(self.granted.items()):
            job = jobs.get(key)
            if (job is None or job.metadata.resource_version == g.resource_version
                    or job.status.phase is not Phase.PENDING or job.status.attempt != g.attempt):
                del self.granted[key]

    async def admission_pass(self) -> None:
        assert self.indexes is not None
        jobs: dict[Key, TrainingJob] = {}
        for key in list(self.indexes.jobs):
            job = self._job(key)
            if isinstance(job, TrainingJob) and not job.metadata.deletion_timestamp:
                jobs[key] = job
        self.metrics.census(jobs.values())
        self._prune_granted(jobs)
        pending = {k: j for k, j in jobs.items()
                   if j.status.phase is Phase.PENDING and not j.spec.stop and k not in self.granted}
        if not pending:
            return
        nodes = [n for n in (_first(self.indexes.nodes, k) for k in self.indexes.nodes) if n]
        now = datetime.now(UTC)
        plan = admission.plan([admission.candidate(k, j) for k, j in pending.items()], nodes,
                              self._capacity(jobs), now,
                              timedelta(seconds=self.settings.backfill_window_seconds))
        for key, placement in plan.admit.items():
            job = pending[key]
            async with self.locks.setdefault(key, asyncio.Lock()):
                status = lifecycle.admit(job, placement, now, self.settings)
                version = await self.kube.patch_status(job.metadata, dump_status(status))
                if version is None:
                    continue
                self.metrics.transition(job.status, status, now)
                self.granted[key] = Granted(version, job.status.attempt, job.spec.gpu_resource,
                                            job.spec.gpus_per_worker, placement)
                await self.kube.event(job.metadata, "Normal", "Admitted", str(status.message))
        await self._explain(pending, plan.waiting, now)

    async def _explain(self, pending: Mapping[Key, TrainingJob],
                       waiting: Iterable[admission.Waiting], now: datetime) -> None:
        """Write why each job waits and where it stands, within a cluster-wide write budget:
        changed reasons first, then from the head of the queue. The rest waits for the
        next pass, so 10,000 Pending jobs never turn one admission into 10,000 writes."""
        updates = []
        for w in waiting:
            job = pending[w.key]
            queued = lifecycle.waiting(job, w, now, self.settings)
            if queued is not None:
                updates.append((queued.reason == job.status.reason, w.position, job, queued))
        clock = time.monotonic()
        rate = self.settings.queue_writes_per_second
        self.queue_tokens = min(rate * 5, self.queue_tokens + (clock - self.queue_tokens_at) * rate)
        self.queue_tokens_at = clock
        for _, _, job, queued in sorted(updates, key=lambda u: (u[0], u[1])):
            if self.queue_tokens < 1:
                break
            self.queue_tokens -= 1
            await self.kube.patch_status(job.metadata, dump_status(queued))

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
