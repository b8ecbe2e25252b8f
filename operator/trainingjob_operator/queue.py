"""Pure: the gang admission queue (docs/queue.md). Which Pending jobs to admit now, onto
which nodes, and for every other one why it waits and where it stands.

A job is admitted only when every worker fits at once on nodes it may run on (capacity.py
counts what is free); its placement (one node per worker) is the reservation.

Queue policy: priority, then age. A job that waits for capacity *holds* the nodes it could use
against every job of lower priority, and, once it has waited longer than the backfill window,
against younger jobs of its own priority too. Until then those may backfill around it. A job
that could never fit (NoNodeFits; GangTooLarge, a gang more than all the nodes it may use hold
even when empty; or too big for the nodes ready now) holds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from trainingjob_operator.capacity import place
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView, Placement, eligible
from trainingjob_operator.timeutil import parse_time
from trainingjob_operator.vocabulary import Key, Reason


@dataclass(frozen=True)
class Candidate:
    """A Pending job as the queue sees it."""

    key: Key
    priority: int
    created: str
    workers: int
    per_worker: int
    resource: str
    placement: Placement = field(default_factory=Placement)
    waiting_since: datetime | None = None  # when this attempt entered Pending


def candidate(key: Key, job: TrainingJob,
              node_set: Mapping[str, str] | None = None) -> Candidate:
    """`node_set`: the operator's worker_node_selector, which every worker pod carries (a
    job whose template says otherwise for one of its keys is an InvalidSpec)."""
    spec = job.spec
    placement = Placement.of(spec.template.spec.dump() if spec.template else {})
    if node_set:
        placement = replace(placement, node_selector={**placement.node_selector, **node_set})
    return Candidate(key, spec.priority, job.metadata.creation_timestamp or "", spec.workers,
                     spec.gpus_per_worker, spec.gpu_resource, placement,
                     parse_time(job.status.phase_time))


@dataclass(frozen=True)
class Waiting:
    key: Key
    reason: Reason  # one of vocabulary.QUEUE_REASONS
    needed: int
    free: int
    largest_node: int
    position: int = 0            # 1 = next in line, among jobs still waiting cluster-wide
    namespace_position: int = 0  # the same among jobs of its namespace
    detail: str = ""             # for people: who holds the capacity, which nodes qualify


@dataclass(frozen=True)
class Plan:
    admit: dict[Key, list[str]] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)


def order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Highest priority first, then oldest, then name (a total, stable order). A retried job
    keeps its creation time, so it keeps its place."""
    return sorted(candidates, key=lambda c: (-c.priority, c.created, c.key))


@dataclass(frozen=True)
class Hold:
    """A waiting job's claim on a node, against the jobs behind it in the queue."""

    key: Key
    priority: int
    starving: bool  # waited past the backfill window: holds against its own priority too

    def closes_to(self, job: Candidate) -> bool:
        return self.priority > job.priority or self.starving


def _numbered(waiting: Sequence[Waiting]) -> list[Waiting]:
    by_namespace: dict[str, int] = {}
    out = []
    for position, w in enumerate(waiting, start=1):
        by_namespace[w.key[0]] = by_namespace.get(w.key[0], 0) + 1
        out.append(Waiting(w.key, w.reason, w.needed, w.free, w.largest_node, position,
                           by_namespace[w.key[0]], w.detail))
    return out


@dataclass(frozen=True)
class _Shape:
    """What decides a job's fit: jobs of one shape fit or fail alike in a pass."""

    resource: str
    placement: tuple[object, ...]
    workers: int
    per_worker: int


@dataclass
class _Nodes:
    """A shape's nodes, computed once per pass: which qualify, the largest, whether the
    gang fits on them when empty (if not, holding them would block for nothing), and how
    many of its workers all of them, ready or not, hold at most (fewer than the gang: it
    can never fit the cluster as it is)."""

    mine: list[NodeView]
    ready: list[str]
    largest: int
    fits_empty: bool
    most_workers: int = 0  # workers of this size the eligible nodes hold when empty
    total: int = 0         # their allocatable GPUs together
    held: bool = False           # every ready node is held by some job
    held_starving: bool = False  # ...by a job past the backfill window


