"""Every lifecycle annotation of devcluster/README.md produces the pod or node status it
promises."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.kube import ANNOTATION, Kubectl, eventually, pod

pytestmark = pytest.mark.kwok


def _status(ns: Kubectl, name: str) -> dict[str, Any]:
    status: dict[str, Any] = ns.json("get", "pod", name)["status"]
    return status


def _main_state(ns: Kubectl, name: str) -> dict[str, Any]:
    state: dict[str, Any] = _status(ns, name)["containerStatuses"][0]["state"]
    return state


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_no_annotation_runs_forever(ns: Kubectl) -> None:
    ns.apply(pod("forever"))
    ns.wait("pod/forever", "condition=Ready")
    time.sleep(3)
    status = _status(ns, "forever")
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["ready"] is True
    assert "running" in status["containerStatuses"][0]["state"]


def test_succeed_runs_for_run_duration_then_exits_zero(ns: Kubectl) -> None:
    ns.apply(pod("ok", annotations={"outcome": "succeed", "run-duration": "3s"}))
    ns.wait("pod/ok", "jsonpath={.status.phase}=Succeeded")
    done = _main_state(ns, "ok")["terminated"]
    assert (done["exitCode"], done["reason"]) == (0, "Completed")
    assert _seconds(done["startedAt"], done["finishedAt"]) >= 2


def test_fail_exits_with_the_given_code(ns: Kubectl) -> None:
    ns.apply(pod("bad", annotations={"outcome": "fail", "exit-code": "42", "run-duration": "1s"}))
    ns.wait("pod/bad", "jsonpath={.status.phase}=Failed")
    done = _main_state(ns, "bad")["terminated"]
    assert (done["exitCode"], done["reason"]) == (42, "Error")


def test_fail_defaults_to_exit_code_one(ns: Kubectl) -> None:
    ns.apply(pod("bad1", annotations={"outcome": "fail", "run-duration": "500ms"}))
    ns.wait("pod/bad1", "jsonpath={.status.phase}=Failed")
    assert _main_state(ns, "bad1")["terminated"]["exitCode"] == 1


def test_oom_is_oomkilled_with_exit_137(ns: Kubectl) -> None:
    ns.apply(pod("oom", annotations={"outcome": "oom", "run-duration": "1s"}))
    ns.wait("pod/oom", "jsonpath={.status.phase}=Failed")
    done = _main_state(ns, "oom")["terminated"]
    assert (done["exitCode"], done["reason"]) == (137, "OOMKilled")


def test_image_pull_error_then_backoff(ns: Kubectl) -> None:
    ns.apply(pod("pull", annotations={"outcome": "image-pull-error"}, image="nope/missing:9"))
    ns.wait("pod/pull", "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ErrImagePull")
    assert "nope/missing:9" in _main_state(ns, "pull")["waiting"]["message"]
    ns.wait("pod/pull",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff")
    status = _status(ns, "pull")
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["message"] == \
        'Back-off pulling image "nope/missing:9"'


@pytest.mark.parametrize(("outcome", "reason", "says"), [
    ("invalid-image", "InvalidImageName", "invalid reference format"),
    ("config-error", "CreateContainerConfigError", "not found"),
    ("create-error", "CreateContainerError", "failed to create"),
])
def test_container_that_cannot_start_waits_with_its_reason(
        ns: Kubectl, outcome: str, reason: str, says: str) -> None:
    ns.apply(pod("stuck", annotations={"outcome": outcome}))
    ns.wait("pod/stuck", f"jsonpath={{.status.containerStatuses[0].state.waiting.reason}}={reason}")
    assert says in _main_state(ns, "stuck")["waiting"]["message"]
    time.sleep(2)  # it stays there: nothing moves it on
    status = _status(ns, "stuck")
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == reason


def test_message_annotation_overrides_the_waiting_message(ns: Kubectl) -> None:
    ns.apply(pod("msg", annotations={"outcome": "config-error",
                                     "message": 'configmap "hf-token" not found'}))
    ns.wait("pod/msg", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"
            "=CreateContainerConfigError")
    assert _main_state(ns, "msg")["waiting"]["message"] == 'configmap "hf-token" not found'


def test_setup_runs_then_succeeds_and_the_main_container_starts(ns: Kubectl) -> None:
    ns.apply(pod("setup-ok", setup=True, annotations={"setup-duration": "2s"}))
    ns.wait("pod/setup-ok",
            "jsonpath={.status.initContainerStatuses[0].state.running.startedAt}", timeout=30)
    assert _status(ns, "setup-ok")["phase"] == "Pending"
    ns.wait("pod/setup-ok", "jsonpath={.status.phase}=Running")
    status = _status(ns, "setup-ok")
    setup = status["initContainerStatuses"][0]["state"]["terminated"]
    assert (setup["exitCode"], setup["reason"]) == (0, "Completed")
    assert "running" in status["containerStatuses"][0]["state"]


def test_setup_failure_fails_the_pod_before_its_containers_start(ns: Kubectl) -> None:
    ns.apply(pod("setup-bad", setup=True,
                 annotations={"setup": "fail", "setup-exit-code": "7", "setup-duration": "1s"}))
    ns.wait("pod/setup-bad", "jsonpath={.status.phase}=Failed")
    status = _status(ns, "setup-bad")
    setup = status["initContainerStatuses"][0]["state"]["terminated"]
    assert (setup["exitCode"], setup["reason"]) == (7, "Error")
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"


def test_deleted_pod_terminates_after_terminate_duration(ns: Kubectl) -> None:
    ns.apply(pod("slow-stop", annotations={"terminate-duration": "4s"}))
    ns.wait("pod/slow-stop", "condition=Ready")
    ns.run("delete", "pod", "slow-stop", "--grace-period=60", "--wait=false")
    terminating = ns.json("get", "pod", "slow-stop")["metadata"]
    assert terminating["deletionGracePeriodSeconds"] == 60
    started = time.monotonic()
    ns.wait("pod/slow-stop", "delete", timeout=30)
    assert time.monotonic() - started >= 2


DEADLINE = '{"spec":{"activeDeadlineSeconds":1}}'
KILLED = {"exitCode": 137, "reason": "Error"}


def _past_deadline(ns: Kubectl, name: str) -> dict[str, Any]:
    """Patch the deadline (as the operator stops a worker); wait for the kill to be played."""
    ns.run("patch", "pod", name, "-p", DEADLINE)
    ns.wait(f"pod/{name}", "jsonpath={.status.phase}=Failed", timeout=30)
    status = _status(ns, name)
    assert (status["reason"], status["message"]) == (
        "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
    return status


def test_active_deadline_kills_the_running_containers_and_keeps_the_pod(ns: Kubectl) -> None:
    # A run that would succeed later: the deadline overrides the Stage it was waiting for.
    ns.apply(pod("overdue", annotations={"outcome": "succeed", "run-duration": "60s",
                                         "terminate-duration": "3s"}))
    ns.wait("pod/overdue", "condition=Ready")
    started = time.monotonic()
    status = _past_deadline(ns, "overdue")
    assert time.monotonic() - started >= 2  # terminate-duration
    done = status["containerStatuses"][0]["state"]["terminated"]
    assert {k: done[k] for k in KILLED} == KILLED
    assert done["startedAt"] <= done["finishedAt"]
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert (ready["Ready"], ready["ContainersReady"]) == ("False", "False")
    assert "devcluster log line 5/5" in ns.run("logs", "overdue").stdout  # still there
    events = ns.json("get", "events", "--field-selector", "involvedObject.name=overdue")
    assert "DeadlineExceeded" in {e["reason"] for e in events["items"]}
    time.sleep(2)  # nothing moves a Failed pod on: no Stage deletes it or changes it
    assert _status(ns, "overdue") == status


def test_active_deadline_during_setup_kills_setup_and_leaves_the_main_container_waiting(
        ns: Kubectl) -> None:
    ns.apply(pod("mid-setup", setup=True, annotations={"setup-duration": "60s"}))
    ns.wait("pod/mid-setup",
            "jsonpath={.status.initContainerStatuses[0].state.running.startedAt}", timeout=30)
    status = _past_deadline(ns, "mid-setup")
    setup = status["initContainerStatuses"][0]["state"]["terminated"]
    assert {k: setup[k] for k in KILLED} == KILLED
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_start_delay_holds_the_pod_in_container_creating(ns: Kubectl) -> None:
    ns.apply(pod("slow-start", annotations={"start-delay": "4s"}))
    ns.wait("pod/slow-start", "condition=PodScheduled")
    assert _status(ns, "slow-start").get("podIP") is None
    eventually(lambda: _status(ns, "slow-start").get("phase") == "Running", timeout=30,
               what="the pod to start after its start-delay")


# Node condition annotation. The node tests share the cluster with every other test: they use
# gpu-node-3 and always hand it back Ready and untainted.
NOT_READY_NODE = "gpu-node-3"
NODE_CONDITION = ANNOTATION + "node-condition"


def _ready_condition(kubectl: Kubectl, node: str) -> dict[str, Any]:
    conditions = kubectl.json("get", "node", node)["status"]["conditions"]
    ready: dict[str, Any] = next(c for c in conditions if c["type"] == "Ready")
    return ready


def _taints(kubectl: Kubectl, node: str) -> list[str]:
    taints = kubectl.json("get", "node", node)["spec"].get("taints", [])
    return [f"{t['key']}:{t['effect']}" for t in taints]


def _set_not_ready(kubectl: Kubectl, node: str) -> None:
    kubectl.run("annotate", "--overwrite", "node", node, f"{NODE_CONDITION}=NotReady")
    kubectl.wait(f"node/{node}", "condition=Ready=false", timeout=10)


def _restore(kubectl: Kubectl, node: str) -> None:
    """Ready again, and schedulable: the node controller has lifted its not-ready taints."""
    kubectl.run("annotate", "node", node, f"{NODE_CONDITION}-", check=False)
    kubectl.wait(f"node/{node}", "condition=Ready=true", timeout=10)
    eventually(lambda: not _taints(kubectl, node), timeout=30,
               what=f"the not-ready taints to leave {node}")


def test_node_condition_not_ready_turns_the_node_not_ready_until_removed(
        kubectl: Kubectl) -> None:
    node = NOT_READY_NODE
    before = _ready_condition(kubectl, node)
    assert before["status"] == "True"
    try:
        started = time.monotonic()
        _set_not_ready(kubectl, node)
        took = time.monotonic() - started
        down = _ready_condition(kubectl, node)
        assert (down["reason"], down["message"]) == (
            "KubeletNotReady", f"devcluster: set NotReady by the annotation {NODE_CONDITION}")
        assert took < 5, f"NotReady took {took:.1f}s"
        eventually(lambda: "node.kubernetes.io/not-ready:NoExecute" in _taints(kubectl, node),
                   timeout=30, what="the node controller to taint the NotReady node")

        # The NotReady node keeps heartbeating, and the heartbeat does not make it Ready.
        eventually(lambda: _ready_condition(kubectl, node)["lastHeartbeatTime"]
                   > down["lastHeartbeatTime"], timeout=60, interval=1,
                   what="a heartbeat of the NotReady node")
        beaten = _ready_condition(kubectl, node)
        assert beaten["status"] == "False"
        assert beaten["lastTransitionTime"] == down["lastTransitionTime"]

        started = time.monotonic()
        kubectl.run("annotate", "node", node, f"{NODE_CONDITION}-")
        kubectl.wait(f"node/{node}", "condition=Ready=true", timeout=10)
        took = time.monotonic() - started
        back = _ready_condition(kubectl, node)
        assert back["reason"] == "KubeletReady"
        assert back["lastTransitionTime"] >= beaten["lastHeartbeatTime"]
        assert took < 5, f"Ready again took {took:.1f}s"
    finally:
        _restore(kubectl, node)
    allocatable = kubectl.json("get", "node", node)["status"]["allocatable"]
    assert allocatable["nvidia.com/gpu"] == "8"


def test_pods_on_a_not_ready_node_keep_running_and_can_be_deleted(
        ns: Kubectl, kubectl: Kubectl) -> None:
    node = NOT_READY_NODE
    names = ("graceful", "forced")
    for name in names:
        manifest = pod(name, annotations={"terminate-duration": "2s"})
        manifest["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
        ns.apply(manifest)
    for name in names:
        ns.wait(f"pod/{name}", "condition=Ready")
    try:
        _set_not_ready(kubectl, node)
        time.sleep(2)
        for name in names:  # kwok keeps posting their status: the node controller leaves them
            status = _status(ns, name)
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert (status["phase"], ready["status"]) == ("Running", "True")
        ns.run("delete", "pod", "graceful", "--wait=false")
        ns.run("delete", "pod", "forced", "--grace-period=0", "--force")
        assert ns.run("get", "pod", "forced", check=False).returncode != 0
        ns.wait("pod/graceful", "delete", timeout=30)
    finally:
        _restore(kubectl, node)


def test_an_ordinary_node_keeps_heartbeating_ready(kubectl: Kubectl) -> None:
    node = "gpu-node-0"
    first = _ready_condition(kubectl, node)
    lease = kubectl.json("get", "lease", "-n", "kube-node-lease", node)["spec"]
    assert first["status"] == "True"
    assert lease["leaseDurationSeconds"] == 40
    eventually(lambda: _ready_condition(kubectl, node)["lastHeartbeatTime"]
               > first["lastHeartbeatTime"], timeout=60, interval=1,
               what=f"a heartbeat of {node}")
    later = _ready_condition(kubectl, node)
    assert later["status"] == "True"
    assert later["lastTransitionTime"] == first["lastTransitionTime"]
    assert not _taints(kubectl, node)
    # kwok renews the node's Lease every 10 s: the node controller never marks it Unknown.
    eventually(lambda: kubectl.json("get", "lease", "-n", "kube-node-lease", node)["spec"]
               ["renewTime"] > lease["renewTime"], timeout=30, interval=1,
               what=f"{node}'s lease to be renewed")


def _observed(ns: Kubectl, name: str, start: Callable[[], object], until: str,
              timeout: int = 60) -> list[dict[str, Any]]:
    """Every status the API server showed for pod `name` (a watch sees each update), from
    before `start()` until the pod's status matches the jsonpath condition `until`."""
    assert ns.namespace is not None
    watch = subprocess.Popen(
        [str(ns.binary), f"--kubeconfig={ns.kubeconfig}", f"--namespace={ns.namespace}",
         "get", "pods", f"--field-selector=metadata.name={name}", "--watch", "-o", "json"],
        stdout=subprocess.PIPE, text=True)
    try:
        start()
        ns.wait(f"pod/{name}", until, timeout=timeout)
        time.sleep(0.5)  # the watch delivers the last update
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    decoder, seen, rest = json.JSONDecoder(), [], out.strip()
    while rest:
        obj, end = decoder.raw_decode(rest)
        seen.append(obj["status"])
        rest = rest[end:].strip()
    return seen


