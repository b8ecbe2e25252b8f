"""Invalid manifests are refused by `kubectl apply` itself, with a message naming the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Operator
from tests.kube import Kubectl, training_job, wait_phase


@pytest.fixture
def crd(operator: Operator) -> None:
    """The CRD is installed by the operator fixture."""


def _refused(ns: Kubectl, manifest: dict[str, Any]) -> str:
    out = ns.run("apply", "-f", "-", input_text=json.dumps(manifest), check=False)
    assert out.returncode != 0, out.stdout
    return out.stderr


@pytest.mark.usefixtures("crd")
@pytest.mark.parametrize(("spec", "says"), [
    ({"workers": 0}, "spec.workers must be at least 1"),
    ({"workers": -2}, "spec.workers must be at least 1"),
    ({"gpusPerWorker": -1}, "spec.gpusPerWorker must be 0 (CPU-only) or more"),
    ({"surprise": True}, 'unknown field "spec.surprise"'),
    ({"image": ""}, "spec.image must name a container image"),
    ({"output": {"volume": {"emptyDir": {}}, "path": "models"}},
     "spec.output.path must be an absolute path"),
    ({"output": {"path": "/out"}}, "spec.output.volume: Required value"),
    ({"ttlSecondsAfterFinished": -1}, "spec.ttlSecondsAfterFinished: Invalid value"),
])
def test_invalid_spec_is_rejected_with_its_message(ns: Kubectl, spec: dict[str, Any],
                                                   says: str) -> None:
    manifest = training_job("bad")
    manifest["spec"].update(spec)
    assert says in _refused(ns, manifest)


@pytest.mark.usefixtures("crd")
def test_missing_image_is_rejected(ns: Kubectl) -> None:
    manifest = training_job("noimage")
    del manifest["spec"]["image"]
    assert "spec.image: Required value" in _refused(ns, manifest)


@pytest.mark.kwok
@pytest.mark.usefixtures("running_operator")
def test_spec_change_after_admission_is_refused_but_reapply_is_a_noop(ns: Kubectl) -> None:
    manifest = training_job("fixed", annotations={"outcome": "succeed", "run-duration": "1s"})
    ns.apply(manifest)
    wait_phase(ns, "fixed", "Completed")
    version = ns.json("get", "tj", "fixed")["metadata"]["resourceVersion"]
    assert "unchanged" in ns.apply(manifest).stdout  # GitOps re-apply: nothing reruns
    assert ns.json("get", "tj", "fixed")["metadata"]["resourceVersion"] == version
    changed = training_job("fixed", workers=2)
    assert "spec is immutable once the TrainingJob exists, except spec.stop" in \
        _refused(ns, changed)


@pytest.mark.usefixtures("crd")
def test_defaults_are_stored_so_gitops_sees_no_drift(ns: Kubectl) -> None:
    ns.apply({"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
              "metadata": {"name": "minimal"}, "spec": {"image": "team/train:1"}})
    spec = ns.json("get", "tj", "minimal")["spec"]
    assert spec == {"image": "team/train:1", "workers": 1, "gpusPerWorker": 1,
                    "gpuResource": "nvidia.com/gpu", "priority": 0, "stop": False,
                    "terminationGracePeriodSeconds": 60, "resources": {},
                    "retries": {"limit": 3}, "timeouts": {"deploySeconds": 900}}
