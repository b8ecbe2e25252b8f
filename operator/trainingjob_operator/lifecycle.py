"""Pure: (job, its pods, now) -> the next status and the actions that get there.

Only the edges of DESIGN.md §2 exist here: Pending→Created (admission.py decides, `admit`
writes), Created→Deploying, Deploying→Running/Completed/DeployFailed/Failed,
Running→Completed/Failed, active→Stopped, Pending→DeployFailed (queue timeout) and the retry
Created/Deploying/Running→Pending. Terminal phases are absorbing: from them only clean-up of
leftover pods happens, never a new status.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from trainingjob_operator.admission import Waiting
from trainingjob_operator.models import (
    Condition,
    HistoryEntry,
    QueueInfo,
    Reservation,
    TrainingJob,
    TrainingJobStatus,
    WorkerCounts,
)
from trainingjob_operator.nodes import NodeView, node_lost
from trainingjob_operator.pods import PodView
from trainingjob_operator.render import OWNED_POD_FIELDS
from trainingjob_operator.settings import Settings
from trainingjob_operator.timeutil import format_time, parse_time
from trainingjob_operator.vocabulary import (
    ADMITTED,
    FAILED_PHASES,
    ConditionType,
    EventType,
    Phase,
    Reason,
    pod_name,
)
from trainingjob_operator.workers import (
    Verdict,
    Worker,
    WorkerState,
    classify,
    failure,
    grace_deadline,
    lost_worker,
)


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
class StopPod:
    """End a worker but keep its pod, and with it `kubectl logs` (see `_stops`). `uid`: only
    the pod the decision was made on, never a later one of the same name."""

    name: str
    uid: str


Action = CreateService | CreatePod | DeletePod | StopPod


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: Reason
    message: str


@dataclass(frozen=True)
class Decision:
    status: TrainingJobStatus | None = None  # None: leave the status as it is
    actions: tuple[Action, ...] = ()
    event: Event | None = None
    recheck_at: datetime | None = None  # when time alone could change the decision


EDGES: frozenset[tuple[Phase | None, Phase]] = frozenset({
    (None, Phase.PENDING), (None, Phase.DEPLOY_FAILED), (None, Phase.STOPPED),
    (Phase.PENDING, Phase.CREATED), (Phase.PENDING, Phase.DEPLOY_FAILED),
    (Phase.PENDING, Phase.STOPPED),
    (Phase.CREATED, Phase.DEPLOYING), (Phase.CREATED, Phase.DEPLOY_FAILED),
    (Phase.CREATED, Phase.STOPPED), (Phase.CREATED, Phase.PENDING),
    (Phase.DEPLOYING, Phase.RUNNING), (Phase.DEPLOYING, Phase.COMPLETED),
    (Phase.DEPLOYING, Phase.DEPLOY_FAILED), (Phase.DEPLOYING, Phase.FAILED),
    (Phase.DEPLOYING, Phase.STOPPED), (Phase.DEPLOYING, Phase.PENDING),
    (Phase.RUNNING, Phase.COMPLETED), (Phase.RUNNING, Phase.FAILED),
    (Phase.RUNNING, Phase.STOPPED), (Phase.RUNNING, Phase.PENDING),
})


def _conditions(old: Sequence[Condition], phase: Phase, reason: str, message: str,
                admitted: bool, generation: int, now: str) -> list[Condition]:
    # Reconciling and Stalled are the "abnormal-true" pair kstatus (Flux, cli-utils) reads:
    # an active job is still in progress, a failed one will not progress any more.
    wanted = {
        ConditionType.ADMITTED: (admitted, Reason.ADMITTED if admitted else reason),
        ConditionType.RUNNING: (phase is Phase.RUNNING, reason),
        ConditionType.FINISHED: (phase.terminal, phase.value if phase.terminal else reason),
        ConditionType.COMPLETE: (phase is Phase.COMPLETED, reason),
        ConditionType.FAILED: (phase in FAILED_PHASES, reason),
        ConditionType.RECONCILING: (phase.active, reason),
        ConditionType.STALLED: (phase in FAILED_PHASES, reason),
    }
    previous = {c.type: c for c in old}
    out = []
    for type_, (value, why) in wanted.items():
        status = "True" if value else "False"
        before = previous.get(type_)
        since = before.last_transition_time if before and before.status == status else now
        out.append(Condition(type=type_, status=status, reason=why, message=message,
                             last_transition_time=since, observed_generation=generation))
    return out


def counts(job: TrainingJob, workers: Iterable[Worker]) -> WorkerCounts:
    ws = list(workers)
    return WorkerCounts(
        total=job.spec.workers,
        ready=sum(w.state is WorkerState.RUNNING and bool(w.container and w.container.ready)
                  for w in ws),
        succeeded=sum(w.state is WorkerState.SUCCEEDED for w in ws),
        failed=sum(w.state in (WorkerState.FAILED, WorkerState.SETUP_FAILED) for w in ws))


def _with_counts(status: TrainingJobStatus, c: WorkerCounts) -> TrainingJobStatus:
    return status.model_copy(update={"workers": c, "worker_summary": f"{c.ready}/{c.total}"})


def transition(job: TrainingJob, phase: Phase, reason: Reason, message: str, now: datetime,
               settings: Settings, **changes: object) -> TrainingJobStatus:
    """The status after moving to `phase`: history, conditions and times follow."""
    old = job.status
    stamp = format_time(now)
    attempt = changes.get("attempt", old.attempt)
    history = [*old.history, HistoryEntry(phase=phase, reason=reason, message=message,
                                          time=stamp, attempt=attempt)
               ][-settings.history_limit:]
    admitted = phase in ADMITTED or (phase.terminal and any(
        h.phase is Phase.CREATED for h in old.history))
    update: dict[str, object] = {
        "phase": phase, "reason": reason, "message": message, "phase_time": stamp,
        "history": history, "observed_generation": job.metadata.generation,
        "gpus": job.total_gpus,
        "conditions": _conditions(old.conditions, phase, reason, message, admitted,
                                  job.metadata.generation, stamp),
    }
    if phase.terminal and not old.completion_time:
        update["completion_time"] = stamp
    if phase is Phase.RUNNING and not old.start_time:
        update["start_time"] = stamp
    update.update(changes)
    status = old.model_copy(update=update)
    if status.workers is None:
        status = _with_counts(status, WorkerCounts(total=job.spec.workers))
    if phase.terminal and status.workers is not None:  # nothing runs in a finished job
        status = _with_counts(status, status.workers.model_copy(update={"ready": 0}))
    return status


def _moved(job: TrainingJob, phase: Phase, reason: Reason, message: str, now: datetime,
           settings: Settings, actions: Sequence[Action] = (), **changes: object) -> Decision:
    assert (job.status.phase, phase) in EDGES, f"no edge {job.status.phase} -> {phase}"
    kind = EventType.WARNING if phase in FAILED_PHASES or reason == Reason.WORKER_LOST \
        else EventType.NORMAL
    return Decision(transition(job, phase, reason, message, now, settings, **changes),
                    tuple(actions), Event(kind, reason, message))


_USE_INSTEAD = {"activeDeadlineSeconds": "spec.timeouts.runSeconds",
                "terminationGracePeriodSeconds": "spec.terminationGracePeriodSeconds"}


def invalid_spec(job: TrainingJob) -> str | None:
    """What the CRD schema cannot express; the message names the field and the fix."""
    spec = job.spec
    longest = pod_name(job.metadata.name, spec.workers - 1)
    if len(longest) > 63:
        return (f"metadata.name is too long: worker pod names like {longest!r} must be at most "
                "63 characters; shorten the TrainingJob's name")
    if spec.gpus_per_worker and "/" not in spec.gpu_resource:
        return (f"spec.gpuResource {spec.gpu_resource!r} is not an extended resource name; "
                "use a name like nvidia.com/gpu")
    for kind in ("requests", "limits"):
        if spec.gpu_resource in getattr(spec.resources, kind):
            return (f"spec.resources.{kind} sets {spec.gpu_resource}; request GPUs with "
                    "spec.gpusPerWorker instead")
    if spec.template is not None:
        for field in OWNED_POD_FIELDS:
            if field in spec.template.spec:
                instead = _USE_INSTEAD.get(
                    field, "spec.image, spec.command, spec.setup and the other spec fields")
                return f"spec.template.spec.{field} is set by the operator; use {instead} instead"
    return None


def queued_message(job: TrainingJob) -> str:
    spec = job.spec
    return (f"queued: needs {job.total_gpus} GPUs ({spec.workers} workers x "
            f"{spec.gpus_per_worker} {spec.gpu_resource})")


def _deletes(pods: Iterable[PodView], grace: int,
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
#   can be running, so the GPUs count as used until then (admission.used).
# The pod object stays, so its containers' logs stay readable until the job is deleted.
STOP_DEADLINE_SECONDS = 1


def _stops(pods: Iterable[PodView], grace: int,
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


NodeLookup = Callable[[str], NodeView | None]


def lost_nodes(job: TrainingJob, pods: Iterable[PodView], nodes: NodeLookup | None,
               now: datetime, settings: Settings) -> tuple[dict[str, str], datetime | None]:
    """The nodes of this job (its live pods', its reservation's) that count as lost, with why;
    and when the next NotReady one will count, for the sweep."""
    if nodes is None:
        return {}, None
    names = {p.node_name for p in pods if p.node_name and not p.finished}
    if job.status.phase in ADMITTED and job.status.reservation:
        names.update(job.status.reservation.nodes)
    grace = timedelta(seconds=settings.node_lost_grace_seconds)
    lost: dict[str, str] = {}
    recheck: datetime | None = None
    for name in sorted(names):
        why, when = node_lost(name, nodes(name), now, grace)
        if why:
            lost[name] = why
        recheck = _earliest(recheck, when)
    return lost, recheck


def _admitted_at(job: TrainingJob) -> datetime | None:
    for h in reversed(job.status.history):
        if h.phase is Phase.CREATED:
            return parse_time(h.time)
    return parse_time(job.status.phase_time)


def _earliest(*times: datetime | None) -> datetime | None:
    real = [t for t in times if t is not None]
    return min(real) if real else None


def decide(job: TrainingJob, pods: Sequence[PodView], now: datetime, settings: Settings,
           nodes: NodeLookup | None = None) -> Decision:
    """`nodes` looks up a node by name (None: deleted); without it node loss is not judged."""
    spec, status = job.spec, job.status
    grace = spec.termination_grace_period_seconds
    current = [p for p in pods if p.attempt == status.attempt]
    stale = [p for p in pods if p.attempt != status.attempt]
    by_index = {p.index: p for p in current if p.index is not None and 0 <= p.index < spec.workers}
    lost, node_recheck = lost_nodes(job, pods, nodes, now, settings)
    workers = [_on_lost_node(job, classify(i, by_index.get(i)), lost)
               for i in range(spec.workers)]
    cleanup = _deletes(stale, grace, lost_nodes=lost)
    phase = status.phase

    if phase is None:
        if spec.stop:
            return _moved(job, Phase.STOPPED, Reason.STOPPED_BY_USER,
                          "stopped before it was queued", now, settings)
        problem = invalid_spec(job)
        if problem:
            return _moved(job, Phase.DEPLOY_FAILED, Reason.INVALID_SPEC, problem, now, settings)
        return _moved(job, Phase.PENDING, Reason.WAITING_FOR_CAPACITY, queued_message(job), now,
                      settings, attempt=status.attempt or 1)
    if phase.terminal:  # absorbing: only make sure nothing is left running
        return Decision(actions=tuple(_stops(current, grace, lost) + cleanup))
    if spec.stop:
        return _moved(job, Phase.STOPPED, Reason.STOPPED_BY_USER,
                      f"stopped by the user; workers get SIGTERM and {grace}s to exit",
                      now, settings, [*_stops(current, grace, lost), *cleanup],
                      reservation=None, queue=None)
    if phase is Phase.PENDING:
        return _pending(job, cleanup, now, settings)
    if phase is Phase.CREATED:
        if stale:  # the previous attempt's pods must be gone before new ones take their names
            return Decision(actions=tuple(cleanup), recheck_at=now + timedelta(seconds=5))
        gone = next((w for w in workers if w.state is WorkerState.LOST), None)
        if gone is not None:  # a reserved node was lost before any pod existed
            lost_one = lost_worker(job, gone)
            if not lost_one.retry:  # it never started: a deploy failure, not a training one
                lost_one = replace(lost_one, phase=Phase.DEPLOY_FAILED)
            return _end(job, lost_one, [], stale, now, settings, lost)
        creates: list[Action] = [CreateService()]
        creates += [CreatePod(w.index, _reserved_node(job, w.index))
                    for w in workers if w.state is WorkerState.MISSING]
        return _moved(job, Phase.DEPLOYING, Reason.CREATING_WORKERS,
                      f"{spec.workers} worker pods created; scheduling, pulling images"
                      f"{', running setup' if spec.setup else ''}", now, settings, creates)

    # Deploying or Running: the failure mapping, in worker order.
    tally = counts(job, workers)  # a failed job's status says how many workers failed
    for w in workers:
        if w.state is WorkerState.LOST or (phase is Phase.RUNNING
                                           and w.state is WorkerState.MISSING):
            if w.state is WorkerState.MISSING:
                w = Worker(w.index, WorkerState.LOST, detail="pod deleted")
            return _end(job, lost_worker(job, w), current, stale, now, settings, lost, tally)
    for w in workers:
        verdict = failure(job, w, now, settings)
        if verdict is not None:
            return _end(job, verdict, current, stale, now, settings, lost, tally)
    if all(w.state is WorkerState.SUCCEEDED for w in workers):
        return _moved(job, Phase.COMPLETED, Reason.SUCCEEDED,
                      f"all {spec.workers} workers exited 0", now, settings, cleanup,
                      workers=tally, worker_summary=f"{tally.ready}/{tally.total}")
    recheck = _earliest(node_recheck, *(grace_deadline(w, settings) for w in workers))
    if phase is Phase.DEPLOYING:
        started = [w for w in workers if w.state in (WorkerState.RUNNING, WorkerState.SUCCEEDED)]
        if len(started) == spec.workers:
            return _moved(job, Phase.RUNNING, Reason.WORKERS_RUNNING,
                          f"all {spec.workers} workers are running", now, settings, cleanup,
                          workers=tally, worker_summary=f"{tally.ready}/{tally.total}")
        admitted = _admitted_at(job)
        if spec.timeouts.deploy_seconds and admitted is not None:
            deadline = admitted + timedelta(seconds=spec.timeouts.deploy_seconds)
            if now >= deadline:
                return _end(job, _deploy_timeout(job, workers), current, stale, now, settings,
                            lost, tally)
            recheck = _earliest(recheck, deadline)
        missing = [CreatePod(w.index, _reserved_node(job, w.index))
                   for w in workers if w.state is WorkerState.MISSING]
        cleanup = [*missing, *cleanup]
    elif phase is Phase.RUNNING and spec.timeouts.run_seconds:
        # This attempt's time Running: queue and deploy time (and earlier attempts) do not count.
        deadline = (parse_time(status.phase_time) or now) + timedelta(
            seconds=spec.timeouts.run_seconds)
        if now >= deadline:
            return _end(job, Verdict(Phase.FAILED, Reason.DEADLINE_EXCEEDED,
                                     f"ran longer than spec.timeouts.runSeconds="
                                     f"{spec.timeouts.run_seconds}s; raise it or make the "
                                     "training finish sooner"), current, stale, now, settings,
                        lost, tally)
        recheck = _earliest(recheck, deadline)
    new = _with_counts(status, tally) if status.workers != tally else None
    return Decision(new, tuple(cleanup), recheck_at=recheck)


def _reserved_node(job: TrainingJob, index: int) -> str | None:
    nodes = job.status.reservation.nodes if job.status.reservation else []
    return nodes[index] if index < len(nodes) else None


def _on_lost_node(job: TrainingJob, w: Worker, lost: Mapping[str, str]) -> Worker:
    """A worker not yet finished whose node (or reserved node) is lost is itself lost."""
    if not lost or w.state in (WorkerState.SUCCEEDED, WorkerState.FAILED,
                               WorkerState.SETUP_FAILED, WorkerState.LOST):
        return w
    node = w.pod.node_name if w.pod and w.pod.node_name else _reserved_node(job, w.index)
    if node is not None and node in lost:
        return Worker(w.index, WorkerState.LOST, w.pod, detail=lost[node])
    return w


def _pending(job: TrainingJob, cleanup: Sequence[Action], now: datetime,
             settings: Settings) -> Decision:
    """Pending holds no capacity; only spec.timeouts.queueSeconds (per attempt) can end it."""
    limit = job.spec.timeouts.queue_seconds
    since = parse_time(job.status.phase_time)
    if not limit or since is None:
        return Decision(actions=tuple(cleanup))
    deadline = since + timedelta(seconds=limit)
    if now < deadline:
        return Decision(actions=tuple(cleanup), recheck_at=deadline)
    return _moved(job, Phase.DEPLOY_FAILED, Reason.QUEUE_TIMEOUT,
                  f"waited in the queue longer than spec.timeouts.queueSeconds={limit}s "
                  f"({job.status.message}); raise queueSeconds or spec.priority, or ask for "
                  "fewer GPUs", now, settings, cleanup, queue=None)


def _problem(w: Worker) -> str:
    """The last thing known to hold a worker back, for the deploy-timeout message."""
    who = f"worker {w.index} (pod {w.pod.name if w.pod else '-'})"
    if w.state is WorkerState.MISSING or w.pod is None:
        return f"{who} was never created"
    if w.state is WorkerState.UNSCHEDULABLE:
        return f"{who} could not be scheduled: {w.detail}"
    if not w.pod.node_name:
        return f"{who} is not scheduled yet"
    c = w.container or next(
        (c for c in (*w.pod.init_containers, *w.pod.containers) if c.state != "terminated"), None)
    if c is None:
        return f"{who} is {w.state.value.lower()}"
    what = "setup container" if c in w.pod.init_containers else "container"
    detail = f"{c.reason}: {c.message}" if c.reason and c.message else (c.reason or "starting")
    return f"{who}: {what} {c.name} is {c.state or 'waiting'} ({detail})"


def _deploy_timeout(job: TrainingJob, workers: Sequence[Worker]) -> Verdict:
    limit = job.spec.timeouts.deploy_seconds
    unschedulable = [w for w in workers if w.state is WorkerState.UNSCHEDULABLE]
    slow = unschedulable or [w for w in workers
                             if w.state not in (WorkerState.RUNNING, WorkerState.SUCCEEDED)]
    reason = Reason.UNSCHEDULABLE if unschedulable else Reason.DEPLOY_TIMEOUT
    what = _problem(slow[0]) if slow else "workers did not start"
    return Verdict(Phase.DEPLOY_FAILED, reason,
                   f"not every worker was running within spec.timeouts.deploySeconds={limit}s; "
                   f"{what}")


def _end(job: TrainingJob, verdict: Verdict, current: Sequence[PodView],
         stale: Sequence[PodView], now: datetime, settings: Settings,
         lost: Collection[str] = (), tally: WorkerCounts | None = None) -> Decision:
    """A retry deletes every pod (the next attempt reuses their names); any other end stops
    this attempt's workers and keeps their pods, and so their logs."""
    grace = job.spec.termination_grace_period_seconds
    if verdict.retry:
        return _moved(job, Phase.PENDING, verdict.reason, verdict.message, now, settings,
                      _deletes([*current, *stale], grace, lost), attempt=job.status.attempt + 1,
                      reservation=None, queue=None, workers=WorkerCounts(total=job.spec.workers),
                      worker_summary=f"0/{job.spec.workers}")
    counted: dict[str, object] = {} if tally is None else {
        "workers": tally, "worker_summary": f"{tally.ready}/{tally.total}"}
    return _moved(job, verdict.phase, verdict.reason, verdict.message, now, settings,
                  [*_stops(current, grace, lost), *_deletes(stale, grace, lost)], **counted)


