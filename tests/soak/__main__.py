"""`make soak DURATION=30m`: the operator under a steady mix of jobs for a long time.

On a devcluster of its own (.devcluster-soak, four fake 8-GPU nodes, no real node, no
services) the operator runs as a process, as in `make bench`. One asyncio client creates a
job every --interval seconds in the rotation of plan.ROTATION (every outcome, stops and
deletes), flaps nodes NotReady (plan.flaps), and watches every job reach its planned end. It
samples the operator's RSS and open fds (/proc) and asyncio tasks (its /metrics), the API
server's request counters, and GPU commitments against allocatable (tests/capacity.py). After
the last job is created it waits for every job to be gone, prints the report and exits 1 if a
check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import subprocess
import time
import urllib.request
from pathlib import Path

from kubernetes.aio.client.exceptions import ApiException
from trainingjob_operator.kube import Rest

from devcluster.cluster import free_ports
from tests.bench import drive
from tests.bench.__main__ import operator, with_cluster
from tests.capacity import Sampler
from tests.kube import Kubectl
from tests.soak import checks, plan, report

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".devcluster-soak"
NAMESPACE = "soak"
NODES = 4
NOT_READY = "devcluster.training.dev/node-condition"
TERMINAL = ("Completed", "Failed", "DeployFailed", "Stopped")
OBSERVE_EVERY, OPERATOR_EVERY, API_EVERY, CAPACITY_EVERY = 2.0, 10.0, 30.0, 2.0
MERGE = "application/merge-patch+json"
JOBS = f"/apis/training.dev/v1alpha1/namespaces/{NAMESPACE}/trainingjobs"


def operator_metric(metrics_port: int, name: str) -> float:
    """The sum of the operator's series called `name` (over their labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        values = [float(line.rsplit(" ", 1)[1]) for line in r.read().decode().splitlines()
                  if line.startswith((name + " ", name + "{"))]
    if not values:
        raise LookupError(f"the operator's /metrics has no {name}")
    return sum(values)


def sample_operator(pid: int, metrics_port: int, at: float) -> checks.Sample:
    return checks.Sample(at, drive.proc_stat(pid).rss_mib,
                         sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()),
                         operator_metric(metrics_port, "trainingjob_operator_asyncio_tasks"))


