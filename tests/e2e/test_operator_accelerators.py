"""Every accelerator is counted, CPU-only gangs are bounded, workers stay in the node set: on
the real API server and scheduler, with an operator run with those settings.

The operator here runs with TRAININGJOB_ACCELERATORS naming example.com/accel besides the
usual GPUs (a name the CRD does not know, so only the operator can refuse it), a CPU-only
bound of 4, and a worker node set {example.com/pool: accel}. Of the session's nvidia nodes only
gpu-node-0 and gpu-node-1 are in the set; two (later three) fake amd.com/gpu nodes are too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.components import NodeShape, node_manifest
from tests.conftest import Installation, Operator
from tests.e2e.test_operator_ha import probe
from tests.kube import Kubectl, eventually, status_of, training_job, wait_cluster_idle, wait_phase

pytestmark = [pytest.mark.kwok]

AMD = "amd.com/gpu"
NVIDIA = "nvidia.com/gpu"
POOL_KEY, POOL = "example.com/pool", "accel"
IN_SET = ("gpu-node-0", "gpu-node-1")
SETTINGS = {"TRAININGJOB_ACCELERATORS": f"{NVIDIA},nvidia.com/mig-*,{AMD},example.com/accel",
            "TRAININGJOB_CPU_ONLY_MAX_WORKERS": "4",
            "TRAININGJOB_WORKER_NODE_SELECTOR": json.dumps({POOL_KEY: POOL})}


def _amd_node(index: int) -> dict[str, Any]:
    """A fake node (kwok plays its kubelet) with 4 amd.com/gpu and no nvidia.com/gpu, in the
    node set."""
    node = node_manifest(index, NodeShape(gpus=0))
    name = f"amd-node-{index}"
    node["metadata"]["name"] = name
    node["metadata"]["labels"].update({"kubernetes.io/hostname": name, POOL_KEY: POOL})
    resources = {k: v for k, v in node["status"]["capacity"].items() if k != NVIDIA}
    node["status"] = {"capacity": {**resources, AMD: "4"}, "allocatable": {**resources, AMD: "4"}}
    return node


def _ready(kubectl: Kubectl, name: str) -> bool:
    node = kubectl.json("get", "node", name)
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in node["status"].get("conditions", []))


def _add_amd_node(kubectl: Kubectl, index: int) -> str:
    node = _amd_node(index)
    kubectl.run("apply", "-f", "-", input_text=json.dumps(node))
    name: str = node["metadata"]["name"]
    eventually(lambda: _ready(kubectl, name), timeout=60, what=f"{name} Ready")
    return name


@pytest.fixture(scope="module")
def configured(installation: Installation, operator: Operator,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The module's operator with the settings above (the session's one stopped meanwhile),
    two amd nodes, and gpu-node-0/1 labelled into the node set; all undone afterwards."""
    kubectl = installation.cluster.kubectl
    tmp: Path = tmp_path_factory.mktemp("accelerators")
    operator.stop()
    own = Operator(installation.token_kubeconfig(tmp / "op.kubeconfig"), tmp / "operator.log",
                   name="accelerators-operator", env=SETTINGS)
    try:
        for node in IN_SET:
            kubectl.run("label", "node", node, f"{POOL_KEY}={POOL}", "--overwrite")
        for index in (0, 1):
            _add_amd_node(kubectl, index)
        own.start()
        eventually(lambda: probe(f"{own.health_url}/readyz") == (200, "ready, leader"),
                   timeout=40, what="the module's operator to lead")
        yield own
        assert "Traceback" not in own.log_path.read_text()
    finally:
        own.stop()
        for index in (0, 1, 2):
            kubectl.run("delete", "node", f"amd-node-{index}", "--ignore-not-found",
                        "--wait=false")
        for node in IN_SET:
            kubectl.run("label", "node", node, f"{POOL_KEY}-", check=False)
        operator.start()


def _invalid(ns: Kubectl, name: str) -> str:
    status = wait_phase(ns, name, "DeployFailed", timeout=30)
    assert status["reason"] == "InvalidSpec", status
    message: str = status["message"]
    return message


