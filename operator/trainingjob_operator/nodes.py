"""Pure: the slice of a Node the operator reads, which workers may run on it, and when it is lost.

A job is judged on a snapshot of its nodes (`snapshot`), taken by the shell from the node
index and from `NodeMemory`: what the index alone cannot say about nodes that left it.

Placement follows the scheduler's own rules for the parts a TrainingJob sets: nodeSelector,
required node affinity and taints (NoSchedule/NoExecute must be tolerated). A gang is admitted
only onto nodes its workers can actually be scheduled on, so a reservation never pins a pod to
a node the scheduler would refuse.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pods import PodView, whole_units
from trainingjob_operator.timeutil import format_time, parse_time
from trainingjob_operator.vocabulary import ADMITTED

# Taints the node controller sets itself; a node carrying one is closed to new work.
NODE_CONTROLLER_TAINTS = "node.kubernetes.io/"
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = ""


@dataclass(frozen=True)
class NodeView:
    name: str
    allocatable: Mapping[str, int]
    schedulable: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    # When the Ready condition last changed: how long a NotReady node has been down.
    ready_since: str | None = None


def parse_node(body: Mapping[str, Any]) -> NodeView:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    condition: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    ready = condition.get("status") == "True"
    taints = tuple(Taint(str(t.get("key", "")), str(t.get("value") or ""),
                         str(t.get("effect") or "")) for t in spec.get("taints") or [])
    closed = any(t.key.startswith(NODE_CONTROLLER_TAINTS) and t.effect in BLOCKING_EFFECTS
                 for t in taints)
    allocatable = {k: whole_units(v) for k, v in (status.get("allocatable") or {}).items()
                   if "/" in k}
    return NodeView(meta.get("name", ""), allocatable,
                    ready and not closed and not spec.get("unschedulable"),
                    dict(meta.get("labels") or {}), taints, ready,
                    condition.get("lastTransitionTime"))


@dataclass(frozen=True)
class Placement:
    """Where a job's workers may go: its pod template's nodeSelector, required node affinity
    terms and tolerations, kept as the plain data the API holds."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity_terms: tuple[Mapping[str, Any], ...] = ()
    tolerations: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, pod_spec: Mapping[str, Any]) -> Placement:
        affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or {}
        return cls({str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()},
                   tuple(affinity.get("nodeSelectorTerms") or ()),
                   tuple(pod_spec.get("tolerations") or ()))

    def key(self) -> tuple[object, ...]:
        """Equal for placements that admit the same nodes (a cache key; dicts do not hash)."""
        if not (self.node_selector or self.affinity_terms or self.tolerations):
            return ()
        return (tuple(sorted(self.node_selector.items())), repr(self.affinity_terms),
                repr(self.tolerations))

    def describe(self) -> str:
        parts = [f"nodeSelector {dict(self.node_selector)}"] if self.node_selector else []
        if self.affinity_terms:
            parts.append("required node affinity")
        return " and ".join(parts) or "no node constraints"


def _expression(op: str, have: str | None, values: Sequence[str]) -> bool:
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and len(values) == 1:
        try:
            left, right = int(have), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def _term(node: NodeView, term: Mapping[str, Any]) -> bool:
    """A nodeSelectorTerm: every expression holds; an empty term matches no node."""
    exprs = [(e, node.labels.get(str(e.get("key")))) for e in term.get("matchExpressions") or []]
    exprs += [(f, node.name if f.get("key") == "metadata.name" else None)
              for f in term.get("matchFields") or []]
    return bool(exprs) and all(_expression(str(e.get("operator")), have,
                                           [str(v) for v in e.get("values") or []])
                               for e, have in exprs)


def _tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.effect:
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.key:
                return True
        elif t.get("key") == taint.key and (t.get("value") or "") == taint.value:
            return True
    return False


def eligible(node: NodeView, placement: Placement) -> bool:
    """Could a worker with this placement ever run on the node (capacity aside)?
    The node controller's own taints are readiness, not eligibility: see `schedulable`."""
    if any(node.labels.get(k) != v for k, v in placement.node_selector.items()):
        return False
    if placement.affinity_terms and not any(_term(node, t) for t in placement.affinity_terms):
        return False
    return all(_tolerates(placement.tolerations, t) for t in node.taints
               if t.effect in BLOCKING_EFFECTS and not t.key.startswith(NODE_CONTROLLER_TAINTS))


def node_lost(name: str, node: NodeView | None, now: datetime,
              grace: timedelta) -> tuple[str | None, datetime | None]:
    """(why the node counts as lost, or None; when it will count as lost, for a delayed add)."""
    if node is None:
        return f"node {name} was deleted", None
    if node.ready:
        return None, None
    since = parse_time(node.ready_since) or now
    if now - since >= grace:
        return (f"node {name} has been NotReady for {int((now - since).total_seconds())}s",
                None)
    return None, since + grace


# A node the job uses: None when it is known to be deleted.
Snapshot = Mapping[str, NodeView | None]


@dataclass(frozen=True)
class NodeMemory:
    """Nodes seen DELETED (lost at once), and nodes missing from the index without a DELETED
    event (e.g. removed while the operator was down) with when first missed: those count as
    NotReady since then, so a watch that is a moment behind never fails a gang."""

    deleted: frozenset[str] = frozenset()
    missing: Mapping[str, str] = field(default_factory=dict)  # name -> first missed (RFC 3339)

    def node_deleted(self, name: str) -> NodeMemory:
        return NodeMemory(self.deleted | {name}, self.missing)


def job_nodes(job: TrainingJob, pods: Iterable[PodView]) -> set[str]:
    """The nodes a job's fate depends on: its live pods', and its reservation's."""
    names = {p.node_name for p in pods if p.node_name and not p.finished}
    if job.status.phase in ADMITTED and job.status.reservation:
        names.update(job.status.reservation.nodes)
    return names


def snapshot(memory: NodeMemory, names: Collection[str], index: Mapping[str, NodeView],
             now: datetime) -> tuple[dict[str, NodeView | None], NodeMemory]:
    """The named nodes as far as anyone can tell, and the memory updated: a node back in the
    index is forgotten; one missing without a DELETED event is NotReady since first missed."""
    out: dict[str, NodeView | None] = {}
    deleted, missing = set(memory.deleted), dict(memory.missing)
    for name in names:
        view = index.get(name)
        if view is not None:
            deleted.discard(name)
            missing.pop(name, None)
            out[name] = view
        elif name in deleted:
            out[name] = None
        else:
            since = missing.setdefault(name, format_time(now))
            out[name] = NodeView(name, {}, False, ready=False, ready_since=since)
    if deleted == memory.deleted and missing == memory.missing:
        return out, memory
    return out, NodeMemory(frozenset(deleted), missing)


def lost_nodes(nodes: Snapshot, now: datetime,
               grace: timedelta) -> tuple[dict[str, str], datetime | None]:
    """Which nodes of the snapshot count as lost, with why; and when the next NotReady one
    will count, for the work queue's delayed add."""
    lost: dict[str, str] = {}
    recheck: datetime | None = None
    for name in sorted(nodes):
        why, when = node_lost(name, nodes[name], now, grace)
        if why:
            lost[name] = why
        if when is not None and (recheck is None or when < recheck):
            recheck = when
    return lost, recheck
