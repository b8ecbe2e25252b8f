"""Prometheus metrics of the queue and the lifecycle, served as text on one HTTP port.

Counters and histograms are fed from status transitions the operator wrote (so a refused,
stale write is never counted); the by-phase gauge from the admission pass, which sees every
job anyway. Names and labels are listed in docs/queue.md. One process gauge, the event loop's
live asyncio tasks, is counted when /metrics is read (no timer): a soak watches it for leaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from trainingjob_operator.models import TrainingJob, TrainingJobStatus
from trainingjob_operator.timeutil import parse_time
from trainingjob_operator.vocabulary import ADMITTED, TIMEOUT_OF, Phase

# Seconds: from a blink to a day in the queue.
BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("trainingjob_jobs", "TrainingJobs by phase.", ["phase"], registry=r)
        self.queued_gpus = Gauge("trainingjob_queue_gpus_requested",
                                 "GPUs requested by Pending TrainingJobs.", registry=r)
        self.queue_wait = Histogram("trainingjob_queue_wait_seconds",
                                    "Time an attempt spent Pending before admission.",
                                    buckets=BUCKETS, registry=r)
        self.deploy = Histogram("trainingjob_deploy_seconds",
                                "Time from admission to every worker running.",
                                buckets=BUCKETS, registry=r)
        self.admissions = Counter("trainingjob_admissions", "Gang admissions (Pending->Created).",
                                  registry=r)
        self.retries = Counter("trainingjob_retries",
                               "Gang restarts after a worker was lost to infrastructure.",
                               registry=r)
        self.timeouts = Counter("trainingjob_timeouts", "Jobs ended by a spec.timeouts limit.",
                                ["timeout"], registry=r)
        self.leader = Gauge("trainingjob_leader",
                            "1 on the replica that holds the leader lease, else 0.", registry=r)
        self.transitions = Counter("trainingjob_transitions", "Phase transitions written.",
                                   ["phase", "reason"], registry=r)
        self.tasks = Gauge("trainingjob_operator_asyncio_tasks",
                           "Live asyncio tasks of the operator's event loop.", registry=r)
        for phase in Phase:
            self.jobs.labels(phase.value)
        for kind in sorted(set(TIMEOUT_OF.values())):
            self.timeouts.labels(kind)

    def transition(self, old: TrainingJobStatus, new: TrainingJobStatus, now: datetime) -> None:
        """Count one transition written to the API (old -> new)."""
        if new.phase is None or (new.phase == old.phase and new.attempt == old.attempt):
            return
        self.transitions.labels(new.phase.value, new.reason or "").inc()
        since = parse_time(old.phase_time)
        if new.phase in ADMITTED and old.phase in (None, Phase.PENDING):
            # Admitted (one write takes it on to Deploying); a new job admitted at once
            # waited no time in the queue.
            self.admissions.inc()
            self.queue_wait.observe((now - since).total_seconds() if since else 0.0)
        elif new.phase is Phase.RUNNING:
            admitted = next((parse_time(h.time) for h in reversed(old.history)
                             if h.phase is Phase.CREATED), None)
            if admitted is not None:
                self.deploy.observe((now - admitted).total_seconds())
        elif new.phase is Phase.PENDING and old.phase is not None:
            self.retries.inc()
        kind = TIMEOUT_OF.get(new.reason or "")
        if kind is not None and new.phase.terminal:
            self.timeouts.labels(kind).inc()

    def census(self, jobs: Iterable[TrainingJob]) -> None:
        by_phase = dict.fromkeys(Phase, 0)
        queued = 0
        for job in jobs:
            if job.status.phase is not None:
                by_phase[job.status.phase] += 1
            if job.status.phase is Phase.PENDING:
                queued += job.total_gpus
        for phase, count in by_phase.items():
            self.jobs.labels(phase.value).set(count)
        self.queued_gpus.set(queued)

    def count_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        """The tasks gauge counts `loop`'s tasks when read. It is read on the HTTP server's
        thread; asyncio.all_tasks retries its copy of the task set if the loop changes it."""
        self.tasks.set_function(lambda: len(asyncio.all_tasks(loop)))

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Called on the event loop (the startup handler), whose tasks the gauge counts."""
        self.count_tasks(asyncio.get_running_loop())
        start_http_server(port, addr=address, registry=self.registry)
