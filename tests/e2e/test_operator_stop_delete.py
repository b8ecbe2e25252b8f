"""Stopping with spec.stop in every active phase, and deleting, with or without the operator."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Operator
from tests.e2e.test_operator_failures import logs_answer, stopped
from tests.harness import Cluster
from tests.kube import Kubectl, eventually, phases, status_of, training_job, wait_phase

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]
STOP = json.dumps({"spec": {"stop": True}})


def _stop(ns: Kubectl, name: str) -> None:
    ns.run("patch", "tj", name, "--type=merge", "-p", STOP)


def _stopped(ns: Kubectl, name: str) -> dict[str, object]:
    status = wait_phase(ns, name, "Stopped")
    assert status["reason"] == "StoppedByUser"
    return status


def test_stop_while_pending(ns: Kubectl) -> None:
    ns.apply(training_job("queued", workers=5, gpus=8))  # more than the 32 GPUs there are
    eventually(lambda: status_of(ns, "queued").get("phase") == "Pending", what="Pending")
    _stop(ns, "queued")
    _stopped(ns, "queued")
    assert phases(ns, "queued") == ["Pending", "Stopped"]
    assert ns.json("get", "pods")["items"] == []


def test_stop_while_created(ns: Kubectl, running_operator: Operator) -> None:
    # An operator stopped right after recording an admission leaves the job in Created.
    running_operator.stop()
    ns.apply(training_job("admitted"))
    created = {"status": {"phase": "Created", "reason": "Admitted", "attempt": 1,
                          "reservation": {"attempt": 1, "nodes": ["gpu-node-0"]},
                          "history": [{"phase": "Created", "reason": "Admitted",
                                       "time": "2026-01-01T00:00:00Z"}]}}
    ns.run("patch", "tj", "admitted", "--subresource=status", "--type=merge",
           "-p", json.dumps(created))
    _stop(ns, "admitted")
    running_operator.start()
    _stopped(ns, "admitted")
    assert ns.json("get", "pods")["items"] == []


def test_stop_while_deploying(ns: Kubectl) -> None:
    ns.apply(training_job("starting", annotations={"start-delay": "60s"}))
    wait_phase(ns, "starting", "Deploying")
    _stop(ns, "starting")
    _stopped(ns, "starting")
    ns.wait("pod/starting-worker-0", "delete", timeout=30)  # never started: nothing to keep


def _pod_patches(cluster: Cluster, namespace: str) -> dict[str, int]:
    """Pod patches the API server accepted in `namespace`, per pod, from its audit log."""
    assert cluster.data_dir is not None
    out: dict[str, int] = {}
    for line in (cluster.data_dir / "audit.log").read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (entry["verb"], ref.get("resource"), ref.get("namespace")) == (
                "patch", "pods", namespace) and entry["responseStatus"]["code"] == 200:
            out[ref["name"]] = out.get(ref["name"], 0) + 1
    return out


def test_stop_while_running_sends_sigterm_with_the_grace_period_and_keeps_the_pods(
        ns: Kubectl, cluster: Cluster) -> None:
    ns.apply(training_job("ckpt", workers=2, terminationGracePeriodSeconds=45,
                          annotations={"terminate-duration": "3s"}))
    wait_phase(ns, "ckpt", "Running")
    _stop(ns, "ckpt")
    status = _stopped(ns, "ckpt")
    assert "SIGTERM and 45s" in str(status["message"])
    for i in range(2):  # the kubelet kills past the deadline with the pod's grace period
        pod = stopped(ns, f"ckpt-worker-{i}")
        assert pod["spec"]["terminationGracePeriodSeconds"] == 45
        logs_answer(ns, f"ckpt-worker-{i}")
    if cluster.data_dir is not None:  # patched once each, though each patch is a pod event
        assert _pod_patches(cluster, str(ns.namespace)) == {"ckpt-worker-0": 1,
                                                            "ckpt-worker-1": 1}


def test_stopping_a_finished_job_is_refused(ns: Kubectl) -> None:
    """The API server refuses it (a CEL transition rule): nothing is stored, so there is no
    event for the operator to (wrongly) act on, and nothing to compare afterwards."""
    ns.apply(training_job("done", annotations={"outcome": "succeed", "run-duration": "1s"}))
    wait_phase(ns, "done", "Completed")
    refused = ns.run("patch", "trainingjob", "done", "--type=merge", "-p",
                     '{"spec":{"stop":true}}', check=False)
    assert refused.returncode != 0
    assert "spec: Forbidden: this TrainingJob has finished (Completed)" in refused.stderr


def test_delete_while_running_removes_pods_and_service(ns: Kubectl) -> None:
    ns.apply(training_job("gone", workers=2))
    wait_phase(ns, "gone", "Running")
    ns.run("delete", "tj", "gone", "--timeout=30s")
    for pod in ("gone-worker-0", "gone-worker-1"):
        ns.wait(f"pod/{pod}", "delete", timeout=60)
    ns.wait("service/gone-workers", "delete", timeout=60)


def test_deleting_a_finished_job_removes_the_pods_it_kept(ns: Kubectl) -> None:
    ns.apply(training_job("kept", workers=2, annotations={"outcome": "succeed",
                                                          "run-duration": "1s"}))
    wait_phase(ns, "kept", "Completed")
    for i in range(2):
        logs_answer(ns, f"kept-worker-{i}")
    ns.run("delete", "tj", "kept", "--timeout=30s")
    for i in range(2):  # garbage collection, through their ownerReferences
        ns.wait(f"pod/kept-worker-{i}", "delete", timeout=60)


def test_delete_while_the_operator_is_down_never_hangs(ns: Kubectl,
                                                       running_operator: Operator) -> None:
    ns.apply(training_job("orphan", workers=2))
    wait_phase(ns, "orphan", "Running")
    running_operator.stop()
    try:
        ns.run("delete", "tj", "orphan", "--timeout=30s")
        for pod in ("orphan-worker-0", "orphan-worker-1"):
            ns.wait(f"pod/{pod}", "delete", timeout=60)
        ns.wait("service/orphan-workers", "delete", timeout=60)
    finally:
        running_operator.start()
