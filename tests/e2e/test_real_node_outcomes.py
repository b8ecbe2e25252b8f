"""What a finished job tells you, played through real containers on devcluster's real node:
the failing output the kubelet reports, each known failure of the table, the result rank 0
writes, the output volume, and deletion after ttlSecondsAfterFinished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_real_node import _ends, _logs, real_job
from tests.kube import Kubectl, eventually

pytestmark = [pytest.mark.usefixtures("running_operator", "real_nodes")]


def shell_job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A real-node job whose workers run a busybox shell script (in the trainer image)."""
    job = real_job(name, **spec)
    job["spec"]["command"] = ["sh", "-c", script]
    return job


def test_the_kubelet_reports_the_log_tail_of_a_failed_container_in_log_order(
        ns: Kubectl) -> None:
    """FallbackToLogsOnError on a real kubelet: stdout and stderr lines as the log holds
    them, and no more than the last 80 lines / 2 KiB; the status keeps about 1 KiB of it,
    cut at a line boundary, and the message quotes the last line that says something."""
    # stdout and stderr reach the log through two pipes: a pause between switches keeps
    # the order the test asserts the order they were written in.
    ns.apply(shell_job("tail", "echo out-1; i=0; while [ $i -lt 200 ]; do i=$((i+1)); "
                       "echo line-$i ..............................; done; sleep 0.3; "
                       "echo 'ValueError: 3 shards for 4 workers' >&2; exit 1"))
    status = _ends(ns, "tail", "Failed", "Error")
    failure = status["failure"]
    assert (failure["worker"], failure["pod"], failure["container"], failure["exitCode"],
            failure["reason"]) == (0, "tail-worker-0", "trainer", 1, "Error")
    output: str = failure["output"]
    lines = output.splitlines()
    assert lines[-1] == "ValueError: 3 shards for 4 workers"
    assert lines[-2].startswith("line-200 ")
    assert len(output.encode()) <= 1024 and lines[0].startswith("line-")  # whole lines only
    assert "'ValueError: 3 shards for 4 workers'" in status["message"]
    pod = ns.json("get", "pod", "tail-worker-0")
    said = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert len(said.encode()) <= 2048 and len(said.splitlines()) <= 80  # the kubelet's bound
    assert "out-1" not in said  # the head is gone: a tail


def test_stdout_and_stderr_interleave_in_the_termination_message(ns: Kubectl) -> None:
    ns.apply(shell_job("order", "echo out-1; sleep 0.3; echo err-1 >&2; sleep 0.3; "
                       "echo out-2; sleep 0.3; echo err-2 >&2; exit 2"))
    status = _ends(ns, "order", "Failed", "Error")
    assert status["failure"]["output"] == "out-1\nerr-1\nout-2\nerr-2"


def test_gpu_out_of_memory_from_the_workers_own_output(ns: Kubectl) -> None:
    ns.apply(real_job("gpuoom", "--steps", "1", "--step-seconds", "0", "--stderr",
                      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB",
                      "--exit-code", "1"))
    status = _ends(ns, "gpuoom", "Failed", "GPUOutOfMemory")
    assert "lower the batch size" in status["message"]
    assert "gradient checkpointing" in status["message"]
    assert "CUDA out of memory" in status["failure"]["output"]


def test_a_worker_that_cannot_reach_master_addr_is_a_rendezvous_failure(ns: Kubectl) -> None:
    # Rank 0 never listens; rank 1 dials MASTER_ADDR and gets "connection refused".
    ns.apply(shell_job("norv", 'if [ "$RANK" = 0 ]; then sleep 3600; fi; '
                       "exec /bin/trainer --rendezvous --rendezvous-timeout 3s", workers=2))
    status = _ends(ns, "norv", "Failed", "RendezvousFailed")
    assert status["failure"]["worker"] == 1
    said = status["failure"]["output"]
    assert "rendezvous failed: " in said and ":29500 after 3s" in said, said
    assert "MASTER_ADDR" in status["message"]


def test_setup_whose_requirements_do_not_resolve_is_dependencies_failed(ns: Kubectl) -> None:
    pip = ("echo 'Collecting torch==9.9.9'; "
           "echo 'ERROR: Could not find a version that satisfies the requirement torch==9.9.9 "
           "(from versions: 2.4.0, 2.5.1)' >&2; "
           "echo 'ERROR: No matching distribution found for torch==9.9.9' >&2; exit 1")
    ns.apply(real_job("nodeps", setup={"command": ["sh", "-c", pip]}))
    status = _ends(ns, "nodeps", "DeployFailed", "DependenciesFailed")
    assert "(torch==9.9.9)" in status["message"]
    assert status["failure"]["container"] == "setup"
    assert "Collecting torch==9.9.9" in _logs(ns, "nodeps-worker-0", "-c", "setup")


def test_rank_0s_result_and_the_output_volume(ns: Kubectl, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    result = '{"model": "/output/run/model.bin", "metrics": {"loss": 0.25}}'
    ns.apply(shell_job(
        "produce", 'mkdir -p "$TRAININGJOB_OUTPUT_DIR/run" && '
        'echo weights > "$TRAININGJOB_OUTPUT_DIR/run/model.bin" && '
        f"exec /bin/trainer --steps 1 --step-seconds 0 --termination-message '{result}'",
        output={"volume": {"hostPath": {"path": str(out), "type": "Directory"}}}))
    status = _ends(ns, "produce", "Completed", "Succeeded")
    assert status["result"] == {"model": "/output/run/model.bin", "metrics": {"loss": 0.25}}
    assert (out / "run" / "model.bin").read_text() == "weights\n"
    wide = ns.run("get", "tj", "produce", "-o", "wide").stdout
    assert "/output/run/model.bin" in wide


def test_a_result_that_is_not_json_is_a_warning_never_a_failure(ns: Kubectl) -> None:
    ns.apply(real_job("chatty", "--steps", "1", "--step-seconds", "0",
                      "--termination-message", "model saved, all good"))
    status = _ends(ns, "chatty", "Completed", "Succeeded")
    assert "result" not in status
    events = eventually(lambda: [e for e in ns.json("get", "events")["items"]
                                 if e["reason"] == "ResultIgnored"], timeout=30,
                        what="the ResultIgnored Event")
    assert "not JSON" in events[0]["message"] and events[0]["type"] == "Warning"


def test_a_finished_job_goes_with_its_pods_after_ttl_seconds(ns: Kubectl) -> None:
    ns.apply(real_job("brief", "--steps", "1", "--step-seconds", "0",
                      ttlSecondsAfterFinished=3))
    _ends(ns, "brief", "Completed", "Succeeded")
    eventually(lambda: "brief" not in ns.run("get", "tj", "-o", "name").stdout, timeout=60,
               what="the TrainingJob deleted after its TTL")
    eventually(lambda: not ns.json("get", "pods")["items"], timeout=60,
               what="its pods garbage-collected")
