from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from trainingjob_operator import lifecycle
from trainingjob_operator.decision import (
    CreatePod,
    CreateService,
    Decision,
    DeleteJob,
    DeletePod,
    StopPod,
)
from trainingjob_operator.lifecycle import EDGES, decide
from trainingjob_operator.models import QueueInfo, TrainingJob
from trainingjob_operator.nodes import NodeView, Snapshot, job_nodes
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Phase, Reason

from tests.unit.operator.factories import (
    NOW,
    T0,
    at,
    container,
    exited,
    job,
    pod,
    running,
    waiting,
)

S = Settings()


def _phase(d: Decision) -> Phase | None:
    return d.status.phase if d.status else None


def test_a_new_job_is_left_to_the_queue_which_writes_its_first_status() -> None:
    new = job(workers=2, gpusPerWorker=8)
    d = decide(new, [], NOW, S)
    assert d.status is None and d.actions == () and d.wakes_queue
    assert lifecycle.new_in_queue(new, S)
    assert not lifecycle.new_in_queue(job(stop=True), S)
    assert not lifecycle.new_in_queue(job(template={"spec": {"containers": []}}), S)
    info = QueueInfo(position=3, gpus_needed=16, gpus_free=8)
    d = lifecycle.queued(new, Reason.WAITING_FOR_CAPACITY, "waiting for capacity: ...", info,
                         NOW, S)
    assert d.status is not None
    assert (d.status.phase, d.status.reason) == (Phase.PENDING, "WaitingForCapacity")
    assert d.status.queue == info and [h.phase for h in d.status.history] == [Phase.PENDING]
    assert d.status.gpus == 16 and d.status.worker_summary == "0/2" and d.status.attempt == 1
    assert d.events == () and d.actions == ()  # waiting is in the status, not an Event


def test_a_new_job_admitted_at_once_records_pending_and_created_in_one_write() -> None:
    d = lifecycle.admit(job(workers=1), ["n0"], NOW, S)
    assert d.status is not None and d.status.phase is Phase.DEPLOYING
    assert [h.phase for h in d.status.history] == [Phase.PENDING, Phase.CREATED,
                                                   Phase.DEPLOYING]
    assert d.status.attempt == 1 and d.actions == (CreatePod(0, "n0"),)  # one worker: no Service
    assert [e.reason for e in d.events] == ["Admitted"]


def test_new_job_with_a_spec_the_schema_cannot_check_fails_with_invalid_spec() -> None:
    d = decide(job(template={"spec": {"containers": []}}), [], NOW, S)
    assert d.status is not None and d.status.phase is Phase.DEPLOY_FAILED
    assert d.status.reason == "InvalidSpec"
    assert "spec.template.spec.containers is set by the operator" in (d.status.message or "")


def test_admit_records_the_reservation_with_deploying_before_any_pod() -> None:
    d = lifecycle.admit(job(at("Pending"), workers=2), ["n1", "n0"], NOW, S)
    status = d.status
    assert status is not None and status.phase is Phase.DEPLOYING
    assert [h.phase for h in status.history][-2:] == [Phase.CREATED, Phase.DEPLOYING]
    assert status.reservation is not None
    assert d.actions == (CreateService(), CreatePod(0, "n1"), CreatePod(1, "n0"))
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Normal", "Admitted", "admitted: 2 GPUs reserved on n0, n1")]
    assert not d.wakes_queue
    assert status.reservation.nodes == ["n1", "n0"] and status.reservation.attempt == 1
    assert {c.type: c.status for c in status.conditions}["Admitted"] == "True"


def test_created_creates_service_and_pods_on_reserved_nodes_then_deploying() -> None:
    d = decide(job(at("Created", reservation={"attempt": 1, "nodes": ["a", "b"]}), workers=2),
               [], NOW, S)
    assert _phase(d) is Phase.DEPLOYING
    assert d.actions == (CreateService(), CreatePod(0, "a"), CreatePod(1, "b"))


