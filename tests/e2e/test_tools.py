"""The tools of devcluster/tools, run as built: helm, and tjcheck's three health evaluators.

No cluster needed: each test runs a binary on files and stdin.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devcluster import build

GOMOD = (build.TOOLS_DIR / "go.mod").read_text()

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return build.ensure_tools()


def _run(binary: Path, *args: str, stdin: str = "",
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def tjcheck(bin_dir: Path, obj: Obj, *args: str) -> dict[str, str]:
    proc = _run(bin_dir / "tjcheck", *args, stdin=json.dumps(obj))
    assert proc.returncode == 0, proc.stderr
    out: dict[str, str] = json.loads(proc.stdout)
    assert set(out) == {"status", "message"}
    return out


def trainingjob(phase: str = "Running", generation: int = 1, observed: int | None = 1,
                conditions: list[Obj] | None = None) -> Obj:
    status: Obj = {"phase": phase, "message": None,
                   "conditions": conditions if conditions is not None else []}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "one-worker", "namespace": "default",
                         "generation": generation, "annotations": None},
            "spec": {"workers": 2}, "status": status}


def condition(type_: str, status: str, reason: str = "Why", message: str = "") -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


# --- helm ---------------------------------------------------------------------------------


def test_helm_version_is_the_pinned_v3_18_release(bin_dir: Path) -> None:
    pinned = build.module_version(GOMOD, "helm.sh/helm/v3")
    assert pinned.startswith("v3.18.")
    proc = _run(bin_dir / "helm", "version", "--template", "{{.Version}}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == pinned


def test_helm_lints_and_renders_a_chart_for_kubernetes_1_33(bin_dir: Path,
                                                            tmp_path: Path) -> None:
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n"
                                      "icon: https://example.com/icon.png\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n")
    lint = _run(bin_dir / "helm", "lint", str(chart))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout
    rendered = _run(bin_dir / "helm", "template", "rel", str(chart))
    assert rendered.returncode == 0, rendered.stderr
    # Stamped like helm's release build: the default cluster version follows client-go v0.33.
    assert 'kube: "v1.33.0"' in rendered.stdout
    assert "name: rel" in rendered.stdout


# --- tjcheck lua (Argo CD health scripts) -----------------------------------------------------

HEALTH_LUA = """
hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "no status yet"
  return hs
end
if obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.conditions[1].message
  return hs
end
if obj.status.phase == "Running" or obj.status.phase == "Completed" then
  hs.status = "Healthy"
  -- nulls are absent; arrays are 1-based with a length
  hs.message = obj.status.phase .. " with " .. obj.spec.workers .. " workers, "
    .. #obj.status.conditions .. " conditions, message " .. tostring(obj.status.message)
  return hs
