from __future__ import annotations

from typing import Any

import pytest
from trainingjob_operator.models import TrainingJob, Unreadable, read_job
from trainingjob_operator.vocabulary import Phase


def test_read_job_parses_camel_case_and_defaults() -> None:
    job = read_job({"metadata": {"name": "j", "namespace": "ns", "resourceVersion": "5"},
                    "spec": {"image": "x", "gpusPerWorker": 8, "timeouts": {"runSeconds": 60}}})
    assert isinstance(job, TrainingJob)
    assert job.spec.gpus_per_worker == 8 and job.spec.workers == 1
    assert job.spec.timeouts.run_seconds == 60 and job.spec.timeouts.deploy_seconds == 900
    assert job.metadata.resource_version == "5" and job.total_gpus == 8


def test_read_job_never_raises_on_what_an_older_schema_let_through() -> None:
    job = read_job({"metadata": {"name": "j", "namespace": "ns"},
                    "spec": {"workers": "many"}, "status": {"phase": "Running"}})
    assert isinstance(job, Unreadable)
    assert "spec.image: Field required" in job.problems
    assert "spec.workers" in job.problems and job.phase == "Running"


def test_phase_sets() -> None:
    assert {p for p in Phase if p.active} == {Phase.PENDING, Phase.CREATED, Phase.DEPLOYING,
                                               Phase.RUNNING}
    assert Phase.STOPPED.terminal and not Phase.RUNNING.terminal


def _read(**spec: Any) -> TrainingJob | Unreadable:
    return read_job({"metadata": {"name": "j", "namespace": "ns"},
                     "spec": {"image": "x", **spec}})


TEMPLATE = {
    "nodeSelector": {"pool": "a"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a"]}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                              "labelSelector": {"matchLabels": {"a": "b"}}}}]}},
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
                {"name": "cfg", "projected": {"sources": [{"configMap": {"name": "c"}}]}}],
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "hostPID": False, "serviceAccountName": "trainer", "imagePullSecrets": [{"name": "r"}],
}


def test_a_typed_template_parses_and_dumps_as_the_user_wrote_it() -> None:
    job = _read(template={"spec": TEMPLATE}, securityContext={
        "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False},
        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
        env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        output={"volume": {"nfs": {"server": "s", "path": "/p"}}})
    assert isinstance(job, TrainingJob), job
    assert job.spec.template is not None and job.spec.template.spec.dump() == TEMPLATE
    assert job.spec.template.spec.affinity is not None
    assert job.spec.security_context is not None and job.spec.security_context.dump() == {
        "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}
    assert job.spec.output is not None and job.spec.output.volume.sources() == ["nfs"]
    assert job.spec.template.spec.refused() == []


@pytest.mark.parametrize(("template", "field"), [
    ({"affinity": "x"}, "spec.template.spec.affinity"),
    ({"tolerations": ["x"]}, "spec.template.spec.tolerations.0"),
    ({"tolerations": [{"operator": "Sometimes"}]}, "spec.template.spec.tolerations.0.operator"),
    ({"volumes": [{"name": "v", "emptyDir": "x"}]}, "spec.template.spec.volumes.0.emptyDir"),
    ({"nodeSelector": ["a"]}, "spec.template.spec.nodeSelector"),
])
def test_a_wrong_shape_is_unreadable_naming_the_field_never_a_crash(
        template: dict[str, Any], field: str) -> None:
    job = _read(template={"spec": template})
    assert isinstance(job, Unreadable)
    assert job.problems.startswith(field + ":") or f"; {field}:" in job.problems, job.problems


def test_an_object_stored_before_the_schema_refused_a_key_keeps_it_apart() -> None:
    """The key is never rendered; validation.py ends such a job InvalidSpec naming it."""
    job = _read(template={"spec": {"containers": [], "hostAliases": [],
                                   "volumes": [{"name": "g", "gitRepo": {"repository": "r"}}]}},
                output={"volume": {"emptyDir": {}, "iscsi": {}}})
    assert isinstance(job, TrainingJob) and job.spec.template is not None
    assert job.spec.template.spec.refused() == [
        "spec.template.spec.containers", "spec.template.spec.hostAliases",
        "spec.template.spec.volumes[0].gitRepo"]
    assert job.spec.template.spec.dump() == {"volumes": [{"name": "g"}]}
    assert job.spec.output is not None
    assert job.spec.output.volume.sources() == ["emptyDir", "iscsi"]
    assert job.spec.output.volume.dump() == {"emptyDir": {}}


def test_a_stored_null_deploy_limit_is_the_default() -> None:
    """The CRD once documented deploySeconds: null as no limit; it is always bounded now."""
    job = _read(timeouts={"deploySeconds": None, "runSeconds": None}, setup=None, template=None)
    assert isinstance(job, TrainingJob)
    assert job.spec.timeouts.deploy_seconds == 900 and job.spec.timeouts.run_seconds is None
    assert job.spec.setup is None and job.spec.template is None