def plan(candidates: Iterable[Candidate], nodes: Iterable[NodeView],
         free_by_resource: Mapping[str, Mapping[str, int]], now: datetime | None = None,
         backfill_window: timedelta = timedelta(minutes=10)) -> Plan:
    """Admit, in queue order, every job whose whole gang fits in what is free and not held
    by a job ahead of it; say for every other job why it waits and where it stands.

    Within a pass free GPUs only shrink and holds only grow (later jobs have lower or equal
    priority), so a shape that failed fails again until an admission or a new hold changes
    the state: its verdict is reused, and 10,000 Pending jobs cost a few full evaluations."""
    nodes = list(nodes)
    left = {r: dict(f) for r, f in free_by_resource.items()}
    holds: dict[tuple[str, str], Hold] = {}  # (resource, node) -> the job holding it
    admit: dict[Key, list[str]] = {}
    waiting: list[Waiting] = []
    shapes: dict[_Shape, _Nodes] = {}
    failed: dict[_Shape, tuple[int, Waiting]] = {}  # shape -> (state version, verdict)
    version = 0  # bumped by every admission and every new or stronger hold
    for job in order(candidates):
        if job.per_worker == 0:
            admit[job.key] = []
            continue
        shape = _Shape(job.resource, job.placement.key(), job.workers, job.per_worker)
        known = failed.get(shape)
        if known is not None and known[0] == version:
            verdict = known[1]
        else:
            where = shapes.get(shape)
            if where is None:
                where = shapes[shape] = _nodes_of(job, nodes)
            outcome = _evaluate(job, where, left.setdefault(job.resource, {}), holds)
            if isinstance(outcome, list):
                for node in outcome:
                    left[job.resource][node] -= job.per_worker
                admit[job.key] = outcome
                version += 1
                continue
            verdict = outcome
            failed[shape] = (version, verdict)
        waiting.append(Waiting(job.key, verdict.reason, verdict.needed, verdict.free,
                               verdict.largest_node, detail=verdict.detail))
        where = shapes[shape]
        if verdict.reason is Reason.NO_NODE_FITS or not where.fits_empty:
            continue  # a job that could never fit holds nothing
        starving = job.waiting_since is not None and now is not None and \
            now - job.waiting_since >= backfill_window
        if where.held_starving or (where.held and not starving):
            continue  # holds only grow: this job would add none
        for n in where.ready:
            held = holds.get((job.resource, n))
            if held is None or (starving and not held.starving):
                holds[(job.resource, n)] = Hold(job.key, job.priority, starving)
                version += 1
        where.held, where.held_starving = True, where.held_starving or starving
    return Plan(admit, _numbered(waiting))


def _nodes_of(job: Candidate, nodes: Sequence[NodeView]) -> _Nodes:
    mine = [n for n in nodes if eligible(n, job.placement)]
    ready = {n.name: n.allocatable.get(job.resource, 0) for n in mine if n.schedulable}
    sizes = [n.allocatable.get(job.resource, 0) for n in mine]
    return _Nodes(mine, list(ready), max(sizes, default=0),
                  place(job.workers, job.per_worker, ready) is not None,
                  sum(s // job.per_worker for s in sizes), sum(sizes))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _evaluate(job: Candidate, where: _Nodes, left: Mapping[str, int],
              holds: Mapping[tuple[str, str], Hold]) -> list[str] | Waiting:
    """The placement if the gang fits in what is free and not held against it; else why not."""
    needed = job.workers * job.per_worker
    pool = {n: left.get(n, 0) for n in where.ready}
    available = sum(max(v, 0) for v in pool.values())
    if where.largest < job.per_worker:
        constrained = job.placement.node_selector or job.placement.affinity_terms
        detail = "" if not constrained else (
            f"matching {job.placement.describe()}" if where.mine
            else f"no node matches {job.placement.describe()}")
        return Waiting(job.key, Reason.NO_NODE_FITS, needed, available, where.largest,
                       detail=detail)
    if where.most_workers < job.workers:
        return Waiting(job.key, Reason.GANG_TOO_LARGE, needed, available, where.largest,
                       detail=f"{_count(len(where.mine), 'node')} it may use hold at most "
                       f"{_count(where.most_workers, 'such worker')} even when empty "
                       f"({where.total} {job.resource} in total, the largest node "
                       f"{where.largest})")
    closed = {n: h for n in pool
              if (h := holds.get((job.resource, n))) is not None and h.closes_to(job)}
    placement = place(job.workers, job.per_worker,
                      {n: v for n, v in pool.items() if n not in closed})
    if placement is not None:
        return placement
    if closed and place(job.workers, job.per_worker, pool) is not None:
        first = max(closed.values(), key=lambda h: (h.starving, h.priority))
        why = ", waiting longer than the backfill window" if first.starving else ""
        return Waiting(job.key, Reason.QUEUED_BEHIND_HIGHER_PRIORITY, needed, available,
                       where.largest,
                       detail=f"{first.key[0]}/{first.key[1]} (priority {first.priority}{why}) "
                       "is ahead in the queue and waits for the same nodes")
    return Waiting(job.key, Reason.WAITING_FOR_CAPACITY, needed, available, where.largest)
