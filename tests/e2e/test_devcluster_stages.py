"""Every lifecycle annotation of devcluster/README.md produces the pod status it promises."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from tests.kube import Kubectl, eventually, pod

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


def test_start_delay_holds_the_pod_in_container_creating(ns: Kubectl) -> None:
    ns.apply(pod("slow-start", annotations={"start-delay": "4s"}))
    ns.wait("pod/slow-start", "condition=PodScheduled")
    assert _status(ns, "slow-start").get("podIP") is None
    eventually(lambda: _status(ns, "slow-start").get("phase") == "Running", timeout=30,
               what="the pod to start after its start-delay")