class Soak:
    """The imperative part: one loop that creates, acts, flaps, observes and samples."""

    def __init__(self, rest: Rest, proc: subprocess.Popen[bytes], metrics_port: int,
                 duration: float, interval: float, nodes: list[str]) -> None:
        self.rest, self.proc, self.metrics_port = rest, proc, metrics_port
        self.duration, self.interval, self.nodes = duration, interval, nodes
        self.tracked: dict[str, plan.Tracked] = {}
        self.flaps = plan.flaps(duration, len(nodes))
        self.samples: list[checks.Sample] = []
        self.api: list[tuple[float, dict[str, float]]] = []
        self.started = time.monotonic()
        self.down: set[str] = set()
        self.drained_at = duration

    def now(self) -> float:
        return time.monotonic() - self.started

    def _path(self, name: str = "") -> str:
        return JOBS + (f"/{name}" if name else "")

    async def _set_node(self, node: str, not_ready: bool) -> None:
        value = "NotReady" if not_ready else None
        await self.rest.request("PATCH", f"/api/v1/nodes/{node}",
                                {"metadata": {"annotations": {NOT_READY: value}}},
                                content_type=MERGE)
        (self.down.add if not_ready else self.down.discard)(node)

    async def _flap(self, t: float) -> None:
        for f in self.flaps:
            node = self.nodes[f.node]
            inside = f.at <= t < f.at + f.seconds
            if inside and node not in self.down:
                print(f"[{t:5.0f}s] {node} NotReady for {f.seconds:.0f}s", flush=True)
                await self._set_node(node, True)
            elif not inside and node in self.down and t >= f.at + f.seconds and \
                    not any(g.at <= t < g.at + g.seconds for g in self.flaps if g.node == f.node):
                print(f"[{t:5.0f}s] {node} Ready again", flush=True)
                await self._set_node(node, False)

    async def _create(self, t: float) -> None:
        while len(self.tracked) * self.interval <= min(t, self.duration - 1e-9):
            p = plan.job_plan(len(self.tracked), len(self.tracked) * self.interval)
            self.tracked[p.name] = plan.Tracked(p)
            await self.rest.request("POST", self._path(), plan.manifest(p))

    async def _act(self, t: float) -> None:
        for tr in self.tracked.values():
            at = tr.plan.act_at
            if at is None or tr.acted or t < at or tr.gone is not None:
                continue
            tr.acted = True
            try:
                if tr.plan.outcome.act == "stop":
                    await self.rest.request("PATCH", self._path(tr.plan.name),
                                            {"spec": {"stop": True}}, content_type=MERGE)
                else:
                    await self.rest.request("DELETE", self._path(tr.plan.name))
            except ApiException as err:
                tr.wrong = f"{tr.plan.outcome.act} refused: {err.status} {err.reason}"

    async def _observe(self, t: float) -> None:
        listed = await self.rest.request("GET", self._path())
        seen = {o["metadata"]["name"]: o.get("status") or {} for o in listed["items"]}
        for name, tr in self.tracked.items():
            if tr.gone is not None:
                continue
            expect = tr.plan.outcome.expect
            status = seen.get(name)
            if status is None:
                tr.gone = t
                if expect == plan.GONE and tr.acted:
                    tr.ended = tr.ended or t
                elif tr.ended is None and tr.wrong is None:
                    tr.wrong = f"gone while {tr.last}, before its end was seen"
                continue
            phase = status.get("phase") or "new"
            tr.last = f"{phase}/{status.get('reason', '')}"
            if phase == expect:
                tr.ended = tr.ended or t
            elif phase in TERMINAL and tr.wrong is None:
                tr.wrong = f"ended {tr.last}: {status.get('message', '')[:200]}"

    def _all_gone(self) -> bool:
        return all(tr.gone is not None or tr.wrong is not None for tr in self.tracked.values())

    def _last_due(self) -> float:
        return max((tr.plan.deadline for tr in self.tracked.values()), default=0.0) + \
            plan.TTL_SECONDS + 10

    async def run(self) -> None:
        last = {"observe": -1e9, "operator": -1e9, "api": -1e9, "log": 0.0}
        while True:
            t = self.now()
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.proc.returncode}")
            if t < self.duration:
                await self._create(t)
            await self._act(t)
            await self._flap(t)
            if t - last["observe"] >= OBSERVE_EVERY:
                last["observe"] = t
                await self._observe(t)
            if t - last["operator"] >= OPERATOR_EVERY and t <= self.duration:
                last["operator"] = t
                self.samples.append(sample_operator(self.proc.pid, self.metrics_port, t))
            if t - last["api"] >= API_EVERY and t <= self.duration + API_EVERY:
                last["api"] = t
                text = await drive.metrics_text(self.rest)
                self.api.append((t, checks.by_verb_resource(text)))
            if t - last["log"] >= 60:
                last["log"] = t
                self._progress(t)
            if t >= self.duration and (self._all_gone() or t > self._last_due()):
                self.drained_at = t
                return
            await asyncio.sleep(0.5)

    def _progress(self, t: float) -> None:
        s = self.samples[-1] if self.samples else None
        active = sum(1 for tr in self.tracked.values() if tr.gone is None)
        print(f"[{t:5.0f}s] jobs created {len(self.tracked)}, not yet gone {active}, "
              f"wrong {sum(1 for tr in self.tracked.values() if tr.wrong)}"
              + (f"; operator RSS {s.rss_mib:.0f} MiB, fds {s.fds}, tasks {s.tasks:.0f}"
                 if s else ""), flush=True)

    async def restore_nodes(self) -> None:
        for node in list(self.down):
            await self._set_node(node, False)

    async def leftover_pods(self, wait: float = 60) -> list[str]:
        deadline = time.monotonic() + wait
        while True:
            pods = (await self.rest.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"))
            names = [p["metadata"]["name"] for p in pods["items"]]
            if not names or time.monotonic() > deadline:
                return names
            await asyncio.sleep(2)


def _counters(metrics_port: int) -> dict[str, float]:
    try:
        return {name: operator_metric(metrics_port, f"trainingjob_{name}_total")
                for name in ("admissions", "retries", "transitions")}
    except (LookupError, OSError) as err:  # a figure of the report, not a check
        print(f"the operator's counters could not be read: {err}", flush=True)
        return {}


def _keep(soak: Soak) -> None:
    """The raw samples, in case the report is wanted again (or fails)."""
    (DATA / "soak-samples.json").write_text(json.dumps({
        "operator": [dataclasses.asdict(s) for s in soak.samples], "api": soak.api,
        "jobs": {n: {"ended": t.ended, "gone": t.gone, "wrong": t.wrong, "last": t.last}
                 for n, t in soak.tracked.items()}}))


def _capacity(sampler: Sampler) -> report.Capacity:
    twice = [f"{k}: {len(v)} pods" for k, v in sampler.uids.items() if len(v) > 1]
    return report.Capacity(sampler.samples, sampler.over, twice, len(sampler.unschedulable),
                           sampler.peak, len(sampler.errors))


def _flat(soak: Soak) -> tuple[list[checks.Flatness], list[checks.Flatness]]:
    def series(field: str) -> list[tuple[float, float]]:
        return [(s.at, float(getattr(s, field))) for s in soak.samples]

    gated = [checks.flatness("RSS MiB", series("rss_mib"), soak.duration),
             checks.flatness("asyncio tasks", series("tasks"), soak.duration)]
    return gated, [checks.flatness("open fds", series("fds"), soak.duration)]


async def _soak(kubectl: Kubectl, proc: subprocess.Popen[bytes], metrics_port: int,
                duration: float, interval: float, commit: str) -> report.Soak:
    rest = await drive.api(kubectl.kubeconfig)
    nodes = sorted(n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"])
    soak = Soak(rest, proc, metrics_port, duration, interval, nodes)
    exit_code: int | None = None
    try:
        with Sampler(kubectl, interval=CAPACITY_EVERY) as sampler:
            try:
                await soak.run()
            except RuntimeError as err:
                print(err, flush=True)
                exit_code = proc.returncode
            finally:
                await soak.restore_nodes()
        leftover = await soak.leftover_pods() if exit_code is None else []
        counters = _counters(metrics_port) if exit_code is None else {}
        early, late = checks.window_rates(soak.api, duration)
    finally:
        await rest.close()
        _keep(soak)
    gated, informative = _flat(soak)
    return report.Soak(duration, interval, commit, gated, informative,
                       checks.judge_jobs(soak.tracked.values()), _capacity(sampler),
                       soak.flaps, early, late, leftover, soak.drained_at - duration, exit_code,
                       counters)


def _source(commit: str) -> Path:
    """The operator's package as committed: the working tree is shared with people editing
    it, and the figures belong to one commit. PYTHONPATH puts it before the editable
    install (whose finder comes last)."""
    out = DATA / "operator-src"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "operator/trainingjob_operator"],
                             cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "operator"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=plan.parse_duration, default="30m",
                        help="how long jobs are created: 30m, 1h, 90s (then the drain)")
    parser.add_argument("--interval", type=float, default=4.0,
                        help="seconds between two job creations")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    results: list[report.Soak] = []

    def body(kubectl: Kubectl) -> None:
        kubectl.run("create", "namespace", NAMESPACE)
        (metrics_port,) = free_ports(1)
        env = {"TRAININGJOB_METRICS_PORT": str(metrics_port), "PYTHONPATH": str(_source(commit))}
        with operator(kubectl.kubeconfig, DATA / "operator.log", env) as proc:
            results.append(asyncio.run(_soak(kubectl, proc, metrics_port, args.duration,
                                             args.interval, commit)))

    with_cluster(NODES, body, DATA)
    (result,) = results
    print(report.markdown(result), flush=True)
    if report.failures(result):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
