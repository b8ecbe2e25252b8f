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
    # What a pod would refuse later is refused at apply (issue 15, tests/e2e/test_hostile_input)
    ({"resources": {"requests": {"cpu": "1.5.3Gi"}}},
     "spec.resources.requests[cpu]: Invalid value: \"\": must be a quantity of 0 or more"),
    ({"resources": {"limits": {"memory": "-1"}}}, "spec.resources.limits[memory]: Invalid"),
    ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
     "spec.resources.requests of cpu, memory or ephemeral-storage must not be more than"),
    ({"resources": {"requests": {"gpu": 1}}},
     "spec.resources.requests: resource names are cpu, memory, ephemeral-storage"),
    ({"resources": {"limits": {"example.com/fpga": "500m"}}},
     "an extended resource (a name with /) must be a whole number"),
    ({"resources": {"limits": {"nvidia.com/gpu": 2}}},
     "spec.resources sets nvidia.com/gpu: request GPUs with spec.gpusPerWorker instead"),
    ({"template": {"metadata": {"labels": {"bad key": "v"}}}},
     "spec.template.metadata.labels: label keys must be qualified names"),
    ({"template": {"metadata": {"labels": {"team": "a b"}}}},
     "spec.template.metadata.labels[team]: Invalid value: \"string\": a label value must be"),
    ({"template": {"spec": {"nodeSelector": {"gpu": "-a100"}}}},
     "spec.template.spec.nodeSelector[gpu]: Invalid value"),
    ({"template": {"metadata": {"annotations": {"-x": "v"}}}},
     "spec.template.metadata.annotations: annotation keys must be qualified names"),
    ({"command": []}, "spec.command must start with the program to run"),
    ({"command": [" ", "train.py"]}, "spec.command must start with the program to run"),
    ({"setup": {"command": [""]}}, "spec.setup.command must start with the program to run"),
    ({"env": [{"name": "A=B"}]}, "spec.env[0].name: Invalid value"),
    ({"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.name"}}}]}, "spec.env: set value or valueFrom, not both"),
    ({"image": " team/train:1"}, "spec.image must name a container image"),
    ({"gpuResource": "gpu"}, "spec.gpuResource must be an extended resource name"),
])
def test_invalid_spec_is_rejected_with_its_message(ns: Kubectl, spec: dict[str, Any],
                                                   says: str) -> None:
    manifest = training_job("bad")
    manifest["spec"].update(spec)
    assert says in _refused(ns, manifest)


@pytest.mark.usefixtures("crd")
@pytest.mark.parametrize(("name", "workers", "says"), [
    ("a.b", 1, "metadata.name must be a DNS label"),
    ("1gang", 2, "metadata.name of a gang (spec.workers more than 1) must start with a letter"),
    ("n" * 54, 11, "metadata.name is too long: the worker pods are named"),
])
def test_a_name_no_worker_pod_could_take_is_rejected(ns: Kubectl, name: str, workers: int,
                                                     says: str) -> None:
    assert says in _refused(ns, training_job(name, workers=workers))
    ns.apply(training_job("1solo", gpus=0))  # one worker needs no Service: a digit may lead
    ns.apply(training_job("n" * 54, workers=10, gpus=0))  # n...n-worker-9: 63 characters


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
