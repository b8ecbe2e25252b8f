"""Hostile input: every strike of tests/hostile.py's catalogue once, and a fixed sample of
generated TrainingJobs (the CRD's own schema plus mutations), created on the real API server
with the operator running, by a user who may create TrainingJobs but not pods, next to a
bystander in another namespace.

Each one is refused by the API server with a message that names a field it broke, or is
accepted and gets a phase with a reason within seconds, and settles. A Pod Security payload
(host namespaces, privilege, Unconfined profiles, unsafe sysctls, volumes from the node or
the network, system priority classes, tolerations of every taint) is refused at create for
this user. No accepted job ends PodRejected unless the pod's refusal names what it broke; one
that ends InvalidSpec names the field. An accelerator no node has never gets a pod, nor does a
CPU-only gang of thousands, and no pod carries the job's NVIDIA_VISIBLE_DEVICES. No message
or Event the operator writes carries a control character. The bystander, a one-GPU job made
by the admin in another namespace right after the hostile batch and again once it settled,
is Running within seconds both times. The operator never restarts and never logs a traceback.

Manifests are created with `kubectl create` (the same server-side checks as `kubectl apply`,
whose last-applied annotation would double a manifest near the size limits and be refused
for the annotation's size instead). Every check runs to the end and the failures are reported
together, by the strike or mutation that caused them.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Operator
from tests.hostile import RESERVED_ENV, RESERVED_ENV_VALUE, Manifest, catalogue, generated
from tests.kube import Kubectl, eventually, training_job, wait_cluster_idle

pytestmark = [pytest.mark.kwok]

GENERATED = 160  # and the catalogue's ~240: about two minutes on 2 busy cores
PHASE_WITHIN = 20  # seconds from creation to a phase and a reason, on 2 busy cores
BYSTANDER_WITHIN = 15  # seconds from the bystander's creation to Running
SETTLE_WITHIN = 120
TRAINER = "trainer"  # may create TrainingJobs, not pods
# The bystander's node: tainted for the test, so that what the hostile jobs may rightly hold
# (GPUs of jobs that run) never explains a bystander that waits. Only a toleration of every
# taint, which the admission policy refuses this user, could reach it.
TAINT_KEY = "training.dev/hostile-input-bystander"
# Settled: nothing left that could still create a pod (and so be refused as one).
WAITING_FOREVER = {"NoNodeFits", "GangTooLarge"}
REJECTED = {"PodRejected", "ServiceRejected"}
# C0 controls but tab and newline, DEL, C1 (ESC, BEL, CSI...): a terminal acts on these.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _settled(status: dict[str, Any]) -> bool:
    phase, reason = status.get("phase"), status.get("reason")
    if phase == "Pending":
        return reason in WAITING_FOREVER
    return phase not in (None, "Created")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Findings:
    """Every failed check, by check and by the manifest's strikes, reported at the end."""

    def __init__(self) -> None:
        self.by_check: dict[str, list[str]] = defaultdict(list)

    def add(self, check: str, m: Manifest | None, detail: str) -> None:
        who = f"{m.name} [{m.label}]" if m else "-"
        self.by_check[check].append(f"{who}: {detail[:1500]}")

    def report(self) -> str:
        out = []
        for check, items in self.by_check.items():
            out.append(f"== {check}: {len(items)}")
            out += [f"  {i}" for i in items]
        return "\n".join(out)


@pytest.fixture
def trainer(ns: Kubectl) -> Kubectl:
    """The test's namespace with a user who may create TrainingJobs but not pods, once the
    chart's admission policy refuses that user a hostNetwork template (RBAC and a policy
    binding take effect a moment after they are written)."""
    ns.run("create", "serviceaccount", TRAINER)
    ns.run("create", "role", TRAINER, "--verb=create,get,list,watch,patch,update,delete",
           "--resource=trainingjobs.training.dev")
    ns.run("create", "rolebinding", TRAINER, f"--role={TRAINER}",
           f"--serviceaccount={ns.namespace}:{TRAINER}")
    probe = json.dumps(training_job("probe", gpus=0, template={"spec": {"hostNetwork": True}}))
    eventually(lambda: "hostNetwork" in _create(ns, probe, "--dry-run=server").stderr,
               timeout=60, what="the admission policy to refuse the trainer a hostNetwork pod")
    assert _user(ns, "auth", "can-i", "create", "pods").stdout.strip() == "no"
    return ns


def _user(ns: Kubectl, *args: str, input_text: str | None = None) -> Any:
    return ns.run(f"--as=system:serviceaccount:{ns.namespace}:{TRAINER}", *args, check=False,
                  input_text=input_text, timeout=120)


