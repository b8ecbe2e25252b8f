"""Plain-data TrainingJobs and pods for the plugin's pure modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trainingjob_operator.models import TrainingJob

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-01-01T11:55:00Z"  # 5 minutes before NOW


def job(name: str = "llama-ft", namespace: str = "team-a", status: dict[str, Any] | None = None,
        created: str = CREATED, **spec: Any) -> TrainingJob:
    return TrainingJob.model_validate({
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"image": "team/train:1.4", **spec}, "status": status or {}})


def entry(phase: str, reason: str, time: str, message: str = "",
          attempt: int = 1) -> dict[str, Any]:
    return {"phase": phase, "reason": reason, "time": time, "message": message,
            "attempt": attempt}


HISTORY = [
    entry("Pending", "WaitingForCapacity", "2026-01-01T11:55:00Z",
          "queued: needs 16 GPUs (2 workers x 8 nvidia.com/gpu)"),
    entry("Created", "Admitted", "2026-01-01T11:55:42Z", "admitted: 16 GPUs reserved"),
    entry("Deploying", "CreatingWorkers", "2026-01-01T11:55:43Z",
          "2 worker pods created; scheduling, pulling images"),
    entry("Running", "WorkersRunning", "2026-01-01T11:56:13Z", "all 2 workers are running"),
]


def running(**spec: Any) -> TrainingJob:
    return job(workers=2, gpusPerWorker=8, status={
        "phase": "Running", "reason": "WorkersRunning", "message": "all 2 workers are running",
        "attempt": 1, "workers": {"total": 2, "ready": 2}, "workerSummary": "2/2", "gpus": 16,
        "startTime": "2026-01-01T11:55:43Z", "phaseTime": "2026-01-01T11:56:13Z",
        "history": HISTORY}, **spec)


def completed() -> TrainingJob:
    return job(workers=2, gpusPerWorker=8, status={
        "phase": "Completed", "reason": "Succeeded", "message": "all 2 workers exited 0",
        "attempt": 1, "workers": {"total": 2, "ready": 0, "succeeded": 2}, "gpus": 16,
        "startTime": "2026-01-01T11:55:43Z", "completionTime": "2026-01-01T11:58:13Z",
        "history": [*HISTORY, entry("Completed", "Succeeded", "2026-01-01T11:58:13Z",
                                    "all 2 workers exited 0")]})


def pending(position: int = 3, namespace_position: int = 2) -> TrainingJob:
    return job(workers=2, gpusPerWorker=8, status={
        "phase": "Pending", "reason": "QueuedBehindHigherPriority",
        "message": "queued: needs 16 GPUs (2 workers x 8 nvidia.com/gpu), 8 free, but "
                   "team-b/big (priority 10) is ahead in the queue and waits for the same nodes",
        "attempt": 1, "gpus": 16,
        "queue": {"position": position, "namespacePosition": namespace_position,
                  "gpusNeeded": 16, "gpusFree": 8, "largestNodeGpus": 8,
                  "updatedTime": "2026-01-01T11:59:58Z"},
        "history": [HISTORY[0]]})


def pod(index: int, *, job_name: str = "llama-ft", node: str | None = "gpu-node-0",
        phase: str = "Running", main: dict[str, Any] | None = None,
        init: list[dict[str, Any]] | None = None, deleting: bool = False,
        conditions: list[dict[str, Any]] | None = None, attempt: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{job_name}-worker-{index}", "namespace": "team-a",
                            "labels": {"training.dev/job-name": job_name,
                                       "training.dev/worker-index": str(index),
                                       "training.dev/attempt": str(attempt)}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:59Z"
    state = main if main is not None else {"running": {"startedAt": CREATED}}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or [],
                              "containerStatuses": [{"name": "trainer", "state": state,
                                                     "ready": "running" in state}]}
    if init is not None:
        status["initContainerStatuses"] = init
    spec: dict[str, Any] = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec, "status": status}
