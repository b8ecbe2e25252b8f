"""Pure: the facts every command shows about a job, as plain data with stable keys.

`job_summary` is the `-o json` shape of `list` items and the base of `view`'s; the keys are
documented in main.py's --help and docs/plugin.md, and tests hold them stable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.plugin.timefmt import seconds_between
from trainingjob_operator.pods import ContainerView, PodView, parse_pod
from trainingjob_operator.vocabulary import ACTIVE, MAIN_CONTAINER, Phase, Reason
from trainingjob_operator.workers import WorkerState, classify

SUMMARY_KEYS = ("name", "namespace", "phase", "reason", "message", "active", "attempt",
                "priority", "workers", "gpus", "gpusPerWorker", "gpuResource", "queue",
                "stopRequested", "created", "started", "finished", "phaseSince", "ageSeconds",
                "failure", "result")


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
        "failure": None if status.failure is None else status.failure.model_dump(
            by_alias=True, mode="json"),
        "result": None if status.result is None else status.result.model_dump(
            by_alias=True, mode="json"),
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


def _terminated(c: ContainerView) -> str:  # Completed (exit 0), OOMKilled (exit 137)
    reason = c.reason or "Terminated"
    return reason if c.exit_code is None else f"{reason} (exit {c.exit_code})"


def _lost(pod: PodView) -> str:
    if pod.deletion_timestamp:
        return "Terminating"
    disruption = pod.condition("DisruptionTarget")
    return pod.reason or (disruption.reason if disruption and disruption.reason else "Lost")


def pod_state(pod: PodView) -> tuple[str, bool]:
    """A kubectl-like one-word state of a worker pod, read the way the operator reads it
    (workers.classify), and whether its training container has started."""
    main = next((c for c in pod.containers if c.name == MAIN_CONTAINER), None)
    started = main is not None and main.state in ("running", "terminated")
    w = classify(pod.index or 0, pod)
    c = w.container
    if pod.deletion_timestamp or w.state is WorkerState.LOST:
        return _lost(pod), started
    if w.state is WorkerState.SETUP_FAILED and c is not None:
        return f"SetupFailed (exit {c.exit_code})", started
    if w.state is WorkerState.WAITING_ERROR and c is not None:
        return (f"Setup:{c.reason}" if c in pod.init_containers else str(c.reason)), started
    if w.state in (WorkerState.SUCCEEDED, WorkerState.FAILED) and c is not None:
        return _terminated(c), started
    if w.state is WorkerState.RUNNING and c is not None:
        return ("Running" if c.ready else "Running (not ready)"), started
    if w.state is WorkerState.UNSCHEDULABLE:
        return "Unschedulable", started
    for init in pod.init_containers:  # starting: setup first, as kubectl shows Init:...
        if init.state == "running":
            return "Setup", started
        if init.state == "waiting":
            return f"Setup:{init.reason or 'Waiting'}", started
    if main is not None and main.state == "waiting":
        return main.reason or "Waiting", started
    return pod.phase, started


def worker_pods(pods: list[dict[str, Any]], job_uid: str | None = None) -> list[WorkerPod]:
    """The job's pods, in worker order: those selected by its job-name label whose
    controller ownerReference is the job (`job_uid`), as the operator counts them; anyone
    who may create pods can set the label."""
    out = []
    for body in pods:
        pod = parse_pod(body)
        if job_uid and pod.owner_uid != job_uid:
            continue
        state, started = pod_state(pod)
        out.append(WorkerPod(index=pod.index, pod=pod.name, node=pod.node_name, state=state,
                             attempt=pod.attempt, started=started))
    return sorted(out, key=lambda w: (w.index is None, w.index or 0, w.pod))