def _create(ns: Kubectl, body: str, *flags: str) -> Any:
    return _user(ns, "create", *flags, "-f", "-", input_text=body)


@pytest.fixture
def bystander_node(kubectl: Kubectl) -> Iterator[str]:
    wait_cluster_idle(kubectl)
    nodes = sorted(n["metadata"]["name"] for n in kubectl.json(
        "get", "nodes", "-l", "type=kwok")["items"])
    node = nodes[-1]
    kubectl.run("taint", "node", node, f"{TAINT_KEY}=only:NoSchedule", "--overwrite")
    try:
        yield node
    finally:
        kubectl.run("taint", "node", node, f"{TAINT_KEY}-", check=False)


def _bystander(ns: Kubectl, name: str, node: str, findings: Findings) -> None:
    """A one-GPU job on the bystander's node: Running within BYSTANDER_WITHIN seconds."""
    ns.apply(training_job(name, gpus=1, template={"spec": {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": TAINT_KEY, "operator": "Equal", "value": "only",
                         "effect": "NoSchedule"}]}}))
    start = time.monotonic()

    def running() -> bool:
        status = ns.json("get", "trainingjob", name).get("status") or {}
        return status.get("phase") == "Running"

    try:
        eventually(running, timeout=BYSTANDER_WITHIN, interval=0.25, what=f"{name} Running")
        print(f"{name} Running {time.monotonic() - start:.1f} s after it was created")
    except AssertionError:
        job = ns.json("get", "trainingjob", name)
        findings.add("bystander not Running within seconds", None,
                     f"{name} after {BYSTANDER_WITHIN} s: {job.get('status')}")
    ns.run("delete", "trainingjob", name, "--wait=false")


@pytest.mark.timeout(900)
def test_hostile_manifests_are_refused_naming_the_field_or_settle_and_never_stall_the_queue(
        trainer: Kubectl, kubectl: Kubectl, other_ns: Kubectl, bystander_node: str,
        running_operator: Operator) -> None:
    ns = trainer
    pid = running_operator.proc.pid if running_operator.proc else None
    log_start = running_operator.log_path.stat().st_size
    findings = Findings()
    batch = catalogue() + generated(GENERATED)
    accepted: dict[str, Manifest] = {}
    refusals: dict[str, str] = {}
    refused = 0
    began = time.monotonic()
    for m in batch:
        out = _create(ns, json.dumps(m.body))
        if out.returncode == 0:
            accepted[m.name] = m
            for asked in m.privileged():
                findings.add("privileged payload accepted from a user who may not create pods",
                             m, asked)
            continue
        refused += 1
        message = out.stderr.strip()
        refusals[m.name] = message
        if not m.mutated:
            findings.add("valid manifest refused", m, f"{message}\n{m.body}")
        elif not m.named_in(message):
            findings.add("refused without naming the field", m,
                         f"{message[:600]} (touched {m.mutated})")
    print(f"{len(batch)} created in {time.monotonic() - began:.0f} s: {refused} refused, "
          f"{len(accepted)} accepted")
    assert len(accepted) > 50 and refused > 50, (len(accepted), refused)

    # Right after the batch, while the operator works through it.
    _bystander(other_ns, "bystander-1", bystander_node, findings)

    def statuses() -> dict[str, dict[str, Any]]:
        items = ns.json("get", "trainingjobs")["items"]
        return {j["metadata"]["name"]: j for j in items}

    def missing(jobs: dict[str, dict[str, Any]]) -> list[str]:
        return [n for n in accepted if n in jobs and not (
            (jobs[n].get("status") or {}).get("phase") and jobs[n]["status"].get("reason"))]

    try:
        jobs = eventually(lambda: (lambda j: None if missing(j) else j)(statuses()),
                          timeout=PHASE_WITHIN, what="a phase and a reason")
    except AssertionError:
        jobs = statuses()
        for name in missing(jobs):
            findings.add("no phase and reason", accepted[name], str(jobs[name].get("status")))
    slowest = 0.0
    for name, m in accepted.items():
        job = jobs.get(name)
        if job is None:  # deleted by its own ttlSecondsAfterFinished: it finished
            if not isinstance(m.body["spec"].get("ttlSecondsAfterFinished"), int):
                findings.add("job vanished", m, "deleted without a ttlSecondsAfterFinished")
            continue
        history = (job.get("status") or {}).get("history") or []
        if not history:
            continue  # reported above
        took = _seconds(history[0]["time"]) - _seconds(job["metadata"]["creationTimestamp"])
        if took > PHASE_WITHIN:
            findings.add("phase too late", m, f"{took:.0f} s: {job['status']}")
        slowest = max(slowest, took)

    def settled() -> dict[str, dict[str, Any]] | None:
        jobs = statuses()
        return jobs if all(_settled(j.get("status") or {}) for j in jobs.values()) else None

    try:
        jobs = eventually(settled, timeout=SETTLE_WITHIN, interval=2,
                          what="every accepted job past pod creation or waiting for good")
    except AssertionError:
        jobs = statuses()
        for name, job in jobs.items():
            if not _settled(job.get("status") or {}) and name in accepted:
                findings.add("never settled", accepted[name], str(job.get("status")))
    print(f"{refused} refused, {len(accepted)} accepted (a phase within {slowest:.0f} s):",
          dict(Counter(f"{(j.get('status') or {}).get('phase')}/"
                       f"{(j.get('status') or {}).get('reason')}" for j in jobs.values())))

    # What became of each strike of the catalogue, for whoever reads a failure.
    for m in batch:
        if m.name.startswith("c"):
            status = (jobs.get(m.name) or {}).get("status") or {}
            said = refusals.get(m.name, "").replace("\n", " ")
            print(f"{m.name} {m.label}: " + (f"refused: {said[:160]}" if m.name in refusals else
                  f"{status.get('phase')}/{status.get('reason')}: "
                  f"{(status.get('message') or '')[:120]!r}"))

    # Once settled, with every hostile job still there.
    _bystander(other_ns, "bystander-2", bystander_node, findings)

    pods = ns.json("get", "pods")["items"]
    _judge(jobs, accepted, pods, ns.json("get", "events")["items"], findings)

    if not (running_operator.alive() and running_operator.proc is not None
            and running_operator.proc.pid == pid):
        findings.add("the operator restarted", None, f"pid {pid}")
    with running_operator.log_path.open("rb") as log:
        log.seek(log_start)
        logged = log.read().decode(errors="replace")
    if "Traceback" in logged:
        at = logged.index("Traceback")
        findings.add("the operator logged a traceback", None,
                     f"{logged.count('Traceback')} times; the first:\n"
                     f"{logged[max(0, at - 1500):at + 3000]}")

    ns.run("delete", "trainingjobs", "--all", "--wait=true", "--timeout=120s", timeout=180)
    eventually(lambda: not ns.json("get", "pods")["items"], timeout=120,
               what="the hostile jobs' pods to go")
    assert not findings.by_check, findings.report()


