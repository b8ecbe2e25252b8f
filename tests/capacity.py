"""Continuous sampling of the operator's GPU commitments, from consistent API snapshots.

A snapshot is the TrainingJobs and the pods at one etcd revision (the pods are listed with
`resourceVersionMatch=Exact` at the revision of the jobs' list), so a job and its pods are
never seen at different moments. Per node, the operator has committed: the reservations of
admitted jobs (Created, Deploying, Running) for workers that have not exited, plus every
bound, unfinished GPU pod that is not one of those reserved workers (pods of finished or
stopped jobs still terminating, earlier attempts). That must never exceed the node's
allocatable GPUs. The scheduler alone cannot show over-commitment (it never binds past
allocatable); a double-booking operator shows up here, and as pods the scheduler marks
Unschedulable.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.kube import Kubectl

GPU = "nvidia.com/gpu"
ADMITTED = ("Created", "Deploying", "Running")
JOB, INDEX, ATTEMPT = ("training.dev/job-name", "training.dev/worker-index",
                       "training.dev/attempt")


def _raw(kubectl: Kubectl, path: str) -> Any:
    return json.loads(kubectl.run("get", "--raw", path).stdout)


def _gpus(pod: dict[str, Any]) -> int:
    return sum(int(c.get("resources", {}).get("limits", {}).get(GPU, 0))
               for c in pod["spec"]["containers"])


def _key(pod: dict[str, Any]) -> tuple[str, str, str, str, str]:
    labels = pod["metadata"].get("labels") or {}
    return (pod["metadata"]["namespace"], labels.get(JOB, ""), labels.get(ATTEMPT, ""),
            labels.get(INDEX, ""), pod["spec"].get("nodeName") or "")


@dataclass
class Snapshot:
    committed: dict[str, int]
    unschedulable: list[str]
    pods: list[dict[str, Any]]


def snapshot(kubectl: Kubectl) -> Snapshot:
    jobs = _raw(kubectl, "/apis/training.dev/v1alpha1/trainingjobs")
    revision = jobs["metadata"]["resourceVersion"]
    pods = _raw(kubectl, f"/api/v1/pods?resourceVersion={revision}"
                         "&resourceVersionMatch=Exact")["items"]
    finished = {_key(p) for p in pods if p["spec"].get("nodeName")
                and p["status"].get("phase") in ("Succeeded", "Failed")}
    committed: dict[str, int] = {}
    reserved: set[tuple[str, str, str, str, str]] = set()
    for job in jobs["items"]:
        status = job.get("status") or {}
        reservation = status.get("reservation") or {}
        if status.get("phase") not in ADMITTED or reservation.get("attempt") != status.get(
                "attempt"):
            continue
        meta = job["metadata"]
        for index, node in enumerate(reservation.get("nodes") or []):
            key = (meta["namespace"], meta["name"], str(status["attempt"]), str(index), node)
            reserved.add(key)
            if key not in finished:  # a worker that has exited holds nothing any more
                committed[node] = committed.get(node, 0) + job["spec"]["gpusPerWorker"]
    unschedulable = []
    for pod in pods:
        if any(c.get("reason") == "Unschedulable"
               for c in pod.get("status", {}).get("conditions") or []):
            unschedulable.append(pod["metadata"]["name"])
        node = pod["spec"].get("nodeName")
        if not node or pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        if _key(pod) not in reserved:
            committed[node] = committed.get(node, 0) + _gpus(pod)
    return Snapshot(committed, unschedulable, pods)


@dataclass
class Sampler:
    """Takes snapshots back to back in a thread until stopped; keeps what the tests assert."""

    kubectl: Kubectl
    allocatable: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    peak: int = 0  # most GPUs committed cluster-wide in one snapshot
    over: list[str] = field(default_factory=list)
    unschedulable: set[str] = field(default_factory=set)
    # (namespace, job, attempt, index) -> every pod UID seen for it: one set of pods per attempt.
    uids: dict[tuple[str, str, str, str], set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    interval: float = 0.0  # seconds between snapshots (the soak's pace); 0: back to back
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        nodes = _raw(self.kubectl, "/api/v1/nodes")["items"]
        self.allocatable = {n["metadata"]["name"]: int(n["status"]["allocatable"].get(GPU, 0))
                            for n in nodes}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval if self.samples or self.errors else 0):
            try:
                snap = snapshot(self.kubectl)
            except Exception as err:  # a failed read is not a sample; keep the reason
                self.errors.append(str(err))
                continue
            self.samples += 1
            self.peak = max(self.peak, sum(snap.committed.values()))
            for node, gpus in snap.committed.items():
                if gpus > self.allocatable.get(node, 0):
                    self.over.append(f"{node}: {gpus} GPUs committed > "
                                     f"{self.allocatable.get(node, 0)}")
            self.unschedulable.update(snap.unschedulable)
            for pod in snap.pods:
                labels = pod["metadata"].get("labels") or {}
                if JOB in labels:
                    key = (pod["metadata"]["namespace"], labels[JOB], labels.get(ATTEMPT, ""),
                           labels.get(INDEX, ""))
                    self.uids.setdefault(key, set()).add(pod["metadata"]["uid"])

    def assert_never_overcommitted(self, min_samples: int = 10) -> None:
        assert self.samples >= min_samples, (self.samples, self.errors[-3:])
        assert not self.over, self.over[:5]
        assert not self.unschedulable, sorted(self.unschedulable)
        twice = {k: v for k, v in self.uids.items() if len(v) > 1}
        assert not twice, f"a worker of one attempt was created more than once: {twice}"
