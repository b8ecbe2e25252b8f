"""The imperative shell: feeds the informers' picture to the pure core and carries out its
decisions, in parts that each own their state: the work queue (workqueue.py, the only
caller of `reconcile`), admission (admission.py), the writer (writer.py) and the typed
views of the stores (views.py), all on one injected clock.

One loop task runs the admission pass (serially, so GPUs are never double-booked) when
capacity or the queue may have changed, and hands jobs whose time has come to the work
queue. No per-object timers, daemons or polling; no GET or LIST in steady state; at rest,
nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from trainingjob_operator import capacity, lifecycle, nodes, refusals
from trainingjob_operator.admission import Admission
from trainingjob_operator.clock import Clock, SystemClock
from trainingjob_operator.decision import Decision
from trainingjob_operator.isolation import Faults
from trainingjob_operator.kube import NotLeaderError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.nodes import NodeMemory, NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.views import Views
from trainingjob_operator.vocabulary import ADMITTED, Key
from trainingjob_operator.workqueue import RETRY_SECONDS, WorkQueue
from trainingjob_operator.writer import Api, Writer

log = logging.getLogger(__name__)
WORKERS = 16  # jobs reconciled at once (each under its own lock)
IDLE_SECONDS = 3600.0  # nothing due and no election: sleep until woken


@dataclass
class Controller:
    api: Api
    settings: Settings
    views: Views
    clock: Clock = field(default_factory=SystemClock)
    # Only the leader decides and writes; a standby's handlers and loop do nothing.
    leading: Callable[[], bool] = lambda: True
    metrics: Metrics = field(default_factory=Metrics)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by each informer once its first list is in (informer.py).
    synced: list[asyncio.Event] = field(default_factory=list)
    node_memory: NodeMemory = field(default_factory=NodeMemory)
    # Each node as the queue last read it (capacity, labels, taints, readiness).
    node_views: dict[str, NodeView] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tick = asyncio.Event()  # the loop has something to look at
        self.pass_wanted = False     # ...and it is an admission pass
        self.work = WorkQueue(self.clock, sooner=self.tick.set)
        self.faults = Faults(self.settings, self.views.pods.of_job)
        self.writer = Writer(self.api, self.settings, self.faults, self.work, self.metrics,
                             self.wake)
        self.admission = Admission(self.views, self.writer, self.faults, self.work,
                                   self.settings, self.clock, self.metrics)

    async def become_ready(self) -> None:
        """Ready once every informer's first list is in: no decision is made on a partial
        picture."""
        for synced in self.synced:
            await synced.wait()
        self.ready.set()

    def wake(self) -> None:
        """Capacity or the queue may have changed: run an admission pass."""
        self.pass_wanted = True
        self.tick.set()

    # -- what the informers report ---------------------------------------------------------
    def job_changed(self, key: Key, job: TrainingJob | Unreadable | None) -> None:
        if job is None:
            self.forget(key)
            return
        if self.admission.track(key, job):
            self.wake()  # a new job, or one queued again
        self.work.add(key)

    def pod_changed(self, before: PodView | None, after: PodView | None) -> None:
        """A worker's change is its job's; any pod that stops holding GPUs frees them."""
        pod = after or before
        if pod is not None and pod.job:
            self.work.add((pod.namespace, pod.job))
        if capacity.freed(before, after):
            self.wake()

    def node_changed(self, name: str, view: NodeView | None) -> None:
        """A node in trouble has its jobs judged; one that differs in what the queue reads
        (a heartbeat alone changes nothing) may have changed capacity."""
        if self.ready.is_set() and (view is None or not view.ready):
            self.node_trouble(name, deleted=view is None)
        before = self.node_views.pop(name, None)
        if view is not None:
            self.node_views[name] = view
        if view is None or before != view:
            self.wake()

    def forget(self, key: Key) -> None:
        self.work.forget(key)
        self.faults.forget(key)
        self.writer.forget(key)
        self.admission.forget(key)
        self.wake()

    def node_trouble(self, name: str, deleted: bool) -> None:
        """A node went NotReady or away: the jobs that run or are reserved there are
        reconciled (by the work queue, not here: a node with many jobs must not hold up the
        node stream)."""
        if deleted:
            self.node_memory = self.node_memory.node_deleted(name)
        if not self.leading():
            return  # a standby only keeps track; the leader judges the jobs
        keys = {(p.namespace, p.job) for p in self.views.pods.on_node(name)
                if p.job and not p.finished}  # finished jobs keep their pods: skip those
        for key, job in self.views.jobs.live().items():
            res = job.status.reservation
            if job.status.phase in ADMITTED and res and name in res.nodes:
                keys.add(key)
        for key in sorted(keys):
            self.work.add(key)

    async def resync(self) -> None:
        """Just elected: re-decide every job, since a standby acted on no event."""
        await self.ready.wait()
        keys = self.views.jobs.keys()
        log.info("leader: re-deciding %d TrainingJobs", len(keys))
        for key in keys:
            self.work.add(key)
        self.wake()

    # -- one job ---------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> None:
        """Decide and apply one job's next step. Called by the work queue only, under the
        job's lock."""
        if not self.ready.is_set() or not self.leading():
            return
        job = self.views.jobs.get(key)
        if job is None or job.metadata.deletion_timestamp:
            return  # garbage collection removes the pods; nothing to decide
        if self.writer.stale(key, job):
            return
        now = self.clock.now()
        pods = self.views.pods.of_job(key)
        if isinstance(job, Unreadable):
            decision = refusals.unreadable(job, pods, now)
        else:
            decision = self._decide(job, pods, now)
        if decision.recheck_at is not None:
            self.work.add_at(key, decision.recheck_at)
        else:
            self.work.cancel(key)
        try:
            await self.writer.apply(job, decision, now)
        except NotLeaderError:
            return  # the lease lapsed mid-decision: the next leader re-decides
        except Exception:  # the API failed us: try again from fresh state soon
            log.exception("reconciling %s/%s failed; retrying in %ss", *key, RETRY_SECONDS)
            self.work.retry(key)

    def _decide(self, job: TrainingJob, pods: list[PodView], now: datetime) -> Decision:
        """decide(), isolated: a job whose own data makes it raise ends InvalidSpec."""
        def step(j: TrainingJob) -> Decision:
            return lifecycle.decide(j, pods, now, self.settings, self._snapshot(j, pods, now))
        try:
            return step(job)
        except Exception as err:
            return self.faults.end(job, "decide its next step", err, step, now)

    def _snapshot(self, job: TrainingJob, pods: list[PodView], now: datetime) -> nodes.Snapshot:
        """The job's nodes as the informer and the node memory show them."""
        names = nodes.job_nodes(job, pods)
        found = {n: v for n in names if (v := self.views.nodes.get(n)) is not None}
        snap, self.node_memory = nodes.snapshot(self.node_memory, names, found, now)
        return snap

    # -- the tasks -------------------------------------------------------------------------
    async def worker(self) -> None:
        await self.ready.wait()
        await self.work.work(self.reconcile)

    def _sleep(self) -> float:
        """Seconds until something is due: a job's time, a queue pass, or (with leader
        election, whose lease is renewed that often anyway) the next look at the leader
        gauge. At rest with none, the loop sleeps until an event wakes it."""
        times = [t for t in (self.work.next_at(), self.admission.next_pass) if t]
        seconds = [(min(times) - self.clock.now()).total_seconds()] if times else []
        if self.settings.leader_elect:
            seconds.append(self.settings.leader_check_seconds)
        return max(0.0, min(seconds, default=IDLE_SECONDS))

    async def step(self) -> None:
        """One turn of the loop: the admission pass if one is wanted or due, then the jobs
        whose time has come into the work queue."""
        leading = self.leading()
        self.metrics.leader.set(int(leading))
        if not leading:
            self.metrics.census(())  # the leader reports the jobs; a standby reports none
            return
        wanted, self.pass_wanted = self.pass_wanted, False
        try:
            if wanted or self.admission.due(self.clock.now()):
                await self.admission.run()
        except Exception:  # one bad pass must not end the loop
            log.exception("admission pass failed; retrying in %ss", RETRY_SECONDS)
            self.admission.pass_at(self.clock.now() + timedelta(seconds=RETRY_SECONDS))
        self.work.release(self.clock.now())

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.tick.wait(), timeout=self._sleep())
            self.tick.clear()
            await self.step()
            # Events that arrive meanwhile are taken together by the next pass.
            await asyncio.sleep(self.settings.admission_interval_seconds)