def admit(job: TrainingJob, nodes: Sequence[str], now: datetime,
          settings: Settings) -> TrainingJobStatus:
    """Pending -> Created: the reservation is written before any pod exists."""
    where = (f" on {', '.join(sorted(set(nodes)))}" if nodes else "")
    message = f"admitted: {job.total_gpus} GPUs reserved{where}"
    decision = _moved(job, Phase.CREATED, Reason.ADMITTED, message, now, settings,
                      reservation=Reservation(attempt=job.status.attempt, nodes=list(nodes)),
                      queue=None)
    assert decision.status is not None
    return decision.status


def _waiting_message(job: TrainingJob, w: Waiting) -> str:
    spec = job.spec
    gang = (f"{w.needed} GPUs ({spec.workers} workers x {spec.gpus_per_worker} "
            f"{spec.gpu_resource})")
    if w.reason == Reason.NO_NODE_FITS and w.detail.startswith("no node"):
        return (f"no node can hold one worker: {w.detail}; fix the node constraints in "
                "spec.template.spec or add such nodes")
    if w.reason == Reason.NO_NODE_FITS:
        where = f" {w.detail}" if w.detail else ""
        return (f"no node can hold one worker: each needs {spec.gpus_per_worker} "
                f"{spec.gpu_resource}, the largest node{where} has {w.largest_node}; lower "
                "spec.gpusPerWorker or add larger nodes")
    if w.reason == Reason.QUEUED_BEHIND_HIGHER_PRIORITY:
        return f"queued: needs {gang}, {w.free} free, but {w.detail}"
    return f"waiting for capacity: needs {gang}, {w.free} free on the nodes it may use"


