"""Property tests: jobs seeded through the queue, as the admission pass seeds them, then any
sequence of queue passes, pod observations and refused creates. No sequence leaves a terminal
phase, takes an edge that does not exist, pairs a phase with a reason it may not carry, or
gives a condition a reason that is not its own; and across examples every phase and every
(phase, reason) pair the core declares is reached, so the test cannot explore nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from itertools import pairwise
from random import Random
from typing import Any, Protocol, TypeVar

from hypothesis import event, given, settings
from hypothesis import strategies as st
from trainingjob_operator import lifecycle, queue, refusals, waiting
from trainingjob_operator.decision import CreatePod, Decision
from trainingjob_operator.lifecycle import EDGES
from trainingjob_operator.models import TrainingJob, TrainingJobStatus
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import (
    ADMITTED,
    CONDITION_TRUE_IN,
    DEFAULT_GPU_RESOURCE,
    EVENT_ONLY,
    PHASE_REASONS,
    QUEUE_REASONS,
    ConditionType,
    Phase,
    Reason,
)

from tests.unit.operator.factories import NOW, container, job, pod

# history_limit: the whole history stays, so each step's new entries are the ones after the
# old history's length.
S = Settings(image_pull_grace_seconds=5, config_error_grace_seconds=5, history_limit=64)
GPU = DEFAULT_GPU_RESOURCE
NODES = [NodeView(f"n{i}", {GPU: 8}, True) for i in range(2)]
# A higher-priority gang that waits for both nodes (it needs all 16 GPUs): a job that would
# fit behind it is QueuedBehindHigherPriority.
RIVAL = queue.Candidate(("ns", "vip"), 10, "2026-01-01T00:00:00Z", 2, 8, GPU)
KEY = ("ns", "j")

T = TypeVar("T")


class Choose(Protocol):
    """One pick among options: hypothesis's draw, or a seeded Random's choice."""

    def __call__(self, options: Sequence[T], /) -> T: ...


def _exit(code: int, reason: str, said: str = "") -> dict[str, Any]:
    return container(terminated={"exitCode": code, "reason": reason, "message": said})


# What a worker pod may show, as pod() keywords: started first (running, exited), then
# states from before the training container starts.
SHAPES: tuple[dict[str, Any], ...] = (
    {"containers": [container(running={"startedAt": "2026-01-01T11:59:00Z"})]},
    {"phase": "Succeeded", "containers": [_exit(0, "Completed")]},
    {"phase": "Failed", "containers": [_exit(1, "Error")]},
    {"phase": "Failed", "containers": [_exit(137, "OOMKilled")]},
    {"phase": "Failed", "containers": [_exit(1, "Error", "OutOfMemoryError: CUDA out of memory")]},
    {"phase": "Failed", "containers": [_exit(1, "Error", "DistNetworkError: rendezvous failed")]},
    *({"phase": "Pending", "containers": [container(waiting={"reason": r})]}
      for r in ("ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                "ContainerCreating")),
    *({"phase": "Failed", "containers": [container(waiting={"reason": "PodInitializing"})],
       "init": [_exit(1, "Error", said) | {"name": "setup"}]}
      for said in ("", "ERROR: No matching distribution found for torch==9.9")),
    {"phase": "Pending", "node": None, "containers": [], "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available"}]},
)
RUNNING, SUCCEEDED, UNSCHEDULABLE = 0, 1, len(SHAPES) - 1
STARTED = range(6)  # the training container ran: running, or exited


@dataclass(frozen=True)
class Seen:
    """One worker's pod as a step observes it."""

    shape: int | None  # an index into SHAPES; None: no pod
    stale: bool = False  # the previous attempt's
    deleted: bool = False
    evicted: bool = False
    foreign: bool = False  # of that name, but not the job's (no owner)


class Kind(Enum):
    QUEUE = "a queue pass: admit, write the first status, or say why it waits"
    OBSERVE = "reconcile what the pods show"
    REFUSED = "the API refused a create the decision asked for"
    UNUSABLE = "the operator could not decide, place or render the job"


@dataclass(frozen=True)
class Step:
    kind: Kind
    seconds: int
    stop: bool
    free: int  # GPUs free on each node in a queue pass
    rival: bool  # a higher-priority gang waits for the same nodes
    refusal: int  # which create the API refused: pod, Service, or a name taken
    seen: tuple[Seen, ...]  # one per worker; a single one: the gang moves together


