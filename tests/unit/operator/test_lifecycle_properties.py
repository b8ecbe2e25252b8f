"""Property tests: no sequence of observations leaves a terminal phase or breaks the rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from trainingjob_operator import lifecycle
from trainingjob_operator.decision import CreatePod
from trainingjob_operator.lifecycle import EDGES
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Phase

from tests.unit.operator.factories import NOW, container, job, pod

S = Settings(image_pull_grace_seconds=5, config_error_grace_seconds=5)

STATES: list[dict[str, dict[str, Any]]] = [
    {"running": {"startedAt": "2026-01-01T11:59:00Z"}},
    {"terminated": {"exitCode": 0, "reason": "Completed"}},
    {"terminated": {"exitCode": 1, "reason": "Error"}},
    {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    {"waiting": {"reason": "ImagePullBackOff"}},
    {"waiting": {"reason": "InvalidImageName"}},
    {"waiting": {"reason": "CreateContainerConfigError"}},
    {"waiting": {"reason": "ContainerCreating"}},
]


@st.composite
def worker_pod(draw: st.DrawFn, index: int, attempt: int) -> PodView | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None  # missing
    state = draw(st.sampled_from(STATES))
    phase = {"terminated": "Succeeded" if state.get("terminated", {}).get("exitCode") == 0
             else "Failed", "running": "Running"}.get(next(iter(state)), "Pending")
    return pod(index, attempt=draw(st.sampled_from([attempt, attempt, attempt - 1])),
               phase=phase, containers=[container(**state)],
               deleted=draw(st.integers(0, 9)) == 0,
               reason="Evicted" if draw(st.integers(0, 19)) == 0 else None)


step = st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 600), st.data())


@settings(max_examples=300, deadline=None)
@given(workers=st.integers(1, 3), limit=st.integers(0, 2), steps=st.lists(step, max_size=12))
def test_no_observation_sequence_breaks_the_lifecycle(workers: int, limit: int,
                                                      steps: list[tuple[bool, int, int,
                                                                        st.DataObject]]) -> None:
    j: TrainingJob = job(workers=workers, retries={"limit": limit},
                         timeouts={"deploySeconds": 300, "runSeconds": 900})
    now = NOW
    for stop, admit_roll, seconds, data in steps:
        now += timedelta(seconds=seconds)
        if stop:
            j = j.model_copy(update={"spec": j.spec.model_copy(update={"stop": True})})
        before = j.status
        attempt = before.attempt
        pods = [p for i in range(workers)
                if (p := data.draw(worker_pod(i, attempt))) is not None]
        if before.phase is Phase.PENDING and admit_roll == 0 and not j.spec.stop:
            decision = lifecycle.admit(j, ["n0"] * workers, now, S)
        else:
            decision = lifecycle.decide(j, pods, now, S)
        if before.phase is not None and before.phase.terminal:
            assert decision.status is None, "a terminal phase changed"
            assert not any(isinstance(a, CreatePod) for a in decision.actions)
        if decision.status is not None:
            after = decision.status
            if after.phase != before.phase:
                assert (before.phase, after.phase) in EDGES
                assert after.history[-1].phase is after.phase
            assert after.attempt >= before.attempt
            assert after.attempt <= limit + 1
            if after.phase is Phase.STOPPED:
                assert j.spec.stop
            j = j.model_copy(update={"status": after})
        if j.status.phase is Phase.CREATED:
            assert j.status.reservation is not None
