"""Pods are trusted only with the job's controller ownerReference (DESIGN.md §5a): a pod
that a namespace editor labels as a job's worker never counts."""

from __future__ import annotations

import pytest

from tests.kube import Kubectl, eventually, impostor, status_of, training_job, wait_phase

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]


def test_a_pod_labelled_as_a_worker_that_the_job_does_not_own_never_decides_it(
        ns: Kubectl) -> None:
    """While worker 0 runs, a pod labelled as worker 0 of attempt 1 (not named so, and with
    no ownerReference) exits 3. Found by the label alone it would have failed the job; it is
    not the job's: the job completes when its own worker does, and the decoy is neither
    stopped nor deleted."""
    ns.apply(training_job("owned", annotations={"outcome": "succeed", "run-duration": "12s"}))
    wait_phase(ns, "owned", "Running")
    ns.apply(impostor("decoy", "owned"))
    ns.wait("pod/decoy", "jsonpath={.status.phase}=Failed", timeout=60)
    eventually(lambda: status_of(ns, "owned")["phase"] == "Completed", timeout=60,
               what="owned to complete by its own worker")
    status = status_of(ns, "owned")
    assert (status["reason"], status["workers"]["succeeded"]) == ("Succeeded", 1), status
    assert not any(h["phase"] == "Failed" for h in status["history"])
    left = ns.json("get", "pod", "decoy")
    assert "activeDeadlineSeconds" not in left["spec"] and not left["metadata"].get(
        "deletionTimestamp")
