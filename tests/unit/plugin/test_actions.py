from __future__ import annotations

import json

import pytest
from trainingjob_operator.plugin.actions import (
    STOP_PATCH,
    logs_argv,
    logs_problem,
    refused_message,
    relabel,
    stop_plan,
    stopped_message,
    timeout_message,
    wait_exit_code,
    wait_result,
    wait_text,
)
from trainingjob_operator.plugin.errors import EXIT_FAILED, EXIT_USAGE
from trainingjob_operator.plugin.summary import worker_pods
from trainingjob_operator.vocabulary import Phase

from tests.unit.plugin.jobs import completed, job, pending, pod, running


@pytest.mark.parametrize(("phase", "code"), [
    (Phase.COMPLETED, 0), (Phase.FAILED, 1), (Phase.DEPLOY_FAILED, 1), (Phase.STOPPED, 1),
    (Phase.RUNNING, 2), (Phase.PENDING, 2), (None, 2)])
def test_wait_exit_codes(phase: Phase | None, code: int) -> None:
    assert wait_exit_code(phase) == code


def test_wait_result_json() -> None:
    assert wait_result(completed(), "llama-ft", "team-a") == {
        "name": "llama-ft", "namespace": "team-a", "phase": "Completed", "reason": "Succeeded",
        "message": "all 2 workers exited 0", "result": "Completed", "exitCode": 0}
    timeout = wait_result(running(), "llama-ft", "team-a")
    assert (timeout["result"], timeout["exitCode"], timeout["phase"]) == ("Timeout", 2, "Running")
    missing = wait_result(None, "nope", "team-a")
    assert (missing["result"], missing["exitCode"], missing["phase"]) == ("NotFound", 2, None)
    assert set(missing) == set(timeout)


def test_wait_and_timeout_texts() -> None:
    assert wait_text(completed()) == ("trainingjob 'llama-ft' Completed (Succeeded) at "
                                      "2026-01-01T11:58:13Z: all 2 workers exited 0")
    assert timeout_message(running(), "10m") == (
        "timed out after 10m waiting for trainingjob 'llama-ft' to finish; it is Running "
        "(WorkersRunning): all 2 workers are running")


def test_stop_patch_is_a_merge_of_spec_stop() -> None:
    assert json.loads(STOP_PATCH) == {"spec": {"stop": True}}


def test_stop_an_active_job_patches_and_says_what_happens() -> None:
    assert stop_plan(running()).patch is True
    said = stopped_message(running(terminationGracePeriodSeconds=30))
    assert "its 2 workers get SIGTERM and 30s (terminationGracePeriodSeconds)" in said
    assert "ends Stopped (StoppedByUser)" in said
    assert "kubectl trainingjob wait llama-ft" in said
    assert "leaves the GPU queue without starting" in stopped_message(pending())


def test_stop_a_finished_job_says_how_it_ended_and_does_not_patch() -> None:
    plan = stop_plan(completed())
    assert plan.patch is False
    assert plan.message == ("trainingjob 'llama-ft' already finished: Completed (Succeeded) "
                            "at 2026-01-01T11:58:13Z: all 2 workers exited 0; nothing to stop")


def test_stop_twice_does_not_patch_again() -> None:
    plan = stop_plan(running(stop=True))
    assert plan.patch is False and "already requested" in plan.message


def test_refusal_surfaces_the_api_message() -> None:
    stderr = ('The TrainingJob "llama-ft" is invalid: spec: Invalid value: "object": spec '
              'cannot change once the job has finished\n')
    said = refused_message(completed(), stderr)
    assert said.startswith("trainingjob 'llama-ft' already finished: Completed (Succeeded)")
    assert said.endswith("the API server said: " + stderr.strip())
    assert refused_message(running(), "error: forbidden") == \
        "the API server refused the stop: forbidden"


def test_logs_argv_all_workers_by_label_with_prefix_and_all_lines() -> None:
    pods = worker_pods([pod(0), pod(1)])
    assert logs_argv(running(), pods, None, None, False) == [
        "logs", "--selector=training.dev/job-name=llama-ft", "--prefix",
        "--max-log-requests=5", "--container=trainer", "--tail=-1"]


def test_logs_argv_max_requests_covers_every_worker_when_following() -> None:
    big = job(workers=12)
    pods = worker_pods([pod(i) for i in range(12)])
    argv = logs_argv(big, pods, None, 20, True)
    assert "--max-log-requests=12" in argv and "--follow" in argv and "--tail=20" in argv


def test_logs_of_a_finished_job_are_printed_not_followed() -> None:
    pods = worker_pods([pod(0, phase="Succeeded", main={"terminated": {"exitCode": 0}})])
    assert "--follow" not in logs_argv(completed(), pods, None, None, True)
    assert "--follow" not in logs_argv(completed(), pods, 0, None, True)


def test_logs_argv_one_worker_by_pod_name() -> None:
    assert logs_argv(running(), worker_pods([pod(1)]), 1, 5, True) == [
        "logs", "llama-ft-worker-1", "--container=trainer", "--tail=5", "--follow"]


def test_relabel_prefix_to_worker_index() -> None:
    assert relabel("[pod/llama-ft-worker-3/trainer] step 10 loss 0.5\n", "llama-ft") == \
        "[worker-3] step 10 loss 0.5\n"
    assert relabel("no prefix\n", "llama-ft") == "no prefix\n"
    assert relabel("[pod/other/trainer] x", "llama-ft") == "[other] x"


def test_logs_of_a_queued_job_say_it_is_queued_and_why() -> None:
    problem = logs_problem(pending(), [], None)
    assert problem is not None and problem.code == EXIT_FAILED
    assert problem.message.startswith("trainingjob 'llama-ft' has no worker pods yet: it is "
                                      "queued (Pending, QueuedBehindHigherPriority): queued:")
    assert "kubectl trainingjob view llama-ft" in problem.message


def test_logs_of_a_finished_job_without_pods() -> None:
    problem = logs_problem(completed(), [], None)
    assert problem is not None and "has no worker pods left: Completed (Succeeded)" in \
        problem.message


def test_logs_of_a_finished_job_whose_pods_stayed() -> None:
    """The operator keeps a finished job's pods: a worker stopped through its active deadline
    (exit 137) and one that completed both still have logs."""
    pods = worker_pods([
        pod(0, phase="Succeeded", main={"terminated": {"exitCode": 0, "reason": "Completed"}}),
        pod(1, phase="Failed", main={"terminated": {"exitCode": 137, "reason": "Error"}})])
    assert logs_problem(completed(), pods, None) is None
    assert logs_problem(completed(), pods, 1) is None


def test_logs_of_a_worker_that_does_not_exist_is_a_usage_error() -> None:
    problem = logs_problem(running(), worker_pods([pod(0), pod(1)]), 2)
    assert problem is not None and problem.code == EXIT_USAGE
    assert "has workers 0..1; --worker 2 is not one of them" in problem.message


def test_logs_before_the_training_container_started() -> None:
    pods = worker_pods([pod(0, phase="Pending", main={"waiting": {"reason": "ErrImagePull"}})])
    problem = logs_problem(running(), pods, 0)
    assert problem is not None
    assert "has not started yet (llama-ft-worker-0: ErrImagePull)" in problem.message
    assert logs_problem(running(), worker_pods([pod(0), pod(1)]), None) is None
