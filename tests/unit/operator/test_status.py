from __future__ import annotations

import json
from datetime import timedelta

import pytest
from trainingjob_operator.lifecycle import decide
from trainingjob_operator.models import TrainingJobStatus
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import (
    conditions,
    counts,
    dump_status,
    refresh,
    transition,
    unreadable_status,
)
from trainingjob_operator.vocabulary import EVENT_ONLY, PHASE_REASONS, Phase, Reason
from trainingjob_operator.workers import classify

from tests.unit.operator.factories import NOW, T0, at, exited, job, running

S = Settings()


def test_a_condition_keeps_its_transition_time_while_its_status_stays() -> None:
    first = conditions((), Phase.DEPLOYING, Reason.CREATING_WORKERS, "m", True, 1, "t1")
    later = conditions(first, Phase.RUNNING, Reason.WORKERS_RUNNING, "m", True, 1, "t2")
    since = {c.type: c.last_transition_time for c in later}
    assert since["Admitted"] == "t1" and since["Reconciling"] == "t1"  # True both times
    assert since["Running"] == "t2"  # False -> True
    assert {c.type: c.reason for c in later}["Admitted"] == "Admitted"


def _conditions(status: TrainingJobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


# status and reason of each condition after: a run that Completed, a run that Failed
# (OOMKilled), and a new job's first Pending status.
OWN_REASONS = {
    "Admitted": ("True Admitted", "True Admitted", "False WaitingForCapacity"),
    "Running": ("False Completed", "False Failed", "False Pending"),
    "Finished": ("True Completed", "True Failed", "False Pending"),
    "Complete": ("True Succeeded", "False Failed", "False Pending"),
    "Failed": ("False Completed", "True OOMKilled", "False Pending"),
    "Reconciling": ("False Completed", "False Failed", "True WaitingForCapacity"),
    "Stalled": ("False Completed", "True OOMKilled", "False Pending"),
}


def test_each_condition_has_its_own_reason_not_the_jobs() -> None:
    """True: the job's reason (Admitted and Finished: their own word); False: the phase
    that keeps it False, except Admitted=False, which says why the job is not admitted."""
    running = job(at("Running", history=[{"phase": "Created", "reason": "Admitted",
                                          "time": T0}]))
    written = [transition(running, Phase.COMPLETED, Reason.SUCCEEDED, "ok", NOW, S),
               transition(running, Phase.FAILED, Reason.OOM_KILLED, "OOMKilled", NOW, S),
               transition(job(), Phase.PENDING, Reason.WAITING_FOR_CAPACITY, "queued", NOW, S)]
    for i, status in enumerate(written):
        assert _conditions(status) == {
            type_: tuple(want[i].split()) for type_, want in OWN_REASONS.items()}


def test_a_job_that_ends_from_the_queue_was_not_admitted_even_after_an_earlier_attempt() -> None:
    """Admitted speaks of the last attempt: a retried job that times out in the queue never
    got its second reservation (the history still has the first attempt's Created)."""
    retried = job(at("Pending", attempt=2, reason="WorkerLost", history=[
        {"phase": "Created", "reason": "Admitted", "time": T0, "attempt": 1},
        {"phase": "Pending", "reason": "WorkerLost", "time": T0, "attempt": 2}]))
    timed_out = transition(retried, Phase.DEPLOY_FAILED, Reason.QUEUE_TIMEOUT, "late", NOW, S)
    assert _conditions(timed_out)["Admitted"] == ("False", "QueueTimeout")
    assert _conditions(timed_out)["Finished"] == ("True", "DeployFailed")


def test_refresh_rebuilds_reason_message_and_conditions_and_adds_no_history() -> None:
    waits = job(at("Pending", reason="WaitingForCapacity"), workers=2)
    waits = waits.model_copy(update={"status": transition(
        waits, Phase.PENDING, Reason.WAITING_FOR_CAPACITY, "queued", NOW, S)})
    later = NOW + timedelta(minutes=5)
    held = refresh(waits, Reason.QUEUED_BEHIND_HIGHER_PRIORITY, "behind ns/vip\x1b[2J", later)
    assert (held.phase, held.reason) == (Phase.PENDING, "QueuedBehindHigherPriority")
    assert held.message == "behind ns/vip"  # printable, as a transition's
    assert held.history == waits.status.history and held.phase_time == waits.status.phase_time
    assert _conditions(held)["Admitted"] == ("False", "QueuedBehindHigherPriority")
    assert _conditions(held)["Reconciling"] == ("True", "QueuedBehindHigherPriority")
    assert all(c.message == "behind ns/vip" for c in held.conditions)
    # Still False, still True: each keeps the time it became so.
    assert {c.last_transition_time for c in held.conditions} == {"2026-01-01T12:00:00Z"}


def test_every_reason_belongs_to_a_phase_and_a_phase_refuses_any_other() -> None:
    placed = set().union(*PHASE_REASONS.values())
    assert placed == set(Reason) - EVENT_ONLY
    assert not placed & EVENT_ONLY
    assert set(PHASE_REASONS) == set(Phase)
    with pytest.raises(AssertionError, match="Completed cannot carry reason OOMKilled"):
        transition(job(at("Running")), Phase.COMPLETED, Reason.OOM_KILLED, "x", NOW, S)
    with pytest.raises(AssertionError, match="Pending cannot carry reason Succeeded"):
        refresh(job(at("Pending")), Reason.SUCCEEDED, "x", NOW)


def test_transition_appends_history_and_sets_the_times_once() -> None:
    j = job(at("Deploying", history=[{"phase": "Created", "reason": "Admitted", "time": T0}]),
            workers=2)
    running_status = transition(j, Phase.RUNNING, Reason.WORKERS_RUNNING, "go", NOW, S)
    assert running_status.start_time == "2026-01-01T12:00:00Z"
    assert running_status.history[-1].phase is Phase.RUNNING and running_status.completion_time \
        is None
    done = transition(j.model_copy(update={"status": running_status}), Phase.COMPLETED,
                      Reason.SUCCEEDED, "ok", NOW + timedelta(seconds=5), S)
    assert done.start_time == running_status.start_time
    assert done.completion_time == "2026-01-01T12:00:05Z"
    assert {c.type: c.status for c in done.conditions}["Admitted"] == "True"  # was admitted


def test_counts_see_ready_succeeded_and_failed_workers() -> None:
    j = job(workers=3)
    c = counts(j, [classify(0, running(0)), classify(1, exited(1)), classify(2, exited(2, 1))])
    assert (c.total, c.ready, c.succeeded, c.failed) == (3, 1, 1, 1)


def test_dump_status_is_a_merge_patch_of_the_models_fields_only() -> None:
    """A field the model does not have (status.kopf, which kopf kept while it ran handlers,
    before the CRD dropped it) is read past and never written back."""
    j = job(at("Running", kopf={"progress": {}}))
    out = dump_status(j.status)
    assert "kopf" not in out and out["phase"] == "Running"
    assert out["queue"] is None  # a None removes the field it names


HOSTILE = "\x1b[2J\x1b[Hall good\r\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07\u202edone\n"


def _clean(text: str | None) -> bool:
    return text is not None and text.isprintable()


def test_a_transitions_message_is_printable_in_status_history_and_conditions() -> None:
    status = transition(job(at("Deploying")), Phase.FAILED, Reason.ERROR, HOSTILE, NOW, S)
    assert status.message == "all good linkdone "
    assert _clean(status.history[-1].message)
    assert all(_clean(c.message) for c in status.conditions)
    bad = unreadable_status(f"spec.image: {HOSTILE}", NOW, 1)
    assert _clean(bad.message) and _clean(bad.history[0].message)


def test_what_a_worker_wrote_reaches_status_and_events_without_control_characters() -> None:
    """A rank-0 result and a failed worker's output, each with ANSI, OSC 8, CR and a bidi
    override: the decision's status (message, result, failure) and Events are clean; the
    output tail keeps its lines."""
    result = json.dumps({"model": f"s3://b/{HOSTILE}", "metrics": {f"loss{HOSTILE}": 0.1}})
    d = decide(job(at("Running")), [exited(0, message=result)], NOW, S)
    assert d.status is not None and d.status.phase is Phase.COMPLETED
    assert d.status.result is not None and _clean(d.status.result.model)
    assert all(_clean(name) for name in d.status.result.metrics)
    assert _clean(d.status.message) and d.events and all(_clean(e.message) for e in d.events)
    assert [e.reason for e in d.events] == ["Succeeded", "ResultIgnored"]
    d = decide(job(at("Running")), [exited(0, code=1, message=f"step 1\n{HOSTILE}ValueError: "
                                                              f"bad{HOSTILE}")], NOW, S)
    assert d.status is not None and d.status.failure is not None
    assert _clean(d.status.message) and all(_clean(e.message) for e in d.events)
    output = d.status.failure.output
    assert output.startswith("step 1\n") and all(_clean(line) for line in output.splitlines())