def waiting(job: TrainingJob, w: Waiting, now: datetime,
            settings: Settings) -> TrainingJobStatus | None:
    """The Pending status that says why the job waits and where it stands; None when the
    current one still does. Same reason, new numbers: at most one write per refresh period."""
    old = job.status
    last = parse_time(old.queue.updated_time) if old.queue else None
    fresh = last is not None and now - last < timedelta(seconds=settings.queue_refresh_seconds)
    if old.reason == w.reason and fresh:
        return None  # checked first: with 10,000 Pending jobs most passes end here
    message = _waiting_message(job, w)
    queue = QueueInfo(position=w.position, namespace_position=w.namespace_position,
                      gpus_needed=w.needed, gpus_free=w.free, largest_node_gpus=w.largest_node,
                      updated_time=format_time(now))
    if old.reason == w.reason:
        unchanged = old.message == message and old.queue is not None and \
            old.queue.model_copy(update={"updated_time": None}) == \
            queue.model_copy(update={"updated_time": None})
        if unchanged:
            return None
        return old.model_copy(update={"message": message, "queue": queue})
    conditions = _conditions(old.conditions, Phase.PENDING, w.reason, message, False,
                             job.metadata.generation, format_time(now))
    return old.model_copy(update={"reason": w.reason, "message": message, "queue": queue,
                                  "conditions": conditions})