def _pods(ns: Kubectl, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ns.json("get", "pods", "-l",
                                          f"training.dev/job-name={job}")["items"]
    return items


def _bound(ns: Kubectl, job: str, workers: int) -> list[dict[str, Any]]:
    def probe_pods() -> list[dict[str, Any]] | None:
        pods = _pods(ns, job)
        return pods if len(pods) == workers and all(p["spec"].get("nodeName")
                                                    for p in pods) else None
    return eventually(probe_pods, timeout=60, what=f"{job}'s {workers} pods bound")


def _waits(ns: Kubectl, name: str, reason: str) -> dict[str, Any]:
    def probe_status() -> dict[str, Any] | None:
        s = status_of(ns, name)
        return s if (s.get("phase"), s.get("reason")) == ("Pending", reason) else None
    return eventually(probe_status, timeout=30, what=f"{name} Pending/{reason}")


@pytest.mark.usefixtures("configured")
def test_an_accelerator_in_spec_resources_ends_invalid_spec_whatever_gpu_resource_says(
        ns: Kubectl) -> None:
    """CPU-only by gpusPerWorker, another gpuResource, and a configured accelerator in
    limits: admitted at once, it would take devices the queue never counted."""
    ns.apply(training_job("sneaky", gpus=0, gpuResource="example.com/foo",
                          resources={"limits": {"example.com/accel": 8}}))
    assert _invalid(ns, "sneaky") == (
        "spec.resources.limits sets example.com/accel, an accelerator; request it with "
        "spec.gpusPerWorker and spec.gpuResource: example.com/accel instead, so that the "
        "queue counts it")
    assert _pods(ns, "sneaky") == []


def test_an_amd_job_waits_for_amd_capacity_and_takes_no_nvidia_gpus(
        ns: Kubectl, kubectl: Kubectl, configured: Operator) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("amd-full", workers=2, gpus=4, gpuResource=AMD))
    wait_phase(ns, "amd-full", "Running")
    assert {p["spec"]["nodeName"] for p in _pods(ns, "amd-full")} == {"amd-node-0", "amd-node-1"}

    ns.apply(training_job("amd-next", gpus=4, gpuResource=AMD))
    waiting = _waits(ns, "amd-next", "WaitingForCapacity")
    assert (waiting["queue"]["gpusNeeded"], waiting["queue"]["gpusFree"]) == (4, 0)
    # Both nvidia nodes of the set are whole: an amd job took none of their GPUs.
    ns.apply(training_job("nvidia-whole", workers=2, gpus=8))
    wait_phase(ns, "nvidia-whole", "Running")
    assert status_of(ns, "amd-next")["phase"] == "Pending"

    added = _add_amd_node(kubectl, 2)
    wait_phase(ns, "amd-next", "Running")
    (pod,) = _bound(ns, "amd-next", 1)
    assert pod["spec"]["nodeName"] == added
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {AMD: "4"}


@pytest.mark.usefixtures("configured")
def test_a_cpu_only_gang_above_the_bound_ends_invalid_spec(ns: Kubectl) -> None:
    ns.apply(training_job("cpu-flood", workers=5, gpus=0))
    message = _invalid(ns, "cpu-flood")
    assert message.startswith("spec.workers is 5, but a CPU-only job (spec.gpusPerWorker 0) "
                              "may have at most 4 workers")
    assert "cpuOnlyMaxWorkers" in message and "TRAININGJOB_CPU_ONLY_MAX_WORKERS" in message
    assert _pods(ns, "cpu-flood") == []
    ns.apply(training_job("cpu-ok", workers=4, gpus=0))  # at the bound: skips the queue
    wait_phase(ns, "cpu-ok", "Running")


def test_workers_carry_the_node_set_and_are_placed_only_inside_it(
        ns: Kubectl, kubectl: Kubectl, configured: Operator) -> None:
    wait_cluster_idle(kubectl)
    # gpu-node-2 and -3 are free, but outside the set: two nodes of 8 hold no 3-worker gang.
    ns.apply(training_job("wide", workers=3, gpus=8))
    too_large = _waits(ns, "wide", "GangTooLarge")
    assert "hold at most 2 such workers even when empty" in too_large["message"], too_large

    # Required affinity for a node outside the set: ANDed with the nodeSelector, it matches
    # no node, so the queue says so and no pod is made.
    outside = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-node-3"]}]}]}}}
    ns.apply(training_job("elsewhere", gpus=8, template={"spec": {"affinity": outside}}))
    nowhere = _waits(ns, "elsewhere", "NoNodeFits")
    assert f"{POOL_KEY}" in nowhere["message"], nowhere
    assert _pods(ns, "elsewhere") == []

    ns.apply(training_job("other-pool", template={"spec": {"nodeSelector": {POOL_KEY: "infra"}}}))
    message = _invalid(ns, "other-pool")
    assert message.startswith(f"spec.template.spec.nodeSelector sets {POOL_KEY}: 'infra', but "
                              f"workers run only on nodes with {POOL_KEY}: '{POOL}'")
    assert "workerNodeSelector" in message

    ns.apply(training_job("inside", workers=2, gpus=8,
                          template={"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}))
    wait_phase(ns, "inside", "Running")
    pods = _bound(ns, "inside", 2)
    assert {p["spec"]["nodeName"] for p in pods} == set(IN_SET)
    assert all(p["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", POOL_KEY: POOL}
               for p in pods)