def test_quiet_steps_post_no_event_but_trouble_and_the_end_do() -> None:
    up = decide(job(at("Deploying"), workers=1), [running(0)], NOW, S)
    assert _phase(up) is Phase.RUNNING and up.events == ()
    done = decide(job(at("Running"), workers=1), [pod(0, phase="Succeeded", containers=[
        container(terminated={"exitCode": 0, "reason": "Completed"})])], NOW, S)
    assert [e.reason for e in done.events] == ["Succeeded"]
    lost = decide(job(at("Running"), workers=1), [pod(0, deleted=True)], NOW, S)
    assert [(e.type, e.reason) for e in lost.events] == [("Warning", "WorkerLost")]


def test_deploying_with_a_pod_missing_creates_it_and_a_gangs_service_again() -> None:
    d = decide(job(at("Deploying", reservation={"attempt": 1, "nodes": ["a", "b"]}),
                   workers=2), [], NOW, S)
    assert d.actions == (CreateService(), CreatePod(0, "a"), CreatePod(1, "b"))
    solo = decide(job(at("Deploying", reservation={"attempt": 1, "nodes": ["a"]}), workers=1),
                  [], NOW, S)
    assert solo.actions == (CreatePod(0, "a"),)


def test_created_waits_for_the_previous_attempts_pods_to_go() -> None:
    old = pod(0, attempt=1, deleted=True)
    d = decide(job(at("Created", attempt=2)), [old], NOW, S)
    assert d.status is None and d.actions == () and d.recheck_at is not None


def test_deploying_becomes_running_when_every_worker_runs() -> None:
    d = decide(job(at("Deploying"), workers=2), [running(0), running(1)], NOW, S)
    assert _phase(d) is Phase.RUNNING and d.status is not None
    assert d.status.start_time is not None and d.status.worker_summary == "2/2"


def test_deploying_with_some_workers_still_starting_only_updates_counts() -> None:
    d = decide(job(at("Deploying"), workers=2),
               [running(0), pod(1, phase="Pending", containers=[])], NOW, S)
    assert d.status is not None and d.status.phase is Phase.DEPLOYING
    assert d.status.worker_summary == "1/2" and d.events == ()


def test_deploying_recreates_a_missing_pod() -> None:
    d = decide(job(at("Deploying"), workers=2), [running(0)], NOW, S)
    assert CreatePod(1, "n1") in d.actions


def test_fast_job_goes_from_deploying_straight_to_completed() -> None:
    d = decide(job(at("Deploying"), workers=2), [exited(0), exited(1)], NOW, S)
    assert _phase(d) is Phase.COMPLETED and d.status is not None
    assert d.status.reason == "Succeeded" and d.status.completion_time is not None


def test_running_completes_when_all_exit_zero() -> None:
    d = decide(job(at("Running")), [exited(0)], NOW, S)
    assert _phase(d) is Phase.COMPLETED


def test_one_failed_worker_fails_the_job_and_stops_the_others() -> None:
    d = decide(job(at("Running"), workers=2), [exited(0, 3, "Error"), running(1)], NOW, S)
    assert _phase(d) is Phase.FAILED and d.status is not None and d.status.reason == "Error"
    assert d.actions == (StopPod("j-worker-1", "p1"),)  # stopped, not deleted: logs stay
    assert d.status.workers is not None
    assert (d.status.workers.failed, d.status.workers.succeeded, d.status.workers.ready) == (
        1, 0, 0)  # ready is 0 in a finished job


def test_lost_worker_retries_to_pending_with_the_next_attempt() -> None:
    d = decide(job(at("Running"), workers=2), [running(0), pod(1, deleted=True)], NOW, S)
    assert d.status is not None and d.status.phase is Phase.PENDING
    assert (d.status.reason, d.status.attempt) == ("WorkerLost", 2)
    assert d.status.reservation is None
    assert DeletePod("j-worker-0", 60) in d.actions


