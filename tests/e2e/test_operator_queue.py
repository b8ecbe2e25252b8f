"""The GPU queue through kubectl: priority, explained waiting with positions, timeouts.

Capacity is 4 nodes x 8 GPUs. Jobs without a devcluster outcome run until stopped, so each
test frees capacity exactly when it says so (`stop`), not on a timer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.kube import (
    Kubectl,
    entered,
    eventually,
    status_of,
    stop,
    training_job,
    wait_cluster_idle,
    wait_phase,
)

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]


def _queue(ns: Kubectl, name: str, reason: str, position: int) -> dict[str, Any]:
    """Wait until the job waits for `reason` at `position`; its status then."""
    seen: list[dict[str, Any]] = [{}]

    def probe() -> dict[str, Any] | None:
        s = seen[0] = status_of(ns, name)
        queue = s.get("queue") or {}
        ok = s.get("phase") == "Pending" and s.get("reason") == reason and \
            queue.get("position") == position
        return s if ok else None
    try:
        return eventually(probe, timeout=30, what=f"{name} {reason} at position {position}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last status: {seen[0]}") from None


def _table(ns: Kubectl) -> tuple[list[str], dict[str, list[str]]]:
    """`kubectl get tj` as a user sees it: the header, and each job's row."""
    lines = ns.run("get", "trainingjobs").stdout.splitlines()
    return lines[0].split(), {row.split()[0]: row.split() for row in lines[1:]}


def test_priority_overtakes_fifo_and_lower_priority_waits_behind_it(
        ns: Kubectl, kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("wide", workers=3, gpus=8))     # 3 nodes full
    ns.apply(training_job("half", workers=1, gpus=4))     # 4 GPUs left on the 4th
    wait_phase(ns, "wide", "Running")
    wait_phase(ns, "half", "Running")

    ns.apply(training_job("first", gpus=8))                 # FIFO would run this next
    _queue(ns, "first", "WaitingForCapacity", 1)
    ns.apply(training_job("urgent", gpus=8, priority=10))  # ...but this overtakes it
    urgent = _queue(ns, "urgent", "WaitingForCapacity", 1)
    assert urgent["queue"] == {**urgent["queue"], "gpusNeeded": 8, "gpusFree": 4,
                               "namespacePosition": 1}
    _queue(ns, "first", "WaitingForCapacity", 2)
    ns.apply(training_job("small", gpus=2))  # 4 GPUs are free, but urgent needs them
    small = _queue(ns, "small", "QueuedBehindHigherPriority", 3)
    assert f"{ns.namespace}/urgent (priority 10) is ahead in the queue" in str(small["message"])

    header, rows = _table(ns)
    assert header[:6] == ["NAME", "PHASE", "REASON", "WORKERS", "GPUS", "QUEUE"]
    assert rows["small"][1:3] == ["Pending", "QueuedBehindHigherPriority"]
    assert rows["small"][5] == "3" and rows["urgent"][5] == "1"

    stop(ns, "half")  # the 4th node is whole again: urgent, not the older first, gets it
    wait_phase(ns, "urgent", "Running")
    assert status_of(ns, "first")["phase"] == "Pending"
    _queue(ns, "first", "WaitingForCapacity", 1)

    stop(ns, "wide")
    wait_phase(ns, "first", "Running")
    wait_phase(ns, "small", "Running")
    assert entered(status_of(ns, "urgent"), "Created") < entered(status_of(ns, "first"),
                                                                  "Created")
    for name in ("urgent", "first", "small"):
        stop(ns, name)


def test_a_waiting_job_is_admitted_the_moment_capacity_frees(ns: Kubectl,
                                                             kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("all", workers=4, gpus=8))
    wait_phase(ns, "all", "Running")
    # Same priority, and creationTimestamp has 1 s resolution: the name breaks the tie.
    ns.apply(training_job("a-next", workers=2, gpus=8))
    ns.apply(training_job("b-after", workers=2, gpus=8, annotations={"outcome": "succeed",
                                                                      "run-duration": "1s"}))
    waiting = _queue(ns, "a-next", "WaitingForCapacity", 1)
    assert "needs 16 GPUs (2 workers x 8 nvidia.com/gpu), 0 free" in str(waiting["message"])
    _queue(ns, "b-after", "WaitingForCapacity", 2)

    freed = time.monotonic()
    stop(ns, "all")
    wait_phase(ns, "a-next", "Running")
    latency = time.monotonic() - freed
    wait_phase(ns, "b-after", "Completed")
    # Stopped -> admitted is one watch event and one pass: the status times are within a
    # second or two of each other, far from the 15 s queue refresh or any poll interval.
    gap = entered(status_of(ns, "a-next"), "Created") - entered(status_of(ns, "all"), "Stopped")
    assert gap.total_seconds() <= 2, gap
    assert latency < 10, latency
    assert "queue" not in status_of(ns, "a-next")
    stop(ns, "a-next")


def test_queue_timeout_ends_a_waiting_job(ns: Kubectl) -> None:
    ns.apply(training_job("never", gpus=16, timeouts={"queueSeconds": 3}))
    status = eventually(lambda: (s := status_of(ns, "never")).get("phase") == "DeployFailed"
                        and s, timeout=30, what="QueueTimeout")
    assert status["reason"] == "QueueTimeout"
    assert "spec.timeouts.queueSeconds=3s (no node can hold one worker" in status["message"]
    waited = entered(status, "DeployFailed") - entered(status, "Pending")
    assert 3 <= waited.total_seconds() <= 6, waited
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Finished"] == ("True", "DeployFailed")
    assert conditions["Failed"] == ("True", "QueueTimeout")
    assert conditions["Admitted"] == ("False", "QueueTimeout")  # it never was


