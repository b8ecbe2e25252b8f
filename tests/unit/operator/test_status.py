from __future__ import annotations

from datetime import timedelta

from trainingjob_operator.settings import Settings
from trainingjob_operator.status import conditions, counts, dump_status, transition
from trainingjob_operator.vocabulary import Phase, Reason
from trainingjob_operator.workers import classify

from tests.unit.operator.factories import NOW, T0, at, exited, job, running

S = Settings()


def test_a_condition_keeps_its_transition_time_while_its_status_stays() -> None:
    first = conditions((), Phase.DEPLOYING, "CreatingWorkers", "m", True, 1, "t1")
    later = conditions(first, Phase.RUNNING, "WorkersRunning", "m", True, 1, "t2")
    since = {c.type: c.last_transition_time for c in later}
    assert since["Admitted"] == "t1" and since["Reconciling"] == "t1"  # True both times
    assert since["Running"] == "t2"  # False -> True
    assert {c.type: c.reason for c in later}["Admitted"] == "Admitted"


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


def test_dump_status_is_a_merge_patch_that_leaves_kopf_its_own_part() -> None:
    j = job(at("Running", kopf={"progress": {}}))
    out = dump_status(j.status)
    assert "kopf" not in out and out["phase"] == "Running"
    assert out["queue"] is None  # a None removes the field it names
