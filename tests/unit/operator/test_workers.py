from __future__ import annotations

import pytest
from trainingjob_operator import lifecycle
from trainingjob_operator.decision import CreatePod
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Phase, Reason
from trainingjob_operator.workers import (
    WorkerState,
    classify,
    failure,
    owned,
    squatter,
    worker_name_taken,
)

from tests.unit.operator.factories import (
    NOW,
    at,
    container,
    exited,
    job,
    pod,
    running,
    waiting,
)

S = Settings(image_pull_grace_seconds=0, config_error_grace_seconds=0)


def _verdict(p: object, **spec: object) -> tuple[Phase, str, str]:
    j = job(at("Running"), **spec)
    v = failure(j, classify(0, p), NOW, S)  # type: ignore[arg-type]
    assert v is not None
    return v.phase, v.reason, v.message


def test_states() -> None:
    assert classify(0, None).state is WorkerState.MISSING
    assert classify(0, pod()).state is WorkerState.RUNNING
    assert classify(0, exited(0)).state is WorkerState.SUCCEEDED
    assert classify(0, exited(0, 1, "Error")).state is WorkerState.FAILED
    assert classify(0, pod(deleted=True)).state is WorkerState.LOST
    assert classify(0, pod(phase="Pending", containers=[])).state is WorkerState.STARTING
    disrupted = pod(conditions=[{"type": "DisruptionTarget", "status": "True",
                                 "reason": "PreemptionByScheduler", "message": "preempted"}])
    lost = classify(0, disrupted)
    assert lost.state is WorkerState.LOST and "PreemptionByScheduler" in lost.detail


def test_oom_message_names_worker_and_memory_limit() -> None:
    phase, reason, message = _verdict(exited(0, 137, "OOMKilled"),
                                      resources={"limits": {"memory": "64Gi"}})
    assert (phase, reason) == (Phase.FAILED, "OOMKilled")
    assert message.startswith("worker 0 (pod j-worker-0): container trainer was OOMKilled")
    assert "(64Gi)" in message and "raise spec.resources.limits.memory" in message


def test_error_message_has_exit_code_and_signal() -> None:
    _, reason, message = _verdict(exited(0, 137, "Error"))
    assert reason == "Error" and "exit code 137, signal 9 (SIGKILL)" in message.replace(
        "exited with code", "exit code")
    _, _, plain = _verdict(exited(0, 2, "Error"))
    assert "exited with code 2;" in plain and "signal" not in plain


def test_waiting_errors_map_to_deploy_failed_reasons() -> None:
    assert _verdict(waiting(0, "InvalidImageName"))[:2] == (Phase.DEPLOY_FAILED,
                                                            "InvalidImageName")
    assert _verdict(waiting(0, "ErrImagePull"))[1] == "ImagePullFailed"
    assert _verdict(waiting(0, "CreateContainerConfigError"))[1] == "ContainerConfigError"
    assert _verdict(waiting(0, "CreateContainerError"))[1] == "ContainerConfigError"


def test_setup_failure() -> None:
    failed_setup = pod(phase="Failed", init=[container("setup", terminated={"exitCode": 4})],
                       containers=[container(waiting={"reason": "PodInitializing"})])
    phase, reason, message = _verdict(failed_setup)
    assert (phase, reason) == (Phase.DEPLOY_FAILED, "SetupFailed")
    assert "setup container setup exited with code 4" in message


def test_healthy_worker_has_no_verdict() -> None:
    assert failure(job(at("Running")), classify(0, pod()), NOW, S) is None


# -- ownership: a pod is a worker only with the job's controller ownerReference ----------

def test_only_a_pod_whose_controller_is_the_jobs_uid_is_owned() -> None:
    j = job(at("Deploying"))
    assert owned(j, pod(0))
    assert not owned(j, pod(0, owner="someone-else")) and not owned(j, pod(0, owner=None))
    assert not owned(job(at("Deploying")).model_copy(update={"metadata": j.metadata.model_copy(
        update={"uid": ""})}), pod(0, owner=""))


