"""`kubectl logs` on devcluster pods goes the real way, API server -> kubelet API, with kwok
serving the kubelet API of the fake GPU nodes (devcluster/README.md, "Container logs")."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devcluster.components import DEFAULT_POD_LOG_LINES, cri_log_line, default_log_message
from tests.kube import Kubectl, eventually, pod

pytestmark = pytest.mark.kwok

DEFAULT_LOG = [default_log_message(n) for n in range(1, DEFAULT_POD_LOG_LINES + 1)]


def _append(path: Path, *messages: str, stream: str = "stdout") -> None:
    """Append lines to a container log file, in the CRI format kwok reads."""
    with path.open("a") as log:
        log.write("".join(cri_log_line(m, datetime.now(UTC), stream) for m in messages))


def _own_log(ns: Kubectl, pod_name: str, path: Path, *messages: str) -> None:
    """Give one pod its own log file: a kwok Logs object named after the pod."""
    _append(path, *messages)
    ns.apply({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
              "metadata": {"name": pod_name}, "spec": {"logs": [{"logsFile": str(path)}]}})


def _logs(ns: Kubectl, *args: str) -> list[str]:
    return ns.run("logs", *args).stdout.splitlines()


def _eventually_logs(ns: Kubectl, name: str, expected: list[str]) -> None:
    """kwok learns of a new Logs object through a watch: wait the moment it takes."""
    eventually(lambda: _logs(ns, name) == expected, timeout=10, what=f"{name}'s own log")


def _on_gpu_node(ns: Kubectl, name: str) -> None:
    spec: dict[str, Any] = ns.json("get", "pod", name)["spec"]
    assert spec["nodeName"].startswith("gpu-node-"), spec["nodeName"]


class _Follow:
    """`kubectl logs -f` as a process whose stdout lines can be awaited one by one."""

    def __init__(self, ns: Kubectl, *args: str) -> None:
        argv = [str(ns.binary), f"--kubeconfig={ns.kubeconfig}", f"--namespace={ns.namespace}",
                "logs", "-f", *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # the stream ended

    def next_line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no log line within {timeout}s") from None
        if line is None:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"kubectl logs -f ended (exit {self.proc.wait()}): {stderr}")
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def test_running_pod_shows_the_default_log_and_tail(ns: Kubectl) -> None:
    ns.apply(pod("runner", gpus=1))
    ns.wait("pod/runner", "condition=Ready")
    _on_gpu_node(ns, "runner")
    assert _logs(ns, "runner") == DEFAULT_LOG
    assert _logs(ns, "runner", "--tail=2") == DEFAULT_LOG[-2:]
    assert _logs(ns, "runner", "-c", "trainer", "--tail=1") == DEFAULT_LOG[-1:]
    stamped = _logs(ns, "runner", "--timestamps")
    assert [line.split(" ", 1)[1] for line in stamped] == DEFAULT_LOG
    # The Stages never restart a container, so there is no previous instance to show.
    assert ns.run("logs", "runner", "--previous", check=False).returncode != 0


def test_a_logs_object_gives_each_worker_its_own_log(ns: Kubectl, tmp_path: Path) -> None:
    workers = ("worker-0", "worker-1")
    for w in workers:
        _own_log(ns, w, tmp_path / f"{w}.log", *(f"{w} step {n}" for n in range(1, 4)))
        ns.apply(pod(w, gpus=1))
    for w in workers:
        ns.wait(f"pod/{w}", "condition=Ready")
        _eventually_logs(ns, w, [f"{w} step {n}" for n in range(1, 4)])
        assert _logs(ns, w, "--tail=2") == [f"{w} step 2", f"{w} step 3"]


def test_follow_shows_a_line_appended_after_the_call_started(ns: Kubectl, tmp_path: Path) -> None:
    log = tmp_path / "follow.log"
    _own_log(ns, "followed", log, "epoch 1", "epoch 2")
    ns.apply(pod("followed", gpus=1))
    ns.wait("pod/followed", "condition=Ready")
    _eventually_logs(ns, "followed", ["epoch 1", "epoch 2"])
    follow = _Follow(ns, "followed")
    try:
        assert [follow.next_line(timeout=10) for _ in range(2)] == ["epoch 1", "epoch 2"]
        appended = time.monotonic()
        _append(log, "epoch 3")
        assert follow.next_line(timeout=5) == "epoch 3"
        _append(log, "a warning", stream="stderr")  # kubectl logs shows both streams
        assert follow.next_line(timeout=5) == "a warning"
        assert time.monotonic() - appended < 5
        assert follow.proc.poll() is None  # still following
    finally:
        follow.stop()


@pytest.mark.parametrize(("outcome", "phase"), [("succeed", "Succeeded"), ("fail", "Failed")])
def test_logs_of_a_pod_that_exited(ns: Kubectl, tmp_path: Path, outcome: str,
                                   phase: str) -> None:
    ns.apply(pod("done", gpus=1, annotations={"outcome": outcome, "run-duration": "500ms"}))
    ns.wait("pod/done", f"jsonpath={{.status.phase}}={phase}")
    state = ns.json("get", "pod", "done")["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state
    _on_gpu_node(ns, "done")
    assert _logs(ns, "done") == DEFAULT_LOG
    assert _logs(ns, "done", "--tail=2") == DEFAULT_LOG[-2:]
    # A finished worker with its own log file, added after it exited.
    _own_log(ns, "done", tmp_path / "done.log", "training finished", f"outcome {outcome}")
    _eventually_logs(ns, "done", ["training finished", f"outcome {outcome}"])
