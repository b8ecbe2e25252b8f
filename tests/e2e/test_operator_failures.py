"""One test per row of the failure mapping (DESIGN.md §3): phase, reason and message."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from tests.kube import (
    ANNOTATION,
    Kubectl,
    eventually,
    impostor,
    status_of,
    training_job,
    wait_phase,
)

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]


def _ends(ns: Kubectl, name: str, phase: str, reason: str, timeout: int = 60) -> dict[str, Any]:
    ns.wait(f"tj/{name}", "condition=Finished", timeout=timeout)
    status = status_of(ns, name)
    assert (status["phase"], status["reason"]) == (phase, reason), status["message"]
    return status


def acted(ns: Kubectl, name: str, reason: str) -> None:
    """Wait until the operator has carried out the transition to `reason`: it posts the
    transition's Event after its pod actions (controller.apply), so the pods are stopped or
    deleted by then, and a test can tell "kept" from "not deleted yet"."""
    eventually(lambda: reason in {e["reason"] for e in ns.json(
        "get", "events", "--field-selector",
        f"involvedObject.kind=TrainingJob,involvedObject.name={name}")["items"]},
               what=f"the {reason} Event of {name}")


def stopped(ns: Kubectl, pod: str) -> dict[str, Any]:
    """A worker the operator stopped, as the kubelet leaves it: its pod kept, Failed with
    reason DeadlineExceeded, its training container killed (kwok: exit 137)."""
    ns.wait(f"pod/{pod}", "jsonpath={.status.reason}=DeadlineExceeded", timeout=30)
    body: dict[str, Any] = ns.json("get", "pod", pod)
    assert (body["spec"]["activeDeadlineSeconds"], body["status"]["phase"]) == (1, "Failed")
    return body


def logs_answer(ns: Kubectl, pod: str, container: str = "trainer") -> None:
    assert "devcluster log line 5/5" in ns.run("logs", pod, "-c", container).stdout


def _seconds_in(status: dict[str, Any], phase: str) -> float:
    """How long the job stayed in `phase`, from its history."""
    times = [datetime.fromisoformat(h["time"]) for h in status["history"]]
    i = next(i for i, h in enumerate(status["history"]) if h["phase"] == phase)
    return (times[i + 1] - times[i]).total_seconds()


def test_invalid_image_name_fails_deploy_at_once(ns: Kubectl) -> None:
    ns.apply(training_job("badname", image="Team/Train:latest!!",
                          annotations={"outcome": "invalid-image"}))
    status = _ends(ns, "badname", "DeployFailed", "InvalidImageName")
    assert "worker 0 (pod badname-worker-0)" in status["message"]
    assert "fix spec.image" in status["message"]
    assert _seconds_in(status, "Deploying") < 3  # no grace for a name that can never work


def test_image_pull_error_fails_deploy_after_the_grace_period(ns: Kubectl) -> None:
    ns.apply(training_job("nopull", image="team/missing:9",
                          annotations={"outcome": "image-pull-error"}))
    status = _ends(ns, "nopull", "DeployFailed", "ImagePullFailed")
    assert "cannot pull image 'team/missing:9'" in status["message"]
    assert _seconds_in(status, "Deploying") >= 3  # the operator's grace is 4 s from pod start
    assert "imagePullSecrets" in status["message"]
    # It never started a container: nothing to read, so it is deleted (just after the status).
    ns.wait("pod/nopull-worker-0", "delete", timeout=30)


@pytest.mark.parametrize("outcome", ["config-error", "create-error"])
def test_container_config_errors_fail_deploy_after_the_grace_period(ns: Kubectl,
                                                                    outcome: str) -> None:
    ns.apply(training_job("nocfg", annotations={"outcome": outcome}))
    status = _ends(ns, "nocfg", "DeployFailed", "ContainerConfigError")
    assert "container trainer cannot be created" in status["message"]
    assert _seconds_in(status, "Deploying") >= 3


def test_failed_setup_fails_deploy(ns: Kubectl) -> None:
    ns.apply(training_job("nosetup", setup={"command": ["pip", "install", "-r", "req.txt"]},
                          annotations={"setup": "fail", "setup-exit-code": "3"}))
    message = _ends(ns, "nosetup", "DeployFailed", "SetupFailed")["message"]
    assert "setup container setup exited with code 3" in message
    assert "kubectl logs nosetup-worker-0 -c setup" in message
    acted(ns, "nosetup", "SetupFailed")
    logs_answer(ns, "nosetup-worker-0", "setup")  # the command the message gives works


def test_unschedulable_past_deploy_seconds_fails_deploy(ns: Kubectl) -> None:
    # The GPU queue admits it (it counts GPUs); no node has 500 CPUs for the scheduler.
    ns.apply(training_job("nowhere", timeouts={"deploySeconds": 3},
                          resources={"requests": {"cpu": "500"}}))
    message = _ends(ns, "nowhere", "DeployFailed", "Unschedulable")["message"]
    assert re.search(r"^not every worker was running within spec\.timeouts\.deploySeconds=3s; "
                     r"worker 0 \(pod nowhere-worker-0\) could not be scheduled: "
                     r"0/\d+ nodes are available", message), message  # kwok's 4, real ones
    assert "Insufficient cpu" in message


def test_pod_rejected_by_the_api_fails_deploy(ns: Kubectl) -> None:
    ns.run("create", "quota", "no-pods", "--hard=pods=0")
    ns.wait("quota/no-pods", "jsonpath={.status.hard.pods}=0")  # enforced once computed
    ns.apply(training_job("refused"))
    message = _ends(ns, "refused", "DeployFailed", "PodRejected")["message"]
    assert "exceeded quota: no-pods" in message


def test_oomkilled_fails_and_says_to_raise_memory(ns: Kubectl) -> None:
    ns.apply(training_job("oom", resources={"limits": {"memory": "8Gi"}},
                          annotations={"outcome": "oom", "run-duration": "1s"}))
    message = _ends(ns, "oom", "Failed", "OOMKilled")["message"]
    assert ("worker 0 (pod oom-worker-0): container trainer was OOMKilled (exit code 137)"
            in message)
    assert "raise spec.resources.limits.memory" in message and "8Gi" in message


def test_nonzero_exit_fails_with_worker_code_and_signal(ns: Kubectl) -> None:
    ns.apply(training_job("crash", workers=2, annotations={"outcome": "fail", "exit-code": "143",
                                                           "run-duration": "1s"}))
    message = _ends(ns, "crash", "Failed", "Error")["message"]
    assert "container trainer exited with code 143, signal 15 (SIGTERM)" in message
    # Both workers fail alike; whichever kwok ends first is named, with its own pod.
    assert re.search(r"^worker (\d) \(pod crash-worker-\1\): ", message), message


def test_a_failed_worker_stops_the_others_and_every_pod_keeps_its_logs(ns: Kubectl) -> None:
    ns.apply(training_job("half", workers=2))
    wait_phase(ns, "half", "Running")
    ns.run("annotate", "pod", "half-worker-0", f"{ANNOTATION}outcome=fail",
           f"{ANNOTATION}exit-code=3")  # worker 1 keeps running
    message = _ends(ns, "half", "Failed", "Error")["message"]
    assert message.startswith("worker 0 (pod half-worker-0): container trainer exited with "
                              "code 3; see kubectl logs half-worker-0")
    acted(ns, "half", "Error")
    # Its container exited: the operator leaves the pod to the kubelet, which reports the
    # pod's phase a moment after the exit (devcluster/README.md, Fidelity).
    ns.wait("pod/half-worker-0", "jsonpath={.status.phase}=Failed")
    failed = ns.json("get", "pod", "half-worker-0")
    assert "activeDeadlineSeconds" not in failed["spec"]
    other = stopped(ns, "half-worker-1")
    assert other["metadata"].get("deletionTimestamp") is None
    killed = other["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (killed["exitCode"], killed["reason"]) == (137, "Error")
    for pod in ("half-worker-0", "half-worker-1"):
        logs_answer(ns, pod)


def test_run_deadline_fails_a_running_job(ns: Kubectl) -> None:
    ns.apply(training_job("slow", timeouts={"runSeconds": 3}))
    wait_phase(ns, "slow", "Running")
    message = _ends(ns, "slow", "Failed", "DeadlineExceeded")["message"]
    assert "spec.timeouts.runSeconds=3s" in message
    stopped(ns, "slow-worker-0")  # Failed: its GPUs are released; its logs stay
    logs_answer(ns, "slow-worker-0")


def test_lost_worker_retries_the_gang_then_fails_when_retries_are_used_up(ns: Kubectl) -> None:
    ns.apply(training_job("fragile", workers=2, retries={"limit": 1}))
    wait_phase(ns, "fragile", "Running")
    ns.run("delete", "pod", "fragile-worker-1", "--wait=false")
    ns.wait("tj/fragile", "jsonpath={.status.attempt}=2", timeout=60)
    wait_phase(ns, "fragile", "Running", timeout=60)
    pods = ns.json("get", "pods", "-l", "training.dev/job-name=fragile")["items"]
    assert {p["metadata"]["labels"]["training.dev/attempt"] for p in pods
            if not p["metadata"].get("deletionTimestamp")} == {"2"}
    ns.run("delete", "pod", "fragile-worker-0", "--wait=false")
    status = _ends(ns, "fragile", "Failed", "WorkerLost")
    assert "spec.retries.limit=1 restarts are used up" in status["message"]
    history = [(h["phase"], h["reason"]) for h in status["history"]]
    assert ("Pending", "WorkerLost") in history
    assert history.count(("Running", "WorkersRunning")) == 2


def test_a_refused_service_ends_the_gang_service_rejected(ns: Kubectl) -> None:
    """A gang's headless Service refused by the namespace's quota ends the job with the API
    server's words (it was only logged before), and no worker pod is made."""
    ns.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-services"},
              "spec": {"hard": {"services": "0"}}})
    ns.wait("resourcequota/no-services", "jsonpath={.status.hard.services}=0", timeout=30)
    ns.apply(training_job("nosvc", workers=2))
    message = _ends(ns, "nosvc", "DeployFailed", "ServiceRejected")["message"]
    assert "the workers' Service nosvc-workers" in message, message
    assert "exceeded quota: no-services" in message, message
    assert ns.json("get", "pods")["items"] == []