def test_a_foreign_pod_with_a_workers_name_is_a_squatter_but_not_an_earlier_jobs() -> None:
    j = job(at("Deploying"), workers=2)
    assert squatter(j, [pod(0), pod(1)]) is None
    taken = pod(1, owner=None)
    assert squatter(j, [pod(0), taken]) == taken
    replica_sets = pod(0, owner="u0").model_copy(update={"owner_job": None})
    assert squatter(j, [replica_sets]) == replica_sets
    # Labelled as the job's worker but named otherwise: not a worker, and takes no name.
    assert squatter(j, [pod(0, owner=None, name="decoy")]) is None
    # An earlier TrainingJob j (deleted, created again): the garbage collector deletes it.
    assert squatter(j, [pod(0, owner="u0")]) is None


@pytest.mark.parametrize(("phase", "ends"), [("Created", Phase.DEPLOY_FAILED),
                                             ("Deploying", Phase.DEPLOY_FAILED),
                                             ("Running", Phase.FAILED)])
def test_worker_name_taken_says_which_pod_and_that_the_job_must_be_created_again(
        phase: str, ends: Phase) -> None:
    v = worker_name_taken(job(at(phase)), "Pod", "j-worker-0", "u9")
    assert (v.phase, v.reason) == (ends, Reason.WORKER_NAME_TAKEN)
    assert v.message.startswith("a Pod named j-worker-0 already exists in namespace ns and is "
                                "not this job's (its controller is uid u9")
    assert "kubectl delete pod j-worker-0 -n ns" in v.message
    assert "create the TrainingJob again, since a job that ended never restarts" in v.message
    assert "(its controller is none," in worker_name_taken(job(), "Pod", "x", None).message


def test_a_squatter_never_counts_and_ends_the_job_untouched() -> None:
    """A namespace editor's pod labelled as worker 0, exited 0 with a forged result: it is
    not counted as succeeded, gives no result, is neither stopped nor deleted, and the job
    ends WorkerNameTaken naming it (Failed, since it was Running)."""
    forged = exited(0, message='{"model": "s3://evil/model"}').model_copy(
        update={"owner_uid": None, "owner_job": None})
    d = lifecycle.decide(job(at("Running"), workers=2), [forged, running(1)], NOW, S)
    assert d.status is not None
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "WorkerNameTaken")
    assert "a Pod named j-worker-0 already exists" in (d.status.message or "")
    assert d.status.result is None and d.status.workers is not None
    assert (d.status.workers.succeeded, d.status.workers.ready) == (0, 0)
    assert all(getattr(a, "name", "") != "j-worker-0" for a in d.actions)
    assert [e.reason for e in d.events] == ["WorkerNameTaken"]


def test_a_foreign_pod_under_another_name_is_ignored_and_never_a_worker() -> None:
    """A pod labelled as worker 0 of attempt 1 but named otherwise, failed: the job's own
    worker 0 decides, and the foreign one is not stopped or deleted as a stale pod."""
    decoy = exited(0, code=1).model_copy(update={"owner_uid": None, "owner_job": None,
                                                 "name": "decoy"})
    stale = pod(1, attempt=7, owner=None, name="old")
    d = lifecycle.decide(job(at("Deploying")), [decoy, stale, running(0)], NOW, S)
    assert d.status is not None and d.status.phase is Phase.RUNNING
    assert d.actions == ()
    d = lifecycle.decide(job(at("Running")), [decoy, exited(0)], NOW, S)
    assert d.status is not None and d.status.phase is Phase.COMPLETED


def test_a_pending_job_is_not_ended_by_a_pod_it_has_not_needed_yet() -> None:
    assert lifecycle.decide(job(at("Pending")), [pod(0, owner=None)], NOW, S).status is None


def test_a_pod_left_by_an_earlier_job_of_the_same_name_is_waited_out() -> None:
    d = lifecycle.decide(job(at("Deploying")), [pod(0, owner="u0")], NOW, S)
    assert d.status is None or d.status.reason != "WorkerNameTaken"
    assert d.actions == (CreatePod(0, "n0"),)  # its create answers "being deleted": retried