def a_job(choose: Choose) -> TrainingJob:
    return job(workers=choose([1, 2, 3]), gpusPerWorker=choose([0, 1, 8, 8, 16]),
               retries={"limit": choose([0, 1, 2])},
               timeouts={"deploySeconds": choose([30, 300]),
                         "runSeconds": choose([None, 120, 900]),
                         "queueSeconds": choose([None, 1200])})


def a_step(choose: Choose, workers: int) -> Step:
    rare = [False] * 19 + [True]

    def seen() -> Seen:  # mostly running: a gang that reaches Running, and stays a while
        shapes = [None, *range(len(SHAPES)), *[RUNNING] * 12, *[SUCCEEDED] * 2,
                  *[UNSCHEDULABLE] * 2]
        return Seen(choose(shapes), choose(rare), choose(rare), choose(rare), choose(rare))
    together = choose([True, True, False])
    kinds = [*[Kind.QUEUE] * 15, *[Kind.OBSERVE] * 30, *[Kind.REFUSED] * 4, *[Kind.UNUSABLE] * 2]
    return Step(choose(kinds), choose([0, 1, 5, 30, 120, 600]), choose([False] * 39 + [True]),
                choose([0, 1, 4, 8, 8]), choose([False, True]),
                choose([0, 1, 2]), tuple(seen() for _ in range(1 if together else workers)))


def pods_of(j: TrainingJob, s: Step) -> list[PodView]:
    """The pods the step sees. Once Running, the job's own pods of this attempt have all
    started, and a pod never shows a state from before its start again (restartPolicy Never,
    and the admission policy lets only the operator make pods the job owns, which it does
    only while Deploying): those observations are seen running."""
    attempt = j.status.attempt
    out = []
    for i in range(j.spec.workers):
        w = s.seen[i % len(s.seen)]
        if w.shape is None:
            continue
        shape = w.shape if w.shape in STARTED or w.stale or w.foreign or \
            j.status.phase is not Phase.RUNNING else RUNNING
        out.append(pod(i, attempt - 1 if w.stale else attempt, **SHAPES[shape],
                       deleted=w.deleted, reason="Evicted" if w.evicted else None,
                       owner=None if w.foreign else "u1"))
    return out


def queue_pass(j: TrainingJob, s: Step, now: datetime) -> Decision:
    """This job's part of an admission pass, as admission.py runs it: the plan on plain data,
    then admit, the first Pending status, or the waiting status."""
    free = {GPU: {n.name: s.free for n in NODES}}
    candidates = [queue.candidate(KEY, j), *([RIVAL] if s.rival else [])]
    plan = queue.plan(candidates, NODES, free, now)
    if KEY in plan.admit:
        return lifecycle.admit(j, plan.admit[KEY], now, S)
    w = next(w for w in plan.waiting if w.key == KEY)
    if j.status.phase is None:
        return lifecycle.queued(j, w.reason, waiting.waiting_message(j, w),
                                waiting.queue_info(w, now), now, S)
    return waiting.waiting(j, w, now, S)


def refused(j: TrainingJob, s: Step, now: datetime) -> Decision:
    if s.refusal == 0:
        return refusals.pod_rejected(j, 0, "exceeded quota: gpus", now, S)
    if s.refusal == 1:
        return refusals.service_rejected(j, "exceeded quota: services", now, S)
    return refusals.name_taken(j, "Pod", "j-worker-0", "someone-else", now, S)


def decide(j: TrainingJob, s: Step, pods: list[PodView], now: datetime) -> Decision:
    """The core entry the shell would call now: the queue only for a queued job, a refused
    create only while pods are being created."""
    queued = (j.status.phase is Phase.PENDING and not j.spec.stop) or \
        lifecycle.new_in_queue(j, S)
    if s.kind is Kind.QUEUE and queued:
        return queue_pass(j, s, now)
    if s.kind is Kind.REFUSED and j.status.phase is Phase.DEPLOYING:
        return refused(j, s, now)
    if s.kind is Kind.UNUSABLE:
        return refusals.unusable(j, pods, "spec.template cannot be rendered", now, S)
    return lifecycle.decide(j, pods, now, S)


@dataclass
class Reached:
    phases: set[Phase] = field(default_factory=set)  # entered (history), not only stored
    pairs: set[tuple[Phase, str]] = field(default_factory=set)  # written phase and reason

    def __ior__(self, other: Reached) -> Reached:
        self.phases |= other.phases
        self.pairs |= other.pairs
        return self