def _judge(jobs: dict[str, dict[str, Any]], accepted: dict[str, Manifest],
           pods: list[dict[str, Any]], events: list[dict[str, Any]], findings: Findings) -> None:
    """What the settled jobs, their pods and the operator's Events must show."""
    for name, job in jobs.items():
        m = accepted.get(name)
        if m is None:
            continue
        status = job.get("status") or {}
        reason, message = status.get("reason"), status.get("message") or ""
        if reason in REJECTED and not (m.mutated and (
                m.pod_named_in(message) or (m.big and "too large" in message.lower()))):
            findings.add("accepted, then the pod refused it without naming the field", m,
                         f"{reason}: {message}")
        if reason == "InvalidSpec" and not message.startswith(("spec.", "metadata.")):
            findings.add("InvalidSpec without naming the field first", m, message)
        if not m.mutated and reason in {"InvalidSpec", *REJECTED}:
            findings.add("valid manifest failed", m, f"{reason}: {message}")
        texts = [message] + [h.get("message") or "" for h in status.get("history") or []] + [
            c.get("message") or "" for c in status.get("conditions") or []]
        if any(CONTROL.search(t) for t in texts):
            findings.add("control characters in the job's status", m,
                         repr([t for t in texts if CONTROL.search(t)][:3]))
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") == "TrainingJob" and CONTROL.search(event.get("message") or ""):
            findings.add("control characters in an Event", accepted.get(involved.get("name", "")),
                         repr(event.get("message")))
    with_pods: set[str] = set()
    for p in pods:
        owner = p["metadata"]["name"].rsplit("-worker-", 1)[0]
        m = accepted.get(owner)
        if m is None:
            continue
        if owner not in with_pods:
            with_pods.add(owner)
            for strike in m.no_pods():
                findings.add("a pod for a job the queue cannot count or bound", m,
                             f"{strike}: pod {p['metadata']['name']}")
        containers = p["spec"].get("initContainers", []) + p["spec"]["containers"]
        for c in containers:
            for var in c.get("env") or []:
                if var.get("name") in RESERVED_ENV and (
                        var.get("value") == RESERVED_ENV_VALUE or "valueFrom" in var):
                    findings.add("a pod carries a reserved GPU env var from the job", m,
                                 f"{p['metadata']['name']}/{c['name']}: {var}")
