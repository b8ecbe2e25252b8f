"""Pod Security Admission judges the operator's worker pods exactly as it judges the user's own.

The operator creates the pods with its own service account, but in the job's namespace: the
namespace's `pod-security.kubernetes.io/enforce` level refuses them as it would refuse the same
pod created by the user with kubectl, and the job ends DeployFailed/PodRejected with the API
server's words. The jobs here are applied by the cluster admin, who may create pods, so the
chart's admission policy lets them through (tests/e2e/test_admission_policy.py covers users who
may not).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.render import worker_pod
from trainingjob_operator.settings import Settings

from tests.kube import Kubectl, status_of, training_job, wait_phase

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]

# What the restricted level asks of every pod: the containers' part goes in spec.securityContext
# (the operator owns the containers), the pod's in spec.template.spec.securityContext.
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000,
                  "seccompProfile": {"type": "RuntimeDefault"}}

# spec fields that ask for what both the baseline and the restricted level refuse, and words
# of Pod Security Admission's verdict on them at either level.
PRIVILEGED: dict[str, tuple[dict[str, Any], list[str]]] = {
    "host-network": ({"template": {"spec": {"hostNetwork": True}}},
                     ["host namespaces (hostNetwork=true)"]),
    "host-path": ({"template": {"spec": {"volumes": [{"name": "host",
                                                      "hostPath": {"path": "/"}}]}}},
                  ['volume "host"', "hostPath"]),
    "privileged": ({"securityContext": {"privileged": True}},
                   ['privileged (container "trainer" must not set '
                    "securityContext.privileged=true)"]),
    "capabilities": ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
                     ['container "trainer" must not include "NET_ADMIN" in '
                      "securityContext.capabilities.add"]),
}


def enforce(ns: Kubectl, level: str) -> None:
    ns.run("label", "namespace", str(ns.namespace), f"pod-security.kubernetes.io/enforce={level}")


def refusal(text: str) -> str:
    """The Pod Security verdict in an API error: the level and every violation it names."""
    found = re.search(r'violates PodSecurity "[a-z]+:latest": .*?(?=; the namespace|$)', text,
                      re.S)
    assert found, text
    return found.group(0).strip()


def rejected_message(ns: Kubectl, name: str) -> str:
    ns.wait(f"tj/{name}", "condition=Finished", timeout=60)
    status = status_of(ns, name)
    assert (status["phase"], status["reason"]) == ("DeployFailed", "PodRejected"), status
    message: str = status["message"]
    return message


def the_users_own_pod(ns: Kubectl, name: str) -> dict[str, Any]:
    """The very pod the operator asked for (render.py on the stored job), as the user would
    create it: without the ownerReference, which only the job's controller may set."""
    job = TrainingJob.model_validate(ns.json("get", "trainingjob", name))
    pod = worker_pod(job, 0, None, Settings())
    del pod["metadata"]["ownerReferences"]
    return pod


def kubectl_create_refusal(ns: Kubectl, pod: dict[str, Any]) -> str:
    proc = ns.run("create", "--dry-run=server", "-f", "-", input_text=json.dumps(pod),
                  check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


@pytest.mark.parametrize("level", ["baseline", "restricted"])
@pytest.mark.parametrize("asks", sorted(PRIVILEGED))
def test_a_privileged_template_is_refused_as_the_users_own_pod_would_be(
        ns: Kubectl, level: str, asks: str) -> None:
    enforce(ns, level)
    fields, violation = PRIVILEGED[asks]
    ns.apply(training_job("priv", gpus=0, **fields))
    message = rejected_message(ns, "priv")
    assert message.startswith("the API server rejected worker 0's pod: pods \"priv-worker-0\" "
                              f'is forbidden: violates PodSecurity "{level}:latest": '), message
    assert all(words in message for words in violation), message
    assert "spec.securityContext (every container)" in message  # what answers it
    # The user's own kubectl create of the same pod meets the same verdict, word for word.
    direct = kubectl_create_refusal(ns, the_users_own_pod(ns, "priv"))
    assert refusal(direct) == refusal(message)
    assert not ns.json("get", "pods")["items"]


def test_restricted_refuses_a_plain_job_and_names_what_it_lacks(ns: Kubectl) -> None:
    enforce(ns, "restricted")
    ns.apply(training_job("plain", gpus=0, setup={"command": ["pip", "install", "x"]}))
    message = rejected_message(ns, "plain")
    for lacks in ('allowPrivilegeEscalation != false (containers "setup", "trainer"',
                  "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"):
        assert lacks in message, message
    assert refusal(kubectl_create_refusal(ns, the_users_own_pod(ns, "plain"))) == refusal(
        message)


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_compliant_job_runs_under_the_level(ns: Kubectl, level: str) -> None:
    enforce(ns, level)
    ns.apply(training_job("ok", workers=2, setup={"command": ["pip", "install", "x"]},
                          securityContext=RESTRICTED_CONTAINER,
                          template={"spec": {"securityContext": RESTRICTED_POD}},
                          annotations={"run-duration": "600s"}))
    wait_phase(ns, "ok", "Running")
    for i in range(2):
        spec = ns.json("get", "pod", f"ok-worker-{i}")["spec"]
        assert spec["securityContext"] == RESTRICTED_POD
        for container in (*spec["initContainers"], *spec["containers"]):
            assert container["securityContext"] == RESTRICTED_CONTAINER
    if level == "baseline":  # the running pods meet the restricted level too
        warnings = ns.run("label", "namespace", str(ns.namespace), "--overwrite",
                          "pod-security.kubernetes.io/enforce=restricted").stderr
        assert "violate" not in warnings, warnings


def test_a_template_cannot_put_a_worker_in_another_namespace(ns: Kubectl,
                                                             kubectl: Kubectl) -> None:
    """The template's metadata is labels and annotations only: kubectl's strict field
    validation refuses a namespace there, a client that does not validate has it pruned, and
    the operator always creates the pod in the job's namespace, where every Secret, ConfigMap
    and PersistentVolumeClaim it names is looked up."""
    job = training_job("here", gpus=0, annotations={"run-duration": "600s"},
                       template={"metadata": {"namespace": "kube-system",
                                              "labels": {"team": "a"}}})
    strict = ns.run("apply", "-f", "-", input_text=json.dumps(job), check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.template.metadata.namespace"' in strict.stderr
    ns.run("apply", "--validate=false", "-f", "-", input_text=json.dumps(job))
    stored = ns.json("get", "trainingjob", "here")["spec"]["template"]["metadata"]
    assert "namespace" not in stored and stored["labels"] == {"team": "a"}
    wait_phase(ns, "here", "Running")
    pod = ns.json("get", "pod", "here-worker-0")
    assert (pod["metadata"]["namespace"], pod["metadata"]["labels"]["team"]) == (
        ns.namespace, "a")
    assert kubectl.run("get", "pod", "here-worker-0", "-n", "kube-system",
                       check=False).returncode != 0
