"""Pure: free GPUs per node, as the queue counts them.

Free GPUs on a node = its allocatable, minus requests of its non-terminal pods, minus what
admitted jobs hold reserved there for workers whose pods are not bound yet. An admission
this replica wrote but its watch has not shown yet (`Granted`) counts as reserved too, so
two passes a moment apart never book the same GPUs twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.vocabulary import ADMITTED, Key, Phase
from trainingjob_operator.workers import owned

Pools = dict[str, dict[str, int]]  # resource -> node -> GPUs


def used(resource: str, pods: Iterable[PodView]) -> dict[str, int]:
    """GPUs held per node by bound pods that have not finished."""
    out: dict[str, int] = {}
    for pod in pods:
        amount = pod.requests.get(resource, 0)
        if amount and pod.node_name and not pod.finished:
            out[pod.node_name] = out.get(pod.node_name, 0) + amount
    return out


def held(pod: PodView | None) -> tuple[str, tuple[tuple[str, int], ...]] | None:
    """The node and the extended resources a pod holds there (`used` counts them); None
    when it holds nothing: not bound, finished, gone, or asking for none."""
    if pod is None or not pod.node_name or pod.finished or not pod.requests:
        return None
    return pod.node_name, tuple(sorted(pod.requests.items()))


def freed(before: PodView | None, after: PodView | None) -> bool:
    """Whether a pod's change can leave more free: it held something and now holds less
    (it finished or went away). A pod being bound only takes, and nothing waits for less."""
    was = held(before)
    return was is not None and held(after) != was


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
class Granted:
    """An admission written but not yet seen in the index: still counts as reserved."""

    resource_version: str  # what the status write returned
    attempt: int
    resource: str
    per_worker: int
    nodes: tuple[str, ...]


def granted(job: TrainingJob, resource_version: str, nodes: Sequence[str]) -> Granted:
    return Granted(resource_version, job.status.attempt, job.spec.gpu_resource,
                   job.spec.gpus_per_worker, tuple(nodes))


def still_granted(grants: Mapping[Key, Granted],
                  jobs: Mapping[Key, TrainingJob]) -> dict[Key, Granted]:
    """The admissions the index does not show yet: one is forgotten once its job is seen at
    the version written (or later, or gone, or no longer Pending in that attempt)."""
    out = {}
    for key, g in grants.items():
        job = jobs.get(key)
        if (job is None or job.metadata.resource_version == g.resource_version
                or job.status.phase is not Phase.PENDING or job.status.attempt != g.attempt):
            continue
        out[key] = g
    return out


def reserved(jobs: Mapping[Key, TrainingJob], grants: Mapping[Key, Granted],
             pods: Mapping[Key, Sequence[PodView]]) -> Pools:
    """GPUs held by reservations, for the workers whose pods are not bound yet (a bound pod
    counts in `used` instead). `pods`: each admitted job's worker pods."""
    out: Pools = {}
    for key, job in jobs.items():
        g = grants.get(key)
        if g is not None:
            for node in g.nodes:
                pool = out.setdefault(g.resource, {})
                pool[node] = pool.get(node, 0) + g.per_worker
            continue
        res = job.status.reservation
        if job.status.phase not in ADMITTED or res is None or res.attempt != job.status.attempt:
            continue
        bound = {p.index for p in pods.get(key, ())  # a squatter's bound pod is no worker's
                 if p.attempt == res.attempt and p.node_name and owned(job, p)}
        pool = out.setdefault(job.spec.gpu_resource, {})
        for index, node in enumerate(res.nodes):
            if index not in bound:
                pool[node] = pool.get(node, 0) + job.spec.gpus_per_worker
    return out


def free_gpus(jobs: Mapping[Key, TrainingJob], grants: Mapping[Key, Granted],
              pods: Mapping[Key, Sequence[PodView]], nodes: Sequence[NodeView],
              usage: Sequence[PodView]) -> Pools:
    """Free GPUs per resource the jobs ask for, and per node: allocatable - bound pods -
    reservations. `usage`: every bound pod that requests GPUs."""
    held = reserved(jobs, grants, pods)
    resources = {j.spec.gpu_resource for j in jobs.values()}
    return {r: free(r, nodes, used(r, usage), held.get(r, {})) for r in resources}
