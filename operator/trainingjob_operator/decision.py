"""Pure: what the core asks the shell to do. Every core entry (decide, admit, the queue's
waiting status, an unreadable object) returns a `Decision`; the controller applies each one
the same way: the status under a resourceVersion precondition, then the actions, then the
Event, then the wake-up of the queue.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from trainingjob_operator.models import TrainingJobStatus
from trainingjob_operator.pods import PodView
from trainingjob_operator.vocabulary import EventType, Reason


@dataclass(frozen=True)
class CreateService:
    pass


@dataclass(frozen=True)
class CreatePod:
    index: int
    node: str | None


@dataclass(frozen=True)
class DeletePod:
    name: str
    grace_seconds: int


@dataclass(frozen=True)
class DeleteJob:
    """spec.ttlSecondsAfterFinished is over: delete the TrainingJob itself (its pods and
    Service go with it, by their owner references), only if it is still the object decided
    on (`resource_version`)."""

    resource_version: str


@dataclass(frozen=True)
class StopPod:
    """End a worker but keep its pod, and with it `kubectl logs` (see `stops`). `uid`: only
    the pod the decision was made on, never a later one of the same name."""

    name: str
    uid: str


Action = CreateService | CreatePod | DeletePod | StopPod | DeleteJob


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: Reason
    message: str


@dataclass(frozen=True)
class Decision:
    status: TrainingJobStatus | None = None  # None: leave the status as it is
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()  # posted once the status is written
    recheck_at: datetime | None = None  # when time alone could change the decision
    releases: bool = False  # the written status frees or queues GPUs: run the queue again

    @property
    def wakes_queue(self) -> bool:
        """Capacity may have moved once this is applied: run an admission pass."""
        return self.releases or any(isinstance(a, DeletePod) for a in self.actions)


# Stopping a worker without deleting its pod: spec.activeDeadlineSeconds may be added to a
# live pod or lowered, never raised or removed (pkg/apis/core/validation ValidatePodUpdate),
# and 1 is its minimum. What the kubelet then does, upstream v1.33 (pkg/kubelet):
# - active_deadline.go: once now - status.startTime >= activeDeadlineSeconds, ShouldEvict
#   answers reason "DeadlineExceeded", message "Pod was active on the node longer than the
#   specified deadline" (and records a Normal Event with both); kubelet.go getPodsToSync asks
#   its ShouldSync every second, besides the sync the spec change itself brings;
# - kubelet_pods.go generateAPIPodStatus: that makes the pod's phase Failed with that reason
#   and message, so SyncPod returns isTerminal and the pod worker runs SyncTerminatingPod
#   (pod_workers.go), whose killPod stops every container with the grace period of
#   calculateEffectiveGracePeriod / kuberuntime setTerminationGracePeriod: the pod's
#   spec.terminationGracePeriodSeconds (SIGTERM, SIGKILL when it is over), as a delete does;
# - status/status_manager.go mergePodStatus holds the Failed phase back until no container
#   can be running, so the GPUs count as used until then (capacity.used).
# The pod object stays, so its containers' logs stay readable until the job is deleted.
STOP_DEADLINE_SECONDS = 1


def deletes(pods: Iterable[PodView], grace: int,
            lost_nodes: Collection[str] = ()) -> list[Action]:
    """Delete with the job's grace period (a retry reuses the names); pods on a lost node are
    force-deleted (grace 0, again if already terminating): no kubelet is left there to finish
    a graceful delete."""
    out: list[Action] = []
    for p in pods:
        if p.node_name in lost_nodes:
            out.append(DeletePod(p.name, 0))
        elif not p.deletion_timestamp:
            out.append(DeletePod(p.name, grace))
    return out


def stops(pods: Iterable[PodView], grace: int,
          lost_nodes: Collection[str] = ()) -> list[Action]:
    """End a finished job's workers that still run, keeping what they printed: a pod that
    has run a container is stopped through its active deadline (once: a deadline already at
    the minimum is not patched again); one that never ran any is deleted (nothing to read,
    and it frees a node's capacity at once); one whose containers have all exited is left
    for the kubelet to mark; one on a lost node is force-deleted."""
    out: list[Action] = []
    for p in pods:
        if p.finished:
            continue
        if p.node_name in lost_nodes:
            out.append(DeletePod(p.name, 0))
        elif p.deletion_timestamp or p.exited:
            continue
        elif not p.started:
            out.append(DeletePod(p.name, grace))
        elif p.active_deadline_seconds is None or \
                p.active_deadline_seconds > STOP_DEADLINE_SECONDS:
            out.append(StopPod(p.name, p.uid))
    return out
