"""devcluster smoke tests: the real scheduler, garbage collector and RBAC at work."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import Kubectl, eventually, gpu_pods_on_nodes, pod

GPU = "nvidia.com/gpu"


def _gpu_nodes(kubectl: Kubectl) -> dict[str, int]:
    """GPUs of the kwok nodes (the real nodes' taint keeps these pods off them)."""
    nodes = kubectl.json("get", "nodes", "-l", "type=kwok")["items"]
    return {n["metadata"]["name"]: int(n["status"]["allocatable"].get(GPU, "0")) for n in nodes}


@pytest.mark.kwok
def test_gpu_pod_is_scheduled_on_a_gpu_node_runs_and_succeeds(ns: Kubectl) -> None:
    ns.apply(pod("gpu8", gpus=8, annotations={"outcome": "succeed", "run-duration": "3s"}))
    ns.wait("pod/gpu8", "jsonpath={.status.phase}=Running")
    running = ns.json("get", "pod", "gpu8")
    node = ns.json("get", "node", running["spec"]["nodeName"])
    assert int(node["status"]["allocatable"][GPU]) >= 8
    scheduled = [c for c in running["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"
    events = ns.json("get", "events", "--field-selector", "involvedObject.name=gpu8")["items"]
    assert any(e["reason"] == "Scheduled" and "default-scheduler" in (
        e.get("reportingComponent"), e.get("source", {}).get("component")) for e in events), events

    ns.wait("pod/gpu8", "jsonpath={.status.phase}=Succeeded")
    done = ns.json("get", "pod", "gpu8")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["exitCode"], done["reason"]) == (0, "Completed")


@pytest.mark.kwok
def test_gpu_pod_beyond_capacity_stays_unschedulable_until_a_node_frees(
        ns: Kubectl, kubectl: Kubectl) -> None:
    eventually(lambda: not gpu_pods_on_nodes(kubectl), what="earlier tests' GPU pods to go")
    nodes = _gpu_nodes(kubectl)
    full = [name for name, gpus in nodes.items() if gpus >= 8]
    assert full, f"no node with 8 GPUs: {nodes}"
    fillers = [f"fill-{i}" for i in range(sum(g // 8 for g in nodes.values()))]
    for name in fillers:
        ns.apply(pod(name, gpus=8))
    for name in fillers:
        ns.wait(f"pod/{name}", "jsonpath={.status.phase}=Running")

    ns.apply(pod("one-too-many", gpus=8))
    ns.wait("pod/one-too-many", "jsonpath={.status.conditions[?(@.type=='PodScheduled')].reason}"
            "=Unschedulable")
    waiting = ns.json("get", "pod", "one-too-many")
    condition = next(c for c in waiting["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["status"] == "False"
    assert f"Insufficient {GPU}" in condition["message"]
    assert waiting["status"]["phase"] == "Pending"
    assert "nodeName" not in waiting["spec"]

    ns.run("delete", "pod", fillers[0])
    ns.wait("pod/one-too-many", "jsonpath={.status.phase}=Running")


def test_pod_of_a_deleted_owner_is_garbage_collected(ns: Kubectl) -> None:
    ns.run("create", "configmap", "owner")
    uid = ns.json("get", "configmap", "owner")["metadata"]["uid"]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
             "controller": True, "blockOwnerDeletion": True}
    ns.apply(pod("owned", owner=owner))
    ns.apply(pod("unowned"))
    ns.run("delete", "configmap", "owner")
    ns.wait("pod/owned", "delete")
    assert ns.run("get", "pod", "unowned").returncode == 0


def _token_kubeconfig(kubectl: Kubectl, token: str) -> dict[str, Any]:
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    return {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"],
                                                    "user": "sa"}}],
            "current-context": "sa"}


def test_unprivileged_service_account_is_denied_by_rbac(ns: Kubectl) -> None:
    ns.run("create", "serviceaccount", "nobody")
    user = f"system:serviceaccount:{ns.namespace}:nobody"
    can_i = ns.run("auth", "can-i", "create", "pods", f"--as={user}", check=False)
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")
    assert ns.run("auth", "can-i", "create", "pods").stdout.strip() == "yes"  # admin may

    token = ns.run("create", "token", "nobody").stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "kubeconfig"
        config.write_text(json.dumps(_token_kubeconfig(ns, token)))
        as_sa = Kubectl(ns.binary, config, ns.namespace)
        whoami = as_sa.json("auth", "whoami")  # the token authenticates...
        assert whoami["status"]["userInfo"]["username"] == user
        denied = as_sa.run("create", "configmap", "x", "-v=6", check=False)  # ...but may not act
    assert denied.returncode != 0
    assert "403 Forbidden" in denied.stderr
    assert f'User "{user}" cannot create resource "configmaps"' in denied.stderr
