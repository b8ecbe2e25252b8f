"""Plain-data builders for the pure core's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pods import PodView, parse_pod

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = "2026-01-01T11:59:00Z"


def job(status: dict[str, Any] | None = None, **spec: Any) -> TrainingJob:
    return TrainingJob.model_validate({
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1", "generation": 1,
                     "resourceVersion": "7", "creationTimestamp": T0},
        "spec": {"image": "team/train:1", **spec},
        "status": status or {},
    })


def at(phase: str, attempt: int = 1, **status: Any) -> dict[str, Any]:
    out = {"phase": phase, "reason": "X", "attempt": attempt, "phaseTime": T0,
           "history": [{"phase": phase, "reason": "X", "time": T0}], **status}
    if phase in ("Created", "Deploying", "Running"):
        out.setdefault("reservation", {"attempt": attempt, "nodes": ["n0", "n1", "n2", "n3"]})
    return out


def container(name: str = "trainer", **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": "running" in state, "state": state}


def pod(index: int = 0, attempt: int = 1, phase: str = "Running", node: str | None = "n0",
        containers: list[dict[str, Any]] | None = None, init: list[dict[str, Any]] | None = None,
        deleted: bool = False, conditions: list[dict[str, Any]] | None = None,
        reason: str | None = None, gpus: int = 1, deadline: int | None = None,
        owner: str | None = "u1", name: str | None = None) -> PodView:
    """`owner`: the uid of its controller TrainingJob j (job()'s is u1); None: no owner."""
    meta: dict[str, Any] = {"name": name or f"j-worker-{index}", "namespace": "ns",
                            "uid": f"p{index}", "creationTimestamp": T0,
                            "labels": {"training.dev/job-name": "j",
                                       "training.dev/worker-index": str(index),
                                       "training.dev/attempt": str(attempt)}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
                                    "name": "j", "uid": owner, "controller": True,
                                    "blockOwnerDeletion": True}]
    if deleted:
        meta["deletionTimestamp"] = "2026-01-01T11:59:30Z"
    status: dict[str, Any] = {"phase": phase, "startTime": T0, "conditions": conditions or [],
                              "containerStatuses": containers if containers is not None
                              else [container(running={"startedAt": T0})]}
    if init is not None:
        status["initContainerStatuses"] = init
    if reason:
        status["reason"] = reason
    spec: dict[str, Any] = {"containers": [{"name": "trainer", "resources": {
        "limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if node:
        spec["nodeName"] = node
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return parse_pod({"metadata": meta, "spec": spec, "status": status})


def running(index: int = 0, attempt: int = 1, deadline: int | None = None) -> PodView:
    return pod(index, attempt, deadline=deadline)


def exited(index: int = 0, code: int = 0, reason: str = "Completed",
           phase: str | None = None, message: str | None = None) -> PodView:
    """`phase="Running"`: as a kubelet first reports it, the container's exit before the
    pod's terminal phase. `message`: its termination message (the log tail on failure)."""
    terminated: dict[str, Any] = {"exitCode": code, "reason": reason}
    if message is not None:
        terminated["message"] = message
    return pod(index, phase=phase or ("Succeeded" if code == 0 else "Failed"),
               containers=[container(terminated=terminated)])


def waiting(index: int, why: str, message: str = "m") -> PodView:
    return pod(index, phase="Pending", containers=[container(
        waiting={"reason": why, "message": message})])
