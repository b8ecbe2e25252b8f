from __future__ import annotations

from datetime import timedelta

from trainingjob_operator.nodes import (
    NodeMemory,
    NodeView,
    Placement,
    Taint,
    eligible,
    job_nodes,
    lost_nodes,
    node_lost,
    parse_node,
    snapshot,
)

from tests.unit.operator.factories import NOW, at, exited, job, pod

R = "nvidia.com/gpu"
READY = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T10:00:00Z"}


def _body(**extra: object) -> dict[str, object]:
    return {"metadata": {"name": "n", "labels": {"gpu": "a100"}},
            "status": {"conditions": [READY], "allocatable": {R: "8", "cpu": "4"}}, **extra}


def test_parse_node_reads_gpus_labels_taints_and_readiness() -> None:
    node = parse_node(_body(spec={"taints": [{"key": "dedicated", "value": "ml",
                                             "effect": "NoSchedule"}]}))
    assert node.allocatable == {R: 8} and node.labels == {"gpu": "a100"}
    assert node.taints == (Taint("dedicated", "ml", "NoSchedule"),)
    assert node.schedulable and node.ready and node.ready_since == "2026-01-01T10:00:00Z"


def test_parse_node_closes_not_ready_and_node_controller_tainted_nodes() -> None:
    tainted = _body(spec={"taints": [{"key": "node.kubernetes.io/unreachable",
                                      "effect": "NoExecute"}]})
    assert not parse_node(tainted).schedulable
    assert not parse_node(_body(spec={"unschedulable": True})).schedulable
    down = parse_node({"metadata": {"name": "n"}, "status": {"conditions": [
        {**READY, "status": "False"}]}})
    assert not down.ready and not down.schedulable


def test_node_selector_and_required_affinity() -> None:
    node = NodeView("n1", {R: 8}, True, {"gpu": "a100", "mem": "80"})
    assert eligible(node, Placement(node_selector={"gpu": "a100"}))
    assert not eligible(node, Placement(node_selector={"gpu": "h100"}))

    def term(*exprs: dict[str, object]) -> Placement:
        return Placement(affinity_terms=({"matchExpressions": list(exprs)},))

    assert eligible(node, term({"key": "gpu", "operator": "In", "values": ["a100", "h100"]}))
    assert not eligible(node, term({"key": "gpu", "operator": "NotIn", "values": ["a100"]}))
    assert eligible(node, term({"key": "mem", "operator": "Gt", "values": ["40"]}))
    assert not eligible(node, term({"key": "mem", "operator": "Lt", "values": ["40"]}))
    assert eligible(node, term({"key": "zone", "operator": "DoesNotExist"}))
    assert not eligible(node, term({"key": "zone", "operator": "Exists"}))
    by_name = Placement(affinity_terms=({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]},))
    assert eligible(node, by_name)
    assert not eligible(node, Placement(affinity_terms=({},)))  # an empty term matches nothing


def test_taints_must_be_tolerated_but_node_controller_taints_are_readiness() -> None:
    node = NodeView("n", {R: 8}, True, taints=(
        Taint("dedicated", "ml", "NoSchedule"), Taint("soft", "", "PreferNoSchedule"),
        Taint("node.kubernetes.io/not-ready", "", "NoExecute")))
    assert not eligible(node, Placement())
    assert eligible(node, Placement(tolerations=({"key": "dedicated", "value": "ml"},)))
    assert eligible(node, Placement(tolerations=({"key": "dedicated", "operator": "Exists",
                                                  "effect": "NoSchedule"},)))
    assert eligible(node, Placement(tolerations=({"operator": "Exists"},)))
    assert not eligible(node, Placement(tolerations=({"key": "dedicated", "value": "cpu"},)))
    assert not eligible(node, Placement(tolerations=({"key": "dedicated", "value": "ml",
                                                      "effect": "NoExecute"},)))


def test_placement_reads_the_pod_template() -> None:
    spec = {"nodeSelector": {"gpu": "a100"}, "tolerations": [{"operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": []}]}}}}
    p = Placement.of(spec)
    assert p.node_selector == {"gpu": "a100"} and len(p.tolerations) == 1
    assert len(p.affinity_terms) == 1


def test_a_node_counts_as_lost_when_deleted_or_not_ready_past_the_grace() -> None:
    grace = timedelta(seconds=60)
    ready = NodeView("n", {R: 8}, True)
    assert node_lost("n", ready, NOW, grace) == (None, None)
    assert node_lost("n", None, NOW, grace) == ("node n was deleted", None)
    down_since = NOW - timedelta(seconds=20)
    down = NodeView("n", {R: 8}, False, ready=False,
                    ready_since=down_since.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert node_lost("n", down, NOW, grace) == (None, down_since + grace)
    assert node_lost("n", down, NOW + timedelta(seconds=45), grace) == (
        "node n has been NotReady for 65s", None)


def test_snapshot_reads_the_index_then_the_memory_of_deleted_and_missing_nodes() -> None:
    here = NodeView("here", {"nvidia.com/gpu": 8}, True)
    memory = NodeMemory().node_deleted("gone")
    snap, memory = snapshot(memory, ["here", "gone", "vanished"], {"here": here}, NOW)
    assert snap["here"] == here and snap["gone"] is None
    vanished = snap["vanished"]  # left the index without a DELETED event: NotReady from now
    assert vanished is not None and not vanished.ready and vanished.ready_since == \
        "2026-01-01T12:00:00Z"
    later = NOW + timedelta(seconds=30)
    snap, memory = snapshot(memory, ["vanished"], {}, later)
    assert snap["vanished"] is not None and snap["vanished"].ready_since == \
        "2026-01-01T12:00:00Z"  # still counted from when it was first missed
    back = NodeView("vanished", {}, True)
    snap, memory = snapshot(memory, ["vanished", "gone"], {"vanished": back, "gone": here}, later)
    assert memory == NodeMemory()  # both back in the index: forgotten
    same = NodeMemory()
    assert snapshot(same, ["here"], {"here": here}, NOW)[1] is same  # unchanged: no copy


def test_lost_nodes_judges_the_snapshot_and_says_when_to_look_again() -> None:
    grace = timedelta(seconds=60)
    down = NodeView("slow", {}, False, ready=False, ready_since="2026-01-01T11:59:30Z")
    lost, recheck = lost_nodes({"gone": None, "slow": down}, NOW, grace)
    assert lost == {"gone": "node gone was deleted"}
    assert recheck == NOW + timedelta(seconds=30)


def test_job_nodes_are_its_live_pods_and_its_reservation() -> None:
    j = job(at("Deploying", reservation={"attempt": 1, "nodes": ["r0", "r1"]}), workers=2)
    assert job_nodes(j, [pod(0, node="p0"), exited(1, phase="Succeeded")]) == {"p0", "r0", "r1"}
    assert job_nodes(job(at("Completed", reservation={"attempt": 1, "nodes": ["r0"]})),
                     []) == set()