def test_lost_worker_without_retries_left_fails() -> None:
    d = decide(job(at("Running", attempt=2), retries={"limit": 1}),
               [pod(0, attempt=2, reason="Evicted", phase="Failed", containers=[])], NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (Phase.FAILED,
                                                                          "WorkerLost")


def test_missing_pod_while_running_is_a_lost_worker() -> None:
    d = decide(job(at("Running"), workers=2, retries={"limit": 0}), [running(0)], NOW, S)
    assert d.status is not None and d.status.reason == "WorkerLost"


def test_run_deadline() -> None:
    j = job(at("Running", startTime=T0), timeouts={"runSeconds": 30})
    d = decide(j, [running(0)], NOW, S)
    assert d.status is not None and d.status.reason == "DeadlineExceeded"
    early = decide(j, [running(0)], NOW - timedelta(seconds=40), S)
    assert early.events == () and early.recheck_at is not None
    assert early.status is None or early.status.phase is Phase.RUNNING


def test_deploy_deadline_names_unschedulable_workers() -> None:
    unschedulable = pod(0, phase="Pending", node=None, containers=[], conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/4 nodes are available"}])
    d = decide(job(at("Deploying"), timeouts={"deploySeconds": 10}), [unschedulable], NOW, S)
    assert d.status is not None and d.status.reason == "Unschedulable"
    assert "0/4 nodes are available" in (d.status.message or "")


def test_image_pull_error_waits_for_its_grace_then_fails() -> None:
    j = job(at("Deploying"))
    within = decide(j, [waiting(0, "ImagePullBackOff")], NOW,
                    Settings(image_pull_grace_seconds=120))
    assert within.status is None or within.status.phase is Phase.DEPLOYING
    assert within.recheck_at is not None
    after = decide(j, [waiting(0, "ImagePullBackOff")], NOW, Settings(image_pull_grace_seconds=30))
    assert after.status is not None and after.status.reason == "ImagePullFailed"


def test_invalid_image_name_fails_at_once() -> None:
    d = decide(job(at("Deploying")), [waiting(0, "InvalidImageName")], NOW,
               Settings(image_pull_grace_seconds=10_000))
    assert d.status is not None and d.status.reason == "InvalidImageName"


@pytest.mark.parametrize("phase", ["Pending", "Created", "Deploying", "Running"])
def test_stop_from_every_active_phase(phase: str) -> None:
    d = decide(job(at(phase), stop=True), [running(0)] if phase != "Pending" else [], NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (Phase.STOPPED,
                                                                          "StoppedByUser")
    if phase != "Pending":
        assert d.actions == (StopPod("j-worker-0", "p0"),)


@pytest.mark.parametrize("phase", ["Completed", "Failed", "DeployFailed", "Stopped"])
def test_terminal_phases_are_absorbing(phase: str) -> None:
    d = decide(job(at(phase), stop=True), [running(0), exited(1)], NOW, S)
    assert d.status is None  # never a new status
    assert d.actions == (StopPod("j-worker-0", "p0"),)  # only leftovers are stopped
    assert not any(isinstance(a, CreatePod) for a in d.actions)


def test_history_is_bounded() -> None:
    status = at("Running", history=[{"phase": "Running", "reason": "X", "time": T0}] * 30)
    d = decide(job(status), [exited(0)], NOW, Settings(history_limit=5))
    assert d.status is not None and len(d.status.history) == 5
    assert d.status.history[-1].phase is Phase.COMPLETED


def test_queue_timeout_ends_a_pending_job_and_the_sweep_knows_when() -> None:
    j = job(at("Pending", message="waiting for capacity: needs 8 GPUs"),
            timeouts={"queueSeconds": 90})
    early = decide(j, [], NOW, S)  # Pending since T0 = NOW - 60s
    assert early.status is None and early.recheck_at == NOW + timedelta(seconds=30)
    d = decide(j, [], NOW + timedelta(seconds=30), S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (
        Phase.DEPLOY_FAILED, "QueueTimeout")
    assert "spec.timeouts.queueSeconds=90s (waiting for capacity: needs 8 GPUs)" in (
        d.status.message or "")
    assert decide(job(at("Pending")), [], NOW, S).recheck_at is None  # no limit, no recheck


def test_deploy_timeout_names_the_last_pod_problem() -> None:
    slow = pod(0, phase="Pending", containers=[], init=[{"name": "setup", "ready": False,
                                                        "state": {"running": {"startedAt": T0}}}])
    j = job(at("Deploying"), timeouts={"deploySeconds": 10})
    d = decide(j, [slow], NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (
        Phase.DEPLOY_FAILED, "DeployTimeout")
    assert d.status.message == ("not every worker was running within spec.timeouts."
                                "deploySeconds=10s; worker 0 (pod j-worker-0): setup container "
                                "setup is running (starting)")
    pulling = waiting(0, "ContainerCreating", "pulling")
    d = decide(j, [pulling], NOW, S)
    assert d.status is not None and "container trainer is waiting (ContainerCreating: " \
        "pulling)" in (d.status.message or "")
    never = decide(job(at("Deploying"), timeouts={"deploySeconds": 10}, workers=2),
                   [running(0)], NOW, S)
    assert never.status is not None and "worker 1 (pod -) was never created" in (
        never.status.message or "")


def test_run_deadline_counts_only_this_attempts_time_running() -> None:
    # Started long ago in attempt 1, Running again since T0 in attempt 2.
    j = job(at("Running", attempt=2, startTime="2026-01-01T08:00:00Z"),
            timeouts={"runSeconds": 120})
    d = decide(j, [running(0, attempt=2)], NOW, S)
    assert d.events == () and d.recheck_at == NOW + timedelta(seconds=60)


def _nodes(j: TrainingJob, pods: Sequence[PodView], **views: NodeView | None) -> Snapshot:
    """The job's nodes as the shell would pass them: healthy unless named."""
    return {n: views.get(n, NodeView(n, {"nvidia.com/gpu": 8}, True))
            for n in job_nodes(j, pods)}


def _down(seconds: int) -> NodeView:
    since = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return NodeView("n1", {"nvidia.com/gpu": 8}, False, ready=False, ready_since=since)


def test_worker_on_a_deleted_node_is_lost_and_its_pods_are_force_deleted() -> None:
    j = job(at("Running"), workers=2)
    pods = [running(0), pod(1, node="n1")]
    d = decide(j, pods, NOW, S, _nodes(j, pods, n1=None))
    assert d.status is not None and (d.status.phase, d.status.reason, d.status.attempt) == (
        Phase.PENDING, "WorkerLost", 2)
    assert "node n1 was deleted" in (d.status.message or "")
    assert set(d.actions) == {DeletePod("j-worker-0", 60), DeletePod("j-worker-1", 0)}
    assert [(h.phase, h.attempt) for h in d.status.history][-1] == (Phase.PENDING, 2)


def test_not_ready_node_counts_as_lost_only_after_its_grace() -> None:
    j = job(at("Running"), workers=2)
    pods = [running(0), pod(1, node="n1")]
    settings = Settings(node_lost_grace_seconds=60)
    within = decide(j, pods, NOW, settings, _nodes(j, pods, n1=_down(20)))
    assert within.events == () and within.recheck_at == NOW + timedelta(seconds=40)
    past = decide(j, pods, NOW, settings, _nodes(j, pods, n1=_down(61)))
    assert past.status is not None and past.status.reason == "WorkerLost"
    assert "node n1 has been NotReady for 61s" in (past.status.message or "")


def test_node_lost_after_the_retry_limit_fails_the_job() -> None:
    j = job(at("Running", attempt=3), retries={"limit": 2})
    pods = [pod(0, attempt=3, node="n1")]
    d = decide(j, pods, NOW, S, _nodes(j, pods, n1=None))
    assert d.status is not None and (d.status.phase, d.status.reason) == (Phase.FAILED,
                                                                          "WorkerLost")
    assert "spec.retries.limit=2 restarts are used up" in (d.status.message or "")


def test_a_finished_worker_on_a_lost_node_is_not_lost() -> None:
    j, pods = job(at("Running"), workers=2), [exited(0), running(1)]
    d = decide(j, pods, NOW, S, _nodes(j, pods, n0=None, n1=None))
    # worker 1 runs on n0 too (the factory's default node): lost; worker 0 had finished.
    assert d.status is not None and "worker 1" in (d.status.message or "")


def test_created_job_whose_reserved_node_is_lost_goes_back_to_the_queue() -> None:
    j = job(at("Created"), workers=1)  # reserved on n0..n3 by the factory; worker 0 -> n0
    d = decide(j, [], NOW, S, _nodes(j, [], n0=None))
    assert d.status is not None and (d.status.phase, d.status.attempt) == (Phase.PENDING, 2)


def test_stale_pods_on_a_lost_node_are_force_deleted_before_the_next_attempt() -> None:
    j = job(at("Created", attempt=2))
    stale = pod(0, attempt=1, node="n1", deleted=True)
    d = decide(j, [stale], NOW, S, _nodes(j, [stale], n1=None))
    assert d.actions == (DeletePod("j-worker-0", 0),) and d.recheck_at is not None


def test_transitions_that_free_or_ask_for_gpus_wake_the_queue() -> None:
    assert decide(job(), [], NOW, S).wakes_queue  # new: Pending
    assert not decide(job(at("Created")), [], NOW, S).wakes_queue  # Deploying holds its GPUs
    assert decide(job(at("Running"), workers=1), [exited(0)], NOW, S).wakes_queue
    assert decide(job(at("Completed"), workers=1), [pod(0, deleted=False, phase="Pending",
                                                        containers=[])], NOW, S).wakes_queue


def test_edges_are_exactly_the_design_table() -> None:
    active = {Phase.PENDING, Phase.CREATED, Phase.DEPLOYING, Phase.RUNNING}
    for phase in active:
        assert (phase, Phase.STOPPED) in EDGES
    assert {(a, b) for a, b in EDGES if b is Phase.DEPLOY_FAILED and a is not None} == {
        (Phase.PENDING, Phase.DEPLOY_FAILED), (Phase.CREATED, Phase.DEPLOY_FAILED),
        (Phase.DEPLOYING, Phase.DEPLOY_FAILED)}
    assert {a for a, b in EDGES if b is Phase.FAILED} == {Phase.DEPLOYING, Phase.RUNNING}
    assert not any(a is not None and a.terminal for a, _ in EDGES)


@pytest.mark.parametrize(("before", "worker", "phase", "reconciling", "stalled"), [
    ("Deploying", running(0), Phase.RUNNING, "True", "False"),
    ("Running", exited(0), Phase.COMPLETED, "False", "False"),
    ("Running", exited(0, 3, "Error"), Phase.FAILED, "False", "True"),
])
def test_kstatus_conditions_follow_the_phase(before: str, worker: PodView, phase: Phase,
                                              reconciling: str, stalled: str) -> None:
    """kstatus (Flux, cli-utils) reads Reconciling=True as in progress, Stalled=True as failed."""
    d = decide(job(at(before), workers=1), [worker], NOW, S)
    assert d.status is not None and d.status.phase is phase
    conditions = {c.type: c for c in d.status.conditions}
    assert (conditions["Reconciling"].status, conditions["Stalled"].status) == (reconciling,
                                                                                stalled)
    assert all(c.observed_generation == d.status.observed_generation
               for c in conditions.values())


def test_reserved_node_lost_before_any_pod_without_retries_is_a_deploy_failure() -> None:
    """Found by the lifecycle property test: Created has no edge to Failed (DESIGN.md §2)."""
    d = decide(job(at("Created"), workers=1, retries={"limit": 0}),
               [pod(0, reason="Evicted", deleted=True)], NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (Phase.DEPLOY_FAILED,
                                                                          "WorkerLost")


# --- the end of a job keeps the logs of every worker that ran ------------------------------

SETUP_RUNNING = [{"name": "setup", "state": {"running": {"startedAt": T0}}}]
SETUP_FAILED = [{"name": "setup", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]


@pytest.mark.parametrize(("worker", "action"), [
    (running(1), StopPod("j-worker-1", "p1")),
    (pod(1, phase="Pending", containers=[container(waiting={"reason": "PodInitializing"})],
         init=SETUP_RUNNING), StopPod("j-worker-1", "p1")),
    (exited(1, 0, phase="Running"), None),  # the kubelet gives it its phase
    (exited(1, 2, "Error", phase="Running"), None),
    (pod(1, phase="Pending", containers=[container(waiting={"reason": "PodInitializing"})],
         init=SETUP_FAILED), None),  # restartPolicy Never: the kubelet fails the pod
    (running(1, deadline=1), None),  # already stopped: not patched again
    (exited(1, 137, "Error"), None),
    (waiting(1, "ImagePullBackOff"), DeletePod("j-worker-1", 60)),  # never ran: nothing to read
    (pod(1, phase="Pending", node=None, containers=[]), DeletePod("j-worker-1", 60)),
])
def test_a_failed_job_stops_what_ran_and_deletes_what_never_started(
        worker: PodView, action: StopPod | DeletePod | None) -> None:
    d = decide(job(at("Running"), workers=2), [exited(0, 3, "Error", phase="Running"), worker],
               NOW, S)
    assert _phase(d) is Phase.FAILED
    assert d.actions == ((action,) if action else ())  # worker 0 exited: left alone
    settled = decide(job(at("Failed"), workers=2), [exited(0, 3, "Error"), worker], NOW, S)
    assert settled.actions == d.actions  # the terminal phase keeps to the same rule


def test_completed_with_pods_not_yet_marked_by_the_kubelet_leaves_them() -> None:
    pods = [exited(0, phase="Running"), exited(1, phase="Running")]
    d = decide(job(at("Running"), workers=2), pods, NOW, S)
    assert _phase(d) is Phase.COMPLETED and d.actions == ()
    assert decide(job(at("Completed"), workers=2), pods, NOW, S).actions == ()


def test_a_stopped_workers_pod_on_a_lost_node_is_force_deleted() -> None:
    j = job(at("Stopped"), workers=3)
    pods = [running(0, deadline=1), pod(1, node="n1", deadline=1), pod(2, deleted=True)]
    d = decide(j, pods, NOW, S, _nodes(j, pods, n1=None))
    assert d.actions == (DeletePod("j-worker-1", 0),)  # no kubelet there to act on it


def test_deploy_failure_stops_a_worker_whose_setup_ran() -> None:
    setup_done = pod(1, phase="Pending", init=[{"name": "setup", "state": {
        "terminated": {"exitCode": 0, "reason": "Completed"}}}], containers=[container(
            waiting={"reason": "ImagePullBackOff", "message": "m"})])
    d = decide(job(at("Deploying"), workers=2, setup={"command": ["pip"]}),
               [pod(0, phase="Pending", containers=[], init=SETUP_FAILED), setup_done], NOW, S)
    assert d.status is not None and d.status.reason == "SetupFailed"
    assert d.actions == (StopPod("j-worker-1", "p1"),)


def test_a_retry_still_deletes_every_pod() -> None:
    d = decide(job(at("Running"), workers=3),
               [exited(0, phase="Running"), running(1), pod(2, deleted=True)], NOW, S)
    assert d.status is not None and d.status.phase is Phase.PENDING
    assert d.actions == (DeletePod("j-worker-0", 60), DeletePod("j-worker-1", 60))


def test_a_failed_job_records_the_container_and_the_end_of_its_output() -> None:
    said = "epoch 1\nValueError: 3 shards for 4 workers\nexiting with code 1\n"
    d = decide(job(at("Running"), workers=2), [running(0), exited(1, 1, "Error", message=said)],
               NOW, S)
    status = d.status
    assert status is not None and (status.phase, status.reason) == (Phase.FAILED, "Error")
    assert status.failure is not None
    assert (status.failure.worker, status.failure.pod, status.failure.container,
            status.failure.exit_code, status.failure.reason) == (1, "j-worker-1", "trainer", 1,
                                                                  "Error")
    assert status.failure.output == said.rstrip("\n")
    assert status.message == ("worker 1 (pod j-worker-1): container trainer exited with code 1: "
                              "'ValueError: 3 shards for 4 workers'; see kubectl logs j-worker-1")


def test_gpu_out_of_memory_in_the_output_is_its_own_reason_with_the_fixes() -> None:
    said = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
    d = decide(job(at("Running")), [exited(0, 1, "Error", message=said)], NOW, S)
    assert d.status is not None and d.status.reason == "GPUOutOfMemory"
    assert "lower the batch size" in (d.status.message or "")
    assert d.status.failure is not None and d.status.failure.output == said


def test_a_peer_that_lost_its_master_is_reported_only_when_nothing_else_failed() -> None:
    lost_peer = exited(0, 1, "Error", message="rendezvous failed: connection refused to "
                       "j-worker-1.j-workers.ns.svc:29500 after 3s")
    crashed = exited(1, 1, "Error", message="Segmentation fault")
    d = decide(job(at("Running"), workers=2), [lost_peer, crashed], NOW, S)
    assert d.status is not None and d.status.reason == "Error"
    assert d.status.failure is not None and d.status.failure.worker == 1
    alone = decide(job(at("Running"), workers=2), [lost_peer, running(1)], NOW, S)
    assert alone.status is not None and alone.status.reason == "RendezvousFailed"


def test_setup_that_cannot_resolve_its_requirements_is_dependencies_failed() -> None:
    pip = ("ERROR: Could not find a version that satisfies the requirement torch==9.9\n"
           "ERROR: No matching distribution found for torch==9.9")
    failed = pod(0, phase="Failed", containers=[], init=[{"name": "setup", "state": {
        "terminated": {"exitCode": 1, "reason": "Error", "message": pip}}}])
    d = decide(job(at("Deploying"), setup={"command": ["pip"]}), [failed], NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (
        Phase.DEPLOY_FAILED, "DependenciesFailed")
    assert "(torch==9.9)" in (d.status.message or "")
    assert d.status.failure is not None and d.status.failure.container == "setup"


def test_a_completed_job_carries_rank_0s_result_and_a_warning_for_what_was_ignored() -> None:
    done = exited(0, message='{"model": "s3://b/m", "metrics": {"loss": 0.1}, "x": 1}')
    d = decide(job(at("Running"), workers=2), [done, exited(1, message="not json")], NOW, S)
    status = d.status
    assert status is not None and status.phase is Phase.COMPLETED
    assert status.result is not None and status.result.model == "s3://b/m"
    assert status.result.metrics == {"loss": 0.1}
    assert status.message == "all 2 workers exited 0; model: s3://b/m"
    assert [(e.type, e.reason) for e in d.events] == [("Normal", "Succeeded"),
                                                       ("Warning", "ResultIgnored")]
    assert "unknown key 'x'" in d.events[1].message
    plain = decide(job(at("Running")), [exited(0)], NOW, S)
    assert plain.status is not None and plain.status.result is None and len(plain.events) == 1


def test_a_finished_job_is_deleted_once_its_ttl_is_over_and_the_sweep_knows_when() -> None:
    finished = at("Completed", completionTime="2026-01-01T11:59:00Z")
    j = job(finished, ttlSecondsAfterFinished=120)
    before = decide(j, [], NOW, S)
    assert before.actions == () and before.recheck_at == NOW + timedelta(seconds=60)
    after = decide(j, [], NOW + timedelta(seconds=60), S)
    assert after.actions == (DeleteJob(j.metadata.resource_version),)
    kept = decide(job(finished), [], NOW + timedelta(days=365), S)
    assert kept.actions == () and kept.recheck_at is None  # no TTL: kept
    default = Settings(ttl_seconds_after_finished=0)
    assert decide(job(finished), [], NOW, default).actions == (
        DeleteJob(job(finished).metadata.resource_version),)
    own = decide(job(finished, ttlSecondsAfterFinished=3600), [], NOW, default)
    assert own.actions == ()  # the job's own value wins over the operator's default


