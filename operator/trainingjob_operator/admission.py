"""Pure: GPU capacity accounting and the gang admission queue (DESIGN.md §5).

Free GPUs on a node = its allocatable, minus requests of its non-terminal pods, minus what
admitted jobs hold reserved there for workers whose pods are not bound yet. A job is admitted
only when every worker fits at once; its placement (one node per worker) is the reservation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainingjob_operator.pods import PodView, whole_units


@dataclass(frozen=True)
class NodeView:
    name: str
    allocatable: Mapping[str, int]
    schedulable: bool


def parse_node(body: Mapping[str, Any]) -> NodeView:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    # The node controller's own taints (not-ready, unreachable, unschedulable) close a node.
    closed = any(str(t.get("key", "")).startswith("node.kubernetes.io/")
                 and t.get("effect") in ("NoSchedule", "NoExecute")
                 for t in spec.get("taints") or [])
    allocatable = {k: whole_units(v) for k, v in (status.get("allocatable") or {}).items()
                   if "/" in k}
    return NodeView(meta.get("name", ""), allocatable,
                    ready and not closed and not spec.get("unschedulable"))


def used(resource: str, pods: Iterable[PodView]) -> dict[str, int]:
    """GPUs held per node by bound pods that have not finished."""
    out: dict[str, int] = {}
    for pod in pods:
        amount = pod.requests.get(resource, 0)
        if amount and pod.node_name and not pod.finished:
            out[pod.node_name] = out.get(pod.node_name, 0) + amount
    return out


def free(resource: str, nodes: Iterable[NodeView], in_use: Mapping[str, int],
         reserved: Mapping[str, int]) -> dict[str, int]:
    return {n.name: n.allocatable.get(resource, 0) - in_use.get(n.name, 0)
            - reserved.get(n.name, 0) for n in nodes if n.schedulable}


def place(workers: int, per_worker: int, free_gpus: Mapping[str, int]) -> list[str] | None:
    """One node per worker, all or nothing. Best fit: the fullest node that still holds a
    worker, so large free nodes stay whole for large workers."""
    left = dict(free_gpus)
    nodes: list[str] = []
    for _ in range(workers):
        fits = [(gpus, name) for name, gpus in left.items() if gpus >= per_worker]
        if not fits:
            return None
        _, best = min(fits)
        left[best] -= per_worker
        nodes.append(best)
    return nodes


@dataclass(frozen=True)
class Candidate:
    """A Pending job as the queue sees it."""

    key: tuple[str, str]
    priority: int
    created: str
    workers: int
    per_worker: int
    resource: str


@dataclass(frozen=True)
class Waiting:
    key: tuple[str, str]
    reason: str  # WaitingForCapacity or NoNodeFits
    needed: int
    free: int
    largest_node: int


@dataclass(frozen=True)
class Plan:
    admit: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)


def order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Highest priority first, then oldest, then name (a total, stable order)."""
    return sorted(candidates, key=lambda c: (-c.priority, c.created, c.key))


def plan(candidates: Iterable[Candidate], nodes: Iterable[NodeView],
         free_by_resource: Mapping[str, Mapping[str, int]]) -> Plan:
    """Admit, in queue order, every job whose whole gang fits in what is still free."""
    nodes = list(nodes)
    left = {r: dict(f) for r, f in free_by_resource.items()}
    result = Plan()
    for job in order(candidates):
        if job.per_worker == 0:
            result.admit[job.key] = []
            continue
        pool = left.setdefault(job.resource, {})
        largest = max((n.allocatable.get(job.resource, 0) for n in nodes), default=0)
        needed = job.workers * job.per_worker
        available = sum(max(v, 0) for v in pool.values())
        if largest < job.per_worker:
            result.waiting.append(Waiting(job.key, "NoNodeFits", needed, available, largest))
            continue
        placement = place(job.workers, job.per_worker, pool)
        if placement is None:
            result.waiting.append(Waiting(job.key, "WaitingForCapacity", needed, available,
                                          largest))
            continue
        for node in placement:
            pool[node] -= job.per_worker
        result.admit[job.key] = placement
    return result
