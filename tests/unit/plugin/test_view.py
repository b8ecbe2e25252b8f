from __future__ import annotations

import json
from typing import Any

from trainingjob_operator.models import JobResult, read_job
from trainingjob_operator.plugin.summary import SUMMARY_KEYS, pod_state, worker_pods
from trainingjob_operator.plugin.view import steps, unreadable_text, view_json, view_text
from trainingjob_operator.pods import parse_pod

from tests.unit.plugin.jobs import HISTORY, NOW, completed, entry, job, pending, pod, running


def test_history_durations_last_one_so_far_while_active() -> None:
    out = [(s.entry.phase.value, s.seconds, s.ongoing, s.duration())
           for s in steps(running(), NOW)]
    assert out == [("Pending", 42, False, "42s"), ("Created", 1, False, "1s"),
                   ("Deploying", 30, False, "30s"),
                   ("Running", 227, True, "3m47s so far")]


def test_history_final_phase_has_no_duration() -> None:
    last = steps(completed(), NOW)[-1]
    assert (last.entry.phase.value, last.seconds, last.ongoing, last.duration()) == (
        "Completed", None, False, "")
    assert steps(completed(), NOW)[-2].duration() == "2m"


def test_view_running_shows_state_workers_and_history() -> None:
    pods = worker_pods([pod(1, node="gpu-node-1"), pod(0)])
    out = view_text(running(), pods, NOW, 80)
    lines = out.splitlines()
    assert "Phase:     Running" in lines and "Reason:    WorkersRunning" in lines
    assert "Attempt:   1 of at most 4 (retries.limit 3)" in lines
    assert "GPUs:      16 (2 workers x 8 nvidia.com/gpu)" in lines
    assert "Workers:   2/2 ready" in lines
    workers = lines[lines.index("Workers:   2/2 ready") + 1:][:3]
    assert [w.split() for w in workers] == [
        ["WORKER", "POD", "NODE", "STATE"], ["0", "llama-ft-worker-0", "gpu-node-0", "Running"],
        ["1", "llama-ft-worker-1", "gpu-node-1", "Running"]]
    history = lines[lines.index("History:") + 1:]
    assert history[0].split() == ["TIME", "PHASE", "DURATION", "REASON"]
    assert history[-2].split() == ["2026-01-01T11:56:13Z", "Running", "3m47s", "so", "far",
                                   "WorkersRunning"]
    assert history[-1].strip() == "all 2 workers are running"
    assert "Queue:" not in out and "Finished:" not in out
    assert max(len(line) for line in lines) <= 80


def test_view_pending_shows_queue_and_why_there_are_no_pods() -> None:
    out = view_text(pending(), [], NOW, 80)
    assert "Queue:     position 3 in the cluster, 2 in namespace team-a" in out
    assert "needs 16 GPUs, 8 free on the nodes it may use (largest node: 8)" in out
    assert "updated 2s ago" in out
    assert "no pods yet: the job waits in the GPU queue" in out
    assert "5m so far" in out


def test_view_of_a_finished_job_without_pods_does_not_claim_they_were_deleted_by_it() -> None:
    out = view_text(completed(), [], NOW, 100)
    assert "no pods left: none of its workers started, or their pods were deleted" in out


def test_long_messages_wrap_to_the_width_under_their_label() -> None:
    out = view_text(pending(), [], NOW, 60)
    message = [line for line in out.splitlines()
               if line.startswith("Message:") or line.startswith(" " * 11)][:4]
    assert message[0].startswith("Message:   queued: needs 16 GPUs")
    assert all(len(line) <= 60 for line in message)
    assert "team-b/big (priority 10)" in " ".join(line.strip() for line in message)


def test_view_finished_shows_total_time_and_final_phase() -> None:
    pods = worker_pods([pod(0, phase="Succeeded",
                            main={"terminated": {"reason": "Completed", "exitCode": 0}})])
    out = view_text(completed(), pods, NOW, 80)
    assert "Finished:  2026-01-01T11:58:13Z (total 3m13s)" in out
    assert "llama-ft-worker-0  gpu-node-0  Completed (exit 0)" in out


def test_admitted_job_lists_workers_without_pods_on_their_reserved_node() -> None:
    deploying = job(workers=2, status={"phase": "Deploying", "reason": "CreatingWorkers",
                                       "reservation": {"attempt": 1, "nodes": ["n0", "n1"]},
                                       "history": HISTORY[:3]})
    out = view_text(deploying, worker_pods([pod(0, node="n0")]), NOW, 80)
    assert "llama-ft-worker-1  n1 (reserved)  (no pod yet)" in out


def test_retries_mark_attempts_in_history_and_old_pods() -> None:
    retried = running().model_copy(update={"status": running().status.model_copy(update={
        "attempt": 2, "history": running().status.history[:4] + [
            h for h in read_job({"metadata": {"name": "x"}, "spec": {"image": "i"},
                                 "status": {"history": [
                                     entry("Pending", "WorkerLost", "2026-01-01T11:57:00Z",
                                           "worker 1 lost: node gone", attempt=2),
                                     entry("Running", "WorkersRunning",
                                           "2026-01-01T11:58:00Z", attempt=2)]}}
                               ).status.history]})})  # type: ignore[union-attr]
    out = view_text(retried, worker_pods([pod(0, attempt=1, deleting=True), pod(1, attempt=2)]),
                    NOW, 80)
    assert "  attempt 1:" in out and "  attempt 2:" in out
    assert "Terminating (attempt 1)" in out
    assert "Attempt:   2 of at most 4" in out


