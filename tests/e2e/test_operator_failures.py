"""One test per row of the failure mapping (DESIGN.md §3): phase, reason and message."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from tests.kube import ANNOTATION, Kubectl, eventually, status_of, training_job, wait_phase

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