def _terminated(status: dict[str, Any], key: str = "containerStatuses") -> bool:
    return any("terminated" in c.get("state", {}) for c in status.get(key, []))


@pytest.mark.parametrize("outcome", ["succeed", "fail", "oom"])
def test_containers_exit_before_the_pod_phase_changes_as_on_a_real_kubelet(
        ns: Kubectl, outcome: str) -> None:
    seen = _observed(ns, "ends", lambda: ns.apply(pod("ends", annotations={
        "outcome": outcome, "run-duration": "1s"})), "jsonpath={.status.phase}=" + (
        "Succeeded" if outcome == "succeed" else "Failed"))
    assert any(_terminated(s) and s["phase"] == "Running" for s in seen), seen
    ready = next(c for c in seen[-1]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == ("PodCompleted" if outcome == "succeed" else "PodFailed")


def test_a_failed_setup_is_reported_before_the_pod_fails(ns: Kubectl) -> None:
    seen = _observed(ns, "nosetup", lambda: ns.apply(pod(
        "nosetup", setup=True, annotations={"setup": "fail", "setup-exit-code": "3"})),
        "jsonpath={.status.phase}=Failed")
    assert any(_terminated(s, "initContainerStatuses") and s["phase"] == "Pending"
               for s in seen), seen


def test_a_deleted_running_pod_fails_on_sigterm_before_it_goes(ns: Kubectl) -> None:
    ns.apply(pod("bye", annotations={"terminate-duration": "1s"}))
    ns.wait("pod/bye", "condition=Ready")
    seen = _observed(ns, "bye", lambda: ns.run("delete", "pod", "bye", "--wait=false"),
                     "delete")
    ended = [s for s in seen if s.get("phase") == "Failed"]
    assert ended, seen
    killed = ended[-1]["containerStatuses"][0]["state"]["terminated"]
    assert (killed["exitCode"], killed["reason"]) == (143, "Error")
