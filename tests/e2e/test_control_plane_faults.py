"""Faults of the control plane while jobs are active: the API server and etcd killed and
restarted, watches expired by a compaction, the API server frozen for a minute.

Every fault is injected with devcluster's own commands (`python -m devcluster stop/start
<component>`), or a signal to a pid in its state. Afterwards each job must reach the phase its
workload implies within 30 s, with a complete history, one pod per worker, and the capacity
sampler (tests/capacity.py) never seeing a GPU committed twice.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.cluster import read_state
from tests.capacity import ADMITTED, JOB, Sampler
from tests.conftest import OPERATOR_NAMESPACE, Installation, Operator, devcluster_cli
from tests.e2e.test_operator_ha import probe
from tests.harness import ROOT, Cluster
from tests.kube import Kubectl, eventually, stop, training_job, wait_cluster_idle, wait_phase

pytestmark = [pytest.mark.kwok]
CONVERGE_SECONDS = 30
TERMINAL = ("Completed", "Failed", "DeployFailed", "Stopped")


def component(cluster: Cluster, verb: str, name: str, *flags: str) -> None:
    assert cluster.data_dir is not None
    done = devcluster_cli(verb, name, *flags, data_dir=cluster.data_dir, timeout=180)
    assert done.returncode == 0, f"devcluster {verb} {name}: {done.stderr}"


def pid_of(cluster: Cluster, name: str) -> int:
    assert cluster.data_dir is not None
    state = read_state(cluster.data_dir)
    assert state is not None
    return state.pids[name]


def succeed(seconds: int) -> dict[str, str]:
    return {"outcome": "succeed", "run-duration": f"{seconds}s"}


def workload(prefix: str) -> list[tuple[dict[str, Any], str]]:
    """40 jobs and the phase each must end in: while they run, the cluster (32 kwok GPUs)
    holds every phase at once. Gangs come last, so they queue behind the rest."""
    jobs: list[tuple[dict[str, Any], str]] = []

    def add(kind: str, count: int, expected: str, **spec: Any) -> None:
        jobs.extend((training_job(f"{prefix}-{kind}-{i}", **spec), expected)
                    for i in range(count))

    add("long", 4, "Completed", gpus=4, annotations=succeed(20))
    add("stop", 4, "Stopped", gpus=2, annotations=succeed(600))
    add("ok", 14, "Completed", annotations=succeed(1))
    add("fail", 6, "Failed", annotations={"outcome": "fail", "run-duration": "1s"},
        retries={"limit": 0})
    add("pull", 4, "DeployFailed", annotations={"outcome": "image-pull-error"})
    add("gang", 8, "Completed", workers=2, gpus=8, annotations=succeed(1))
    return jobs


def phases_now(ns: Kubectl) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j.get("status") or {}
            for j in ns.json("get", "trainingjobs")["items"]}


def path_problem(status: dict[str, Any], expected: str, before: str | None) -> str | None:
    """Why a finished job's history is not a path to `expected` that keeps `before`, the
    phase it had when the component was killed (None: it is). A short job may finish between
    two looks of the operator's, so Running may be missing; never a phase it was seen in."""
    seen = [h["phase"] for h in status.get("history") or []]
    path = seen[next((i for i, p in enumerate(seen) if p != "Pending"), len(seen)):]
    order = ["Created", "Deploying", "Running", expected]
    in_order = all(p in order for p in path) and path == sorted(path, key=order.index)
    if (not in_order or path[:2] != ["Created", "Deploying"] or path[-1] != expected
            or (before and before not in seen) or status.get("attempt") != 1
            or not status.get("reason")):
        return (f"history {seen} (was {before} at the kill), attempt {status.get('attempt')}, "
                f"reason {status.get('reason')}")
    return None


def reach(ns: Kubectl, name: str, phase: str, timeout: float = CONVERGE_SECONDS) -> None:
    """wait_phase, failing with what the job and its pods say instead."""
    try:
        wait_phase(ns, name, phase, timeout=int(timeout))
    except Exception as err:
        status = phases_now(ns).get(name) or {}
        pods = [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase"))
                for p in ns.json("get", "pods")["items"]]
        nodes = ns.run("get", "nodes", "--no-headers").stdout
        raise AssertionError(f"{name} not {phase} in {timeout}s: {status.get('phase')} "
                             f"{status.get('reason')}: {status.get('message')}; pods {pods}; "
                             f"nodes:\n{nodes}") from err


