"""Test helpers that drive a cluster the way a user does: through kubectl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class KubectlError(AssertionError):
    """kubectl exited non-zero where the test expected success."""


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig and, optionally, one namespace."""

    binary: Path
    kubeconfig: Path
    namespace: str | None = None

    def in_namespace(self, namespace: str) -> Kubectl:
        return replace(self, namespace=namespace)

    def run(self, *args: str, check: bool = True, input_text: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            argv.append(f"--namespace={self.namespace}")
        proc = subprocess.run([*argv, *args], input=input_text, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n"
                               f"{proc.stderr}{proc.stdout}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", input_text=json.dumps(manifest))

    def wait(self, target: str, condition: str, timeout: int = 60) -> None:
        """`kubectl wait --for=<condition>`, e.g. ``jsonpath={.status.phase}=Running``."""
        self.run("wait", target, f"--for={condition}", f"--timeout={timeout}s",
                 timeout=timeout + 30)


def eventually(probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5,
               what: str = "condition") -> T:
    """Poll probe until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


ANNOTATION = "devcluster.training.dev/"


def pod(name: str, *, gpus: int = 0, annotations: dict[str, str] | None = None,
        setup: bool = False, owner: dict[str, Any] | None = None,
        image: str = "train:1.0") -> dict[str, Any]:
    """A pod as a TrainingJob worker looks: one container, restartPolicy Never."""
    container: dict[str, Any] = {"name": "trainer", "image": image,
                                 "command": ["python", "train.py"]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if setup:
        spec["initContainers"] = [{"name": "setup", "image": image,
                                   "command": ["pip", "install", "-r", "requirements.txt"]}]
    meta: dict[str, Any] = {"name": name,
                            "annotations": {ANNOTATION + k: v
                                            for k, v in (annotations or {}).items()}}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def impostor(name: str, job: str) -> dict[str, Any]:
    """A tenant's own pod labelled as worker 0 of `job`'s first attempt, with no
    ownerReference, that exits 3 a second after it starts (on kwok)."""
    body = pod(name, annotations={"outcome": "fail", "exit-code": "3", "run-duration": "1s"})
    body["metadata"]["labels"] = {"training.dev/job-name": job,
                                  "training.dev/worker-index": "0",
                                  "training.dev/attempt": "1"}
    return body


def training_job(name: str, *, workers: int = 1, gpus: int = 1,
                 annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A TrainingJob manifest; `annotations` are devcluster lifecycle annotations."""
    body: dict[str, Any] = {"image": "team/train:1.4", "workers": workers,
                            "gpusPerWorker": gpus, **spec}
    if annotations:
        template = body.setdefault("template", {})
        template.setdefault("metadata", {})["annotations"] = {
            ANNOTATION + k: v for k, v in annotations.items()}
    return {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name}, "spec": body}


def status_of(ns: Kubectl, name: str) -> dict[str, Any]:
    status: dict[str, Any] = ns.json("get", "trainingjob", name).get("status") or {}
    return status


def phases(ns: Kubectl, name: str) -> list[str]:
    return [h["phase"] for h in status_of(ns, name).get("history", [])]


def wait_phase(ns: Kubectl, name: str, phase: str, timeout: int = 60) -> dict[str, Any]:
    ns.wait(f"trainingjob/{name}", f"jsonpath={{.status.phase}}={phase}", timeout=timeout)
    return status_of(ns, name)


def gpu_pods_on_nodes(kubectl: Kubectl) -> list[str]:
    """Pods anywhere that hold GPUs on a node (bound and not finished): tests that count
    free GPUs wait for earlier tests' pods to be gone first."""
    pods = kubectl.json("get", "pods", "--all-namespaces")["items"]
    return [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") and any(
        "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
        for c in p["spec"]["containers"]) and p["status"].get("phase") not in (
        "Succeeded", "Failed")]


def active_jobs(kubectl: Kubectl) -> list[str]:
    """TrainingJobs anywhere that may hold a GPU reservation."""
    jobs = kubectl.json("get", "trainingjobs", "--all-namespaces")["items"]
    return [j["metadata"]["name"] for j in jobs
            if (j.get("status") or {}).get("phase") in ("Created", "Deploying", "Running")]


def wait_cluster_idle(kubectl: Kubectl, timeout: float = 90) -> None:
    """Tests that count free GPUs first wait for earlier tests' GPU pods and jobs to go."""
    eventually(lambda: not gpu_pods_on_nodes(kubectl) and not active_jobs(kubectl),
               timeout=timeout, what="earlier tests' GPU pods and active jobs to go")


def stop(ns: Kubectl, name: str) -> None:
    ns.run("patch", "trainingjob", name, "--type=merge", "-p", '{"spec":{"stop":true}}')


def entered(status: dict[str, Any], phase: str, attempt: int | None = None) -> datetime:
    """When the job (last) entered `phase`, from its history."""
    times = [h["time"] for h in status["history"] if h["phase"] == phase
             and (attempt is None or h.get("attempt") == attempt)]
    assert times, f"never {phase}: {status['history']}"
    return datetime.fromisoformat(times[-1].replace("Z", "+00:00"))