end
hs.status = "Progressing"
hs.message = obj.status.phase
return hs
"""


@pytest.fixture
def health_lua(tmp_path: Path) -> Path:
    script = tmp_path / "health.lua"
    script.write_text(HEALTH_LUA)
    return script


def test_lua_health_script_sees_the_object_as_argo_cd_exposes_it(bin_dir: Path,
                                                                 health_lua: Path) -> None:
    running = trainingjob(conditions=[condition("Admitted", "True")])
    assert tjcheck(bin_dir, running, "lua", str(health_lua)) == {
        "status": "Healthy", "message": "Running with 2 workers, 1 conditions, message nil"}
    failed = trainingjob("Failed", conditions=[condition("Failed", "True", "NonZeroExit",
                                                         "worker 0 exited 1")])
    assert tjcheck(bin_dir, failed, "lua", str(health_lua)) == {
        "status": "Degraded", "message": "worker 0 exited 1"}
    assert tjcheck(bin_dir, trainingjob("Pending"), "lua", str(health_lua)) == {
        "status": "Progressing", "message": "Pending"}
    bare = {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "x"}}
    assert tjcheck(bin_dir, bare, "lua", str(health_lua))["message"] == "no status yet"


def test_lua_status_outside_argo_cd_codes_is_unknown_like_argo_cd(bin_dir: Path,
                                                                  tmp_path: Path) -> None:
    script = tmp_path / "odd.lua"
    script.write_text('return {status = "Great", message = "x"}')
    assert tjcheck(bin_dir, trainingjob(), "lua", str(script)) == {
        "status": "Unknown", "message": "Lua returned an invalid health status"}


@pytest.mark.parametrize(("body", "stderr"), [
    ('error("boom")', "boom"),
    ("x = 1", "return a table, not nil"),
    ('return "Healthy"', "return a table, not string"),
    ("return {status = 1}", "hs.status is a number"),
    ("while true do end", "deadline"),  # Argo CD gives a script 1 s
    ('return {status = string.upper("healthy")}', "upper"),  # no string library by default
])
def test_lua_script_errors_exit_non_zero_with_the_reason(bin_dir: Path, tmp_path: Path,
                                                         body: str, stderr: str) -> None:
    script = tmp_path / "bad.lua"
    script.write_text(body)
    proc = _run(bin_dir / "tjcheck", "lua", str(script), stdin=json.dumps(trainingjob()))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert stderr in proc.stderr


def test_lua_open_libs_gives_the_standard_library(bin_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "upper.lua"
    script.write_text('return {status = "Healthy", message = string.upper(obj.status.phase)}')
    assert tjcheck(bin_dir, trainingjob(), "lua", "--open-libs", str(script)) == {
        "status": "Healthy", "message": "RUNNING"}


# --- tjcheck kstatus ------------------------------------------------------------------------


def test_kstatus_generation_not_yet_observed_is_in_progress(bin_dir: Path) -> None:
    out = tjcheck(bin_dir, trainingjob(generation=3, observed=2), "kstatus")
    assert out["status"] == "InProgress"
    assert "generation is 3" in out["message"]


def test_kstatus_stalled_true_is_failed(bin_dir: Path) -> None:
    stalled = trainingjob("Failed", conditions=[
        condition("Stalled", "True", "NonZeroExit", "worker 0 exited 1")])
    assert tjcheck(bin_dir, stalled, "kstatus") == {"status": "Failed",
                                                     "message": "worker 0 exited 1"}


def test_kstatus_reconciling_true_is_in_progress_and_no_conditions_is_current(
        bin_dir: Path) -> None:
    reconciling = trainingjob(conditions=[condition("Reconciling", "True", "Deploying",
                                                    "creating workers")])
    assert tjcheck(bin_dir, reconciling, "kstatus") == {"status": "InProgress",
                                                         "message": "creating workers"}
    assert tjcheck(bin_dir, trainingjob(), "kstatus")["status"] == "Current"


# --- tjcheck flux-expr (Flux healthCheckExprs) ------------------------------------------------

COMPLETE = "status.conditions.exists(c, c.type == 'Complete' && c.status == 'True')"
FAILED = "status.conditions.exists(c, c.type == 'Failed' && c.status == 'True')"


def test_flux_expr_current_when_the_expression_matches(bin_dir: Path) -> None:
    done = trainingjob("Completed", conditions=[condition("Complete", "True")])
    assert tjcheck(bin_dir, done, "flux-expr", "--current", COMPLETE,
                   "--failed", FAILED)["status"] == "Current"
    # The object's top-level fields are the CEL variables.
    assert tjcheck(bin_dir, done, "flux-expr", "--current",
                   "kind == 'TrainingJob' && spec.workers == 2 && "
                   "metadata.name.startsWith('one-')")["status"] == "Current"


def test_flux_expr_in_progress_when_nothing_matches(bin_dir: Path) -> None:
    running = trainingjob(conditions=[condition("Complete", "False")])
    assert tjcheck(bin_dir, running, "flux-expr", "--current", COMPLETE,
                   "--failed", FAILED)["status"] == "InProgress"


def test_flux_expr_order_is_in_progress_then_failed_then_current(bin_dir: Path) -> None:
    both = trainingjob(conditions=[condition("Complete", "True"), condition("Failed", "True")])
    assert tjcheck(bin_dir, both, "flux-expr", "--current", COMPLETE,
                   "--failed", FAILED)["status"] == "Failed"
    assert tjcheck(bin_dir, both, "flux-expr", "--current", COMPLETE, "--failed", FAILED,
                   "--in-progress", "status.phase == 'Running'")["status"] == "InProgress"


def test_flux_expr_unobserved_generation_is_in_progress_before_any_expression(
        bin_dir: Path) -> None:
    stale = trainingjob(generation=2, observed=1, conditions=[condition("Complete", "True")])
    assert tjcheck(bin_dir, stale, "flux-expr", "--current", COMPLETE)["status"] == "InProgress"
    # Without status.observedGeneration only the expressions decide.
    fresh = trainingjob(generation=2, observed=None, conditions=[condition("Complete", "True")])
    assert tjcheck(bin_dir, fresh, "flux-expr", "--current", COMPLETE)["status"] == "Current"


def test_flux_expr_missing_field_is_unknown_and_a_bad_expression_is_an_error(
        bin_dir: Path) -> None:
    out = tjcheck(bin_dir, trainingjob(), "flux-expr", "--current", "status.ready == true")
    assert out["status"] == "Unknown"
    assert "no such key: ready" in out["message"]
    proc = _run(bin_dir / "tjcheck", "flux-expr", "--current", "status.phase ==",
                stdin=json.dumps(trainingjob()))
    assert proc.returncode == 1
    assert "failed to parse the expression Current" in proc.stderr
    proc = _run(bin_dir / "tjcheck", "flux-expr", "--failed", FAILED,
                stdin=json.dumps(trainingjob()))
    assert proc.returncode == 2
    assert "needs --current" in proc.stderr
