"""The pure work of one admission pass at scale, no cluster: building the candidates,
`queue.plan()` and the waiting statuses for many Pending jobs on many busy nodes."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from trainingjob_operator import queue, waiting
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.settings import Settings


def queue_pass(jobs: int, nodes: int, repeat: int = 5) -> None:
    """Time one admission pass's pure work: plan() and the waiting statuses, medians."""
    now = datetime.now(UTC)
    settings = Settings()
    views = [NodeView(f"n{i}", {"nvidia.com/gpu": 8}, True, {"pool": "a" if i % 2 else "b"})
             for i in range(nodes)]
    free = {"nvidia.com/gpu": {v.name: i % 3 for i, v in enumerate(views)}}  # a busy cluster
    shapes = [(1, 1), (1, 2), (2, 4), (1, 8), (4, 8), (2, 2)]
    pending = {}
    for i in range(jobs):
        workers, gpus = shapes[i % len(shapes)]
        created = (now - timedelta(seconds=jobs - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        template = {"spec": {"nodeSelector": {"pool": "a"}}} if i % 5 == 0 else None
        pending[("bench", f"job-{i}")] = TrainingJob.model_validate({
            "metadata": {"name": f"job-{i}", "namespace": "bench", "creationTimestamp": created},
            "spec": {"image": "x", "workers": workers, "gpusPerWorker": gpus,
                     "priority": i % 3, "template": template},
            "status": {"phase": "Pending", "reason": "WaitingForCapacity", "phaseTime": created}})
    plans, explains = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        plan = queue.plan([queue.candidate(k, j) for k, j in pending.items()], views,
                          free, now, timedelta(minutes=10))
        plans.append(time.perf_counter() - started)
        started = time.perf_counter()
        waiting.queue_writes(pending, plan.waiting, now, settings)
        explains.append(time.perf_counter() - started)
    print(f"queue pass: {jobs} Pending jobs on {nodes} nodes: plan median "
          f"{statistics.median(plans) * 1000:.0f} ms, waiting statuses median "
          f"{statistics.median(explains) * 1000:.0f} ms ({len(plan.admit)} admitted, "
          f"{len(plan.waiting)} waiting)", flush=True)
