"""The chart's ValidatingAdmissionPolicy: no privilege through the template.

A user who may create TrainingJobs but not pods in a namespace is refused, at apply time, a
template that asks for host namespaces, hostPath, privilege, added capabilities, host ports,
another service account or a Secret; a user who may create pods is not (Pod Security Admission
and the operator then judge the pods, tests/e2e/test_pod_security.py). Users are service
accounts the admin impersonates (`kubectl --as`); the policy comes from the session's
`helm upgrade --install` of the chart.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import build
from tests.conftest import CHART, OPERATOR_NAMESPACE, RELEASE
from tests.kube import Kubectl, eventually, training_job

pytestmark = pytest.mark.usefixtures("installation")

POLICY = f"{RELEASE}-pod-privilege"
DENIED = f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
TRAINER = "trainer"      # may create TrainingJobs, not pods
POD_MAKER = "pod-maker"  # may create both

# A template field that asks for more than a plain pod, and how the policy's message names it.
ASKS: dict[str, tuple[dict[str, Any], str]] = {
    "host-network": ({"template": {"spec": {"hostNetwork": True}}}, "hostNetwork: true"),
    "host-pid-ipc": ({"template": {"spec": {"hostPID": True, "hostIPC": True}}},
                     "hostPID: true, hostIPC: true"),
    "host-path": ({"template": {"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}},
                  "a hostPath volume"),
    "output-host-path": ({"output": {"volume": {"hostPath": {"path": "/models"}}}},
                         "a hostPath volume"),
    "privileged": ({"securityContext": {"privileged": True}}, "privileged: true"),
    "escalation": ({"securityContext": {"allowPrivilegeEscalation": True}},
                   "allowPrivilegeEscalation: true"),
    "capabilities": ({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
                     "capabilities.add"),
    "template-container": ({"template": {"spec": {"containers": [{
        "name": "x", "image": "x", "securityContext": {"privileged": True},
        "ports": [{"containerPort": 80, "hostPort": 80}]}]}}},
        "privileged: true, a hostPort"),
    "service-account": ({"template": {"spec": {"serviceAccountName": "deployer"}}},
                        "serviceAccountName: deployer"),
    "token": ({"template": {"spec": {"automountServiceAccountToken": True}}},
              "automountServiceAccountToken: true"),
}
SECRETS: dict[str, Any] = {
    "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
    "template": {"spec": {"volumes": [
        {"name": "db", "secret": {"secretName": "db"}},
        {"name": "both", "projected": {"sources": [{"secret": {"name": "x"}}]}}]}}}
# What an ordinary job's template looks like: nothing in it needs the policy's permission.
PLAIN: dict[str, Any] = {
    "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                        "capabilities": {"drop": ["ALL"], "add": []}},
    "output": {"volume": {"persistentVolumeClaim": {"claimName": "models"}}},
    "env": [{"name": "A", "value": "b"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "template": {"metadata": {"labels": {"team": "a"}}, "spec": {
        "hostNetwork": False, "serviceAccountName": "default",
        "automountServiceAccountToken": False, "securityContext": {"runAsNonRoot": True},
        "nodeSelector": {"gpu": "a100"}, "tolerations": [{"operator": "Exists"}],
        "volumes": [{"name": "scratch", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "cfg"}}]}}}


def as_user(ns: Kubectl, user: str, *args: str, manifest: dict[str, Any] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    return ns.run(f"--as=system:serviceaccount:{ns.namespace}:{user}", *args, check=False,
                  input_text=json.dumps(manifest) if manifest is not None else None)


def apply_as(ns: Kubectl, user: str, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return as_user(ns, user, "apply", "-f", "-", manifest=manifest)


def grant(ns: Kubectl, user: str, verbs: str, resource: str) -> None:
    role = f"{user}-{resource.split('.')[0]}"
    ns.run("create", "role", role, f"--verb={verbs}", f"--resource={resource}")
    ns.run("create", "rolebinding", role, f"--role={role}",
           f"--serviceaccount={ns.namespace}:{user}")
    def may_all() -> bool:
        return all(as_user(ns, user, "auth", "can-i", verb, resource).stdout.strip() == "yes"
                   for verb in verbs.split(","))

    # RBAC reaches the authorizer's cache a moment later.
    eventually(may_all, timeout=30, what=f"{user} may {verbs} {resource}")


@pytest.fixture
def users(ns: Kubectl) -> Kubectl:
    """The test's namespace with a user who may create TrainingJobs and one who may also create
    pods, once the policy refuses the first one's privileged template (a binding takes effect a
    moment after it is written)."""
    for user in (TRAINER, POD_MAKER):
        ns.run("create", "serviceaccount", user)
        grant(ns, user, "create,get,list,patch,update,delete", "trainingjobs.training.dev")
    grant(ns, POD_MAKER, "create", "pods")
    probe = training_job("probe", gpus=0, **ASKS["host-network"][0])
    eventually(lambda: DENIED in as_user(ns, TRAINER, "create", "--dry-run=server", "-f", "-",
                                         manifest=probe).stderr,
               timeout=60, what="the admission policy to refuse a hostNetwork template")
    return ns


@pytest.mark.parametrize("asks", sorted(ASKS))
def test_a_user_who_may_not_create_pods_is_refused_a_privileged_template(users: Kubectl,
                                                                         asks: str) -> None:
    fields, named = ASKS[asks]
    proc = apply_as(users, TRAINER, training_job("priv", gpus=0, **fields))
    assert proc.returncode != 0
    assert (f"{DENIED}the worker pods would get {named}, and only a user who may create pods "
            f"in namespace {users.namespace} may ask for that through a TrainingJob") in (
        proc.stderr), proc.stderr
    assert f"ask an administrator of namespace {users.namespace} for create on pods" in (
        proc.stderr)
    assert users.run("get", "trainingjob", "priv", check=False).returncode != 0


def test_a_plain_template_is_accepted(users: Kubectl) -> None:
    proc = apply_as(users, TRAINER, training_job("plain", gpus=0, **PLAIN))
    assert proc.returncode == 0, proc.stderr
    assert users.json("get", "trainingjob", "plain")["spec"]["template"]["spec"][
        "serviceAccountName"] == "default"


def test_a_user_who_may_create_pods_may_ask_for_what_a_pod_can(users: Kubectl) -> None:
    every = training_job("host", gpus=0, securityContext={"privileged": True},
                         template={"spec": {"hostNetwork": True, "serviceAccountName": "deployer",
                                            "volumes": [{"name": "h",
                                                         "hostPath": {"path": "/"}}]}})
    proc = apply_as(users, POD_MAKER, every)
    assert proc.returncode == 0, proc.stderr
    # The trainer may still stop it: an update that leaves the pod fields alone is not judged.
    stop = as_user(users, TRAINER, "patch", "trainingjob", "host", "--type=merge",
                   "-p", '{"spec":{"stop":true}}')
    assert stop.returncode == 0, stop.stderr
    assert users.json("get", "trainingjob", "host")["spec"]["stop"] is True


def test_secrets_need_a_user_who_may_read_them(users: Kubectl) -> None:
    job = training_job("secrets", gpus=0, **SECRETS)
    refused = apply_as(users, TRAINER, job)
    assert refused.returncode != 0
    assert (f"{DENIED}the worker pods would read Secrets (db, those of projected volume both, "
            f"hf), and only a user who may create pods or get Secrets in namespace "
            f"{users.namespace} may reference Secrets through a TrainingJob") in refused.stderr
    assert apply_as(users, POD_MAKER, job).returncode == 0  # who may create pods may mount them
    users.run("delete", "trainingjob", "secrets")
    grant(users, TRAINER, "get", "secrets")
    accepted = apply_as(users, TRAINER, job)
    assert accepted.returncode == 0, accepted.stderr


# --- the chart's rendering --------------------------------------------------------------------

@pytest.fixture(scope="module")
def helm() -> Path:
    return build.ensure_tools(log=False) / "helm"


def rendered(helm: Path, *args: str, release: str = RELEASE) -> list[dict[str, Any]]:
    proc = subprocess.run([str(helm), "template", release, str(CHART), "--namespace",
                           OPERATOR_NAMESPACE, *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"].startswith(
        "ValidatingAdmissionPolicy")]


def test_the_policy_is_on_by_default_and_a_value_turns_it_off(helm: Path) -> None:
    policy, binding = rendered(helm)
    assert (policy["kind"], binding["kind"]) == ("ValidatingAdmissionPolicy",
                                                 "ValidatingAdmissionPolicyBinding")
    assert policy["metadata"]["name"] == binding["spec"]["policyName"] == POLICY
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace the operator watches
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": ["training.dev"], "apiVersions": ["*"],
                      "operations": ["CREATE", "UPDATE"], "resources": ["trainingjobs"]}]
    assert rendered(helm, "--set", "admissionPolicy.enabled=false") == []


def test_cluster_scoped_names_carry_the_release_and_watch_namespaces_scope_the_binding(
        helm: Path) -> None:
    assert {d["metadata"]["name"] for d in rendered(helm, release="prod")} == {
        "prod-trainingjob-operator-pod-privilege"}
    _, binding = rendered(helm, "--set", "watchNamespaces={a,b}")
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}]}}