def check_conditions(status: TrainingJobStatus) -> None:
    """Each condition once, True in its phases, and with its own reason: a True one the
    job's (Admitted: Admitted, Finished: the phase), a False one the phase that keeps it
    False (Admitted: why the job is not admitted)."""
    phase = status.phase
    assert phase is not None
    by_type = {c.type: c for c in status.conditions}
    assert len(by_type) == len(status.conditions) == len(ConditionType)
    for type_, true_in in CONDITION_TRUE_IN.items():
        c = by_type[type_]
        if type_ is ConditionType.ADMITTED:  # a finished job: if its last attempt was
            this_attempt = [h.phase for h in status.history if h.attempt == status.attempt]
            admitted = phase in true_in or (phase.terminal and Phase.CREATED in this_attempt)
            assert c.status == ("True" if admitted else "False"), (phase, status.history)
            assert c.reason == (Reason.ADMITTED if admitted else status.reason)
        elif phase in true_in:
            assert c.status == "True", (type_, phase)
            assert c.reason == (phase if type_ is ConditionType.FINISHED else status.reason)
        else:
            assert (c.status, c.reason) == ("False", phase), (type_, c.reason)


def check(j: TrainingJob, decision: Decision, limit: int) -> Reached:
    """The rules every decision keeps; what it reached."""
    before = j.status
    if before.phase is not None and before.phase.terminal:
        assert decision.status is None, "a terminal phase changed"
        assert not any(isinstance(a, CreatePod) for a in decision.actions)
    after = decision.status
    if after is None:
        return Reached()
    assert after.phase is not None and after.reason is not None
    assert after.reason in PHASE_REASONS[after.phase], (after.phase, after.reason)
    entered = after.history[len(before.history):]
    assert after.history[:len(before.history)] == before.history
    path = [before.phase, *(h.phase for h in entered)]
    assert all(edge in EDGES for edge in pairwise(path)), path
    assert (not entered) == (after.phase == before.phase), "a phase change without history"
    for h in entered:
        assert h.reason in PHASE_REASONS[h.phase], (h.phase, h.reason)
    assert before.attempt <= after.attempt <= limit + 1
    if after.phase is Phase.STOPPED:
        assert j.spec.stop
    if after.phase in ADMITTED:
        assert after.reservation is not None
    if after.phase is Phase.PENDING and after.reason in QUEUE_REASONS:
        assert after.queue is not None  # the queue's word says where the job stands
    check_conditions(after)
    said = {h.reason for h in entered} | EVENT_ONLY
    assert all(e.reason in said for e in decision.events), decision.events
    return Reached({h.phase for h in entered},
                   {(after.phase, after.reason), *((h.phase, h.reason) for h in entered)})


def run(j: TrainingJob, steps: Sequence[Step]) -> Reached:
    """The steps in order, each checked; what they reached."""
    now, reached = NOW, Reached()
    for s in steps:
        now += timedelta(seconds=s.seconds)
        if s.stop:
            j = j.model_copy(update={"spec": j.spec.model_copy(update={"stop": True})})
        decision = decide(j, s, pods_of(j, s), now)
        reached |= check(j, decision, j.spec.retries.limit)
        if decision.status is not None:
            j = j.model_copy(update={"status": decision.status})
    return reached


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_sequence_of_passes_and_observations_breaks_the_lifecycle(
        data: st.DataObject) -> None:
    def choose(options: Sequence[T]) -> T:
        return data.draw(st.sampled_from(options))
    j = a_job(choose)
    steps = [a_step(choose, j.spec.workers) for _ in range(data.draw(st.integers(0, 16)))]
    for phase in sorted(run(j, steps).phases):
        event(f"entered {phase}")


# What no sequence of these steps can write: a node lost while Created, which no stored
# status is any more (admit writes Pending, Created and Deploying at once).
UNREACHED = {(Phase.DEPLOY_FAILED, Reason.WORKER_LOST)}


def test_the_same_steps_from_fixed_seeds_reach_every_phase_and_every_reason() -> None:
    """The companion that keeps the property test honest: the same steps, chosen by seeded
    Randoms, enter every phase and write every (phase, reason) pair vocabulary declares."""
    reached = Reached()
    for seed in range(1000):
        rng = Random(seed)
        j = a_job(rng.choice)
        reached |= run(j, [a_step(rng.choice, j.spec.workers) for _ in range(16)])
    assert reached.phases == set(Phase)
    declared = {(p, r) for p, reasons in PHASE_REASONS.items() for r in reasons}
    assert declared - reached.pairs == UNREACHED
    assert reached.pairs <= declared
