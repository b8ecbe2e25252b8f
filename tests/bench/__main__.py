"""`make bench`: runs each workload with each peer on one devcluster and prints the table.

Peers: `trainingjob` (this operator, as a process on this machine), `job` (batch/v1 Job, the
controller-manager's own controller, no queue) and `kueue` (Kueue built from its Go module,
webhooks off, Jobs created suspended with the queue label). Repeats rotate the order of the
peers; each run has a namespace of its own, deleted (and waited for) before the next.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devcluster import build, kueue
from tests import harness
from tests.bench import apimetrics, drive, profile, report, scale, workloads
from tests.bench.queuepass import queue_pass
from tests.bench.workloads import Workload
from tests.kube import Kubectl

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".devcluster-bench"
OURS = "trainingjob"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PEERS = (OURS, "job", "kueue")
TRAINING_JOBS = drive.Kind("training.dev", "v1alpha1", "trainingjobs",
                           workloads.training_job_done)
BATCH_JOBS = drive.Kind("batch", "v1", "jobs", workloads.batch_job_done)


@contextmanager
def operator(kubeconfig: Path, log: Path,
             more_env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as `make run` starts it, one replica, metrics off (unless `more_env`
    says otherwise); yielded once ready."""
    with harness.running(kubeconfig, log, {"TRAININGJOB_METRICS_PORT": "0",
                                           **(more_env or {})}) as op:
        assert op.proc is not None
        yield op.proc


@contextmanager
def kueue_manager(kubectl: Kubectl, workload: Workload) -> Iterator[subprocess.Popen[bytes]]:
    proc = kueue.start(kubectl.kubeconfig, DATA)
    try:
        yield proc
    finally:
        kueue.stop(proc)


def _objects(peer: str, workload: Workload,
             namespace: str) -> tuple[drive.Kind, list[dict[str, Any]]]:
    names = [f"job-{i}" for i in range(workload.jobs)]
    if peer == OURS:
        return TRAINING_JOBS, [workloads.training_job(workload, n) for n in names]
    queue = kueue.LOCAL_QUEUE if peer == "kueue" else None
    return BATCH_JOBS, [workloads.batch_job(workload, n, namespace, queue) for n in names]


async def _measure(kubectl: Kubectl, peer: str, workload: Workload, namespace: str,
                   pid: int) -> report.Run:
    kind, objects = _objects(peer, workload, namespace)
    api = await drive.api(kubectl.kubeconfig)
    try:
        before_writes = await drive.settled_writes(api)
        parts = {c: drive.find_process(c, str(DATA)) for c in COMPONENTS}
        parts_before = {c: drive.proc_stat(p).cpu_seconds for c, p in parts.items()}
        before = drive.proc_stat(pid)
        started = time.monotonic()
        await drive.create_all(api, kind, namespace, objects)
        states = await drive.wait_done(api, kind, namespace, workload.jobs, timeout=900)
        seconds = time.monotonic() - started
        after = drive.proc_stat(pid)
        busy = {c: round(drive.proc_stat(p).cpu_seconds - parts_before[c], 1)
                for c, p in parts.items()}
        print(f"  CPU seconds of the cluster's components over the run: {busy}", flush=True)
        writes = apimetrics.delta(await drive.settled_writes(api), before_writes)
        print(f"  events by component/reason: {await drive.event_reasons(api, namespace)}",
              flush=True)
    finally:
        await api.close()
    tally: dict[str, int] = {}
    for state in states.values():
        tally[state] = tally.get(state, 0) + 1
    per_job = apimetrics.per_job(writes, workload.jobs, kind.resource)
    return report.Run(peer, seconds, workload.jobs, apimetrics.grouped(per_job),
                      after.cpu_seconds - before.cpu_seconds, after.peak_rss_mib, tally)


