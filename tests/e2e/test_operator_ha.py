"""Two operator replicas, as the chart runs them: only the leader writes, and a SIGKILLed
leader is replaced within 20 s while jobs keep converging.

Who wrote what comes from the API server's audit log (devcluster/audit-policy.yaml): every
write by a service account, with the credential id (the token's JTI) that made it, so the two
replicas are told apart although both are the same service account.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OPERATOR_NAMESPACE, RELEASE, Installation, Operator
from tests.harness import Cluster
from tests.kube import Kubectl, eventually, training_job, wait_phase

pytestmark = [pytest.mark.kwok]
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def credential_id(kubeconfig: Path) -> str:
    """The audit log's credential id of a TokenRequest token: its JWT id (jti)."""
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"JTI={claims['jti']}"


def writes_by(cluster: Cluster, credential: str) -> list[dict[str, Any]]:
    assert cluster.data_dir is not None
    out = []
    for line in (cluster.data_dir / "audit.log").read_text().splitlines():
        entry = json.loads(line)
        ids = entry["user"].get("extra", {}).get("authentication.kubernetes.io/credential-id")
        if ids == [credential] and entry["verb"] in WRITES:
            out.append(entry)
    return out


def lease_writes(cluster: Cluster, credential: str) -> int:
    """The Lease renewals (and the claim) made with this credential."""
    return sum(e["objectRef"]["resource"] == "leases" for e in writes_by(cluster, credential))


def holder(kubectl: Kubectl) -> str:
    got = kubectl.run("get", "lease", RELEASE, "-n", OPERATOR_NAMESPACE, "-o",
                      "jsonpath={.spec.holderIdentity}", check=False)
    return got.stdout.strip() if got.returncode == 0 else ""  # not created yet


def probe(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode().strip()
    except OSError:
        return None


def ready(url: str) -> tuple[int, str] | None:
    """The probe's answer once it is 200, else None (not listening yet, or 503)."""
    answer = probe(url)
    return answer if answer is not None and answer[0] == 200 else None


def test_only_the_leader_writes_and_a_killed_leader_hands_over_within_20s(
        cluster: Cluster, installation: Installation, running_operator: Operator,
        ns: Kubectl, tmp_path: Path) -> None:
    if cluster.data_dir is None:
        pytest.skip("needs devcluster's audit log")
    kubectl = cluster.kubectl
    leader = running_operator
    eventually(lambda: holder(kubectl) == leader.name, timeout=30, what="the first leader")
    standby = Operator(installation.token_kubeconfig(tmp_path / "standby.kubeconfig"),
                       tmp_path / "standby.log", name="local-operator-1",
                       env={"TRAININGJOB_LOG_FORMAT": "json"})
    standby.start()
    try:
        # Ready once its watches have filled the indexes (503 until then): wait for the 200,
        # not for the first answer.
        assert eventually(lambda: ready(f"{standby.health_url}/readyz"), timeout=30,
                          what="the standby's readiness") == (200, "ready, standby")
        assert probe(f"{leader.health_url}/readyz") == (200, "ready, leader")
        assert probe(f"{standby.health_url}/healthz") == (200, "ok")

        # With both up, jobs converge, all written by the leader.
        for name in ("before-a", "before-b"):
            ns.apply(training_job(name, annotations={"outcome": "succeed",
                                                     "run-duration": "1s"}))
        ns.apply(training_job("across", annotations={"outcome": "succeed",
                                                     "run-duration": "25s"}))
        for name in ("before-a", "before-b"):
            wait_phase(ns, name, "Completed")
        wait_phase(ns, "across", "Running")
        # A standby that acted on what it saw would have written by the time the leader has
        # renewed its lease twice more: the standby reads the Lease, and its loop looks at
        # the leader gauge, at least once in that time (both every lease_retry_seconds or
        # more often), and the audit log then holds every write made until the renewal.
        leader_id = credential_id(leader.kubeconfig)
        renewals = lease_writes(cluster, leader_id)
        eventually(lambda: lease_writes(cluster, leader_id) >= renewals + 2, timeout=20,
                   interval=0.2, what="two more lease renewals by the leader")
        assert writes_by(cluster, credential_id(standby.kubeconfig)) == [], \
            "the standby wrote to the API"
        leader_writes = {e["objectRef"]["resource"] for e in writes_by(cluster, leader_id)}
        assert {"trainingjobs", "pods", "leases"} <= leader_writes

        # SIGKILL the leader: no chance to release the lease.
        assert leader.proc is not None
        leader.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.proc.wait()
        # Created while nobody leads: the standby ignores its event, so only the new
        # leader's re-decision of every job at election can move it.
        ns.apply(training_job("during", annotations={"outcome": "succeed",
                                                     "run-duration": "1s"}))
        assert holder(kubectl) == leader.name, "the lease moved before the job was created"
        eventually(lambda: holder(kubectl) == standby.name, timeout=25, interval=0.2,
                   what="the standby to take the lease")
        handover = time.monotonic() - killed
        print(f"handover after SIGKILL: {handover:.1f}s")
        assert handover < 20
        # The Lease names it a moment before its own probe says so.
        eventually(lambda: probe(f"{standby.health_url}/readyz") == (200, "ready, leader"),
                   timeout=10, interval=0.2, what="the new leader's readiness to say so")

        # Jobs keep converging: one that was running, and one created after the kill.
        ns.apply(training_job("after", annotations={"outcome": "succeed",
                                                    "run-duration": "1s"}))
        wait_phase(ns, "after", "Completed", timeout=60)
        wait_phase(ns, "during", "Completed", timeout=60)
        wait_phase(ns, "across", "Completed", timeout=60)
        taken = {e["objectRef"]["resource"]
                 for e in writes_by(cluster, credential_id(standby.kubeconfig))}
        assert {"leases", "trainingjobs", "pods"} <= taken
    finally:
        standby.stop()  # SIGTERM: releases the lease, so the session's operator resumes at once
    # The standby logged structured JSON, one object per line, its election included.
    logged = [json.loads(line) for line in standby.log_path.read_text().splitlines()]
    messages = [entry["message"] for entry in logged]
    assert all({"message", "timestamp", "severity"} <= entry.keys() for entry in logged)
    assert "leader election: local-operator-1 is now the leader" in " ".join(messages)
    assert "leader election: local-operator-1 released the lease" in messages
    # The released lease is free at once: the restarted operator leads as soon as it is up,
    # well inside one lease duration (it would have to wait that long for a silent one).
    restarted = time.monotonic()
    leader.start()
    eventually(lambda: holder(kubectl) == leader.name, timeout=30,
               what="the session's operator to lead again")
    assert time.monotonic() - restarted < float(Operator.ENV.get(
        "TRAININGJOB_LEASE_DURATION_SECONDS", "10"))
