"""Pure: (job, its pods, its nodes, now) -> the next status and the actions that get there.

Only these edges exist: Pending→Created (the queue decides, `admit` writes), Created→Deploying,
Deploying→Running/Completed/DeployFailed/Failed, Running→Completed/Failed, active→Stopped,
Pending→DeployFailed (queue timeout) and the retry Created/Deploying/Running→Pending. Terminal
phases are absorbing: from them only clean-up of leftover pods happens, never a new status.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from trainingjob_operator.decision import (
    Action,
    CreatePod,
    CreateService,
    Decision,
    DeleteJob,
    Event,
    deletes,
    stops,
)
from trainingjob_operator.models import (
    QueueInfo,
    Reservation,
    TrainingJob,
    WorkerCounts,
)
from trainingjob_operator.nodes import Snapshot, lost_nodes
from trainingjob_operator.pods import PodView
from trainingjob_operator.results import parse_result
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import counted, counts, transition, with_counts
from trainingjob_operator.text import printable
from trainingjob_operator.timeutil import parse_time
from trainingjob_operator.validation import invalid_spec
from trainingjob_operator.vocabulary import (
    ADMITTED,
    FAILED_PHASES,
    TERMINAL,
    EventType,
    Phase,
    Reason,
)
from trainingjob_operator.waiting import queued_message
from trainingjob_operator.workers import (
    Verdict,
    Worker,
    WorkerState,
    classify,
    deploy_timeout,
    failure,
    grace_deadline,
    lost_worker,
    owned,
    squatter,
    worker_name_taken,
)

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
# Arriving here frees GPUs or asks for them: the queue runs again.
REQUEUES = TERMINAL | {Phase.PENDING}
# Failures that are usually the echo of another worker's: reported only if nothing else failed.
SYMPTOMS = frozenset({Reason.RENDEZVOUS_FAILED})
# Transitions that post no Event: every one is in status.history, and Events are for what a
# person should notice (admission, the end, anything that went wrong), so a job that runs
# well posts two, as many as a batch/v1 Job (SuccessfulCreate, Completed).
QUIET = frozenset({Reason.WAITING_FOR_CAPACITY, Reason.QUEUED_BEHIND_HIGHER_PRIORITY,
                   Reason.CREATING_WORKERS, Reason.WORKERS_RUNNING})


def moved(job: TrainingJob, phase: Phase, reason: Reason, message: str, now: datetime,
           settings: Settings, actions: Sequence[Action] = (), **changes: object) -> Decision:
    """A transition: the new status, its Event, and the actions that go with it. The
    message may quote what workers, tenants or the API server wrote: it is made printable."""
    assert (job.status.phase, phase) in EDGES, f"no edge {job.status.phase} -> {phase}"
    message = printable(message)
    kind = EventType.WARNING if phase in FAILED_PHASES or reason is Reason.WORKER_LOST \
        else EventType.NORMAL
    events = () if reason in QUIET else (Event(kind, reason, message),)
    return Decision(transition(job, phase, reason, message, now, settings, **changes),
                    tuple(actions), events, releases=phase in REQUEUES)


def _admitted_at(job: TrainingJob) -> datetime | None:
    for h in reversed(job.status.history):
        if h.phase is Phase.CREATED:
            return parse_time(h.time)
    return parse_time(job.status.phase_time)


def _earliest(*times: datetime | None) -> datetime | None:
    real = [t for t in times if t is not None]
    return min(real) if real else None


def decide(job: TrainingJob, pods: Sequence[PodView], now: datetime, settings: Settings,
           nodes: Snapshot | None = None) -> Decision:
    """`nodes`: the job's nodes (nodes.job_nodes) as the shell sees them; without it node
    loss is not judged. `pods`: those under the job's key (its label); only the ones it owns
    are its workers, and the others never count, nor are they stopped or deleted."""
    spec, status = job.spec, job.status
    grace = spec.termination_grace_period_seconds
    everyone, pods = pods, [p for p in pods if owned(job, p)]
    current = [p for p in pods if p.attempt == status.attempt]
    stale = [p for p in pods if p.attempt != status.attempt]
    by_index = {p.index: p for p in current if p.index is not None and 0 <= p.index < spec.workers}
    lost, node_recheck = ({}, None) if nodes is None else lost_nodes(
        nodes, now, timedelta(seconds=settings.node_lost_grace_seconds))
    workers = [_on_lost_node(job, classify(i, by_index.get(i)), lost)
               for i in range(spec.workers)]
    cleanup = deletes(stale, grace, lost_nodes=lost)
    phase = status.phase

    if phase is None:
        if spec.stop:
            return moved(job, Phase.STOPPED, Reason.STOPPED_BY_USER,
                          "stopped before it was queued", now, settings)
        problem = invalid_spec(job, settings)
        if problem:
            return moved(job, Phase.DEPLOY_FAILED, Reason.INVALID_SPEC, problem, now, settings)
        # A new job's first status comes from the queue (`admit` or `queued`), in one write
        # that already says where it stands; it asks for GPUs, so the queue runs.
        return Decision(releases=True)
    if phase.terminal:  # absorbing: only make sure nothing is left running, then expire
        return _finished(job, stops(current, grace, lost) + cleanup, now, settings)
    if spec.stop:
        return moved(job, Phase.STOPPED, Reason.STOPPED_BY_USER,
                      f"stopped by the user; workers get SIGTERM and {grace}s to exit",
                      now, settings, [*stops(current, grace, lost), *cleanup],
                      reservation=None, queue=None)
    taken = squatter(job, everyone) if phase in ADMITTED else None
    if taken is not None:  # that worker cannot be made, nor be trusted
        return _end(job, worker_name_taken(job, "Pod", taken.name, taken.owner_uid),
                    current, stale, now, settings, lost, counts(job, workers))
    if phase is Phase.PENDING:
        return _pending(job, cleanup, now, settings)
    if phase is Phase.CREATED:
        return _created(job, workers, stale, cleanup, lost, now, settings)

    # Deploying or Running: the failure mapping, in worker order.
    tally = counts(job, workers)  # a failed job's status says how many workers failed
    for w in workers:
        if w.state is WorkerState.LOST or (phase is Phase.RUNNING
                                           and w.state is WorkerState.MISSING):
            if w.state is WorkerState.MISSING:
                w = Worker(w.index, WorkerState.LOST, detail="pod deleted")
            return _end(job, lost_worker(job, w), current, stale, now, settings, lost, tally)
    verdicts = [v for w in workers if (v := failure(job, w, now, settings)) is not None]
    if verdicts:  # a symptom (workers that lost their peer) only when nothing else failed
        verdict = next((v for v in verdicts if v.reason not in SYMPTOMS), verdicts[0])
        return _end(job, verdict, current, stale, now, settings, lost, tally)
    if all(w.state is WorkerState.SUCCEEDED for w in workers):
        return _completed(job, workers, tally, cleanup, now, settings)
    recheck = _earliest(node_recheck, *(grace_deadline(w, settings) for w in workers))
    if phase is Phase.DEPLOYING:
        started = [w for w in workers if w.state in (WorkerState.RUNNING, WorkerState.SUCCEEDED)]
        if len(started) == spec.workers:
            return moved(job, Phase.RUNNING, Reason.WORKERS_RUNNING,
                          f"all {spec.workers} workers are running", now, settings, cleanup,
                          **counted(tally))
        admitted = _admitted_at(job)
        if spec.timeouts.deploy_seconds and admitted is not None:
            deadline = admitted + timedelta(seconds=spec.timeouts.deploy_seconds)
            if now >= deadline:
                return _end(job, deploy_timeout(job, workers), current, stale, now, settings,
                            lost, tally)
            recheck = _earliest(recheck, deadline)
        missing: list[Action] = [CreatePod(w.index, _reserved_node(job, w.index))
                                 for w in workers if w.state is WorkerState.MISSING]
        if missing and spec.workers > 1:  # the admission's writes may have been cut short
            missing.insert(0, CreateService())
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
    new = with_counts(status, tally) if status.workers != tally else None
    return Decision(new, tuple(cleanup), recheck_at=recheck)


def _completed(job: TrainingJob, workers: Sequence[Worker], tally: WorkerCounts,
               cleanup: Sequence[Action], now: datetime, settings: Settings) -> Decision:
    """Every worker exited 0; rank 0 may have said what the job produced."""
    said = workers[0].container.message if workers and workers[0].container else None
    result, problem = parse_result(said)
    done = moved(job, Phase.COMPLETED, Reason.SUCCEEDED,
                  f"all {job.spec.workers} workers exited 0"
                  + (f"; model: {result.model}" if result and result.model else ""),
                  now, settings, cleanup, result=result, **counted(tally))
    if not problem:
        return done
    ignored = Event(EventType.WARNING, Reason.RESULT_IGNORED,
                    f"worker 0's result was ignored in part or whole: {printable(problem)}; "
                    'write one JSON object such as {"model": "...", "metrics": {"loss": 0.1}} '
                    "to /dev/termination-log")
    return replace(done, events=(*done.events, ignored))


def _finished(job: TrainingJob, actions: Sequence[Action], now: datetime,
              settings: Settings) -> Decision:
    """A finished job stays until its ttlSecondsAfterFinished (its own, else the operator's
    default) is over; the sweep comes back then, with no timer of its own."""
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None and settings.ttl_seconds_after_finished >= 0:
        ttl = settings.ttl_seconds_after_finished
    finished = parse_time(job.status.completion_time or job.status.phase_time)
    if ttl is None or finished is None:
        return Decision(actions=tuple(actions))
    expiry = finished + timedelta(seconds=ttl)
    if now >= expiry:
        return Decision(actions=(DeleteJob(job.metadata.resource_version),))
    return Decision(actions=tuple(actions), recheck_at=expiry)


def _created(job: TrainingJob, workers: Sequence[Worker], stale: Sequence[PodView],
             cleanup: Sequence[Action], lost: Mapping[str, str], now: datetime,
             settings: Settings) -> Decision:
    """Created -> Deploying: the Service and every worker pod, each pinned to its node."""
    spec = job.spec
    if stale:  # the previous attempt's pods must be gone before new ones take their names
        return Decision(actions=tuple(cleanup), recheck_at=now + timedelta(seconds=5))
    gone = next((w for w in workers if w.state is WorkerState.LOST), None)
    if gone is not None:  # a reserved node was lost before any pod existed
        lost_one = lost_worker(job, gone)
        if not lost_one.retry:  # it never started: a deploy failure, not a training one
            lost_one = replace(lost_one, phase=Phase.DEPLOY_FAILED)
        return _end(job, lost_one, [], stale, now, settings, lost)
    # One worker has no peer to find: no Service, and no Endpoints for it (DNS for gangs).
    creates: list[Action] = [CreateService()] if spec.workers > 1 else []
    creates += [CreatePod(w.index, _reserved_node(job, w.index))
                for w in workers if w.state is WorkerState.MISSING]
    return moved(job, Phase.DEPLOYING, Reason.CREATING_WORKERS,
                  f"{spec.workers} worker pods created; scheduling, pulling images"
                  f"{', running setup' if spec.setup else ''}", now, settings, creates)


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
    return moved(job, Phase.DEPLOY_FAILED, Reason.QUEUE_TIMEOUT,
                  f"waited in the queue longer than spec.timeouts.queueSeconds={limit}s "
                  f"({job.status.message}); raise queueSeconds or spec.priority, or ask for "
                  "fewer GPUs", now, settings, cleanup, queue=None)


def _end(job: TrainingJob, verdict: Verdict, current: Sequence[PodView],
         stale: Sequence[PodView], now: datetime, settings: Settings,
         lost: Collection[str] = (), tally: WorkerCounts | None = None) -> Decision:
    """A retry deletes every pod (the next attempt reuses their names); any other end stops
    this attempt's workers and keeps their pods, and so their logs."""
    grace = job.spec.termination_grace_period_seconds
    if verdict.retry:
        return moved(job, Phase.PENDING, verdict.reason, verdict.message, now, settings,
                      deletes([*current, *stale], grace, lost), attempt=job.status.attempt + 1,
                      reservation=None, queue=None,
                      **counted(WorkerCounts(total=job.spec.workers)))
    return moved(job, verdict.phase, verdict.reason, verdict.message, now, settings,
                  [*stops(current, grace, lost), *deletes(stale, grace, lost)],
                  failure=verdict.failure, **({} if tally is None else counted(tally)))


