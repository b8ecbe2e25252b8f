"""Every failure-table row a real kubelet can play, with real containers on a real node.

The pods run the `trainer` image (devcluster/images) on devcluster's real node: a kubelet
built from the control plane's module, Debian's containerd and runc. Each test asserts the
phase, the reason and the message, and that `kubectl logs` still answers once the job ends.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from devcluster.images import TRAINER_IMAGE
from devcluster.realnode import CTR, REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.conftest import TEST_CLUSTER_DIR
from tests.e2e.test_plugin import Plugin
from tests.harness import Cluster
from tests.kube import Kubectl, eventually, status_of, stop, training_job, wait_phase

pytestmark = [pytest.mark.usefixtures("running_operator", "real_nodes")]


def real_job(name: str, *trainer_args: str, workers: int = 1,
             template_spec: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A TrainingJob whose workers run the trainer image on a real node."""
    key, value = REAL_NODE_LABEL
    pod_spec = {"nodeSelector": {key: value},
                "tolerations": [{"key": REAL_NODE_TAINT["key"], "operator": "Exists",
                                 "effect": REAL_NODE_TAINT["effect"]}],
                **(template_spec or {})}
    return training_job(name, workers=workers, image=TRAINER_IMAGE,
                        command=["/bin/trainer", *trainer_args],
                        terminationGracePeriodSeconds=spec.pop("grace", 10),
                        template={"spec": pod_spec}, **spec)


def _ends(ns: Kubectl, name: str, phase: str, reason: str, timeout: int = 120) -> dict[str, Any]:
    ns.wait(f"tj/{name}", "condition=Finished", timeout=timeout)
    status = status_of(ns, name)
    assert (status["phase"], status["reason"]) == (phase, reason), status["message"]
    return status


def _logs(ns: Kubectl, pod: str, *args: str) -> str:
    return ns.run("logs", pod, *args).stdout


def test_two_workers_rendezvous_over_cluster_dns_and_complete(ns: Kubectl,
                                                               cluster: Cluster) -> None:
    ns.apply(real_job("meet", "--steps", "2", "--step-seconds", "0.2", workers=2))
    status = _ends(ns, "meet", "Completed", "Succeeded")
    assert status["message"] == "all 2 workers exited 0"
    for rank in (0, 1):
        out = _logs(ns, f"meet-worker-{rank}")
        assert f"RANK={rank} WORLD_SIZE=2" in out
        assert "rendezvous: 2 of 2 workers met" in out
        assert f"MASTER_ADDR=meet-worker-0.meet-workers.{ns.namespace}.svc" in out
    # The plugin's logs of a finished job: every worker's lines, prefixed.
    plugin_logs = Plugin(cluster, str(ns.namespace)).ok("logs", "meet")
    assert plugin_logs.count("rendezvous: 2 of 2 workers met") == 2, plugin_logs
    pods = ns.json("get", "pods")["items"]
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} <= set(_real_node_names(ns))
    # The kubelet reports the containers' exit first and the pods' phase a moment later;
    # the operator left the pods alone in between.
    for rank in (0, 1):
        ns.wait(f"pod/meet-worker-{rank}", "jsonpath={.status.phase}=Succeeded")


def _real_node_names(ns: Kubectl) -> list[str]:
    key, value = REAL_NODE_LABEL
    return [n["metadata"]["name"]
            for n in ns.json("get", "nodes", "-l", f"{key}={value}")["items"]]


def test_non_zero_exit_fails_naming_the_worker_and_the_code(ns: Kubectl) -> None:
    ns.apply(real_job("exit3", "--steps", "1", "--step-seconds", "0", "--exit-code", "3"))
    message = _ends(ns, "exit3", "Failed", "Error")["message"]
    assert "worker 0 (pod exit3-worker-0): container trainer exited with code 3" in message
    assert "kubectl logs exit3-worker-0" in message
    assert "exiting with code 3" in _logs(ns, "exit3-worker-0")  # the logs outlive the job


