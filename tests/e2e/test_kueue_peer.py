"""Kueue, the peer `make bench` compares the operator with, works on devcluster as
devcluster/kueue.py sets it up: its CRDs apply, its manager runs outside the cluster with
webhooks off, a suspended Job in its queue gets a Workload, is admitted and completes on a kwok
node, and a Job larger than the ClusterQueue stays suspended.

Kueue's objects are cluster-wide (CRDs, ClusterQueue, ResourceFlavor): the module fixture
removes them all again, with the manager still running to lift its finalizers, so later tests
see the cluster as before.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import kueue
from tests.harness import Cluster
from tests.kube import Kubectl, eventually

# A machine's first run builds Kueue in the fixture (cold: 17 min measured on a busy machine).
pytestmark = [pytest.mark.kwok, pytest.mark.timeout(1800)]

KUEUE_KINDS = ("workloads", "localqueues", "clusterqueues", "resourceflavors")


@dataclass(frozen=True)
class Peer:
    ns: Kubectl  # bound to the test namespace, which holds the LocalQueue "bench"
    proc: subprocess.Popen[bytes]
    log: Path
    gpus: int  # the ClusterQueue's nvidia.com/gpu quota: every kwok node's GPUs

    def alive(self) -> None:
        assert self.proc.poll() is None, (
            f"Kueue's manager exited ({self.proc.returncode}); see {self.log}")


def _crd_names(files: list[Path]) -> list[str]:
    return [yaml.safe_load(f.read_text())["metadata"]["name"] for f in files]


def _kwok_gpus(kubectl: Kubectl) -> int:
    nodes = kubectl.json("get", "nodes", "-l", "type=kwok")["items"]
    return sum(int(n["status"]["allocatable"].get(kueue.GPU, "0")) for n in nodes)


def _remove_kueue(kubectl: Kubectl, crds: list[str], proc: subprocess.Popen[bytes] | None,
                  namespace: str) -> None:
    """Delete the Jobs and Kueue's objects while the manager runs (it lifts its
    resource-in-use finalizers), stop it, clear what finalizers are left, delete the CRDs."""
    k = kubectl.in_namespace(namespace)
    if proc is not None and proc.poll() is None:
        k.run("delete", "jobs", "--all", "--cascade=foreground", "--timeout=60s", check=False,
              timeout=90)
        for kind in KUEUE_KINDS:
            kubectl.run("delete", kind, "--all", "--all-namespaces", "--timeout=60s",
                        check=False, timeout=90)
    if proc is not None:
        kueue.stop(proc)
    for kind in KUEUE_KINDS:
        listed = kubectl.run("get", kind, "--all-namespaces", "-o", "json", check=False)
        for item in json.loads(listed.stdout or '{"items": []}')["items"]:
            meta = item["metadata"]
            kubectl.run("patch", kind, meta["name"], "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}',
                        *(["-n", meta["namespace"]] if "namespace" in meta else []),
                        check=False)
    if crds:
        kubectl.run("delete", "crd", *crds, "--ignore-not-found", "--timeout=120s",
                    timeout=150)
    kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def kueue_peer(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    kubectl = cluster.kubectl
    files = kueue.crds()
    crds = _crd_names(files)
    namespace = f"kueue-peer-{secrets.token_hex(2)}"
    proc: subprocess.Popen[bytes] | None = None
    try:
        for f in files:
            kubectl.run("apply", "--server-side", "-f", str(f))
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{name}" for name in crds))
        kubectl.run("create", "namespace", namespace)
        gpus = _kwok_gpus(kubectl)
        assert gpus >= 8, f"the cluster's kwok nodes have {gpus} GPUs"
        for manifest in kueue.queues(gpus, "10000", "100000Gi", namespace):
            kubectl.apply(manifest)
        workdir = tmp_path_factory.mktemp("kueue")
        proc = kueue.start(cluster.kubeconfig, workdir)
        kubectl.wait(f"clusterqueue/{kueue.CLUSTER_QUEUE}", "condition=Active")
        yield Peer(kubectl.in_namespace(namespace), proc, workdir / kueue.LOG, gpus)
    finally:
        _remove_kueue(kubectl, crds, proc, namespace)


def _workload_of(ns: Kubectl, job: str) -> dict[str, Any] | None:
    for wl in ns.json("get", "workloads")["items"]:
        owners = wl["metadata"].get("ownerReferences", [])
        if any(o["kind"] == "Job" and o["name"] == job for o in owners):
            found: dict[str, Any] = wl
            return found
    return None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next((c for c in (obj.get("status") or {}).get("conditions", [])
                                  if c["type"] == kind), {})
    return found


def test_kueue_crds_are_served_and_the_manager_stays_up(kueue_peer: Peer) -> None:
    lq = kueue_peer.ns.json("get", "localqueue", kueue.LOCAL_QUEUE)
    assert lq["spec"]["clusterQueue"] == kueue.CLUSTER_QUEUE
    kueue_peer.ns.wait(f"localqueue/{kueue.LOCAL_QUEUE}", "condition=Active")
    cq = kueue_peer.ns.json("get", "clusterqueue", kueue.CLUSTER_QUEUE)
    assert _condition(cq, "Active")["status"] == "True"
    # No webhook of Kueue's is registered with the API server.
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        names = [w["metadata"]["name"] for w in kueue_peer.ns.json("get", kind)["items"]]
        assert not [n for n in names if "kueue" in n], names
    kueue_peer.alive()


def test_a_suspended_job_in_the_queue_is_admitted_and_completes_on_kwok(kueue_peer: Peer) -> None:
    kueue_peer.ns.apply(kueue.job("fits", kueue_peer.ns.namespace or "", 1, 2,
                            {"outcome": "succeed", "run-duration": "1s"}))
    workload = eventually(lambda: _workload_of(kueue_peer.ns, "fits"), timeout=60,
                          what="Kueue to create the Job's Workload")
    assert workload["spec"]["queueName"] == kueue.LOCAL_QUEUE
    kueue_peer.ns.wait(f"workload/{workload['metadata']['name']}", "condition=Admitted")
    admitted = kueue_peer.ns.json("get", "workload", workload["metadata"]["name"])
    assert admitted["status"]["admission"]["clusterQueue"] == kueue.CLUSTER_QUEUE
    kueue_peer.ns.wait("job/fits", "jsonpath={.spec.suspend}=false")
    kueue_peer.ns.wait("job/fits", "condition=Complete", timeout=120)
    pods = kueue_peer.ns.json("get", "pods", "-l", "job-name=fits")["items"]
    assert len(pods) == 2
    nodes = {p["spec"]["nodeName"] for p in pods}
    kwok = {n["metadata"]["name"]
            for n in kueue_peer.ns.json("get", "nodes", "-l", "type=kwok")["items"]}
    assert nodes <= kwok, f"pods ran on {nodes}, not only kwok nodes"
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    kueue_peer.ns.wait(f"workload/{workload['metadata']['name']}", "condition=Finished")
    kueue_peer.alive()


def test_a_job_larger_than_the_cluster_queue_stays_suspended(kueue_peer: Peer) -> None:
    pods = kueue_peer.gpus // 8 + 1  # 8-GPU pods: one more than the ClusterQueue holds
    kueue_peer.ns.apply(kueue.job("too-big", kueue_peer.ns.namespace or "", 8, pods,
                            {"outcome": "succeed", "run-duration": "1s"}))
    workload = eventually(lambda: _workload_of(kueue_peer.ns, "too-big"), timeout=60,
                          what="Kueue to create the Job's Workload")
    name = workload["metadata"]["name"]

    def refused() -> dict[str, Any] | None:
        wl = kueue_peer.ns.json("get", "workload", name)
        reserved = _condition(wl, "QuotaReserved")
        return wl if reserved.get("status") == "False" else None

    # Kueue tried and said no: QuotaReserved False, with the reason in its message.
    refused_wl = eventually(refused, timeout=60, what="Kueue to refuse the Workload a quota")
    message = _condition(refused_wl, "QuotaReserved")["message"]
    assert "insufficient quota" in message, message
    assert _condition(refused_wl, "Admitted").get("status") != "True"
    assert "admission" not in refused_wl["status"]
    job = kueue_peer.ns.json("get", "job", "too-big")
    assert job["spec"]["suspend"] is True
    assert not kueue_peer.ns.json("get", "pods", "-l", "job-name=too-big")["items"]
    kueue_peer.alive()
