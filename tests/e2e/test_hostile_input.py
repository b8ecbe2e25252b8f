"""Hostile input, generated: 300 TrainingJob manifests from the CRD's own schema plus
mutations (tests/hostile.py), applied to the real API server with the operator running.

Each one is refused by `kubectl apply` with a message that names a field it broke, or is
accepted and gets a phase with a reason within seconds. What a pod would refuse later, apply
refuses now: no accepted job ends `PodRejected`, and one that ends `InvalidSpec` (what the
schema cannot say) names the field. The operator never restarts and never logs a traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Operator
from tests.hostile import Manifest, manifests
from tests.kube import Kubectl, eventually

pytestmark = [pytest.mark.kwok]

EXAMPLES = 300
PHASE_WITHIN = 20  # seconds from creation to a phase and a reason, on 2 busy cores
# Settled: nothing left that could still create a pod (and so be refused as one).
WAITING_FOREVER = {"NoNodeFits", "GangTooLarge"}


def _settled(status: dict[str, Any]) -> bool:
    phase, reason = status.get("phase"), status.get("reason")
    if phase == "Pending":
        return reason in WAITING_FOREVER
    return phase not in (None, "Created")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(900)
def test_generated_manifests_are_refused_naming_the_field_or_run_to_a_phase(
        ns: Kubectl, kubectl: Kubectl, running_operator: Operator) -> None:
    pid = running_operator.proc.pid if running_operator.proc else None
    log_start = running_operator.log_path.stat().st_size
    accepted: dict[str, Manifest] = {}
    refused: list[tuple[Manifest, str]] = []
    count = [0]

    # derandomize: the same 300 manifests on every run, so a CI failure replays exactly.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data: st.DataObject) -> None:
        count[0] += 1
        m = data.draw(manifests(f"h{count[0]:03d}"), label="manifest")
        out = ns.run("apply", "-f", "-", input_text=json.dumps(m.body), check=False)
        if out.returncode == 0:
            accepted[m.name] = m
            return
        message = out.stderr.strip()
        assert m.mutated, f"a valid manifest was refused: {message}\n{m.body}"
        assert m.named_in(message), (f"refused without naming {m.mutated}: {message}\n"
                                     f"{m.body}")
        refused.append((m, message))

    one()
    assert count[0] >= EXAMPLES and len(accepted) > 50 and len(refused) > 50, \
        (count[0], len(accepted), len(refused))

    def statuses() -> dict[str, dict[str, Any]]:
        items = ns.json("get", "trainingjobs")["items"]
        return {j["metadata"]["name"]: j for j in items}

    def all_have_a_phase() -> dict[str, dict[str, Any]] | None:
        jobs = statuses()
        missing = [n for n in accepted if n in jobs and not (
            (jobs[n].get("status") or {}).get("phase") and jobs[n]["status"].get("reason"))]
        return None if missing else jobs

    jobs = eventually(all_have_a_phase, timeout=PHASE_WITHIN, what="a phase and a reason")
    slowest = 0.0
    for name, m in accepted.items():
        job = jobs.get(name)
        if job is None:  # deleted by its own ttlSecondsAfterFinished: it finished
            assert m.body["spec"].get("ttlSecondsAfterFinished") is not None, name
            continue
        first = job["status"]["history"][0]["time"]
        took = _seconds(first) - _seconds(job["metadata"]["creationTimestamp"])
        assert took <= PHASE_WITHIN, (name, took, job["status"])
        slowest = max(slowest, took)

    def settled() -> dict[str, dict[str, Any]] | None:
        jobs = statuses()
        return jobs if all(_settled(j.get("status") or {}) for j in jobs.values()) else None

    jobs = eventually(settled, timeout=120, interval=2,
                      what="every accepted job past pod creation or waiting for good")
    print(f"{len(refused)} refused, {len(accepted)} accepted (a phase within {slowest:.0f} s):",
          dict(Counter(f"{j['status']['phase']}/{j['status']['reason']}"
                       for j in jobs.values())))
    rejected = [f"{name}: {j['status']['message']}\n  {accepted[name].body['spec']}"
                for name, j in jobs.items() if j["status"]["reason"] == "PodRejected"]
    assert not rejected, "apply accepted what a pod refused:\n" + "\n".join(rejected)
    unnamed = [j["status"]["message"] for j in jobs.values()
               if j["status"]["reason"] == "InvalidSpec"
               and not j["status"]["message"].startswith(("spec.", "metadata."))]
    assert not unnamed, unnamed

    assert running_operator.alive() and running_operator.proc is not None and \
        running_operator.proc.pid == pid, "the operator restarted"
    with running_operator.log_path.open("rb") as log:
        log.seek(log_start)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged, logged[logged.index("Traceback") - 2000:][:6000]

    ns.run("delete", "trainingjobs", "--all", "--wait=true", "--timeout=120s", timeout=180)
    eventually(lambda: not ns.json("get", "pods")["items"], timeout=120,
               what="the generated jobs' pods to go")

