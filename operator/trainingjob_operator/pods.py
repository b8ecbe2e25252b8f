"""The slice of a Pod the operator reads, parsed once at the watch boundary.

Indexes keep these instead of whole pod bodies: for 10,000 jobs the difference is
gigabytes of memory. Text in them (reasons, messages, a terminated container's output) is
made printable here (text.printable): whoever runs or edits a pod writes it, and the
operator copies it into status messages and Events.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from trainingjob_operator.schema import Model
from trainingjob_operator.text import printable
from trainingjob_operator.vocabulary import (
    ATTEMPT_LABEL,
    GROUP,
    INDEX_LABEL,
    JOB_LABEL,
    KIND,
)


class ContainerView(Model):
    name: str
    state: str | None = None  # waiting, running or terminated
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    ready: bool = False


class ConditionView(Model):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class PodView(Model):
    name: str
    namespace: str
    uid: str
    job: str | None = None  # the job-name label: which job it says it is a worker of
    # Its controller ownerReference: the uid, and the name when the controller is a
    # TrainingJob. Labels anyone who may create pods can set; only the operator makes pods
    # whose controller is the job (workers.owned).
    owner_uid: str | None = None
    owner_job: str | None = None
    index: int | None = None
    attempt: int | None = None
    node_name: str | None = None
    active_deadline_seconds: int | None = None  # the operator's stop signal (decision.StopPod)
    phase: str = "Pending"
    reason: str | None = None
    message: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    start_time: str | None = None
    conditions: tuple[ConditionView, ...] = ()
    init_containers: tuple[ContainerView, ...] = ()
    containers: tuple[ContainerView, ...] = ()
    requests: dict[str, int] = Field(default_factory=dict)

    def condition(self, type_: str) -> ConditionView | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def started(self) -> bool:
        """Some container (setup or training) has run, so the pod has logs worth keeping."""
        return any(c.state in ("running", "terminated")
                   for c in (*self.init_containers, *self.containers))

    @property
    def exited(self) -> bool:
        """Nothing runs or will run: every training container has exited, or a setup one
        failed (restartPolicy Never). The kubelet reports a container's exit before it gives
        the pod its terminal phase; this is the moment in between."""
        if any(c.state == "terminated" and c.exit_code for c in self.init_containers):
            return True
        return bool(self.containers) and all(c.state == "terminated" for c in self.containers)


def _text(value: Any, multiline: bool = False) -> str | None:
    return printable(str(value), multiline) if value is not None else None


def _container(status: dict[str, Any]) -> ContainerView:
    state_map = status.get("state") or {}
    kind = next((k for k in ("terminated", "running", "waiting") if state_map.get(k) is not None),
                None)
    detail = state_map.get(kind) or {} if kind else {}
    # A terminated container's message is its termination message or the tail of its
    # output (FallbackToLogsOnError): lines. Any other is the kubelet's one line.
    return ContainerView(name=status.get("name", ""), state=kind,
                         reason=_text(detail.get("reason")),
                         message=_text(detail.get("message"), kind == "terminated"),
                         exit_code=detail.get("exitCode"), ready=bool(status.get("ready")))


def _controller(meta: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference with controller: true (at most one, as the API server checks)."""
    return next((r for r in meta.get("ownerReferences") or []
                 if isinstance(r, dict) and r.get("controller")), {})


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def whole_units(quantity: Any) -> int:
    """Extended resources (GPUs) are whole numbers; anything else counts as 0 here."""
    try:
        return int(str(quantity))
    except ValueError:
        return 0


def extended_requests(spec: dict[str, Any]) -> dict[str, int]:
    """Per-pod extended-resource requests (name contains '/'), as the scheduler counts them:
    the sum over containers, or the largest init container if that is more."""
    def of(containers: list[dict[str, Any]]) -> list[dict[str, int]]:
        out = []
        for c in containers:
            res = c.get("resources") or {}
            merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
            out.append({k: whole_units(v) for k, v in merged.items() if "/" in k})
        return out

    total: dict[str, int] = {}
    for r in of(spec.get("containers") or []):
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
    for r in of(spec.get("initContainers") or []):
        for k, v in r.items():
            total[k] = max(total.get(k, 0), v)
    return {k: v for k, v in total.items() if v}


def parse_pod(body: dict[str, Any]) -> PodView:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    owner = _controller(meta)
    is_job = (owner.get("kind") == KIND
              and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/"))
    return PodView(
        name=meta.get("name", ""), namespace=meta.get("namespace", ""), uid=meta.get("uid", ""),
        job=labels.get(JOB_LABEL), owner_uid=owner.get("uid"),
        owner_job=owner.get("name") if is_job else None, index=_int(labels.get(INDEX_LABEL)),
        attempt=_int(labels.get(ATTEMPT_LABEL)), node_name=spec.get("nodeName"),
        active_deadline_seconds=spec.get("activeDeadlineSeconds"),
        phase=status.get("phase") or "Pending", reason=_text(status.get("reason")),
        message=_text(status.get("message")), creation_timestamp=meta.get("creationTimestamp"),
        deletion_timestamp=meta.get("deletionTimestamp"), start_time=status.get("startTime"),
        conditions=tuple(ConditionView(type=c.get("type", ""), status=c.get("status", ""),
                                       reason=_text(c.get("reason")),
                                       message=_text(c.get("message")))
                         for c in status.get("conditions") or []),
        init_containers=tuple(_container(c) for c in status.get("initContainerStatuses") or []),
        containers=tuple(_container(c) for c in status.get("containerStatuses") or []),
        requests=extended_requests(spec),
    )