def test_deploy_timeout_names_the_last_problem_and_releases_the_gpus(
        ns: Kubectl, kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("stuck", workers=4, gpus=8, setup={"command": ["pip", "install"]},
                          timeouts={"deploySeconds": 3},
                          annotations={"setup-duration": "10m"}))
    status = eventually(lambda: (s := status_of(ns, "stuck")).get("phase") == "DeployFailed"
                        and s, timeout=30, what="DeployTimeout")
    assert status["reason"] == "DeployTimeout"
    assert "spec.timeouts.deploySeconds=3s; worker 0 (pod stuck-worker-0): setup container " \
           "setup is running" in status["message"]
    # All 32 GPUs were held; the next whole-cluster job runs only if they were all released.
    ns.apply(training_job("whole", workers=4, gpus=8, annotations={"outcome": "succeed",
                                                                    "run-duration": "1s"}))
    wait_phase(ns, "whole", "Completed", timeout=60)


def test_run_deadline_counts_running_time_only_and_releases_the_gpus(
        ns: Kubectl, kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    ns.apply(training_job("long", workers=4, gpus=8, setup={"command": ["pip", "install"]},
                          timeouts={"runSeconds": 3}, annotations={"setup-duration": "3s"}))
    status = eventually(lambda: (s := status_of(ns, "long")).get("phase") == "Failed" and s,
                        timeout=40, what="DeadlineExceeded")
    assert status["reason"] == "DeadlineExceeded"
    ran = entered(status, "Failed") - entered(status, "Running")
    deployed = entered(status, "Running") - entered(status, "Created")
    assert deployed.total_seconds() >= 3  # setup time did not count against runSeconds
    assert 3 <= ran.total_seconds() <= 6, ran
    ns.apply(training_job("whole", workers=4, gpus=8, annotations={"outcome": "succeed",
                                                                    "run-duration": "1s"}))
    wait_phase(ns, "whole", "Completed", timeout=60)


def test_node_selectors_decide_where_a_gang_may_go(ns: Kubectl, kubectl: Kubectl) -> None:
    ns.apply(training_job("h100", template={"spec": {"nodeSelector": {"gpu": "h100"}}}))
    status = eventually(lambda: (s := status_of(ns, "h100")).get("reason") == "NoNodeFits"
                        and s, timeout=30, what="NoNodeFits")
    assert status["message"] == ("no node can hold one worker: no node matches nodeSelector "
                                 "{'gpu': 'h100'}; fix the node constraints in "
                                 "spec.template.spec or add such nodes")
    stop(ns, "h100")
    wait_cluster_idle(kubectl)
    pinned = {"nodeSelector": {"kubernetes.io/hostname": "gpu-node-2"}}
    ns.apply(training_job("there", gpus=8, template={"spec": pinned}))
    ns.apply(training_job("also-there", gpus=1, template={"spec": pinned}))
    wait_phase(ns, "there", "Running")
    assert ns.json("get", "pod", "there-worker-0")["spec"]["nodeName"] == "gpu-node-2"
    # gpu-node-2 is full and the job may use no other node, though 24 GPUs are free elsewhere
    waiting = _queue(ns, "also-there", "WaitingForCapacity", 1)
    assert waiting["queue"]["gpusFree"] == 0
    stop(ns, "there")
    wait_phase(ns, "also-there", "Running")
    stop(ns, "also-there")


def test_a_gang_more_than_all_its_nodes_hold_says_so_and_blocks_nobody(
        ns: Kubectl, kubectl: Kubectl) -> None:
    """Computed from the cluster's nodes: one whole-node worker more than they all hold."""
    wait_cluster_idle(kubectl)
    eligible = [n for n in kubectl.json("get", "nodes")["items"] if not any(
        t["effect"] in ("NoSchedule", "NoExecute") and not t["key"].startswith(
            "node.kubernetes.io/") for t in n["spec"].get("taints", []))]
    sizes = [int(n["status"]["allocatable"].get("nvidia.com/gpu", "0")) for n in eligible]
    per = max(sizes)
    holds, total = sum(s // per for s in sizes), sum(sizes)
    ns.apply(training_job("too-big", workers=holds + 1, gpus=per, priority=10))
    ns.apply(training_job("small", gpus=1, annotations={"outcome": "succeed",
                                                         "run-duration": "1s"}))

    def reason() -> str:
        return ns.run("get", "trainingjob", "too-big", "-o",
                      "jsonpath={.status.phase}/{.status.reason}").stdout

    eventually(lambda: reason() == "Pending/GangTooLarge", timeout=30,
               what="too-big Pending/GangTooLarge")
    message = ns.run("get", "trainingjob", "too-big", "-o", "jsonpath={.status.message}").stdout
    assert message == (
        f"the gang can never fit the cluster as it is: needs {(holds + 1) * per} GPUs "
        f"({holds + 1} workers x {per} nvidia.com/gpu); {len(eligible)} nodes it may use hold "
        f"at most {holds} such workers even when empty ({total} nvidia.com/gpu in total, the "
        f"largest node {per}); lower spec.workers or spec.gpusPerWorker, or add nodes")
    # Younger and of lower priority, yet not held behind it: it runs and completes.
    wait_phase(ns, "small", "Completed")
    assert reason() == "Pending/GangTooLarge"
    stop(ns, "too-big")