def test_pod_states_read_like_kubectl() -> None:
    def state(p: dict[str, Any]) -> str:
        return pod_state(parse_pod(p))[0]

    assert state(pod(0)) == "Running"
    assert state(pod(0, deleting=True)) == "Terminating"
    assert state(pod(0, phase="Failed", main={"terminated": {"reason": "OOMKilled",
                                                             "exitCode": 137}})) == \
        "OOMKilled (exit 137)"
    assert state(pod(0, phase="Pending", main={"waiting": {"reason": "ImagePullBackOff"}})) == \
        "ImagePullBackOff"
    assert state(pod(0, phase="Pending", node=None, main={}, conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])) == \
        "Unschedulable"
    assert state(pod(0, phase="Pending", main={"waiting": {"reason": "PodInitializing"}},
                     init=[{"name": "setup", "state": {"running": {}}}])) == "Setup"
    assert state(pod(0, phase="Failed", main={"waiting": {"reason": "PodInitializing"}},
                     init=[{"name": "setup", "state": {"terminated": {"exitCode": 2}}}])) == \
        "SetupFailed (exit 2)"
    evicted = pod(0, phase="Failed", main={"terminated": {"reason": "Error", "exitCode": 137}})
    evicted["status"]["reason"] = "Evicted"
    assert state(evicted) == "Evicted"
    assert state(pod(0, phase="Pending", main={"waiting": {"reason": "ContainerCreating"}})) \
        == "ContainerCreating"
    assert state(pod(0, phase="Pending", main={"waiting": {"reason": "PodInitializing"}},
                     init=[{"name": "setup", "state": {"waiting": {
                         "reason": "ErrImagePull"}}}])) == "Setup:ErrImagePull"
    assert pod_state(parse_pod(pod(0)))[1] is True
    assert pod_state(parse_pod(pod(0, main={"waiting": {"reason": "ContainerCreating"}})))[1] \
        is False


def test_view_json_shape() -> None:
    out = view_json(running(), worker_pods([pod(0)]), NOW)
    assert json.loads(json.dumps(out)) == out
    assert tuple(out) == (*SUMMARY_KEYS, "history", "pods")
    assert out["history"][0] == {
        "time": "2026-01-01T11:55:00Z", "phase": "Pending", "reason": "WaitingForCapacity",
        "message": "queued: needs 16 GPUs (2 workers x 8 nvidia.com/gpu)", "attempt": 1,
        "seconds": 42, "ongoing": False}
    assert out["history"][-1]["ongoing"] is True and out["history"][-1]["seconds"] == 227
    assert out["pods"] == [{"worker": 0, "pod": "llama-ft-worker-0", "node": "gpu-node-0",
                            "state": "Running", "attempt": 1, "started": True}]
    finished = view_json(completed(), [], NOW)
    assert finished["history"][-1]["seconds"] is None and finished["active"] is False
    assert finished["finished"] == "2026-01-01T11:58:13Z"


def test_unreadable_job_view_names_the_problem() -> None:
    bad = read_job({"metadata": {"name": "old", "namespace": "team-a"},
                    "spec": {"workers": "many"}, "status": {"phase": "Running"}})
    out = unreadable_text(bad, NOW, 80)  # type: ignore[arg-type]
    assert "Problem:   the plugin cannot read this object: spec.image" in out
    assert "kubectl get trainingjob -o yaml" in out


def test_view_shows_the_model_a_completed_job_produced() -> None:
    done = completed()
    done = done.model_copy(update={"status": done.status.model_copy(update={
        "result": JobResult(model="s3://bucket/llama-ft/model", metrics={"loss": 0.12})})})
    out = view_text(done, [], NOW, 100)
    assert "Model:     s3://bucket/llama-ft/model" in out
    assert "Metrics:   loss=0.12" in out
    assert view_json(done, [], NOW)["result"] == {"model": "s3://bucket/llama-ft/model",
                                                   "metrics": {"loss": 0.12}}


def test_view_shows_the_container_that_failed_the_job_and_its_last_output() -> None:
    failed = job(workers=2, status={
        "phase": "Failed", "reason": "GPUOutOfMemory", "message": "worker 1 ...",
        "failure": {"worker": 1, "pod": "llama-ft-worker-1", "container": "trainer",
                    "exitCode": 1, "reason": "Error",
                    "output": "step 3/10\ntorch.OutOfMemoryError: CUDA out of memory."}})
    lines = view_text(failed, [], NOW, 100).splitlines()
    at = lines.index("Failure:   worker 1, pod llama-ft-worker-1, container trainer, exit code 1 "
                     "(Error)")
    assert lines[at + 1:at + 4] == ["           last output:", "             step 3/10",
                                    "             torch.OutOfMemoryError: CUDA out of memory."]
    assert view_json(failed, [], NOW)["failure"]["exitCode"] == 1
