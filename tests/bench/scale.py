"""The 10,000-job case: the operator at rest with the cluster full of TrainingJobs.

On 100 fake 8-GPU nodes, 90 in pool `busy` and 10 in pool `free`: 720 one-GPU jobs run for an
hour and fill the busy pool; short jobs finish; the rest queue for the busy pool. Once the
writes have settled, the operator is watched doing nothing for AT_REST_SECONDS (writes per
second, its CPU, its memory), then probe jobs for the free pool show how fast a new job is
admitted with everything else in the cluster. Two cases: mixed (finished, running, queued),
then queued alone (the finished ones deleted, the queue topped up to the full count).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from subprocess import Popen
from typing import Any

from trainingjob_operator.kube import Rest

from tests.bench import apimetrics, drive, workloads
from tests.kube import Kubectl

NODES = 100
BUSY_NODES = 90
RUNNING = BUSY_NODES * 8
AT_REST_SECONDS = 30
PROBES = 5
ADMITTED = ("Created", "Deploying", "Running")
LONG = workloads.Workload("long", RUNNING, 1, 1, "3600s", NODES)
SHORT = workloads.Workload("short", 0, 1, 1, "1s", NODES)


def _phase_is(*phases: str) -> Callable[[dict[str, Any]], str | None]:
    def done(obj: dict[str, Any]) -> str | None:
        phase = (obj.get("status") or {}).get("phase")
        return phase if phase in phases else None
    return done


def _kind(*phases: str) -> drive.Kind:
    return drive.Kind("training.dev", "v1alpha1", "trainingjobs", _phase_is(*phases))


def _jobs(prefix: str, count: int, workload: workloads.Workload,
          pool: str) -> list[dict[str, Any]]:
    return [workloads.training_job(workload, f"{prefix}-{i}", {"pool": pool})
            for i in range(count)]


@dataclass(frozen=True)
class AtRest:
    case: str
    jobs: int
    settle_seconds: float
    writes_per_second: float
    cpu_per_second: float
    rss_mib: float
    admit_seconds: list[float]

    def row(self) -> str:
        return (f"| {self.case} | {self.jobs} | {self.settle_seconds:.0f} | "
                f"{self.writes_per_second:.2f} | {self.cpu_per_second:.3f} | "
                f"{self.rss_mib:.0f} | {statistics.median(self.admit_seconds):.2f} "
                f"({min(self.admit_seconds):.2f}-{max(self.admit_seconds):.2f}) |")


async def _settle(api: Rest, quiet: float = 10, limit: float = 900) -> float:
    """Seconds until the writes the operator's work shows in stop for `quiet` seconds."""
    started = time.monotonic()
    last, since = apimetrics.operator_driven(await drive.api_writes(api)), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - started < limit:
        await asyncio.sleep(1)
        now = apimetrics.operator_driven(await drive.api_writes(api))
        if now != last:
            last, since = now, time.monotonic()
    return time.monotonic() - started


async def _admit_latency(api: Rest, index: int) -> float:
    name = f"probe-{index}"
    kind = _kind()
    body = _jobs("probe", 1, LONG, "free")[0]
    body["metadata"]["name"] = name
    started = time.monotonic()
    await api.request("POST", kind.path("scale-probe"), body)
    while True:
        obj = await api.request("GET", kind.path("scale-probe", name))
        if (obj.get("status") or {}).get("phase") in ADMITTED:
            return time.monotonic() - started
        if time.monotonic() - started > 60:
            raise TimeoutError(f"{name} not admitted in 60s: {obj.get('status')}")
        await asyncio.sleep(0.02)


async def _at_rest(kubectl: Kubectl, pid: int, case: str, jobs: int,
                   probe_from: int) -> AtRest:
    api = await drive.api(kubectl.kubeconfig)
    try:
        settle = await _settle(api)
        before, writes_before = drive.proc_stat(pid), await drive.api_writes(api)
        await asyncio.sleep(AT_REST_SECONDS)
        after, writes_after = drive.proc_stat(pid), await drive.api_writes(api)
        written = apimetrics.operator_driven(apimetrics.delta(writes_after, writes_before))
        latencies = [await _admit_latency(api, probe_from + i) for i in range(PROBES)]
    finally:
        await api.close()
    return AtRest(case, jobs, settle, written / AT_REST_SECONDS,
                  (after.cpu_seconds - before.cpu_seconds) / AT_REST_SECONDS, after.rss_mib,
                  latencies)


async def _fill(kubectl: Kubectl, namespace: str, objects: list[dict[str, Any]],
                kind: drive.Kind, expect: int | None = None) -> None:
    """Create the objects; wait until `expect` (default: as many) in the namespace are done."""
    api = await drive.api(kubectl.kubeconfig)
    try:
        await drive.create_all(api, kind, namespace, objects)
        await drive.wait_done(api, kind, namespace, expect or len(objects), timeout=1800)
    finally:
        await api.close()


def run(kubectl: Kubectl, total: int,
        operator: Callable[[], AbstractContextManager[Popen[bytes]]]) -> str:
    names = sorted(n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]
                   if "kwok.x-k8s.io/node" in n["metadata"].get("annotations", {}))
    for i, name in enumerate(names):
        kubectl.run("label", "node", name, f"pool={'busy' if i < BUSY_NODES else 'free'}",
                    "--overwrite")
    for ns in ("scale-running", "scale-finished", "scale-queued", "scale-probe"):
        kubectl.run("create", "namespace", ns)
    finished = (total - RUNNING) // 3
    queued = total - RUNNING - finished
    rows = []
    with operator() as proc:
        asyncio.run(_fill(kubectl, "scale-running", _jobs("run", RUNNING, LONG, "busy"),
                          _kind("Running")))
        asyncio.run(_fill(kubectl, "scale-finished", _jobs("done", finished, SHORT, "free"),
                          _kind("Completed")))
        asyncio.run(_fill(kubectl, "scale-queued", _jobs("wait", queued, SHORT, "busy"),
                          _kind("Pending")))
        rows.append(asyncio.run(_at_rest(kubectl, proc.pid, "mixed: "
                                         f"{RUNNING} running, {finished} finished, "
                                         f"{queued} queued", total, 0)))
        kubectl.run("delete", "namespace", "scale-finished", timeout=1800)
        asyncio.run(_fill(kubectl, "scale-queued",
                          _jobs("more", total - queued, SHORT, "busy"), _kind("Pending"), total))
        rows.append(asyncio.run(_at_rest(kubectl, proc.pid, f"{total} queued "
                                         f"(and {RUNNING} running)", total + RUNNING,
                                         PROBES)))
    head = ("| case | TrainingJobs | settle s | writes/s at rest | operator CPU s/s at rest "
            "| operator RSS MiB | new job admitted in s, median (range) |")
    return "\n".join(["**10,000-job scale (operator only)**", "", head,
                      "|---|---|---|---|---|---|---|", *(r.row() for r in rows)])
