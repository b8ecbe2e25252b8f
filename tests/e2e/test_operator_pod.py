"""The operator as a pod: the image built here, the chart installed with its defaults (the
image, and the placement devcluster's tainted real node needs), two replicas run by a real
kubelet in a namespace that enforces the restricted Pod Security Standard, reaching the API
server through the `kubernetes` Service (kube-proxy).

The tests run in order and share the release; the session's host-process operator is
stopped meanwhile, since both would act on the same jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devcluster.realnode import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.conftest import CHART, TEST_CLUSTER_DIR, Installation, Operator
from tests.e2e.test_image import _docker
from tests.e2e.test_real_node import real_job
from tests.harness import ROOT, Cluster
from tests.kube import Kubectl, eventually, status_of, training_job

pytestmark = [pytest.mark.usefixtures("real_nodes")]
RELEASE = "in-cluster-trainingjob-operator"  # contains the chart name: the fullname
NAMESPACE = "tj-in-cluster-system"
REPOSITORY = "trainingjob-operator"
TAGS = ("e2e-a", "e2e-b")  # one image, two tags: an upgrade to a new tag


@dataclass(frozen=True)
class Release:
    kubectl: Kubectl  # bound to the release's namespace
    installation: Installation

    def pods(self) -> list[dict[str, object]]:
        items: list[dict[str, object]] = self.kubectl.json(
            "get", "pods", "-l", "app.kubernetes.io/instance=" + RELEASE)["items"]
        return items

    def leader(self) -> str:
        lease = self.kubectl.json("get", "lease", RELEASE)
        return str(lease["spec"].get("holderIdentity") or "")

    def helm(self, *args: str) -> None:
        self.installation.run_helm(*args, "-n", NAMESPACE)


def _devcluster(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "devcluster", "--dir", str(TEST_CLUSTER_DIR),
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _values(tmp: Path, tag: str) -> list[str]:
    """The chart's defaults but the image, and the real node's placement."""
    key, value = REAL_NODE_LABEL
    placement = {"nodeSelector": {key: value},
                 "tolerations": [{"key": REAL_NODE_TAINT["key"], "operator": "Exists",
                                  "effect": REAL_NODE_TAINT["effect"]}]}
    path = tmp / "placement.yaml"
    path.write_text(yaml.safe_dump(placement))
    return ["--set", f"image.repository={REPOSITORY}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "-f", str(path), "--wait", "--timeout", "180s"]


@pytest.fixture(scope="module")
def release(cluster: Cluster, installation: Installation, operator: Operator,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    operator.stop()
    _devcluster("image", "--tag", f"{REPOSITORY}:{TAGS[0]}")
    _docker("tag", f"{REPOSITORY}:{TAGS[0]}", f"{REPOSITORY}:{TAGS[1]}")
    for tag in TAGS:
        _devcluster("load-image", f"{REPOSITORY}:{tag}")
    kubectl = cluster.kubectl
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    tmp = tmp_path_factory.mktemp("in-cluster")
    installed = Release(kubectl.in_namespace(NAMESPACE), installation)
    installed.helm("install", RELEASE, str(CHART), *_values(tmp, TAGS[0]))
    try:
        yield installed
    finally:
        installation.run_helm("uninstall", RELEASE, "-n", NAMESPACE, check=False)
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_both_replicas_become_ready_through_the_kubelets_probes(release: Release) -> None:
    pods = release.pods()
    assert len(pods) == 2
    for pod in pods:
        status, spec = pod["status"], pod["spec"]
        assert isinstance(status, dict) and isinstance(spec, dict)
        ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
        assert ready == "True"
        container = spec["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert status["containerStatuses"][0]["restartCount"] == 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_one_leads_and_jobs_complete_on_kwok_and_on_the_real_node(release: Release,
                                                                   ns: Kubectl) -> None:
    names = {str(p["metadata"]["name"]) for p in release.pods()}  # type: ignore[index]
    eventually(lambda: release.leader() in names, timeout=30, what="a replica holds the Lease")
    ns.apply(training_job("on-kwok", annotations={"outcome": "succeed", "run-duration": "1s"}))
    ns.apply(real_job("on-real", "--steps", "1", "--step-seconds", "0"))
    for name in ("on-kwok", "on-real"):
        ns.wait(f"tj/{name}", "condition=Finished", timeout=120)
        assert (status_of(ns, name)["phase"], status_of(ns, name)["reason"]) == (
            "Completed", "Succeeded")


def test_the_operators_logs_are_json(release: Release) -> None:
    for pod in release.pods():
        name = str(pod["metadata"]["name"])  # type: ignore[index]
        lines = release.kubectl.run("logs", name).stdout.splitlines()
        assert lines, name
        for line in lines:
            assert isinstance(json.loads(line), dict), line


def test_the_metrics_service_answers_a_pod_on_the_real_node(release: Release,
                                                            ns: Kubectl) -> None:
    url = f"http://{RELEASE}-metrics.{NAMESPACE}.svc:8080/metrics"
    job = real_job("x")
    ns.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "scrape"},
              "spec": {**job["spec"]["template"]["spec"], "restartPolicy": "Never",
                       "containers": [{"name": "wget", "image": job["spec"]["image"],
                                       "command": ["wget", "-qO-", url]}]}})
    ns.wait("pod/scrape", "jsonpath={.status.phase}=Succeeded", timeout=60)
    assert "trainingjob_leader" in ns.run("logs", "scrape").stdout


def test_deleting_the_leader_pod_hands_over_within_seconds(release: Release) -> None:
    """docs/operations.md: a leader that exits cleanly releases the Lease, so a standby
    takes over within about one retry period (2 s)."""
    leader = release.leader()
    started = time.monotonic()
    release.kubectl.run("delete", "pod", leader, "--wait=false")
    eventually(lambda: release.leader() not in ("", leader), timeout=30, interval=0.2,
               what="another replica takes the Lease")
    took = time.monotonic() - started
    assert took < 6, f"handover took {took:.1f}s"
    eventually(lambda: len([p for p in release.pods() if not p["metadata"].get(  # type: ignore[attr-defined]
        "deletionTimestamp")]) == 2, timeout=120, what="the Deployment back at two pods")


def test_helm_upgrade_to_a_new_tag_rolls_with_no_job_lost(release: Release, ns: Kubectl,
                                                          tmp_path: Path) -> None:
    ns.apply(training_job("through-kwok", annotations={"outcome": "succeed",
                                                       "run-duration": "20s"}))
    ns.apply(real_job("through-real", "--steps", "30", "--step-seconds", "0.5"))
    for name in ("through-kwok", "through-real"):
        ns.wait(f"tj/{name}", "jsonpath={.status.phase}=Running", timeout=120)
    release.helm("upgrade", RELEASE, str(CHART), *_values(tmp_path, TAGS[1]))
    eventually(lambda: {str(p["spec"]["containers"][0]["image"])  # type: ignore[index]
                        for p in release.pods()} == {f"{REPOSITORY}:{TAGS[1]}"}, timeout=120,
               what="the old pods gone, the new tag running")
    for name in ("through-kwok", "through-real"):
        ns.wait(f"tj/{name}", "condition=Finished", timeout=180)
        status = status_of(ns, name)
        assert (status["phase"], status["reason"], status["attempt"]) == (
            "Completed", "Succeeded", 1), status


def test_helm_uninstall_leaves_the_jobs_and_their_pods_alone(release: Release,
                                                             ns: Kubectl) -> None:
    ns.apply(training_job("outlives", annotations={"outcome": "run"}))
    ns.wait("tj/outlives", "jsonpath={.status.phase}=Running", timeout=120)
    release.helm("uninstall", RELEASE, "--wait")
    eventually(lambda: not release.pods(), timeout=120, what="the operator pods gone")
    assert status_of(ns, "outlives")["phase"] == "Running"
    assert [p["metadata"]["name"] for p in ns.json("get", "pods")["items"]] == [
        "outlives-worker-0"]
