"""Pure: the one author of a status. `transition` moves a job to a phase, `refresh` says
something new in the same phase; history, kstatus conditions, times and worker counts follow
from the phase and reason, so no write can forget one or pair a phase with a reason
vocabulary.PHASE_REASONS does not allow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from trainingjob_operator.models import (
    Condition,
    HistoryEntry,
    TrainingJob,
    TrainingJobStatus,
    WorkerCounts,
)
from trainingjob_operator.settings import Settings
from trainingjob_operator.text import printable
from trainingjob_operator.timeutil import format_time
from trainingjob_operator.vocabulary import (
    ADMITTED,
    CONDITION_TRUE_IN,
    PHASE_REASONS,
    ConditionReason,
    ConditionType,
    Phase,
    Reason,
)
from trainingjob_operator.workers import Worker, WorkerState


def dump_status(status: TrainingJobStatus) -> dict[str, Any]:
    """The status as a merge patch: a None removes its field."""
    out: dict[str, Any] = status.model_dump(by_alias=True, mode="json")
    return out


def _reason(type_: ConditionType, true: bool, phase: Phase, reason: Reason) -> ConditionReason:
    """Each condition's own reason (vocabulary.CONDITION_TRUE_IN says why), so no condition
    reads as the job's reason out of context (Failed=False reason=Succeeded)."""
    if type_ is ConditionType.ADMITTED:
        return Reason.ADMITTED if true else reason  # False: why it is not admitted
    if not true:
        return phase
    return phase if type_ is ConditionType.FINISHED else reason


def conditions(old: Sequence[Condition], phase: Phase, reason: Reason, message: str,
               admitted: bool, generation: int, now: str) -> list[Condition]:
    """Each condition keeps its lastTransitionTime while its status stays the same."""
    previous = {c.type: c for c in old}
    out = []
    for type_, true_in in CONDITION_TRUE_IN.items():
        true = admitted if type_ is ConditionType.ADMITTED else phase in true_in
        status = "True" if true else "False"
        before = previous.get(type_)
        since = before.last_transition_time if before and before.status == status else now
        out.append(Condition(type=type_, status=status,
                             reason=_reason(type_, true, phase, reason), message=message,
                             last_transition_time=since, observed_generation=generation))
    return out


def _admitted(old: TrainingJobStatus, phase: Phase) -> bool:
    """Admitted: the phase holds a reservation, or the job ended holding one (its last
    attempt was admitted; a retried job that then timed out in the queue was not)."""
    if not phase.terminal:
        return phase in ADMITTED
    was = any(c.type == ConditionType.ADMITTED and c.status == "True" for c in old.conditions)
    return old.phase in ADMITTED or was


def _allowed(phase: Phase, reason: Reason) -> None:
    assert reason in PHASE_REASONS[phase], f"{phase} cannot carry reason {reason}"


def counts(job: TrainingJob, workers: Iterable[Worker]) -> WorkerCounts:
    ws = list(workers)
    return WorkerCounts(
        total=job.spec.workers,
        ready=sum(w.state is WorkerState.RUNNING and bool(w.container and w.container.ready)
                  for w in ws),
        succeeded=sum(w.state is WorkerState.SUCCEEDED for w in ws),
        failed=sum(w.state in (WorkerState.FAILED, WorkerState.SETUP_FAILED) for w in ws))


def counted(c: WorkerCounts) -> dict[str, object]:
    """The status fields that carry worker counts (the summary is the Workers column)."""
    return {"workers": c, "worker_summary": f"{c.ready}/{c.total}"}


def with_counts(status: TrainingJobStatus, c: WorkerCounts) -> TrainingJobStatus:
    return status.model_copy(update=counted(c))


def _derived(job: TrainingJob, phase: Phase, reason: Reason, message: str,
             stamp: str) -> dict[str, object]:
    """The fields any status write recomputes from the job as it is now: the reason, the
    message and the conditions that follow from them, and what the spec says."""
    _allowed(phase, reason)
    generation = job.metadata.generation
    return {"reason": reason, "message": message, "observed_generation": generation,
            "gpus": job.total_gpus,
            "conditions": conditions(job.status.conditions, phase, reason, message,
                                     _admitted(job.status, phase), generation, stamp)}


def transition(job: TrainingJob, phase: Phase, reason: Reason, message: str, now: datetime,
               settings: Settings, **changes: object) -> TrainingJobStatus:
    """The status after moving to `phase`: history, conditions and times follow. The
    message is made printable (it may quote a worker, a tenant or the API server)."""
    old = job.status
    message = printable(message)
    stamp = format_time(now)
    attempt = changes.get("attempt", old.attempt)
    history = [*old.history, HistoryEntry(phase=phase, reason=reason, message=message,
                                          time=stamp, attempt=attempt)
               ][-settings.history_limit:]
    update: dict[str, object] = {"phase": phase, "phase_time": stamp, "history": history,
                                 **_derived(job, phase, reason, message, stamp)}
    if phase.terminal and not old.completion_time:
        update["completion_time"] = stamp
    if phase is Phase.RUNNING and not old.start_time:
        update["start_time"] = stamp
    update.update(changes)
    status = old.model_copy(update=update)
    if status.workers is None:
        status = with_counts(status, WorkerCounts(total=job.spec.workers))
    if phase.terminal and status.workers is not None:  # nothing runs in a finished job
        status = with_counts(status, status.workers.model_copy(update={"ready": 0}))
    return status


def refresh(job: TrainingJob, reason: Reason, message: str, now: datetime,
            **changes: object) -> TrainingJobStatus:
    """The same phase with a new reason or message (a waiting job's place in the queue):
    the conditions follow as in `transition`, and the phase's time and the history stay.
    The history records phase changes only: a job that waits for hours, its reason moving
    between WaitingForCapacity and QueuedBehindHigherPriority, would otherwise push its
    transitions out of the bounded history."""
    phase = job.status.phase
    assert phase is not None, "refresh of a job with no status: use transition"
    update = _derived(job, phase, reason, printable(message), format_time(now))
    return job.status.model_copy(update={**update, **changes})


def unreadable_status(problems: str, now: datetime, generation: int,
                      phase: Phase = Phase.DEPLOY_FAILED,
                      admitted: bool = False) -> TrainingJobStatus:
    """The status of a job the models cannot parse (there is no model to build on). It
    carries the same conditions as any DeployFailed (or Failed, if it ran) job, so kstatus
    reads it as Failed; `admitted`: it held a reservation when it became unreadable."""
    message = f"the spec cannot be read: {printable(problems)}; fix the fields named and " \
              "create the TrainingJob again"
    stamp = format_time(now)
    reason = Reason.INVALID_SPEC
    _allowed(phase, reason)
    return TrainingJobStatus(
        phase=phase, reason=reason, message=message, phase_time=stamp, completion_time=stamp,
        observed_generation=generation,
        history=[HistoryEntry(phase=phase, reason=reason, message=message, time=stamp)],
        conditions=conditions((), phase, reason, message, admitted, generation, stamp))
