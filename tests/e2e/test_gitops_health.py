"""Argo CD, kstatus and Flux read every recorded TrainingJob as deploy/ says (no cluster).

The objects are tests/fixtures/trainingjobs/*.json, recorded from devcluster runs with the
real operator (tests/record_fixtures.py). tjcheck evaluates them with the upstream libraries
the tools use: gopher-lua as Argo CD runs a health script, cli-utils kstatus as Flux's
default check, and fluxcd/pkg's evaluator for healthCheckExprs, which are read from
deploy/flux/training-jobs.yaml rather than repeated here.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.status import dump_status, unreadable_status
from trainingjob_operator.vocabulary import Phase

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "trainingjobs"
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
ARGOCD_CM = ROOT / "deploy" / "argocd" / "argocd-cm.yaml"
FLUX_KUSTOMIZATION = ROOT / "deploy" / "flux" / "training-jobs.yaml"
ARGOCD_KEY = "resource.customizations.health.training.dev_TrainingJob"

# fixture: (Argo CD health, kstatus, Flux healthCheckExprs)
EXPECTED = {
    "NoStatus": ("Progressing", "Current", "Unknown"),
    "Pending": ("Progressing", "InProgress", "InProgress"),
    "Created": ("Progressing", "InProgress", "InProgress"),
    "Deploying": ("Progressing", "InProgress", "InProgress"),
    "Running": ("Progressing", "InProgress", "InProgress"),
    "StopNotObserved": ("Progressing", "InProgress", "InProgress"),
    "Completed": ("Healthy", "Current", "Current"),
    "Failed": ("Degraded", "Failed", "Failed"),
    "DeployFailed": ("Degraded", "Failed", "Failed"),
    "Stopped": ("Suspended", "Current", "Current"),
}

Obj = dict[str, Any]


def fixture(name: str) -> Obj:
    obj: Obj = json.loads((FIXTURES / f"{name}.json").read_text())
    return obj


@pytest.fixture(scope="module")
def tjcheck(tools_dir: Path) -> Path:
    return tools_dir / "tjcheck"


def flux_exprs() -> dict[str, str]:
    """The TrainingJob entry of deploy/flux's healthCheckExprs, as tjcheck flags."""
    spec = yaml.safe_load(FLUX_KUSTOMIZATION.read_text())["spec"]
    entry = next(e for e in spec["healthCheckExprs"]
                 if (e["apiVersion"], e["kind"]) == ("training.dev/v1alpha1", "TrainingJob"))
    return {flag: entry[key] for flag, key in (("--current", "current"),
                                               ("--in-progress", "inProgress"),
                                               ("--failed", "failed")) if key in entry}


