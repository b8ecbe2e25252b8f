"""Cause-aware retries: a node lost under a running gang (NotReady or deleted) restarts the
gang elsewhere, keeping its queue place, until spec.retries.limit; then Failed/WorkerLost."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster.components import NodeShape, node_manifest
from tests.kube import (
    Kubectl,
    eventually,
    status_of,
    training_job,
    wait_cluster_idle,
    wait_phase,
)

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]
NOT_READY = "devcluster.training.dev/node-condition"


def _node_ready(kubectl: Kubectl, name: str) -> bool:
    node = kubectl.json("get", "node", name)
    ready = any(c["type"] == "Ready" and c["status"] == "True"
                for c in node["status"].get("conditions", []))
    tainted = any(t["key"].startswith("node.kubernetes.io/")
                  for t in node["spec"].get("taints", []))
    return ready and not tainted


@pytest.fixture
def nodes(kubectl: Kubectl) -> Iterator[list[str]]:
    """The GPU nodes; afterwards every one of them is back, Ready and untainted."""
    names = sorted(n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"])
    try:
        yield names
    finally:
        existing = {n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]}
        for name in names:
            if name not in existing:
                index = int(name.rsplit("-", 1)[1])
                kubectl.run("apply", "-f", "-",
                            input_text=json.dumps(node_manifest(index, NodeShape())))
            else:
                kubectl.run("annotate", "node", name, f"{NOT_READY}-", check=False)
        for name in names:
            eventually(functools.partial(_node_ready, kubectl, name), timeout=90,
                       what=f"{name} Ready again")


def _worker_node(ns: Kubectl, job: str, index: int, attempt: int) -> str:
    pod = ns.json("get", "pod", f"{job}-worker-{index}")
    assert pod["metadata"]["labels"]["training.dev/attempt"] == str(attempt)
    node: str = pod["spec"]["nodeName"]
    return node


def _live_pods(ns: Kubectl, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ns.json("get", "pods", "-l",
                                          f"training.dev/job-name={job}")["items"]
    return items


def test_node_not_ready_retries_the_gang_elsewhere_then_fails_after_the_limit(
        ns: Kubectl, kubectl: Kubectl, nodes: list[str]) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("gang", workers=2, gpus=8, retries={"limit": 1}))
    wait_phase(ns, "gang", "Running")
    first = _worker_node(ns, "gang", 1, attempt=1)
    kubectl.run("annotate", "node", first, f"{NOT_READY}=NotReady")

    ns.wait("tj/gang", "jsonpath={.status.attempt}=2", timeout=60)
    status = wait_phase(ns, "gang", "Running", timeout=60)
    assert first not in {_worker_node(ns, "gang", i, attempt=2) for i in (0, 1)}
    assert {p["metadata"]["labels"]["training.dev/attempt"] for p in _live_pods(ns, "gang")} \
        == {"2"}, "an old attempt's pod lingers next to the new ones"
    lost = next(h for h in status["history"] if h["reason"] == "WorkerLost")
    assert lost["phase"] == "Pending" and lost["attempt"] == 2
    assert f"node {first} has been NotReady for" in lost["message"]
    assert [(h["phase"], h["attempt"]) for h in status["history"]
            if h["phase"] == "Running"] == [("Running", 1), ("Running", 2)]

    second = _worker_node(ns, "gang", 0, attempt=2)
    kubectl.run("annotate", "node", second, f"{NOT_READY}=NotReady")
    final = eventually(lambda: (s := status_of(ns, "gang")).get("phase") == "Failed" and s,
                       timeout=60, what="Failed after the retry limit")
    assert final["reason"] == "WorkerLost"
    assert "spec.retries.limit=1 restarts are used up" in final["message"]
    ns.wait("pod/gang-worker-0", "delete", timeout=30)


def test_deleted_node_retries_the_gang_on_another_node(ns: Kubectl, kubectl: Kubectl,
                                                       nodes: list[str]) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("moved", gpus=8, retries={"limit": 2}))
    wait_phase(ns, "moved", "Running")
    gone = _worker_node(ns, "moved", 0, attempt=1)
    kubectl.run("delete", "node", gone)

    ns.wait("tj/moved", "jsonpath={.status.attempt}=2", timeout=60)
    status = wait_phase(ns, "moved", "Running", timeout=60)
    assert _worker_node(ns, "moved", 0, attempt=2) != gone
    assert any(h["reason"] == "WorkerLost" and f"node {gone} was deleted" in h["message"]
               for h in status["history"])
