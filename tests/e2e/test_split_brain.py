"""Split brain: the leader freezes (SIGSTOP: a GC pause, a frozen VM) past its lease, the
standby takes over and works, then the old leader wakes up believing nothing happened.

The proof is the API server's audit log: after it resumes, the old leader's token writes
nothing (not even a refused write), because the Lease fences it (its renewals stopped longer
than the renew deadline ago, and the Lease names another holder) and every status write
carries a resourceVersion precondition. To show the check can fail, the same scenario runs
once with the lease fence removed (tests/fixtures/unfenced) and must find writes.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Installation, Operator
from tests.e2e.test_operator_ha import credential_id, holder, probe, writes_by
from tests.harness import ROOT, Cluster
from tests.kube import Kubectl, eventually, training_job, wait_cluster_idle, wait_phase

pytestmark = [pytest.mark.kwok]
UNFENCED = ROOT / "tests" / "fixtures" / "unfenced"


def _succeed(name: str) -> dict[str, object]:
    return training_job(name, annotations={"outcome": "succeed", "run-duration": "1s"})


def _when(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["requestReceivedTimestamp"]).replace("Z", "+00:00"))


@pytest.mark.parametrize("fence", ["fenced", "unfenced"])
def test_a_leader_frozen_past_its_lease_writes_nothing_when_it_wakes(
        fence: str, cluster: Cluster, installation: Installation, operator: Operator,
        ns: Kubectl, kubectl: Kubectl, tmp_path: Path) -> None:
    if cluster.data_dir is None:
        pytest.skip("needs devcluster's audit log")
    wait_cluster_idle(kubectl)
    operator.stop()  # SIGTERM: it hands the Lease over at once
    path = os.pathsep.join(p for p in (str(UNFENCED) if fence == "unfenced" else "",
                                       os.environ.get("PYTHONPATH", "")) if p)
    old = Operator(installation.token_kubeconfig(tmp_path / "old.kubeconfig"),
                   tmp_path / "old.log", name="old-leader", env={"PYTHONPATH": path})
    new = Operator(installation.token_kubeconfig(tmp_path / "new.kubeconfig"),
                   tmp_path / "new.log", name="new-leader")
    try:
        old.start()
        eventually(lambda: holder(kubectl) == old.name, timeout=40, what="the old leader")
        new.start()
        eventually(lambda: probe(f"{new.health_url}/readyz") == (200, "ready, standby"),
                   timeout=40, what="the standby's readiness")
        ns.apply(_succeed("before"))
        wait_phase(ns, "before", "Completed")

        assert old.proc is not None
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            eventually(lambda: holder(kubectl) == new.name, timeout=40, interval=0.5,
                       what="the standby to take the Lease")
            for i in range(3):
                ns.apply(_succeed(f"during-{i}"))
            for i in range(3):
                wait_phase(ns, f"during-{i}", "Completed")
        finally:
            resumed = datetime.now(UTC)
            os.kill(old.proc.pid, signal.SIGCONT)
        # Work for both to see after the wake-up: each event reaches the old leader too.
        for i in range(5):
            ns.apply(_succeed(f"after-{i}"))
        for i in range(5):
            wait_phase(ns, f"after-{i}", "Completed")

        def late() -> list[str]:
            return [f"{e['verb']} {e['objectRef'].get('resource')}/"
                    f"{e['objectRef'].get('name')} -> {e.get('responseStatus', {}).get('code')}"
                    for e in writes_by(cluster, credential_id(old.kubeconfig))
                    if _when(e) > resumed]

        if fence == "fenced":
            eventually(lambda: probe(f"{old.health_url}/readyz") == (200, "ready, standby"),
                       timeout=20, what="the old leader to know it stands by")
        else:  # its writes race the new leader's: wait for the first, not for a time
            eventually(late, timeout=20, what="any write of the unfenced old leader")
        written = late()
        assert new.alive() and old.alive()
    finally:
        if old.proc is not None and old.proc.poll() is None:
            os.kill(old.proc.pid, signal.SIGCONT)
        old.stop()
        new.stop()
        operator.start()
    print(f"{fence}: writes by the old leader after it resumed: {written}")
    if fence == "fenced":
        assert written == [], f"the old leader wrote after it woke up: {written}"
    else:
        assert written, "with the fence removed the old leader must write; else the audit " \
                        "check above could never fail"
