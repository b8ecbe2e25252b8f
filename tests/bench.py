"""`make bench`: N one-worker TrainingJobs applied at once on a fresh devcluster.

Measures the time from the apply until every job is Completed, and the operator's peak
resident memory (VmHWM), over --repeat runs; prints each run and the median. First, the
pure queue pass alone at scale: one admission plan and its waiting statuses for
--queue-jobs Pending jobs on --queue-nodes nodes (no cluster involved).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainingjob_operator import queue, waiting
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.settings import Settings

from devcluster import build
from tests.kube import Kubectl, training_job

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".devcluster-bench"


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def status_patches(kubectl: Kubectl) -> dict[str, float]:
    """TrainingJob status PATCHes the API server has served so far, by response code
    (only the operator writes that status)."""
    counts: dict[str, float] = {}
    for line in kubectl.run("get", "--raw", "/metrics").stdout.splitlines():
        if (line.startswith("apiserver_request_total{") and 'resource="trainingjobs"' in line
                and 'subresource="status"' in line and 'verb="PATCH"' in line):
            code = line.split('code="', 1)[1].split('"', 1)[0]
            counts[code] = counts.get(code, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def one_run(kubectl: Kubectl, jobs: int, run_duration: str,
            index: int) -> tuple[float, float, dict[str, float], int]:
    ns = f"bench-{index}"
    kubectl.run("create", "namespace", ns)
    k = kubectl.in_namespace(ns)
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig), "TRAININGJOB_METRICS_PORT": "0"}
    op = subprocess.Popen([sys.executable, "-m", "trainingjob_operator"], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # the operator's initial listing
        items = [training_job(f"job-{i}", annotations={"outcome": "succeed",
                                                        "run-duration": run_duration})
                 for i in range(jobs)]
        before = status_patches(kubectl)
        started = time.monotonic()
        k.run("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": items}))
        while True:
            phases = k.run("get", "tj", "-o", "jsonpath={.items[*].status.phase}").stdout.split()
            if phases.count("Completed") == jobs:
                break
            if time.monotonic() - started > 900:
                raise SystemExit(f"timed out: {phases.count('Completed')}/{jobs} Completed")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        peak = _peak_kib(op.pid) / 1024
        after = status_patches(kubectl)
        patches = {c: after[c] - before.get(c, 0) for c in after if after[c] - before.get(c, 0)}
        events = len(k.json("get", "events", "--field-selector",
                            "involvedObject.kind=TrainingJob")["items"])
    finally:
        op.terminate()
        op.wait(timeout=30)
    kubectl.run("delete", "namespace", ns, "--wait=false")
    return elapsed, peak, patches, events


def queue_pass(jobs: int, nodes: int, repeat: int = 5) -> None:
    """Time one admission pass's pure work: plan() and the waiting statuses, medians."""
    now = datetime.now(UTC)
    settings = Settings()
    views = [NodeView(f"n{i}", {"nvidia.com/gpu": 8}, True, {"pool": "a" if i % 2 else "b"})
             for i in range(nodes)]
    free = {"nvidia.com/gpu": {v.name: i % 3 for i, v in enumerate(views)}}  # a busy cluster
    shapes = [(1, 1), (1, 2), (2, 4), (1, 8), (4, 8), (2, 2)]
    pending = {}
    for i in range(jobs):
        workers, gpus = shapes[i % len(shapes)]
        created = (now - timedelta(seconds=jobs - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        template = {"spec": {"nodeSelector": {"pool": "a"}}} if i % 5 == 0 else None
        pending[("bench", f"job-{i}")] = TrainingJob.model_validate({
            "metadata": {"name": f"job-{i}", "namespace": "bench", "creationTimestamp": created},
            "spec": {"image": "x", "workers": workers, "gpusPerWorker": gpus,
                     "priority": i % 3, "template": template},
            "status": {"phase": "Pending", "reason": "WaitingForCapacity", "phaseTime": created}})
    plans, explains = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        plan = queue.plan([queue.candidate(k, j) for k, j in pending.items()], views,
                          free, now, timedelta(minutes=10))
        plans.append(time.perf_counter() - started)
        started = time.perf_counter()
        waiting.queue_writes(pending, plan.waiting, now, settings)
        explains.append(time.perf_counter() - started)
    print(f"queue pass: {jobs} Pending jobs on {nodes} nodes: plan median "
          f"{statistics.median(plans) * 1000:.0f} ms, waiting statuses median "
          f"{statistics.median(explains) * 1000:.0f} ms ({len(plan.admit)} admitted, "
          f"{len(plan.waiting)} waiting)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run-duration", default="2s", help="how long each job trains")
    parser.add_argument("--queue-jobs", type=int, default=10000)
    parser.add_argument("--queue-nodes", type=int, default=100)
    args = parser.parse_args()
    queue_pass(args.queue_jobs, args.queue_nodes)
    devcluster = [sys.executable, "-m", "devcluster", "--dir", str(DATA)]
    subprocess.run([*devcluster, "down"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*devcluster, "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    try:
        kubectl = Kubectl(build.ensure_binaries() / "kubectl", DATA / "kubeconfig")
        kubectl.run("apply", "-f", str(ROOT / "crds"))
        kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.training.dev")
        results = []
        for i in range(args.repeat):
            elapsed, peak, patches, events = one_run(kubectl, args.jobs, args.run_duration, i)
            results.append((elapsed, peak))
            written = patches.get("200", 0)
            print(f"run {i + 1}: {args.jobs} jobs Completed in {elapsed:.1f}s, "
                  f"operator peak RSS {peak:.0f} MiB, status writes {written / args.jobs:.2f}"
                  f"/job (by code: {patches}), events {events / args.jobs:.2f}/job", flush=True)
        print(f"median: {statistics.median(r[0] for r in results):.1f}s to all Completed, "
              f"peak RSS {statistics.median(r[1] for r in results):.0f} MiB "
              f"({args.jobs} one-worker 1-GPU jobs of {args.run_duration} on 4x8 GPUs)")
    finally:
        subprocess.run([*devcluster, "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
