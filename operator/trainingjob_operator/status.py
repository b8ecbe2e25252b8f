"""Pure: how a status looks after a transition. History, kstatus conditions, times and
worker counts follow from the new phase and reason, so no transition can forget one."""

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
    FAILED_PHASES,
    ConditionType,
    Phase,
    Reason,
)
from trainingjob_operator.workers import Worker, WorkerState


def dump_status(status: TrainingJobStatus) -> dict[str, Any]:
    """The status as a merge patch: a None removes its field; kopf's own part is kopf's."""
    out: dict[str, Any] = status.model_dump(by_alias=True, mode="json", exclude={"kopf"})
    return out


def conditions(old: Sequence[Condition], phase: Phase, reason: str, message: str,
               admitted: bool, generation: int, now: str) -> list[Condition]:
    """Each condition keeps its lastTransitionTime while its status stays the same."""
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


def counted(c: WorkerCounts) -> dict[str, object]:
    """The status fields that carry worker counts (the summary is the Workers column)."""
    return {"workers": c, "worker_summary": f"{c.ready}/{c.total}"}


def with_counts(status: TrainingJobStatus, c: WorkerCounts) -> TrainingJobStatus:
    return status.model_copy(update=counted(c))


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
    admitted = phase in ADMITTED or (phase.terminal and any(
        h.phase is Phase.CREATED for h in old.history))
    update: dict[str, object] = {
        "phase": phase, "reason": reason, "message": message, "phase_time": stamp,
        "history": history, "observed_generation": job.metadata.generation,
        "gpus": job.total_gpus,
        "conditions": conditions(old.conditions, phase, reason, message, admitted,
                                 job.metadata.generation, stamp),
    }
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


def unreadable_status(problems: str, now: datetime, generation: int,
                      phase: Phase = Phase.DEPLOY_FAILED) -> TrainingJobStatus:
    """The status of a job the models cannot parse (there is no model to build on). It
    carries the same conditions as any DeployFailed (or Failed, if it ran) job, so kstatus
    reads it as Failed."""
    message = f"the spec cannot be read: {printable(problems)}; fix the fields named and " \
              "create the TrainingJob again"
    stamp = format_time(now)
    reason = Reason.INVALID_SPEC
    return TrainingJobStatus(
        phase=phase, reason=reason, message=message, phase_time=stamp, completion_time=stamp,
        observed_generation=generation,
        history=[HistoryEntry(phase=phase, reason=reason, message=message, time=stamp)],
        conditions=conditions((), phase, reason, message, False, generation, stamp))
