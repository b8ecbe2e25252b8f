from __future__ import annotations

import json
from datetime import timedelta

from trainingjob_operator.lifecycle import decide
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import (
    conditions,
    counts,
    dump_status,
    transition,
    unreadable_status,
)
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