def run(tjcheck: Path, obj: Obj, *args: str) -> dict[str, str]:
    proc = subprocess.run([str(tjcheck), *args], input=json.dumps(obj), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"tjcheck {' '.join(args)}: {proc.stderr}"
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def argocd(tjcheck: Path, obj: Obj) -> dict[str, str]:
    return run(tjcheck, obj, "lua", str(HEALTH_LUA))


def kstatus(tjcheck: Path, obj: Obj) -> dict[str, str]:
    return run(tjcheck, obj, "kstatus")


def flux(tjcheck: Path, obj: Obj) -> dict[str, str]:
    return run(tjcheck, obj, "flux-expr", *(a for kv in flux_exprs().items() for a in kv))


def test_a_fixture_for_every_phase_recorded_with_the_current_status_format() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert names == set(EXPECTED)
    assert {p.value for p in Phase} <= names
    for name in names - {"NoStatus"}:
        obj = fixture(name)
        TrainingJob.model_validate(obj)
        conditions = {c["type"] for c in obj["status"]["conditions"]}
        # Re-record (tests/fixtures/trainingjobs/README.md) when the status format changes.
        assert {"Admitted", "Running", "Finished", "Complete", "Failed", "Reconciling",
                "Stalled"} <= conditions, name
        if name != "StopNotObserved":
            assert obj["status"]["phase"] == name
    assert "status" not in fixture("NoStatus")
    ahead = fixture("StopNotObserved")
    assert ahead["metadata"]["generation"] > ahead["status"]["observedGeneration"]
    assert ahead["spec"]["stop"] is True


def test_argocd_cm_embeds_health_lua_verbatim() -> None:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap", "argocd-cm", "argocd")
    assert cm["data"] == {ARGOCD_KEY: HEALTH_LUA.read_text()}


def test_flux_kustomization_waits_with_our_expressions() -> None:
    k = yaml.safe_load(FLUX_KUSTOMIZATION.read_text())
    assert (k["apiVersion"], k["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert k["spec"]["wait"] is True
    assert k["spec"].get("force", False) is False
    assert set(flux_exprs()) == {"--current", "--in-progress", "--failed"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_job_health(tjcheck: Path, name: str) -> None:
    obj = fixture(name)
    want_argo, want_kstatus, want_flux = EXPECTED[name]
    status = obj.get("status") or {}

    argo = argocd(tjcheck, obj)
    assert argo["status"] == want_argo, argo
    if name == "NoStatus":
        assert "waiting for the operator" in argo["message"]
    elif name == "StopNotObserved":
        assert "stop requested" in argo["message"]
        assert f"{status['reason']}: {status['message']}" in argo["message"]
    else:
        assert argo["message"] == f"{status['reason']}: {status['message']}"

    ks = kstatus(tjcheck, obj)
    assert ks["status"] == want_kstatus, ks
    if name == "StopNotObserved":
        assert "generation is 2, but latest observed generation is 1" in ks["message"]
    elif want_kstatus in ("InProgress", "Failed"):  # from the Reconciling/Stalled condition
        assert ks["message"] == status["message"]

    fx = flux(tjcheck, obj)
    assert fx["status"] == want_flux, fx
    if name == "NoStatus":  # `status` does not exist yet: Flux keeps polling until it does
        assert "no such attribute" in fx["message"]


def _with_status(obj: Obj, **status: Any) -> Obj:
    out: Obj = json.loads(json.dumps(obj))
    out["status"] = {**out.get("status", {}), **status}
    return out


def test_argocd_edge_cases(tjcheck: Path) -> None:
    """Objects derived from the recorded ones, for what no run produces today."""
    running = fixture("Running")
    unknown = argocd(tjcheck, _with_status(running, phase="Paused"))
    assert unknown["status"] == "Unknown"
    assert "unknown phase Paused" in unknown["message"]
    assert argocd(tjcheck, _with_status(running, reason=None, message=None)) == {
        "status": "Progressing", "message": "Running"}
    no_phase = _with_status(fixture("NoStatus"), attempt=1)
    assert argocd(tjcheck, no_phase)["status"] == "Progressing"
    assert flux(tjcheck, no_phase)["status"] == "InProgress"  # status exists, phase not yet
    # A finished job's phase is final: a stale observedGeneration (only possible without the
    # CRD's finished-job rule) does not make it Progressing for Argo CD.
    done = fixture("Completed")
    done["metadata"]["generation"] = done["status"]["observedGeneration"] + 1
    assert argocd(tjcheck, done)["status"] == "Healthy"


def test_unreadable_job_status(tjcheck: Path) -> None:
    """The status the operator writes for a job its models cannot parse
    (status.unreadable_status) reads as failed everywhere: it carries Stalled=True and
    observedGeneration like any DeployFailed job."""
    written = unreadable_status("spec.workers: Input should be a valid integer",
                                datetime(2026, 1, 1, tzinfo=UTC), 1)
    # As stored: the merge patch's nulls remove fields rather than store them.
    stored = {k: v for k, v in dump_status(written).items() if v is not None}
    obj = _with_status(fixture("NoStatus"), **stored)
    assert argocd(tjcheck, obj)["status"] == "Degraded"
    assert flux(tjcheck, obj)["status"] == "Failed"
    assert kstatus(tjcheck, obj)["status"] == "Failed"
