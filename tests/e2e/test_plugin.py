"""`kubectl trainingjob` end to end: the installed console script (and kubectl's plugin
discovery of it) against the devcluster and the real operator, on jobs from examples/."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.components import cri_log_line
from tests.harness import ROOT, Cluster
from tests.kube import ANNOTATION, Kubectl, eventually, status_of, training_job, wait_phase

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]

SCRIPT = Path(sys.executable).parent / "kubectl-trainingjob"


@dataclass(frozen=True)
class Plugin:
    """The installed `kubectl-trainingjob`, run as a user runs it: kubectl on PATH (the
    devcluster's), KUBECONFIG set, an 80-column terminal."""

    cluster: Cluster
    namespace: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBECTL"}
        env.update(PATH=os.pathsep.join([str(self.cluster.bin_dir), str(SCRIPT.parent),
                                         env.get("PATH", "")]),
                   KUBECONFIG=str(self.cluster.kubeconfig), COLUMNS="80")
        return env

    def argv(self, *args: str) -> list[str]:
        return [str(SCRIPT), "-n", self.namespace, *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env(),
                              timeout=timeout, check=False)

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, (args, proc.returncode, proc.stderr, proc.stdout)
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


@pytest.fixture
def plugin(cluster: Cluster, ns: Kubectl) -> Plugin:
    assert SCRIPT.exists(), "pip install -e '.[dev]' installs the kubectl-trainingjob script"
    return Plugin(cluster, str(ns.namespace))


def example(file: str, **annotations: str) -> dict[str, Any]:
    """The TrainingJob of examples/<file>, with devcluster annotations changed (e.g. a
    shorter run-duration, so the test does not wait for the example's full run)."""
    docs = yaml.safe_load_all((ROOT / "examples" / file).read_text())
    job: dict[str, Any] = next(d for d in docs if d["kind"] == "TrainingJob")
    if annotations:
        meta = job["spec"].setdefault("template", {}).setdefault("metadata", {})
        meta.setdefault("annotations", {}).update(
            {ANNOTATION + k: v for k, v in annotations.items()})
    return job


def table(out: str) -> dict[str, list[str]]:
    """`list` output by job name: the row's cells (the header checked)."""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "REASON", "WORKERS", "GPUS", "QUEUE", "AGE"]
    assert all(len(line) <= 80 for line in lines), out
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_list_view_wait_and_stop_on_example_jobs(plugin: Plugin, ns: Kubectl) -> None:
    ns.apply(example("1-worker.yaml", **{"run-duration": "3s"}))   # one-worker: Completed
    ns.apply(example("failure-error.yaml", **{"run-duration": "2s"}))  # crashes: Failed
    ns.apply(example("stop.yaml"))                                   # long-run: until stopped

    done = plugin.run("wait", "one-worker", "--timeout", "90s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("trainingjob 'one-worker' Completed (Succeeded) at ")
    failed = plugin.run("wait", "crashes", "--timeout", "90s")
    assert failed.returncode == 1, failed.stderr
    assert "trainingjob 'crashes' Failed (Error)" in failed.stdout
    assert "exited with code 3" in failed.stdout
    wait_phase(ns, "long-run", "Running")

    # list: active only by default; --all adds the finished ones.
    active = table(plugin.ok("list"))
    assert list(active) == ["long-run"]
    assert active["long-run"][1:5] == ["Running", "WorkersRunning", "1/1", "1"]
    every = table(plugin.ok("list", "--all"))
    assert {n: r[1:3] for n, r in every.items()} == {
        "crashes": ["Failed", "Error"], "long-run": ["Running", "WorkersRunning"],
        "one-worker": ["Completed", "Succeeded"]}
    items = plugin.json("list", "--all")["items"]
    assert [(i["name"], i["phase"], i["active"]) for i in items] == [
        ("crashes", "Failed", False), ("long-run", "Running", True),
        ("one-worker", "Completed", False)]
    assert [i["name"] for i in plugin.json("list")["items"]] == ["long-run"]

    # view: state, the worker's pod and node, the history with time in each phase.
    out = plugin.ok("view", "long-run")
    lines = out.splitlines()
    assert "Phase:     Running" in lines and "Reason:    WorkersRunning" in lines
    worker = next(line for line in lines if "long-run-worker-0" in line).split()
    assert worker[0] == "0" and worker[2].startswith("gpu-node-") and worker[3] == "Running"
    history = [line.split()[1] for line in lines[lines.index("History:") + 2:]
               if line.startswith("  20")]
    assert history == ["Pending", "Created", "Deploying", "Running"]
    assert lines[-2].rstrip().endswith("WorkersRunning") and " so far " in lines[-2]
    assert all(len(line) <= 80 for line in lines), out
    viewed = plugin.json("view", "long-run")
    assert [h["phase"] for h in viewed["history"]] == history
    assert viewed["history"][-1]["ongoing"] is True
    assert [(p["worker"], p["pod"], p["state"]) for p in viewed["pods"]] == [
        (0, "long-run-worker-0", "Running")]
    finished = plugin.json("view", "one-worker")
    assert finished["phase"] == "Completed" and finished["finished"]
    assert finished["history"][-1] == {**finished["history"][-1], "phase": "Completed",
                                       "seconds": None, "ongoing": False}

    # stop: the patch, what happens, and the job ends Stopped; wait says so with exit 1.
    stopped = plugin.ok("stop", "long-run")
    assert "trainingjob 'long-run' stop requested: its worker gets SIGTERM and 30s" in stopped
    assert ns.json("get", "tj", "long-run")["spec"]["stop"] is True
    ended = plugin.run("wait", "long-run", "-o", "json", "--timeout", "60s")
    assert ended.returncode == 1, ended.stderr
    assert json.loads(ended.stdout) == {
        "name": "long-run", "namespace": plugin.namespace, "phase": "Stopped",
        "reason": "StoppedByUser", "message": status_of(ns, "long-run")["message"],
        "result": "Stopped", "exitCode": 1}

    # stop on a finished job: says how it ended, changes nothing.
    again = plugin.ok("stop", "one-worker")
    assert again.startswith("trainingjob 'one-worker' already finished: Completed (Succeeded)")
    assert ns.json("get", "tj", "one-worker")["spec"].get("stop") is False


def test_missing_job_and_timeouts_exit_2(plugin: Plugin, ns: Kubectl) -> None:
    missing = plugin.run("wait", "nope")
    assert missing.returncode == 2
    assert f"trainingjob 'nope' not found in namespace '{plugin.namespace}'" in missing.stderr
    as_json = plugin.run("wait", "nope", "-o", "json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["result"] == "NotFound"
    assert plugin.run("view", "nope").returncode == 2

    job = example("stop.yaml")
    name = job["metadata"]["name"] = f"solo-{plugin.namespace[-4:]}"  # unique in the cluster
    ns.apply(job)
    wait_phase(ns, name, "Running")
    started = time.monotonic()
    timed_out = plugin.run("wait", name, "--timeout", "2s")
    assert timed_out.returncode == 2
    assert 2 <= time.monotonic() - started < 30
    assert (f"timed out after 2s waiting for trainingjob '{name}' to finish; it is Running "
            "(WorkersRunning)") in timed_out.stderr
    # A job elsewhere is found with -A, and named with its namespace when -n misses it.
    elsewhere = Plugin(plugin.cluster, "default").run("view", name)
    assert elsewhere.returncode == 2
    assert (f"not found in namespace 'default'; it exists in namespace {plugin.namespace} "
            f"(use -n {plugin.namespace}, or -A)") in elsewhere.stderr
    found = subprocess.run([str(SCRIPT), "-A", "view", name], capture_output=True,
                           text=True, env=plugin.env(), timeout=60, check=False)
    assert found.returncode == 0 and f"Namespace: {plugin.namespace}" in found.stdout

    # Deleting the job under a wait ends the wait (exit 2) instead of hanging.
    waiting = subprocess.Popen(plugin.argv("wait", name), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=plugin.env())
    time.sleep(2)
    assert waiting.poll() is None  # it is waiting
    ns.run("delete", "tj", name, "--wait=false")
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 2 and "was deleted while waiting" in err


def test_queued_job_shows_its_queue_place_and_has_no_logs(plugin: Plugin, ns: Kubectl) -> None:
    # 16 GPUs per worker fits no 8-GPU node: it waits (NoNodeFits) and holds nothing.
    ns.apply(training_job("too-big", workers=2, gpus=16, priority=-100))
    eventually(lambda: (status_of(ns, "too-big").get("queue") or {}).get("position"),
               what="a queue position")
    row = table(plugin.ok("list"))["too-big"]
    assert row[1:3] == ["Pending", "NoNodeFits"] and row[4] == "32" and row[5].isdigit()
    out = plugin.ok("view", "too-big")
    assert "Queue:     position " in out
    assert "needs 32 GPUs" in out and "(largest node: 8)" in out
    assert "no pods yet: the job waits in the GPU queue" in out
    logs = plugin.run("logs", "too-big")
    assert logs.returncode == 1
    assert ("trainingjob 'too-big' has no worker pods yet: it is queued (Pending, NoNodeFits)"
            in logs.stderr)
    queue_json = plugin.json("view", "too-big")["queue"]
    assert queue_json["gpusNeeded"] == 32 and queue_json["position"] >= 1


def test_kubectl_finds_the_plugin_on_path(plugin: Plugin, ns: Kubectl) -> None:
    ns.apply(example("stop.yaml"))
    proc = subprocess.run([str(plugin.cluster.bin_dir / "kubectl"), "trainingjob", "-n",
                           plugin.namespace, "list"], capture_output=True, text=True,
                          env=plugin.env(), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "long-run" in table(proc.stdout)


# --- logs (devcluster serves container logs through kwok: devcluster/README.md) ----------

def _append(path: Path, *lines: str) -> None:
    with path.open("a") as log:
        log.write("".join(cri_log_line(line, datetime.now(UTC)) for line in lines))


@pytest.fixture
def two_workers_with_logs(ns: Kubectl, tmp_path: Path) -> Iterator[dict[int, Path]]:
    """A running 2-worker job whose workers print their own lines (kwok Logs objects)."""
    files = {}
    for i in (0, 1):
        files[i] = tmp_path / f"worker-{i}.log"
        _append(files[i], *(f"w{i} step {n}" for n in (1, 2, 3)))
        ns.apply({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                  "metadata": {"name": f"pair-worker-{i}"},
                  "spec": {"logs": [{"logsFile": str(files[i])}]}})
    ns.apply(training_job("pair", workers=2, gpus=1))
    wait_phase(ns, "pair", "Running")
    yield files


def test_logs_prefix_each_worker_and_pick_one(plugin: Plugin,
                                              two_workers_with_logs: dict[int, Path]) -> None:
    expected = [f"[worker-{i}] w{i} step {n}" for i in (0, 1) for n in (1, 2, 3)]
    # kwok learns of the Logs objects through a watch: wait the moment it takes.
    eventually(lambda: sorted(plugin.ok("logs", "pair").splitlines()) == expected,
               timeout=15, what="each worker's own log, prefixed")
    assert plugin.ok("logs", "pair", "--worker", "1").splitlines() == [
        "w1 step 1", "w1 step 2", "w1 step 3"]
    assert sorted(plugin.ok("logs", "pair", "--tail", "1").splitlines()) == [
        "[worker-0] w0 step 3", "[worker-1] w1 step 3"]
    assert plugin.ok("logs", "pair", "--worker", "0", "--tail", "2").splitlines() == [
        "w0 step 2", "w0 step 3"]
    bad = plugin.run("logs", "pair", "--worker", "2")
    assert bad.returncode == 2 and "has workers 0..1; --worker 2" in bad.stderr


def test_logs_of_a_finished_job_are_still_there(plugin: Plugin, ns: Kubectl) -> None:
    ns.apply(training_job("done", workers=2, annotations={"outcome": "succeed",
                                                          "run-duration": "1s"}))
    ns.wait("tj/done", "condition=Complete", timeout=60)
    lines = plugin.ok("logs", "done", "-f").splitlines()  # printed, not followed: it ended
    assert sorted(lines) == sorted(f"[worker-{i}] devcluster log line {n}/5"
                                   for i in (0, 1) for n in range(1, 6))
    assert plugin.ok("logs", "done", "--worker", "1", "--tail", "1").splitlines() == [
        "devcluster log line 5/5"]


def test_logs_follow_shows_appended_lines(plugin: Plugin,
                                          two_workers_with_logs: dict[int, Path]) -> None:
    eventually(lambda: len(plugin.ok("logs", "pair").splitlines()) == 6, timeout=15,
               what="each worker's own log")
    proc = subprocess.Popen(plugin.argv("logs", "pair", "-f", "--tail", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=plugin.env())
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        first = sorted(lines.get(timeout=15) for _ in range(2))
        assert first == ["[worker-0] w0 step 3", "[worker-1] w1 step 3"]
        _append(two_workers_with_logs[1], "w1 step 4")
        assert lines.get(timeout=10) == "[worker-1] w1 step 4"
        _append(two_workers_with_logs[0], "w0 step 4")
        assert lines.get(timeout=10) == "[worker-0] w0 step 4"
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _printable(text: str) -> bool:
    return all(line.isprintable() for line in text.split("\n"))


def test_control_characters_a_worker_wrote_reach_no_status_event_or_plugin_output(
        plugin: Plugin, ns: Kubectl) -> None:
    """Rank 0's termination message names a model with ANSI colour, a screen clear, an OSC 8
    link, a CR that would overwrite it and a bidi override, and a metric named in bold; a
    failed worker's output has the same. status.result, status.failure.output, the Events
    and the plugin's list, view and wait hold none of them (the output keeps its lines)."""
    model = ("s3://b/\x1b[31mred\x1b[0m\x1b[2J\x1b]8;;https://evil.example/\x1b\\m"
             "\x1b]8;;\x1b\\\rok\u202e")
    said = json.dumps({"model": model, "metrics": {"\x1b[1mloss": 0.5}})
    ns.apply(training_job("esc", annotations={"outcome": "succeed", "run-duration": "1s",
                                              "termination-message": said}))
    ns.apply(training_job("escfail", annotations={
        "outcome": "fail", "exit-code": "1", "run-duration": "1s",
        "termination-message": "step 1\n\x1b[31mValueError: bad\x1b[0m\r\u202e\x07"}))
    status = wait_phase(ns, "esc", "Completed")
    assert status["result"] == {"model": "s3://b/redm ok", "metrics": {"loss": 0.5}}
    assert status["message"].endswith("; model: s3://b/redm ok"), status["message"]
    failed = wait_phase(ns, "escfail", "Failed")
    assert failed["failure"]["output"] == "step 1\nValueError: bad", failed["failure"]
    assert "'ValueError: bad'" in failed["message"], failed["message"]
    for name, reasons in (("esc", {"Succeeded", "ResultIgnored"}), ("escfail", {"Error"})):
        def events(name: str = name) -> list[dict[str, Any]]:
            return list(ns.json("get", "events", "--field-selector",
                                f"involvedObject.name={name}")["items"])
        eventually(lambda r=reasons, e=events: r <= {x["reason"] for x in e()},  # type: ignore[misc]
                   what=f"the Events of {name}")
        assert all(_printable(e["message"]) for e in events()), events()
    for args in (("view", "esc"), ("view", "escfail"), ("list", "--all"), ("wait", "esc"),
                 ("wait", "escfail")):
        out = plugin.run(*args)
        assert _printable(out.stdout) and _printable(out.stderr), (args, out)
    assert "s3://b/redm ok" in plugin.ok("view", "esc")