def one_run(kubectl: Kubectl, peer: str, workload: Workload, index: int,
            profile_to: Path | None) -> report.Run:
    namespace = f"bench-{workload.name}-{peer}-{index}"
    kubectl.run("create", "namespace", namespace)
    try:
        if peer == OURS:
            with operator(kubectl.kubeconfig, DATA / "operator.log") as proc, \
                    profile.recording(proc.pid, profile_to):
                return asyncio.run(_measure(kubectl, peer, workload, namespace, proc.pid))
        if peer == "kueue":
            for manifest in kueue.queues(workload.gpus, "1000", "4000Gi", namespace):
                kubectl.apply(manifest)
            with kueue_manager(kubectl, workload) as proc:
                try:
                    return asyncio.run(_measure(kubectl, peer, workload, namespace, proc.pid))
                finally:  # Kueue lifts its Workloads' finalizers only while it runs
                    _delete(kubectl, namespace)
        pid = drive.find_process("kube-controller-manager", str(DATA))
        return asyncio.run(_measure(kubectl, peer, workload, namespace, pid))
    finally:
        _delete(kubectl, namespace)


def _delete(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("delete", "namespace", namespace, "--wait=true", "--ignore-not-found",
                timeout=900)


def rotations(peers: Sequence[str], repeat: int) -> list[list[str]]:
    """Each repeat starts with the next peer, so none always runs on a fresh cluster."""
    return [[*peers[i % len(peers):], *peers[:i % len(peers)]] for i in range(repeat)]


def bench_workload(kubectl: Kubectl, workload: Workload, peers: Sequence[str], repeat: int,
                   profile_dir: Path | None) -> str:
    runs: dict[str, list[report.Run]] = {p: [] for p in peers}
    for i, order in enumerate(rotations(peers, repeat)):
        for peer in order:
            to = profile_dir / f"{workload.name}-{i}.txt" if profile_dir and peer == OURS \
                else None
            run = one_run(kubectl, peer, workload, i, to)
            runs[peer].append(run)
            print(f"  {workload.name} #{i + 1} {peer}: {run.seconds:.1f}s, "
                  f"{run.jobs_per_second:.1f} jobs/s, writes/job "
                  f"{json.dumps({k: round(v, 2) for k, v in run.writes.items()})}, "
                  f"cpu {run.cpu_seconds or 0:.1f}s, rss {run.peak_rss_mib or 0:.0f} MiB, "
                  f"{dict(run.states)}", flush=True)
            if to is not None:
                print(profile.summary(to.read_text()), flush=True)
    return report.table(workload.describe(), [report.median_run(runs[p]) for p in peers], OURS)


def with_cluster(nodes: int, body: Callable[[Kubectl], None], data: Path = DATA) -> None:
    """A fresh devcluster in `data` (fake nodes only) with the CRD, down again after."""
    with harness.devcluster(data, "--nodes", str(nodes), "--real-nodes", "0") as cluster:
        kubectl = cluster.kubectl
        kubectl.run("apply", "-f", str(ROOT / "crds"))
        kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.training.dev")
        body(kubectl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default="small,gangs,wide,scale",
                        help="comma-separated: " + ",".join(w.name for w in
                                                             workloads.WORKLOADS) + ",scale")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None,
                        help="a directory: py-spy profiles of the operator in each run")
    parser.add_argument("--scale-jobs", type=int, default=10_000)
    parser.add_argument("--queue-jobs", type=int, default=10_000)
    args = parser.parse_args()
    wanted = args.workloads.split(",")
    peers = [p for p in args.peers.split(",") if p]
    if "kueue" in peers:
        build.ensure_kueue()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    queue_pass(args.queue_jobs, 100)
    tables: list[str] = []
    for nodes, group in itertools.groupby(
            [w for w in workloads.WORKLOADS if w.name in wanted], key=lambda w: w.nodes):
        members = list(group)

        def body(kubectl: Kubectl, members: list[Workload] = members) -> None:
            if "kueue" in peers:
                for crd in kueue.crds():
                    kubectl.run("apply", "--server-side", "-f", str(crd))
            for w in members:
                print(f"{w.name}: {w.describe()}", flush=True)
                tables.append(bench_workload(kubectl, w, peers, args.repeat, args.profile))
                print(tables[-1], flush=True)

        with_cluster(nodes, body)
    if "scale" in wanted:
        def scaled(kubectl: Kubectl) -> None:
            tables.append(scale.run(kubectl, args.scale_jobs,
                                    lambda: operator(kubectl.kubeconfig, DATA / "operator.log")))
            print(tables[-1], flush=True)

        with_cluster(scale.NODES, scaled)
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