def new_in_queue(job: TrainingJob, settings: Settings) -> bool:
    """A job the queue takes up as it is: no status yet, a spec that can run, not stopped."""
    return (job.status.phase is None and not job.spec.stop
            and invalid_spec(job, settings) is None)


def queued(job: TrainingJob, reason: Reason, message: str, queue: QueueInfo, now: datetime,
           settings: Settings) -> Decision:
    """A new job's first status: Pending, with why it waits and where it stands."""
    return moved(job, Phase.PENDING, reason, message, now, settings,
                  attempt=job.status.attempt or 1, queue=queue)


def admit(job: TrainingJob, nodes: Sequence[str], now: datetime,
          settings: Settings) -> Decision:
    """Pending -> Created -> Deploying in one status write, then the pods: the reservation
    is recorded before any pod exists, and the history keeps each step. A new job passes
    through Pending on the way (the queue admitted it at once)."""
    events: tuple[Event, ...] = ()
    if job.status.phase is None:
        first = moved(job, Phase.PENDING, Reason.WAITING_FOR_CAPACITY, queued_message(job),
                       now, settings, attempt=1)
        job, events = _with(job, first), first.events
    where = (f" on {', '.join(sorted(set(nodes)))}" if nodes else "")
    created = moved(job, Phase.CREATED, Reason.ADMITTED,
                     f"admitted: {job.total_gpus} GPUs reserved{where}", now, settings,
                     reservation=Reservation(attempt=job.status.attempt, nodes=list(nodes)),
                     queue=None)
    job = _with(job, created)
    deploying = _created(job, [classify(i, None) for i in range(job.spec.workers)], (), (),
                         {}, now, settings)
    return replace(deploying, events=(*events, *created.events, *deploying.events))


def _with(job: TrainingJob, decision: Decision) -> TrainingJob:
    return job.model_copy(update={"status": decision.status})
