"""How a job ends when the shell could not carry out its decision (refusals.py)."""


import pytest
from trainingjob_operator import refusals
from trainingjob_operator.decision import (
    Decision,
    DeletePod,
    StopPod,
)
from trainingjob_operator.models import Unreadable, read_job
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Phase

from tests.unit.operator.factories import (
    NOW,
    at,
    exited,
    job,
    running,
)

S = Settings()


def _unreadable(status: dict[str, object] | None = None) -> Unreadable:
    found = read_job({"metadata": {"name": "j", "namespace": "ns", "uid": "u1", "generation": 3},
                      "spec": {"image": "i", "workers": "many"}, "status": status or {}})
    assert isinstance(found, Unreadable)
    return found


def test_pod_rejected() -> None:
    d = refusals.pod_rejected(job(at("Created")), 0, "exceeded quota", NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (
        Phase.DEPLOY_FAILED, "PodRejected")
    assert d.status.reservation is None and d.wakes_queue
    assert d.status.message is not None and "fix the quota" in d.status.message


def test_pod_rejected_by_pod_security_names_the_fields_that_answer_it() -> None:
    refusal = ('pods "j-worker-0" is forbidden: violates PodSecurity "restricted:latest": '
               'allowPrivilegeEscalation != false (container "trainer" must set '
               'securityContext.allowPrivilegeEscalation=false)')
    d = refusals.pod_rejected(job(at("Created")), 0, refusal, NOW, S)
    assert d.status is not None and d.status.reason == "PodRejected"
    assert d.status.message == (
        f"the API server rejected worker 0's pod: {refusal}; the namespace's Pod Security level "
        "refuses it: remove what it names from spec.template, and set spec.securityContext "
        "(every container) and spec.template.spec.securityContext (the pod) as it asks")


def test_unreadable_job_gets_a_terminal_invalid_spec_status_once() -> None:
    d = refusals.unreadable(_unreadable(), [], NOW)
    status = d.status
    assert status is not None and status.observed_generation == 3
    assert {c.type: c.status for c in status.conditions}["Stalled"] == "True"
    assert (status.phase, status.reason) == (Phase.DEPLOY_FAILED, "InvalidSpec")
    message = status.message or ""
    assert message.startswith("the spec cannot be read: spec.workers: ")
    assert [(h.phase, h.reason, h.message, h.time) for h in status.history] == [
        (Phase.DEPLOY_FAILED, "InvalidSpec", message, "2026-01-01T12:00:00Z")]
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Warning", "InvalidSpec", message)]
    assert refusals.unreadable(_unreadable({"phase": "DeployFailed"}), [], NOW) == Decision()


@pytest.mark.parametrize(("was", "ends"), [("Pending", Phase.DEPLOY_FAILED),
                                           ("Deploying", Phase.DEPLOY_FAILED),
                                           ("Running", Phase.FAILED)])
def test_an_active_job_that_became_unreadable_ends_and_gives_back_its_pods(
        was: str, ends: Phase) -> None:
    """Stored before a schema change, read after it: it held pods and GPUs, and would hold
    them forever if it were left as it is."""
    d = refusals.unreadable(_unreadable({"phase": was}), [running(0), running(1)], NOW)
    assert d.status is not None and (d.status.phase, d.status.reason) == (ends, "InvalidSpec")
    assert d.actions == (DeletePod("j-worker-0", 30), DeletePod("j-worker-1", 30))
    assert d.wakes_queue and [e.reason for e in d.events] == ["InvalidSpec"]


def test_a_finished_unreadable_job_stays_as_it_is_keeping_its_pods() -> None:
    kept = [exited(0), exited(1, 3, "Error")]
    assert refusals.unreadable(_unreadable({"phase": "Failed"}), kept, NOW) == Decision()
    assert refusals.unreadable(_unreadable({"phase": "Completed"}), [running(0)], NOW) == \
        Decision(actions=(DeletePod("j-worker-0", 30),))  # nothing may run in a finished job


@pytest.mark.parametrize(("was", "ends"), [(None, Phase.DEPLOY_FAILED),
                                           ("Pending", Phase.DEPLOY_FAILED),
                                           ("Deploying", Phase.DEPLOY_FAILED),
                                           ("Running", Phase.FAILED)])
def test_a_job_the_operator_cannot_use_ends_invalid_spec_and_releases_its_gpus(
        was: str | None, ends: Phase) -> None:
    j = job(at(was) if was else None, workers=2)
    d = refusals.unusable(j, [running(0), running(1, attempt=0)], "the operator could not "
                           "place its workers: spec.template.spec.affinity cannot be read", NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (ends, "InvalidSpec")
    assert d.status.reservation is None and d.status.queue is None and d.wakes_queue
    assert d.actions == (StopPod("j-worker-0", "p0"), DeletePod("j-worker-1", 60))
    assert "spec.template.spec.affinity" in (d.status.message or "")
    assert refusals.unusable(job(at("Failed")), [], "x", NOW, S) == Decision()


def test_a_service_refused_or_a_name_taken_ends_the_job_with_its_own_reason() -> None:
    d = refusals.service_rejected(job(at("Deploying"), workers=2),
                                   'services "j-workers" is forbidden: exceeded quota', NOW, S)
    assert d.status is not None and (d.status.phase, d.status.reason) == (
        Phase.DEPLOY_FAILED, "ServiceRejected")
    assert "j-workers: services \"j-workers\" is forbidden: exceeded quota" in (
        d.status.message or "") and d.status.reservation is None
    d = refusals.name_taken(job(at("Deploying")), "Pod", "j-worker-0", None, NOW, S)
    assert d.status is not None and d.status.reason == "WorkerNameTaken"
    assert "a Pod named j-worker-0 already exists" in (d.status.message or "")
    assert (d.status.message or "").endswith("create the TrainingJob under another name")


def test_a_pod_too_large_to_store_says_what_to_shrink() -> None:
    d = refusals.pod_rejected(job(at("Deploying")), 0, "etcdserver: request is too large",
                               NOW, S)
    assert d.status is not None and d.status.reason == "PodRejected"
    assert "make spec.env, spec.args and spec.template smaller" in (d.status.message or "")


def test_an_unreadable_job_never_deletes_a_pod_it_does_not_own() -> None:
    squatter = running(0).model_copy(update={"owner_uid": "someone-else"})
    d = refusals.unreadable(_unreadable({"phase": "Running"}), [squatter, running(1)], NOW)
    assert d.actions == (DeletePod("j-worker-1", 30),)
