"""Pure: the workloads and, for each peer, the objects one job of a workload is made of.

Every peer gets the same pods: the same GPUs per pod, the same devcluster annotations (kwok
plays the training time and the exit), the same number of pods per gang.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devcluster import kueue

ANNOTATION = kueue.ANNOTATION


@dataclass(frozen=True)
class Workload:
    name: str
    jobs: int
    workers: int
    gpus_per_worker: int
    run_duration: str
    nodes: int  # fake 8-GPU nodes the cluster has for it

    @property
    def gpus(self) -> int:
        return self.nodes * 8

    def describe(self) -> str:
        return (f"{self.jobs} jobs x ({self.workers} x {self.gpus_per_worker} GPU) x "
                f"{self.run_duration} on {self.gpus} GPUs ({self.nodes} nodes)")


WORKLOADS = (
    Workload("small", 200, 1, 1, "2s", 4),
    Workload("gangs", 25, 2, 8, "2s", 4),
    Workload("wide", 1000, 1, 1, "1s", 100),
)


def _annotations(workload: Workload) -> dict[str, str]:
    return {ANNOTATION + "outcome": "succeed", ANNOTATION + "run-duration": workload.run_duration}


def training_job(workload: Workload, name: str,
                 node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"annotations": _annotations(workload)}}
    if node_selector:
        template["spec"] = {"nodeSelector": node_selector}
    body: dict[str, Any] = {
        "image": "team/train:1.4", "workers": workload.workers,
        "gpusPerWorker": workload.gpus_per_worker, "template": template}
    return {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name}, "spec": body}


def batch_job(workload: Workload, name: str, namespace: str,
              queue: str | None = None) -> dict[str, Any]:
    """A batch/v1 Job playing the same gang: Indexed, all pods at once; with `queue`, created
    suspended and labelled for Kueue (its webhook, which would suspend it, is off)."""
    return kueue.job(name, namespace, workload.gpus_per_worker, workload.workers,
                     _annotations(workload), queue)


def training_job_done(obj: dict[str, Any]) -> str | None:
    """The terminal phase of a TrainingJob, None while it is active."""
    phase = (obj.get("status") or {}).get("phase")
    return phase if phase in ("Completed", "Failed", "DeployFailed", "Stopped") else None


def batch_job_done(obj: dict[str, Any]) -> str | None:
    """Complete or Failed once the Job controller says so (a condition with status True)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None
