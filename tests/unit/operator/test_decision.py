from __future__ import annotations

from trainingjob_operator.decision import Decision, DeletePod, StopPod, deletes, stops

from tests.unit.operator.factories import container, exited, pod, running


def test_stops_keep_the_pods_of_workers_that_ran_and_delete_the_rest() -> None:
    never_started = pod(1, phase="Pending", containers=[container(
        waiting={"reason": "ContainerCreating"})])
    assert stops([running(0), never_started, exited(2, phase="Running"),
                  exited(3, phase="Succeeded"), running(4, deadline=1),
                  pod(5, deleted=True)], 30) == [StopPod("j-worker-0", "p0"),
                                                 DeletePod("j-worker-1", 30)]


def test_a_pod_on_a_lost_node_is_force_deleted_even_when_already_terminating() -> None:
    gone = pod(0, node="n9", deleted=True)
    assert stops([gone], 30, lost_nodes={"n9"}) == [DeletePod("j-worker-0", 0)]
    assert deletes([gone, pod(1, deleted=True), pod(2)], 30, lost_nodes={"n9"}) == [
        DeletePod("j-worker-0", 0), DeletePod("j-worker-2", 30)]


def test_a_deleted_pod_wakes_the_queue() -> None:
    assert Decision(actions=(DeletePod("p", 0),)).wakes_queue
    assert not Decision(actions=(StopPod("p", "u"),)).wakes_queue
    assert Decision(releases=True).wakes_queue
