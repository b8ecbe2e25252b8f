from __future__ import annotations

from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Phase
from trainingjob_operator.workers import WorkerState, classify, failure

from tests.unit.operator.factories import NOW, at, container, exited, job, pod, waiting

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
