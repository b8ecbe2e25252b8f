"""The TrainingJob lifecycle end to end, through kubectl as a user drives it."""

from __future__ import annotations

import pytest

from tests.conftest import Operator
from tests.kube import Kubectl, eventually, phases, status_of, training_job, wait_phase

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]


def test_job_runs_through_every_phase_to_complete(ns: Kubectl) -> None:
    ns.apply(training_job("llama-ft", workers=2, gpus=8,
                          annotations={"outcome": "succeed", "run-duration": "3s"}))
    ns.wait("tj/llama-ft", "condition=Complete", timeout=90)
    status = status_of(ns, "llama-ft")
    assert phases(ns, "llama-ft") == ["Pending", "Created", "Deploying", "Running", "Completed"]
    assert (status["phase"], status["reason"]) == ("Completed", "Succeeded")
    assert status["observedGeneration"] == 1 and status["attempt"] == 1
    assert status["startTime"] and status["completionTime"]
    assert all(h["time"] for h in status["history"])
    # Each condition its own reason: a False one the phase that keeps it False.
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Admitted": ("True", "Admitted"), "Running": ("False", "Completed"),
                          "Finished": ("True", "Completed"), "Complete": ("True", "Succeeded"),
                          "Failed": ("False", "Completed"),
                          "Reconciling": ("False", "Completed"), "Stalled": ("False", "Completed")}
    events = ns.json("get", "events", "--field-selector",
                     "involvedObject.kind=TrainingJob,involvedObject.name=llama-ft")["items"]
    reasons = [e["reason"] for e in sorted(events, key=lambda e: e["firstTimestamp"])]
    # Two Events for a job that went well, as a batch/v1 Job posts; every step is in history.
    assert reasons == ["Admitted", "Succeeded"], reasons
    described = ns.run("describe", "trainingjob", "llama-ft").stdout
    events_table = described[described.index("Events:"):]
    assert "Normal  Succeeded" in events_table and "trainingjob-operator" in events_table
    assert "all 2 workers exited 0" in events_table
    row = ns.run("get", "tj", "llama-ft", "--no-headers").stdout.split()
    assert row[:4] == ["llama-ft", "Completed", "Succeeded", "0/2"] and row[4] == "16"


def test_wait_for_finished_returns_on_any_end(ns: Kubectl) -> None:
    ns.apply(training_job("crash", annotations={"outcome": "fail", "exit-code": "2",
                                                "run-duration": "1s"}))
    ns.wait("tj/crash", "condition=Finished", timeout=60)
    assert status_of(ns, "crash")["phase"] == "Failed"


def test_workers_get_pods_service_env_and_owner(ns: Kubectl) -> None:
    ns.apply(training_job("dist", workers=2, gpus=4, command=["torchrun", "train.py"],
                          env=[{"name": "LR", "value": "0.1"}],
                          template={"metadata": {"labels": {"team": "a"}},
                                    "spec": {"nodeSelector": {"type": "kwok"}}}))
    wait_phase(ns, "dist", "Running")
    job_uid = ns.json("get", "tj", "dist")["metadata"]["uid"]
    pods = ns.json("get", "pods", "-l", "training.dev/job-name=dist")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["dist-worker-0", "dist-worker-1"]
    for pod in pods:
        rank = pod["metadata"]["labels"]["training.dev/worker-index"]
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("TrainingJob", job_uid, True)
        assert pod["metadata"]["labels"]["team"] == "a"
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["nodeSelector"] == {"type": "kwok"}
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["torchrun", "train.py"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["WORLD_SIZE"] == "2" and env["RANK"] == rank and env["LR"] == "0.1"
        assert env["MASTER_ADDR"] == f"dist-worker-0.dist-workers.{ns.namespace}.svc"
        assert env["MASTER_PORT"] == "29500" and env["TRAININGJOB_ATTEMPT"] == "1"
    service = ns.json("get", "service", "dist-workers")
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == job_uid


def test_operator_leaves_no_annotations_on_the_job(ns: Kubectl) -> None:
    ns.apply(training_job("clean", annotations={"outcome": "succeed", "run-duration": "1s"}))
    wait_phase(ns, "clean", "Completed")
    meta = ns.json("get", "tj", "clean")["metadata"]
    ours = set(meta.get("annotations", {})) - {"kubectl.kubernetes.io/last-applied-configuration"}
    assert ours == set()
    assert not meta.get("finalizers")


def test_restarted_operator_continues_without_duplicate_pods(
        ns: Kubectl, running_operator: Operator) -> None:
    ns.apply(training_job("survivor", workers=2, gpus=2,
                          annotations={"outcome": "succeed", "run-duration": "8s"}))
    wait_phase(ns, "survivor", "Running")
    uids = {p["metadata"]["uid"] for p in ns.json("get", "pods")["items"]}
    running_operator.stop()
    running_operator.start()
    status = wait_phase(ns, "survivor", "Completed", timeout=90)
    assert status["reason"] == "Succeeded"
    pods = ns.json("get", "pods")["items"]
    assert {p["metadata"]["uid"] for p in pods} == uids and len(pods) == 2
    assert phases(ns, "survivor").count("Running") == 1


def test_kubectl_explain_describes_the_fields(kubectl: Kubectl,
                                              running_operator: Operator) -> None:
    out = eventually(lambda: kubectl.run("explain", "trainingjob.spec.workers",
                                         check=False).stdout, what="kubectl explain")
    assert "Number of worker pods in the gang" in out
