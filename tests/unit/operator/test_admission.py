from __future__ import annotations

from trainingjob_operator.admission import Candidate, NodeView, free, parse_node, place, plan, used

from tests.unit.operator.factories import exited, pod

R = "nvidia.com/gpu"
NODES = [NodeView(f"n{i}", {R: 8}, True) for i in range(4)]


def _c(name: str, workers: int, per: int, priority: int = 0, created: str = "t1") -> Candidate:
    return Candidate(("ns", name), priority, created, workers, per, R)


def test_free_subtracts_running_pods_and_reservations_but_not_finished_pods() -> None:
    pods = [pod(0, node="n0", gpus=8), pod(1, node="n1", gpus=4), exited(2)]
    assert free(R, NODES, used(R, pods), {"n2": 8}) == {"n0": 0, "n1": 4, "n2": 0, "n3": 8}


def test_place_is_all_or_nothing_and_best_fit() -> None:
    assert place(2, 4, {"a": 8, "b": 4}) == ["b", "a"]
    assert place(3, 8, {"a": 8, "b": 8}) is None


def test_gang_is_admitted_only_when_every_worker_fits() -> None:
    result = plan([_c("big", 5, 8), _c("small", 2, 8)], NODES,
                  {R: {n.name: 8 for n in NODES}})
    assert list(result.admit) == [("ns", "small")]
    assert [(w.key[1], w.reason, w.needed, w.free) for w in result.waiting] == [
        ("big", "WaitingForCapacity", 40, 32)]


def test_no_node_fits() -> None:
    result = plan([_c("huge", 1, 16)], NODES, {R: {n.name: 8 for n in NODES}})
    assert result.waiting[0].reason == "NoNodeFits" and result.waiting[0].largest_node == 8


def test_higher_priority_is_admitted_first() -> None:
    result = plan([_c("old", 1, 8, 0, "t0"), _c("urgent", 1, 8, 5, "t9")], NODES[:1],
                  {R: {"n0": 8}})
    assert list(result.admit) == [("ns", "urgent")]


def test_cpu_only_jobs_need_no_capacity() -> None:
    assert plan([_c("cpu", 3, 0)], [], {}).admit == {("ns", "cpu"): []}


def test_parse_node_closes_not_ready_and_tainted_nodes() -> None:
    ready = {"type": "Ready", "status": "True"}
    body = {"metadata": {"name": "n"}, "status": {"conditions": [ready],
                                                  "allocatable": {R: "8", "cpu": "4"}}}
    assert parse_node(body) == NodeView("n", {R: 8}, True)
    tainted = {**body, "spec": {"taints": [{"key": "node.kubernetes.io/unreachable",
                                            "effect": "NoExecute"}]}}
    assert not parse_node(tainted).schedulable
    assert not parse_node({**body, "spec": {"unschedulable": True}}).schedulable
