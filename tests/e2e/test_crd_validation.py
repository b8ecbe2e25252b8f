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
    # GitOps re-apply: the stored object (defaults included) is the manifest, so kubectl
    # sends nothing and nothing reruns.
    assert "unchanged" in ns.apply(manifest).stdout
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


# Issue 22: the typed template, its volumes, the GPU env names and accelerators, the budget.
_BIG_ENV = [{"name": f"BIG{i}", "value": "v" * 50_000} for i in range(3)]
_BIG_TOTAL = 2 * sum(len(e["name"]) + len(e["value"]) for e in _BIG_ENV)


def _template(**spec: Any) -> dict[str, Any]:
    return {"template": {"spec": spec}}


@pytest.mark.usefixtures("crd")
@pytest.mark.parametrize(("spec", "says"), [
    (_template(affinity="x"), "spec.template.spec.affinity: Invalid value: \"string\""),
    (_template(tolerations="x"), "spec.template.spec.tolerations: Invalid value: \"string\""),
    (_template(tolerations=[{"key": "a", "operator": "Sometimes"}]),
     "spec.template.spec.tolerations[0].operator: Unsupported value: \"Sometimes\""),
    (_template(tolerations=[{"effect": ["NoSchedule"]}]),
     "spec.template.spec.tolerations[0].effect: Invalid value: \"array\""),
    (_template(affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {}}]}}),
     "spec.template.spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     "[0].topologyKey: Required value"),
    (_template(surprise=1), "spec.template.spec may set only affinity, "),
    (_template(containers=[{"name": "x", "image": "y"}]),
     "spec.template.spec.containers is set by the operator; use spec.image"),
    (_template(activeDeadlineSeconds=5),
     "spec.template.spec.activeDeadlineSeconds is set by the operator; use "
     "spec.timeouts.runSeconds instead"),
    (_template(hostAliases=[{"ip": "10.0.0.1"}]),
     "spec.template.spec.hostAliases cannot be set in a TrainingJob's template"),
    (_template(volumes=[{"name": "src", "gitRepo": {"repository": "https://example.com/r"}}]),
     "spec.template.spec.volumes[].gitRepo is not a volume type a TrainingJob may use: use a "
     "PersistentVolumeClaim"),
    ({"output": {"volume": {"iscsi": {"targetPortal": "10.0.0.1", "iqn": "x", "lun": 0}}}},
     "spec.output.volume.iscsi is not a volume type a TrainingJob may use"),
    (_template(volumes=[{"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
     "spec.template.spec.volumes[] must set exactly one volume source"),
    (_template(volumes=[{"name": "none"}]),
     "spec.template.spec.volumes[] must set exactly one volume source"),
    ({"volumeMounts": [{"name": "v", "mountPath": "/v", "mountPropagation": "Bidirectional"}]},
     "spec.volumeMounts[].mountPropagation must be None or HostToContainer"),
    ({"env": [{"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                          "secretKeyRef": {"name": "s", "key": "k"}}}]},
     "spec.env[].valueFrom must set exactly one source"),
    ({"env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]},
     "spec.env sets NVIDIA_VISIBLE_DEVICES: the device plugin sets it"),
    ({"env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}]},
     "spec.env sets CUDA_VISIBLE_DEVICES: the device plugin sets it"),
    ({"gpusPerWorker": 0, "gpuResource": "example.com/fpga",
      "resources": {"limits": {"nvidia.com/gpu": 8}}},
     "spec.resources.limits sets nvidia.com/gpu, an accelerator: request accelerators with "
     "spec.gpusPerWorker and spec.gpuResource"),
    ({"resources": {"limits": {"nvidia.com/mig-1g.10gb": 1}}},
     "spec.resources.limits sets nvidia.com/mig-1g.10gb, an accelerator"),
    ({"env": _BIG_ENV},
     f"total {_BIG_TOTAL} characters, more than the 262144 a worker pod may take: move big "
     "values into a ConfigMap"),
    ({"timeouts": {"deploySeconds": 10**7}}, "spec.timeouts.deploySeconds: Invalid value"),
])
def test_a_template_or_part_of_the_wrong_shape_is_refused_at_apply(
        ns: Kubectl, spec: dict[str, Any], says: str) -> None:
    manifest = training_job("bad", gpus=0)
    manifest["spec"].update(spec)
    assert says in _refused(ns, manifest)


@pytest.mark.usefixtures("crd")
def test_an_unknown_template_key_is_refused_for_every_client_not_only_strict_kubectl(
        ns: Kubectl) -> None:
    """kubectl's strict field validation is a client's choice; the schema's rule is not."""
    for key, says in (("surprise", "spec.template.spec may set only"),
                      ("containers", "spec.template.spec.containers is set by the operator")):
        manifest = training_job("lax", gpus=0, **_template(**{key: []}))
        out = ns.run("create", "--validate=false", "-f", "-",
                     input_text=json.dumps(manifest), check=False)
        assert out.returncode != 0 and says in out.stderr, (out.stdout, out.stderr)


@pytest.mark.usefixtures("crd")
def test_a_typed_template_is_accepted_and_stored_as_written(ns: Kubectl) -> None:
    template = {
        "nodeSelector": {"pool": "a"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                               "labelSelector": {"matchLabels": {"a": "b"}}}}]}},
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    ns.apply(training_job("typed", gpus=0, **_template(**template),
                          volumeMounts=[{"name": "data", "mountPath": "/data"}]))
    stored = ns.json("get", "tj", "typed")["spec"]
    assert stored["template"]["spec"] == template
    assert stored["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


@pytest.mark.usefixtures("crd")
def test_explicit_nulls_are_unset_and_the_status_of_such_a_job_can_be_written(
        ns: Kubectl) -> None:
    """A null of a field that is not nullable is pruned before defaulting (CRD docs,
    "Defaulting and Nullable"), so the immutability rule never compares one: a status write
    (an admin's, the operator's) succeeds, and a spec change is still refused."""
    manifest = training_job("nulls", gpus=0)
    manifest["spec"].update({"timeouts": {"deploySeconds": None, "queueSeconds": None,
                                          "runSeconds": None},
                             "setup": None, "template": None, "output": None, "env": None,
                             "ttlSecondsAfterFinished": None, "securityContext": None})
    ns.run("create", "-f", "-", input_text=json.dumps(manifest))  # sent as written, nulls in
    spec = ns.json("get", "tj", "nulls")["spec"]
    assert spec["timeouts"] == {"deploySeconds": 900}
    assert not {"setup", "template", "output", "env", "securityContext",
                "ttlSecondsAfterFinished"} & set(spec)
    written = json.loads(ns.run(
        "patch", "tj", "nulls", "--subresource=status", "--type=merge", "-o", "json",
        "-p", json.dumps({"status": {"message": "written by an admin"}})).stdout)
    assert written["status"]["message"] == "written by an admin"
    changed = ns.run("patch", "tj", "nulls", "--type=merge", "-p",
                     json.dumps({"spec": {"workers": 3}}), check=False)
    assert changed.returncode != 0
    assert "spec is immutable once the TrainingJob exists" in changed.stderr