def test_a_pod_squatting_a_workers_name_ends_the_job_worker_name_taken(ns: Kubectl) -> None:
    """A namespace editor's pod named and labelled as the job's worker 0 is not the job's
    (no ownerReference of its uid): its exit does not decide the job, which ends at once
    saying which pod is in the way; the pod itself is left alone."""
    ns.apply(impostor("squat-worker-0", "squat"))
    ns.wait("pod/squat-worker-0", "jsonpath={.status.phase}=Failed", timeout=60)
    uid = ns.json("get", "pod", "squat-worker-0")["metadata"]["uid"]
    ns.apply(training_job("squat"))
    status = _ends(ns, "squat", "DeployFailed", "WorkerNameTaken")
    assert "a Pod named squat-worker-0 already exists" in status["message"], status["message"]
    assert status["message"].endswith("create the TrainingJob under another name")
    acted(ns, "squat", "WorkerNameTaken")
    left = ns.json("get", "pod", "squat-worker-0")
    assert left["metadata"]["uid"] == uid and "activeDeadlineSeconds" not in left["spec"]


def test_a_create_answered_500_again_and_again_ends_the_job_after_a_bounded_number_of_tries(
        ns: Kubectl, kubectl: Kubectl) -> None:
    """A webhook that cannot be called (failurePolicy Fail, its Service does not exist) makes
    the API server answer every pod create 500 "failed calling webhook": neither the pod's
    fault nor surely passing. The operator tries again with doubling waits (5+10+20+40 s),
    the job Deploying meanwhile, then ends it with the API's message instead of looping."""
    name = f"refuse-pods-{ns.namespace}"
    kubectl.apply({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
        "webhooks": [{
            "name": "refuse.training.dev", "failurePolicy": "Fail", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "timeoutSeconds": 2,
            "namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": str(ns.namespace)}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods"]}],
            "clientConfig": {"service": {"namespace": str(ns.namespace), "name": "nowhere",
                                         "path": "/validate"}}}]})
    try:
        ns.apply(training_job("flaky"))
        wait_phase(ns, "flaky", "Deploying")
        status = _ends(ns, "flaky", "DeployFailed", "PodRejected", timeout=150)
        assert "failed calling webhook" in status["message"], status["message"]
        assert "(answered so 5 times in a row)" in status["message"], status["message"]
        assert _seconds_in(status, "Deploying") >= 70  # 5 + 10 + 20 + 40 s of waits
        assert ns.json("get", "pods")["items"] == []
    finally:
        kubectl.run("delete", "validatingwebhookconfiguration", name, check=False)
