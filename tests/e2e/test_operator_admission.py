"""The gang capacity check: a job waits, saying why, until all its workers fit at once."""

from __future__ import annotations

import pytest

from tests.kube import (
    Kubectl,
    eventually,
    status_of,
    training_job,
    wait_cluster_idle,
    wait_phase,
)

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]


def test_job_larger_than_free_gpus_waits_then_is_admitted_when_another_finishes(
        ns: Kubectl, kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("big", workers=3, gpus=8,
                          annotations={"outcome": "succeed", "run-duration": "6s"}))
    wait_phase(ns, "big", "Running")
    ns.apply(training_job("next", workers=2, gpus=8,
                          annotations={"outcome": "succeed", "run-duration": "1s"}))
    waiting = eventually(lambda: (s := status_of(ns, "next")).get("queue") and s,
                         what="queue information")
    assert waiting["phase"] == "Pending" and waiting["reason"] == "WaitingForCapacity"
    assert waiting["queue"]["gpusNeeded"] == 16 and waiting["queue"]["gpusFree"] == 8
    assert "needs 16 GPUs (2 workers x 8 nvidia.com/gpu), 8 free" in waiting["message"]
    assert waiting["queue"]["position"] >= 1
    conditions = {c["type"]: (c["status"], c["reason"]) for c in waiting["conditions"]}
    assert conditions["Admitted"] == ("False", "WaitingForCapacity")
    assert conditions["Reconciling"] == ("True", "WaitingForCapacity")
    assert conditions["Running"] == ("False", "Pending")

    wait_phase(ns, "big", "Completed", timeout=60)
    ns.wait("tj/next", "condition=Complete", timeout=60)
    history = [h["phase"] for h in status_of(ns, "next")["history"]]
    assert history[:2] == ["Pending", "Created"]


def test_job_no_node_can_hold_waits_with_no_node_fits(ns: Kubectl) -> None:
    ns.apply(training_job("huge", gpus=16))
    status = eventually(lambda: (s := status_of(ns, "huge")).get("reason") == "NoNodeFits" and s,
                        what="NoNodeFits")
    assert status["phase"] == "Pending"
    assert "no node can hold one worker: each needs 16 nvidia.com/gpu, the largest node " \
           "has 8" in status["message"]
    assert ns.json("get", "pods")["items"] == []


def test_cpu_only_job_needs_no_gpus(ns: Kubectl) -> None:
    ns.apply(training_job("cpu", gpus=0, annotations={"outcome": "succeed",
                                                      "run-duration": "1s"}))
    ns.wait("tj/cpu", "condition=Complete", timeout=60)
    pod = ns.json("get", "pod", "cpu-worker-0")
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0].get("resources", {}).get(
        "limits", {})