def test_memory_past_the_limit_is_a_real_oom_kill(ns: Kubectl) -> None:
    ns.apply(real_job("hog", "--allocate-mib", "256",
                      resources={"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}))
    message = _ends(ns, "hog", "Failed", "OOMKilled")["message"]
    assert "worker 0 (pod hog-worker-0): container trainer was OOMKilled" in message
    assert "32Mi" in message


def test_an_image_that_does_not_exist_fails_deploy_after_the_grace_period(ns: Kubectl) -> None:
    ns.apply(training_job("nopull", image="devcluster.local/no-such-image:1",
                          template=real_job("x")["spec"]["template"]))
    message = _ends(ns, "nopull", "DeployFailed", "ImagePullFailed")["message"]
    assert "cannot pull image 'devcluster.local/no-such-image:1'" in message


def test_a_missing_secret_fails_deploy_as_a_container_config_error(ns: Kubectl) -> None:
    ns.apply(real_job("nosecret", env=[{"name": "TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "absent", "key": "token"}}}]))
    message = _ends(ns, "nosecret", "DeployFailed", "ContainerConfigError")["message"]
    assert "container trainer cannot be created" in message
    assert 'secret "absent" not found' in message


def test_a_failing_setup_step_fails_deploy_and_its_logs_stay(ns: Kubectl) -> None:
    ns.apply(real_job("nosetup", setup={"command": [
        "sh", "-c", "echo installing requirements; echo no such package >&2; exit 3"]}))
    message = _ends(ns, "nosetup", "DeployFailed", "SetupFailed")["message"]
    assert "setup container setup exited with code 3" in message
    assert "installing requirements" in _logs(ns, "nosetup-worker-0", "-c", "setup")


def test_unschedulable_on_the_real_node_fails_deploy(ns: Kubectl) -> None:
    ns.apply(real_job("toobig", timeouts={"deploySeconds": 3},
                      resources={"requests": {"cpu": "500"}}))
    message = _ends(ns, "toobig", "DeployFailed", "Unschedulable")["message"]
    assert "could not be scheduled" in message and "Insufficient cpu" in message


def test_run_seconds_passed_fails_with_deadline_exceeded(ns: Kubectl) -> None:
    ns.apply(real_job("slow", "--sleep", "1h", timeouts={"runSeconds": 3}))
    message = _ends(ns, "slow", "Failed", "DeadlineExceeded")["message"]
    assert "runSeconds=3" in message
    assert "RANK=0" in _logs(ns, "slow-worker-0")


def test_stop_gives_sigterm_and_the_checkpoint_lands_on_the_volume(
        ns: Kubectl, tmp_path: Path) -> None:
    volume = tmp_path / "ckpt"
    volume.mkdir()
    ns.apply(real_job("halt", "--sleep", "1h", "--checkpoint-dir", "/ckpt",
                      volumeMounts=[{"name": "ckpt", "mountPath": "/ckpt"}],
                      template_spec={"volumes": [{"name": "ckpt", "hostPath": {
                          "path": str(volume), "type": "Directory"}}]}))
    wait_phase(ns, "halt", "Running", timeout=120)
    eventually(lambda: "step 3/3" in _logs(ns, "halt-worker-0"), timeout=30,
               what="the trainer's steps")
    stop(ns, "halt")
    _ends(ns, "halt", "Stopped", "StoppedByUser")
    eventually(lambda: (volume / "rank-0" / "sigterm.ckpt").exists(), timeout=30,
               what="the checkpoint written on SIGTERM")
    assert (volume / "rank-0" / "step-3.ckpt").exists()


def test_delete_removes_the_pods_by_garbage_collection(ns: Kubectl) -> None:
    ns.apply(real_job("gone", "--sleep", "1h"))
    wait_phase(ns, "gone", "Running", timeout=120)
    # kubectl exec goes through the API server to the real kubelet, as logs do.
    assert ns.run("exec", "gone-worker-0", "--", "sh", "-c",
                  "echo exec in $HOSTNAME").stdout == "exec in gone-worker-0\n"
    uid = ns.json("get", "pod", "gone-worker-0")["metadata"]["uid"]
    ns.run("delete", "tj", "gone", "--wait=false")
    ns.wait("pod/gone-worker-0", "delete", timeout=60)
    eventually(lambda: not _containers_of(uid), timeout=60,
               what="the pod's containers to be gone from the node's containerd")


def _containers_of(pod_uid: str) -> list[str]:
    """The node's containerd containers labelled with the pod's uid (sandbox included)."""
    found = []
    for socket in (TEST_CLUSTER_DIR / "nodes").glob("*/containerd.sock"):
        out = subprocess.run([CTR, "--address", str(socket), "-n", "k8s.io", "containers",
                              "ls", "-q", f"labels.\"io.kubernetes.pod.uid\"=={pod_uid}"],
                             capture_output=True, text=True, check=True).stdout
        found += out.split()
    return found


def test_the_real_node_is_a_node_the_authorizer_confines(kubectl: Kubectl,
                                                        real_nodes: list[str]) -> None:
    node = kubectl.json("get", "node", real_nodes[0])
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert any(t["key"] == REAL_NODE_TAINT["key"] for t in node["spec"]["taints"])
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.33.13"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")
    # NodeRestriction: the kubelet's own identity may not touch another node.
    other = kubectl.run("--as=system:node:" + real_nodes[0], "--as-group=system:nodes",
                        "label", "node", "gpu-node-0", "x=y", check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    # The API server reaches the kubelet as its kubelet client, which the kubelet authorizes.
    assert kubectl.run("get", "--raw", f"/api/v1/nodes/{real_nodes[0]}/proxy/healthz"
                       ).stdout == "ok"


def test_a_worker_pod_deleted_by_someone_else_is_lost_and_the_gang_retries(ns: Kubectl) -> None:
    ns.apply(real_job("lost", "--sleep", "1h", retries={"limit": 1}))
    wait_phase(ns, "lost", "Running", timeout=120)
    # A graceful delete: the kubelet stops the container (SIGTERM, exit 143) and reports the
    # pod Failed while it is being deleted; that is a lost worker, not a training error.
    ns.run("delete", "pod", "lost-worker-0", "--wait=false")
    ns.wait("tj/lost", "jsonpath={.status.attempt}=2", timeout=60)
    status = wait_phase(ns, "lost", "Running", timeout=120)
    reasons = [(h["phase"], h["reason"]) for h in status["history"]]
    assert ("Pending", "WorkerLost") in reasons, reasons
    assert not any(phase in ("Failed", "DeployFailed") for phase, _ in reasons), reasons
