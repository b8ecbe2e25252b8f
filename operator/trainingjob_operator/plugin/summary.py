"""Pure: the facts every command shows about a job, as plain data with stable keys.

`job_summary` is the `-o json` shape of `list` items and the base of `view`'s; the keys are
documented in main.py's --help and docs/plugin.md, and tests hold them stable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.plugin.timefmt import seconds_between
from trainingjob_operator.vocabulary import (
    ACTIVE,
    ATTEMPT_LABEL,
    INDEX_LABEL,
    MAIN_CONTAINER,
    Phase,
    Reason,
)

SUMMARY_KEYS = ("name", "namespace", "phase", "reason", "message", "active", "attempt",
                "priority", "workers", "gpus", "gpusPerWorker", "gpuResource", "queue",
                "stopRequested", "created", "started", "finished", "phaseSince", "ageSeconds")


def is_active(job: TrainingJob | Unreadable) -> bool:
    """Active = not finished. A job the operator has not seen yet (no phase) is active: it
    is about to be queued. An unreadable job counts by the phase it stored, if any."""
    phase = job.status.phase if isinstance(job, TrainingJob) else _phase(job.phase)
    return phase is None or phase in ACTIVE


def _phase(value: str | None) -> Phase | None:
    try:
        return Phase(value) if value else None
    except ValueError:
        return None


def worker_counts(job: TrainingJob) -> tuple[int, int]:
    """(ready, total) workers, from status when the operator wrote them."""
    counts = job.status.workers
    if counts is not None and counts.total:
        return counts.ready, counts.total
    return 0, job.spec.workers


def gpus(job: TrainingJob) -> int:
    return job.status.gpus if job.status.gpus is not None else job.total_gpus


def queue_position(job: TrainingJob) -> int | None:
    """Cluster-wide place in the GPU queue; only while Pending (a stale value is not shown)."""
    if job.status.phase is not Phase.PENDING or job.status.queue is None:
        return None
    return job.status.queue.position


def job_summary(job: TrainingJob, now: datetime) -> dict[str, Any]:
    status, spec, meta = job.status, job.spec, job.metadata
    ready, total = worker_counts(job)
    counts = status.workers
    queue = status.queue if status.phase is Phase.PENDING else None
    age = seconds_between(meta.creation_timestamp, now)
    return {
        "name": meta.name,
        "namespace": meta.namespace,
        "phase": status.phase.value if status.phase else None,
        "reason": status.reason,
        "message": status.message,
        "active": is_active(job),
        "attempt": status.attempt,
        "priority": spec.priority,
        "workers": {"ready": ready, "total": total,
                    "succeeded": counts.succeeded if counts else 0,
                    "failed": counts.failed if counts else 0},
        "gpus": gpus(job),
        "gpusPerWorker": spec.gpus_per_worker,
        "gpuResource": spec.gpu_resource,
        "queue": None if queue is None else {
            "position": queue.position, "namespacePosition": queue.namespace_position,
            "gpusNeeded": queue.gpus_needed, "gpusFree": queue.gpus_free,
            "largestNodeGpus": queue.largest_node_gpus, "updated": queue.updated_time},
        "stopRequested": spec.stop,
        "created": meta.creation_timestamp,
        "started": status.start_time,
        "finished": status.completion_time,
        "phaseSince": status.phase_time,
        "ageSeconds": None if age is None else int(age),
    }


def unreadable_summary(job: Unreadable, now: datetime) -> dict[str, Any]:
    """The same keys for a job the models cannot parse; `reason` says so."""
    out: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    age = seconds_between(job.metadata.creation_timestamp, now)
    out.update(name=job.metadata.name, namespace=job.metadata.namespace, phase=job.phase,
               reason=Reason.UNREADABLE.value,
               message=f"the plugin cannot read this object: {job.problems}",
               active=is_active(job), created=job.metadata.creation_timestamp,
               ageSeconds=None if age is None else int(age))
    return out


@dataclass(frozen=True)
class WorkerPod:
    """One worker pod as `view` shows it: which worker, where, in what state."""

    index: int | None
    pod: str
    node: str | None
    state: str
    attempt: int | None
    started: bool  # the training container has started (so `kubectl logs` has something)

    def as_json(self) -> dict[str, Any]:
        return {"worker": self.index, "pod": self.pod, "node": self.node, "state": self.state,
                "attempt": self.attempt, "started": self.started}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _terminated(detail: dict[str, Any]) -> str:  # Completed (exit 0), OOMKilled (exit 137)
    reason = detail.get("reason") or "Terminated"
    code = detail.get("exitCode")
    return reason if code is None else f"{reason} (exit {code})"


def pod_state(pod: dict[str, Any]) -> tuple[str, bool]:
    """A kubectl-like one-word state of a worker pod, and whether its training container
    has started. Terminating and setup (init) states come first, as `kubectl get pods` does."""
    meta, spec, status = (pod.get(k) or {} for k in ("metadata", "spec", "status"))
    containers = {c.get("name"): c for c in status.get("containerStatuses") or []}
    main = containers.get(MAIN_CONTAINER) or next(iter(containers.values()), None)
    main_state = (main or {}).get("state") or {}
    started = "running" in main_state or "terminated" in main_state
    if meta.get("deletionTimestamp"):
        return "Terminating", started
    if status.get("reason") and status.get("phase") == "Failed" and \
            "terminated" not in main_state:
        return str(status["reason"]), started  # Evicted, NodeLost...
    for init in status.get("initContainerStatuses") or []:
        state = init.get("state") or {}
        done = state.get("terminated") or {}
        if done and done.get("exitCode") not in (0, None):
            return f"SetupFailed (exit {done['exitCode']})", started
        if "running" in state:
            return "Setup", started
        if "waiting" in state:
            return f"Setup:{(state['waiting'] or {}).get('reason') or 'Waiting'}", started
    if "terminated" in main_state:
        return _terminated(main_state["terminated"] or {}), started
    if "waiting" in main_state:
        return str((main_state["waiting"] or {}).get("reason") or "Waiting"), started
    if "running" in main_state:
        return ("Running" if (main or {}).get("ready", True) else "Running (not ready)"), started
    if not spec.get("nodeName"):
        scheduled: dict[str, Any] = next((c for c in status.get("conditions") or []
                                          if c.get("type") == "PodScheduled"), {})
        if scheduled.get("reason") == "Unschedulable":
            return "Unschedulable", started
    return str(status.get("phase") or "Pending"), started


def worker_pods(pods: list[dict[str, Any]]) -> list[WorkerPod]:
    """The job's pods (selected by its job-name label), in worker order."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        state, started = pod_state(pod)
        out.append(WorkerPod(index=_int(labels.get(INDEX_LABEL)), pod=str(meta.get("name", "")),
                             node=(pod.get("spec") or {}).get("nodeName"), state=state,
                             attempt=_int(labels.get(ATTEMPT_LABEL)), started=started))
    return sorted(out, key=lambda w: (w.index is None, w.index or 0, w.pod))