def apply_all(ns: Kubectl, jobs: list[dict[str, Any]]) -> None:
    ns.run("apply", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": jobs}))


def phase_counts(ns: Kubectl, jobs: dict[str, str]) -> dict[str, int]:
    now = phases_now(ns)
    counts: dict[str, int] = {}
    for job in jobs:
        phase = (now.get(job) or {}).get("phase", "")
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def in_phases(ns: Kubectl, jobs: dict[str, str]) -> bool:
    now = phases_now(ns)
    return all((now.get(job) or {}).get("phase") == phase for job, phase in jobs.items())


def kill_and_restart(cluster: Cluster, ns: Kubectl, name: str) -> float:
    """One round: 40 jobs in every phase, `name` killed (SIGKILL) for 3 s and started
    again; the seconds until every job but the queued gangs converged."""
    jobs = workload(name.split("-")[-1])
    expected = {j["metadata"]["name"]: phase for j, phase in jobs}
    apply_all(ns, [j for j, _ in jobs])
    wanted = ("Pending", "Running", "Completed", "Failed", "DeployFailed")
    print(f"before killing {name}:", eventually(
        lambda: (lambda c: c if all(c.get(p) for p in wanted) else None)(
            phase_counts(ns, expected)), timeout=90, what="every phase at once"))
    for job in expected:
        if expected[job] == "Stopped":
            stop(ns, job)
    before = {job: status.get("phase") for job, status in phases_now(ns).items()}
    component(cluster, "stop", name, "--kill")
    time.sleep(3)  # the outage itself
    component(cluster, "start", name)
    back = time.monotonic()
    eventually(lambda: in_phases(ns, {j: p for j, p in expected.items() if "-gang-" not in j}),
               timeout=CONVERGE_SECONDS, what=f"every job to converge within "
                                              f"{CONVERGE_SECONDS}s of {name} being back")
    converged = time.monotonic() - back
    eventually(lambda: in_phases(ns, {j: p for j, p in expected.items() if "-gang-" in j}),
               timeout=180, what="the queued gangs to run and complete")
    now = phases_now(ns)
    problems = {job: path_problem(now[job], phase, before.get(job))
                for job, phase in expected.items()}
    assert not {j: p for j, p in problems.items() if p}, problems
    return converged


@pytest.mark.usefixtures("running_operator")
def test_api_server_then_etcd_killed_while_forty_jobs_are_in_every_phase(
        cluster: Cluster, ns: Kubectl, kubectl: Kubectl) -> None:
    if cluster.data_dir is None:
        pytest.skip("needs devcluster to kill and restart its components")
    wait_cluster_idle(kubectl)
    with Sampler(kubectl) as sampler:
        converged = {name: kill_and_restart(cluster, ns, name)
                     for name in ("kube-apiserver", "etcd")}
    print(f"converged after the restart: {converged}")
    sampler.assert_never_overcommitted(min_samples=20)


def etcd_revision(port: int) -> int:
    return int(etcd_call(port, "range", {"key": base64.b64encode(b"/").decode()})
               ["header"]["revision"])


def etcd_call(port: int, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's JSON gateway on its client port (loopback)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/{method}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest.fixture
def fresh_operator(cluster: Cluster, installation: Installation, operator: Operator,
                   tmp_path: Path) -> Iterator[Operator]:
    """An operator of this test's own (the session's one stopped meanwhile), with watches
    that end every few seconds and nodes given a minute before they count as lost."""
    operator.stop()
    own = Operator(installation.token_kubeconfig(tmp_path / "op.kubeconfig"),
                   tmp_path / "operator.log", name="fault-operator",
                   env={"TRAININGJOB_WATCH_SECONDS": "5",
                        "TRAININGJOB_NODE_LOST_GRACE_SECONDS": "120"})
    own.start()
    try:
        eventually(lambda: probe(f"{own.health_url}/readyz") == (200, "ready, leader"),
                   timeout=40, what="the test's operator to lead")
        yield own
    finally:
        if own.proc is not None and own.proc.poll() is None:
            os.kill(own.proc.pid, signal.SIGCONT)
        own.stop()
        operator.start()


def test_watches_expired_by_a_compaction_act_on_every_change_made_meanwhile(
        cluster: Cluster, ns: Kubectl, kubectl: Kubectl, fresh_operator: Operator) -> None:
    """Frozen past the end of its watches, the operator resumes them from versions etcd has
    compacted and a restarted API server never cached: 410 Gone. The changes of that time
    (a stop, a delete, new jobs) must all be acted on, the delete included: a relist must
    drop a job it no longer holds, or its GPUs stay reserved for ever."""
    if cluster.data_dir is None:
        pytest.skip("needs devcluster's etcd")
    wait_cluster_idle(kubectl)
    op = fresh_operator
    for name in ("to-stop", "to-delete"):
        ns.apply(training_job(name, workers=2, gpus=8, annotations=succeed(600)))
    for name in ("to-stop", "to-delete"):
        reach(ns, name, "Running", 60)
    assert op.proc is not None
    os.kill(op.proc.pid, signal.SIGSTOP)
    try:
        stop(ns, "to-stop")
        ns.run("delete", "trainingjob", "to-delete", "--wait=false")
        for i in range(3):
            ns.apply(training_job(f"new-{i}", annotations=succeed(1)))
        # The whole cluster: admitted only once both jobs above hold nothing any more.
        ns.apply(training_job("everything", workers=4, gpus=8, annotations=succeed(1)))
        time.sleep(6)  # past the watches' 5 s: the server ends them meanwhile
        state = read_state(cluster.data_dir)
        assert state is not None
        port = state.ports["etcd_client"]
        compacted = etcd_revision(port)
        etcd_call(port, "compaction", {"revision": compacted, "physical": True})
        component(cluster, "restart", "kube-apiserver")
    finally:
        os.kill(op.proc.pid, signal.SIGCONT)
    resumed = time.monotonic()

    def acted() -> bool:
        """The operator's own part: the stop is carried out (its workers' deadline set) and
        the new jobs are admitted. What follows is kwok's and the garbage collector's, which
        relist after the API server's restart too, sometimes for half a minute."""
        now = phases_now(ns)
        stopping = [p for p in ns.json("get", "pods")["items"]
                    if (p["metadata"].get("labels") or {}).get(JOB) == "to-stop"]
        stopped = now["to-stop"].get("phase") == "Stopped" or (
            bool(stopping) and all(p["spec"].get("activeDeadlineSeconds") for p in stopping))
        return stopped and all(now[f"new-{i}"].get("phase") in (*ADMITTED, "Completed")
                               for i in range(3))

    eventually(acted, timeout=CONVERGE_SECONDS, what="the stop and the new jobs acted on")
    print(f"acted on {time.monotonic() - resumed:.1f}s after the operator resumed")
    reach(ns, "to-stop", "Stopped", 120)
    for i in range(3):
        reach(ns, f"new-{i}", "Completed", 120)
    reach(ns, "everything", "Completed", 120)  # only once the deleted job's GPUs are free
    print(f"converged {time.monotonic() - resumed:.1f}s after the operator resumed")
    log = op.log_path.read_text()
    assert " ended: 410 " in log, "no watch was expired: the test proved nothing"
    assert "Traceback" not in log
    assert op.alive()


@pytest.fixture
def own_cluster(cluster: Cluster, tmp_path: Path) -> Iterator[Cluster]:
    """A kwok-only devcluster of the test's own, with the CRD and the operator's namespace.
    A minute without the API server makes the node controller mark every node NotReady and
    their pods unready, and kwok, unlike a kubelet, never marks a pod ready again: the
    session's cluster (the chart's Deployment in it) must not inherit that."""
    if cluster.data_dir is None:
        pytest.skip("needs devcluster's processes")
    data_dir = tmp_path / "dc"
    started = devcluster_cli("up", "--real-nodes", "0", data_dir=data_dir)
    assert started.returncode == 0, started.stderr
    try:
        own = Cluster(data_dir / "kubeconfig", cluster.bin_dir, data_dir)
        own.kubectl.run("apply", "-f", str(ROOT / "crds"))
        own.kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.training.dev")
        own.kubectl.run("create", "namespace", OPERATOR_NAMESPACE)
        yield own
    finally:
        devcluster_cli("down", data_dir=data_dir)


def test_api_server_frozen_for_a_minute(own_cluster: Cluster, tmp_path: Path) -> None:
    """SIGSTOP: the API server neither answers nor closes connections. The operator keeps
    running, says on its probes that the API server does not answer (readiness fails,
    liveness does not: a restart would not bring it back), and converges afterwards."""
    kubectl = own_cluster.kubectl
    kubectl.run("create", "namespace", "frozen")
    ns = kubectl.in_namespace("frozen")
    op = Operator(own_cluster.kubeconfig, tmp_path / "operator.log", name="frozen-operator",
                  env={"TRAININGJOB_NODE_LOST_GRACE_SECONDS": "120"})
    op.start()
    try:
        eventually(lambda: probe(f"{op.health_url}/readyz") == (200, "ready, leader"),
                   timeout=40, what="the operator to lead")
        ns.apply(training_job("across", annotations=succeed(20)))
        reach(ns, "across", "Running", 60)
        apiserver = pid_of(own_cluster, "kube-apiserver")
        os.kill(apiserver, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            lost = eventually(
                lambda: (lambda r: r if r and r[0] == 503 and "API server" in r[1] else None)(
                    probe(f"{op.health_url}/readyz")),
                timeout=30, interval=1, what="/readyz to report the lost API server")
            live = probe(f"{op.health_url}/healthz")
            print(f"frozen: /readyz {lost}, /healthz {live}")
            assert live is not None and live[0] == 200 and "API server" in live[1], live
            while time.monotonic() - frozen < 60:
                assert op.alive(), "the operator exited while the API server was frozen"
                time.sleep(1)
        finally:
            os.kill(apiserver, signal.SIGCONT)
        back = time.monotonic()
        eventually(lambda: probe(f"{op.health_url}/readyz") == (200, "ready, leader"),
                   timeout=CONVERGE_SECONDS, what="the operator to lead again")
        ns.apply(training_job("after", annotations=succeed(1)))
        reach(ns, "across", "Completed", CONVERGE_SECONDS)
        reach(ns, "after", "Completed", CONVERGE_SECONDS)
        print(f"converged {time.monotonic() - back:.1f}s after the API server resumed")
        assert op.alive() and "Traceback" not in op.log_path.read_text()
    finally:
        op.stop()


def test_a_job_in_a_namespace_whose_service_account_is_not_made_yet_waits_for_it(
        cluster: Cluster, kubectl: Kubectl, running_operator: Operator) -> None:
    """The controller-manager makes each namespace's `default` ServiceAccount a moment after
    the namespace (longer while it catches up after an API server restart); until then every
    pod there is refused (403). That passes by itself: the job waits in Deploying and its
    workers are created once the ServiceAccount is there, as batch/v1 Job does."""
    if cluster.data_dir is None:
        pytest.skip("needs devcluster to stop its controller-manager")
    name = f"t-no-sa-yet-{os.getpid()}"
    ns = kubectl.in_namespace(name)
    component(cluster, "stop", "kube-controller-manager")
    try:
        kubectl.run("create", "namespace", name)
        ns.apply(training_job("early", annotations=succeed(1)))
        refused = f"{name}/early: pods \"early-worker-0\" is forbidden: error looking up " \
                  "service account"

        def tries() -> int:
            return running_operator.log_path.read_text().count(refused)

        eventually(lambda: tries() >= 2, timeout=30, what="two tries to create the worker")
        status = phases_now(ns)["early"]
        assert status["phase"] == "Deploying", status
    finally:
        component(cluster, "start", "kube-controller-manager")
    try:
        reach(ns, "early", "Completed")
        assert path_problem(phases_now(ns)["early"], "Completed", "Deploying") is None
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)