def pod_rejected(job: TrainingJob, worker: int, error: str, now: datetime,
                 settings: Settings) -> Decision:
    return _moved(job, Phase.DEPLOY_FAILED, Reason.POD_REJECTED,
                  f"the API server rejected worker {worker}'s pod: {error}; fix the quota, "
                  "policy or spec field it names", now, settings, reservation=None)


def unreadable(problems: str, now: datetime, generation: int) -> tuple[dict[str, object], str]:
    """The status patch for a job the models cannot parse (there is no model to build on).
    It carries the same conditions as any DeployFailed job, so kstatus reads it as Failed."""
    message = f"the spec cannot be read: {problems}; fix the fields named and create the " \
              "TrainingJob again"
    stamp = format_time(now)
    conditions = _conditions((), Phase.DEPLOY_FAILED, Reason.INVALID_SPEC, message, False,
                             generation, stamp)
    status: dict[str, object] = {
        "phase": Phase.DEPLOY_FAILED.value, "reason": Reason.INVALID_SPEC.value, "message": message,
        "phaseTime": stamp, "completionTime": stamp, "observedGeneration": generation,
        "history": [{"phase": Phase.DEPLOY_FAILED.value, "reason": Reason.INVALID_SPEC.value,
                     "message": message, "time": stamp}],
        "conditions": [c.model_dump(by_alias=True, mode="json") for c in conditions]}
    return status, message
