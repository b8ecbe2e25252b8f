"""What a GitOps tool meets on a real API server with the operator running.

Live jobs read as deploy/ says (Argo CD health script, kstatus, the Flux expressions), and a
finished job survives being synced again: re-applying its unchanged manifest, client-side
(Argo CD's default) or server-side (Flux; Argo CD's ServerSideApply=true), changes nothing,
and an edited manifest is refused with a message that says what to do instead.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_gitops_health import argocd, flux, kstatus
from tests.kube import Kubectl, eventually, stop, training_job, wait_phase

ROOT = Path(__file__).resolve().parents[2]
Obj = dict[str, Any]
pytestmark = pytest.mark.usefixtures("running_operator")


@pytest.fixture
def tjcheck(tools_dir: Path) -> Path:
    return tools_dir / "tjcheck"


def job(name: str, run: str = "1s", **spec: Any) -> Obj:
    return training_job(name, annotations={"outcome": "succeed", "run-duration": run}, **spec)


def write(path: Path, manifest: Obj) -> Path:
    path.write_text(yaml.safe_dump(manifest))
    return path


def get(ns: Kubectl, name: str) -> Obj:
    obj: Obj = ns.json("get", "trainingjob", name)
    return obj


def snapshot(ns: Kubectl, name: str) -> tuple[str, int, Obj]:
    obj = get(ns, name)
    return obj["metadata"]["resourceVersion"], obj["metadata"]["generation"], obj["status"]


def settled(ns: Kubectl, name: str, phase: str) -> tuple[str, int, Obj]:
    """The job in `phase` with no write for 2 s (the operator may still be tidying up)."""
    wait_phase(ns, name, phase, timeout=90)

    def quiet() -> tuple[str, int, Obj] | None:
        before = snapshot(ns, name)
        time.sleep(2)
        return before if snapshot(ns, name) == before else None

    return eventually(quiet, timeout=60, what=f"{name} to stop changing")


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def assert_names_the_fix(error: str, phase: str) -> None:
    assert f"this TrainingJob has finished ({phase}), so its spec cannot change" in error, error
    assert "delete it and apply it again" in error
    assert "create a new TrainingJob with another name" in error


@pytest.mark.kwok
def test_live_jobs_read_as_deploy_says(ns: Kubectl, tjcheck: Path) -> None:
    ns.apply(job("trains", run="8s"))
    ns.apply(training_job("bad-image", image="Team/Train:1.4!",
                          annotations={"outcome": "invalid-image"}))
    wait_phase(ns, "trains", "Running")
    running = get(ns, "trains")
    assert running["status"]["phase"] == "Running"
    assert argocd(tjcheck, running)["status"] == "Progressing"
    assert kstatus(tjcheck, running)["status"] == "InProgress"
    assert flux(tjcheck, running)["status"] == "InProgress"

    wait_phase(ns, "trains", "Completed", timeout=60)
    done = get(ns, "trains")
    assert argocd(tjcheck, done) == {
        "status": "Healthy", "message": f"Succeeded: {done['status']['message']}"}
    assert kstatus(tjcheck, done)["status"] == "Current"
    assert flux(tjcheck, done)["status"] == "Current"

    wait_phase(ns, "bad-image", "DeployFailed")
    failed = get(ns, "bad-image")
    health = argocd(tjcheck, failed)
    assert health["status"] == "Degraded"
    assert health["message"].startswith("InvalidImageName: ")
    assert kstatus(tjcheck, failed)["status"] == "Failed"
    assert flux(tjcheck, failed)["status"] == "Failed"


@pytest.mark.kwok
def test_reapplying_a_finished_job_client_side_is_a_noop(ns: Kubectl, tmp_path: Path) -> None:
    path = write(tmp_path / "job.yaml", job("once"))
    ns.run("apply", "-f", str(path))
    before = settled(ns, "once", "Completed")
    out = ns.run("apply", "-f", str(path)).stdout
    assert "trainingjob.training.dev/once unchanged" in out  # kubectl sent nothing

    # Switching to server-side apply (Argo CD's ServerSideApply=true) moves field ownership
    # once: a new resourceVersion, the same generation and status. Then it is a no-op too.
    ns.run("apply", "--server-side", "-f", str(path))
    rv, generation, status = snapshot(ns, "once")
    assert (generation, status) == before[1:]
    ns.run("apply", "--server-side", "-f", str(path))
    assert snapshot(ns, "once") == (rv, generation, status)


@pytest.mark.kwok
def test_reapplying_a_finished_job_server_side_is_a_noop(ns: Kubectl, tmp_path: Path) -> None:
    path = write(tmp_path / "job.yaml", job("once"))
    ns.run("apply", "--server-side", "-f", str(path))
    before = settled(ns, "once", "Completed")
    for _ in range(2):
        out = ns.run("apply", "--server-side", "-f", str(path)).stdout
        assert "trainingjob.training.dev/once serverside-applied" in out
        assert snapshot(ns, "once") == before
    assert before[1] == 1
    assert before[2]["history"][-1]["phase"] == "Completed"
    assert [h["phase"] for h in before[2]["history"]].count("Running") == 1  # never rerun


@pytest.mark.kwok
def test_editing_a_finished_job_is_refused_with_the_fix(ns: Kubectl, tmp_path: Path) -> None:
    manifest = job("once")
    path = write(tmp_path / "job.yaml", manifest)
    ns.run("apply", "-f", str(path))
    wait_phase(ns, "once", "Completed")

    new_image = write(tmp_path / "image.yaml",
                      {**manifest, "spec": {**manifest["spec"], "image": "team/train:1.5"}})
    stopped = write(tmp_path / "stop.yaml", {**manifest, "spec": {**manifest["spec"],
                                                                   "stop": True}})
    # Server-side as Argo CD (ServerSideApply=true) and Flux apply: forcing field conflicts,
    # so the API server's own verdict is what comes back.
    for edited in (new_image, stopped):
        for how in ((), ("--server-side", "--force-conflicts")):
            error = refused(ns.run("apply", *how, "-f", str(edited), check=False))
            assert "spec" in error
            assert_names_the_fix(error, "Completed")


@pytest.mark.kwok
def test_a_manual_stop_survives_syncs_of_a_manifest_without_stop(ns: Kubectl,
                                                                tmp_path: Path) -> None:
    manifest = job("long", run="600s")
    path = write(tmp_path / "job.yaml", manifest)
    ns.run("apply", "-f", str(path))
    wait_phase(ns, "long", "Running")
    stop(ns, "long")
    before = settled(ns, "long", "Stopped")
    assert "unchanged" in ns.run("apply", "-f", str(path)).stdout  # kubectl sent nothing
    ns.run("apply", "--server-side", "-f", str(path))
    obj = get(ns, "long")
    assert obj["spec"]["stop"] is True
    assert (obj["metadata"]["generation"], obj["status"]) == before[1:]

    # Why stop: false must not be in Git: a sync would try to undo the stop.
    unstop = write(tmp_path / "unstop.yaml", {**manifest, "spec": {**manifest["spec"],
                                                                   "stop": False}})
    error = refused(ns.run("apply", "-f", str(unstop), check=False))
    assert_names_the_fix(error, "Stopped")
    assert "spec.stop cannot be set back to false" in error


def test_argocd_cm_patch_merges_into_argocds_configmap(kubectl: Kubectl) -> None:
    """The install command of deploy/argocd/README.md, on a stand-in argocd-cm."""
    argocd_ns = kubectl.in_namespace("argocd")
    kubectl.run("delete", "namespace", "argocd", "--ignore-not-found", "--timeout=90s")
    kubectl.run("create", "namespace", "argocd")
    try:
        argocd_ns.apply({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "argocd-cm"},
                         "data": {"timeout.reconciliation": "180s"}})
        argocd_ns.run("patch", "configmap", "argocd-cm", "--patch-file",
                      str(ROOT / "deploy" / "argocd" / "argocd-cm.yaml"))
        data = argocd_ns.json("get", "configmap", "argocd-cm")["data"]
        assert data == {
            "timeout.reconciliation": "180s",
            "resource.customizations.health.training.dev_TrainingJob":
                (ROOT / "deploy" / "argocd" / "health.lua").read_text()}
    finally:
        kubectl.run("delete", "namespace", "argocd", "--wait=false", check=False)
