"""The chart's ValidatingAdmissionPolicy: Pod Security baseline for who may not create pods.

A user who may create TrainingJobs but not pods in a namespace is refused, at apply time, a
job whose worker pods would break the Pod Security Standard "baseline"
(https://kubernetes.io/docs/concepts/security/pod-security-standards/: host namespaces,
privilege, capabilities beyond baseline's list, seccomp or AppArmor Unconfined, SELinux types,
procMount, unsafe sysctls), use a volume type outside the "restricted" list (hostPath, nfs, in
the template or spec.output.volume), another service account, a priority class the chart does
not list, a toleration of every taint, or a Secret; each refusal names the field and the fix. A
user who may create pods is not judged (Pod Security Admission and the operator then judge the
pods, tests/e2e/test_pod_security.py). Users are service accounts the admin impersonates
(`kubectl --as`); the policy comes from the session's `helm upgrade --install` of the chart.
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
from tests.kube import Kubectl, eventually, pod, training_job

pytestmark = pytest.mark.usefixtures("installation")

POLICY = f"{RELEASE}-pod-privilege"
OWNED_POLICY = f"{RELEASE}-owned-pods"
DENIED = f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
TRAINER = "trainer"      # may create TrainingJobs, not pods
POD_MAKER = "pod-maker"  # may create both
VOLUMES = ("(use a configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, "
           "projected or secret volume)")
BASELINE_CAPABILITIES = ("AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, "
                         "NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT")
NFS = {"server": "nfs.example", "path": "/models"}
APPARMOR = "container.apparmor.security.beta.kubernetes.io/trainer"

# Spec fields that ask for more than Pod Security baseline gives, and how the policy's message
# names each (the field, then the fix).
ASKS: dict[str, tuple[dict[str, Any], str]] = {
    "host-network": ({"template": {"spec": {"hostNetwork": True}}},
                     "spec.template.spec.hostNetwork: true (remove it)"),
    "host-pid-ipc": ({"template": {"spec": {"hostPID": True, "hostIPC": True}}},
                     "spec.template.spec.hostPID: true (remove it); "
                     "spec.template.spec.hostIPC: true (remove it)"),
    "host-path": ({"template": {"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}},
                  f"spec.template.spec.volumes[h]: hostPath volume {VOLUMES}"),
    "output-host-path": ({"output": {"volume": {"hostPath": {"path": "/models"}}}},
                         f"spec.output.volume: hostPath volume {VOLUMES}"),
    "nfs": ({"template": {"spec": {"volumes": [{"name": "data", "nfs": NFS}]}}},
            f"spec.template.spec.volumes[data]: nfs volume {VOLUMES}"),
    "output-nfs": ({"output": {"volume": {"nfs": NFS}}},
                   f"spec.output.volume: nfs volume {VOLUMES}"),
    "privileged": ({"securityContext": {"privileged": True}},
                   "spec.securityContext.privileged: true (remove it)"),
    "escalation": ({"securityContext": {"allowPrivilegeEscalation": True}},
                   "spec.securityContext.allowPrivilegeEscalation: true (remove it)"),
    "capabilities": ({"securityContext": {"capabilities": {"add": ["CHOWN", "NET_ADMIN"]}}},
                     f"spec.securityContext.capabilities.add: NET_ADMIN (add only "
                     f"{BASELINE_CAPABILITIES})"),
    "seccomp-pod": ({"template": {"spec": {"securityContext": {
        "seccompProfile": {"type": "Unconfined"}}}}},
        "spec.template.spec.securityContext.seccompProfile.type: Unconfined "
        "(use RuntimeDefault or Localhost)"),
    "seccomp-container": ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
                          "spec.securityContext.seccompProfile.type: Unconfined "
                          "(use RuntimeDefault or Localhost)"),
    "apparmor": ({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
                 "spec.securityContext.appArmorProfile.type: Unconfined "
                 "(use RuntimeDefault or Localhost)"),
    "apparmor-annotation": ({"template": {"metadata": {"annotations": {
        APPARMOR: "unconfined"}}}},
        f"spec.template.metadata.annotations[{APPARMOR}]: unconfined "
        "(use runtime/default or localhost/<profile>)"),
    "selinux": ({"template": {"spec": {"securityContext": {"seLinuxOptions": {
        "type": "spc_t"}}}}},
        "spec.template.spec.securityContext.seLinuxOptions.type: spc_t "
        "(use container_t, container_init_t, container_kvm_t or container_engine_t)"),
    "selinux-user": ({"securityContext": {"seLinuxOptions": {"user": "system_u"}}},
                     "spec.securityContext.seLinuxOptions user or role (leave both unset)"),
    "proc-mount": ({"securityContext": {"procMount": "Unmasked"}},
                   "spec.securityContext.procMount: Unmasked (use Default)"),
    "sysctl": ({"template": {"spec": {"securityContext": {"sysctls": [
        {"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
        {"name": "kernel.msgmax", "value": "65536"}]}}}},
        "spec.template.spec.securityContext.sysctls: kernel.msgmax (only the safe sysctls of "
        "Pod Security baseline: kernel.shm_rmid_forced, net.ipv4.ip_local_port_range"),
    "priority-class": ({"template": {"spec": {"priorityClassName": "system-node-critical"}}},
                       "spec.template.spec.priorityClassName: system-node-critical (remove it: "
                       "none may be named; the chart value admissionPolicy.allowedPriorityClasses "
                       "lists those that may)"),
    "tolerate-everything": ({"template": {"spec": {"tolerations": [
        {"key": "gpu", "operator": "Exists"}, {"operator": "Exists", "effect": "NoSchedule"}]}}},
        "spec.template.spec.tolerations: a toleration with no key and operator Exists "
        "tolerates every taint (name the key of the taint it is for)"),
    "service-account": ({"template": {"spec": {"serviceAccountName": "deployer"}}},
                        "spec.template.spec.serviceAccountName: deployer "
                        "(remove it: the pods run as default)"),
    "token": ({"template": {"spec": {"automountServiceAccountToken": True}}},
              "spec.template.spec.automountServiceAccountToken: true (remove it)"),
}
SECRETS: dict[str, Any] = {
    "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
    "template": {"spec": {"volumes": [
        {"name": "db", "secret": {"secretName": "db"}},
        {"name": "both", "projected": {"sources": [{"secret": {"name": "x"}}]}}]}}}
# A job that meets Pod Security baseline with the restricted volume types, each guarded field
# set to a value baseline allows: nothing in it needs the policy's permission.
PLAIN: dict[str, Any] = {
    "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                        "appArmorProfile": {"type": "RuntimeDefault"},
                        "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
                        "procMount": "Default"},
    "output": {"volume": {"persistentVolumeClaim": {"claimName": "models"}}},
    "env": [{"name": "A", "value": "b"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "template": {"metadata": {"labels": {"team": "a"},
                              "annotations": {APPARMOR: "runtime/default"}}, "spec": {
        "hostNetwork": False, "serviceAccountName": "default",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost",
                                                                     "localhostProfile": "a"},
                            "sysctls": [{"name": "net.ipv4.ip_local_port_range",
                                         "value": "1024 65535"}]},
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "scratch", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}}


def as_user(ns: Kubectl, user: str, *args: str, manifest: dict[str, Any] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    return ns.run(f"--as=system:serviceaccount:{ns.namespace}:{user}", *args, check=False,
                  input_text=json.dumps(manifest) if manifest is not None else None)


def apply_as(ns: Kubectl, user: str, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return as_user(ns, user, "apply", "-f", "-", manifest=manifest)


def grant(ns: Kubectl, user: str, verbs: str, resource: str) -> None:
    role = f"{user}-{resource.split('.')[0]}-{verbs.replace(',', '-')}"
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
def test_a_user_who_may_not_create_pods_is_refused_what_baseline_refuses(users: Kubectl,
                                                                         asks: str) -> None:
    fields, named = ASKS[asks]
    proc = apply_as(users, TRAINER, training_job("priv", gpus=0, **fields))
    assert proc.returncode != 0
    assert (f"{DENIED}the worker pods would get {named}") in proc.stderr, proc.stderr
    assert (f"only a user who may create pods in namespace {users.namespace} may ask for that "
            "through a TrainingJob") in proc.stderr
    assert f"ask an administrator of namespace {users.namespace} for create on pods" in (
        proc.stderr)
    assert users.run("get", "trainingjob", "priv", check=False).returncode != 0


def test_a_baseline_job_is_accepted(users: Kubectl) -> None:
    proc = apply_as(users, TRAINER, training_job("plain", gpus=0, **PLAIN))
    assert proc.returncode == 0, proc.stderr
    spec = users.json("get", "trainingjob", "plain")["spec"]
    assert spec["template"]["spec"]["serviceAccountName"] == "default"
    assert spec["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]


def test_a_user_who_may_create_pods_may_ask_for_what_a_pod_can(users: Kubectl) -> None:
    """Every manifest refused above, from a user who may create pods: accepted (server-side
    dry run, one namespace for all)."""
    refused = {}
    for asks, (fields, _) in sorted(ASKS.items()):
        proc = as_user(users, POD_MAKER, "create", "--dry-run=server", "-f", "-",
                       manifest=training_job(f"pods-{asks}", gpus=0, **fields))
        if proc.returncode != 0:
            refused[asks] = proc.stderr
    assert not refused, refused


def test_the_installed_policy_type_checks_without_warnings(users: Kubectl) -> None:
    """The API server compiled every expression (a cost or type error would be a warning or
    a refusal of the policy itself)."""
    policy = users.json("get", "validatingadmissionpolicy", POLICY)
    assert not (policy.get("status") or {}).get("typeChecking", {}).get(
        "expressionWarnings"), policy["status"]


def test_the_trainer_may_stop_a_job_the_pod_maker_made_privileged(users: Kubectl) -> None:
    every = training_job("host", gpus=0, securityContext={"privileged": True},
                         template={"spec": {"hostNetwork": True, "serviceAccountName": "deployer",
                                            "priorityClassName": "system-node-critical",
                                            "volumes": [{"name": "h",
                                                         "hostPath": {"path": "/"}}]}},
                         output={"volume": {"nfs": NFS}})
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
    """The policies and bindings the chart renders, each policy followed by its binding."""
    proc = subprocess.run([str(helm), "template", release, str(CHART), "--namespace",
                           OPERATOR_NAMESPACE, *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"].startswith(
        "ValidatingAdmissionPolicy")]
    return sorted(docs, key=lambda d: (not d["metadata"]["name"].endswith("pod-privilege"),
                                       d["kind"]))


def test_the_policy_is_on_by_default_and_a_value_turns_it_off(helm: Path) -> None:
    policy, binding, owned, owned_binding = rendered(helm)
    assert owned["metadata"]["name"] == owned_binding["spec"]["policyName"] == OWNED_POLICY
    assert owned["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["pods"]}]
    assert (policy["kind"], binding["kind"]) == ("ValidatingAdmissionPolicy",
                                                 "ValidatingAdmissionPolicyBinding")
    assert policy["metadata"]["name"] == binding["spec"]["policyName"] == POLICY
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace the operator watches
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": ["training.dev"], "apiVersions": ["*"],
                      "operations": ["CREATE", "UPDATE"], "resources": ["trainingjobs"]}]
    assert rendered(helm, "--set", "admissionPolicy.enabled=false") == []


def test_allowed_priority_classes_render_as_a_cel_list(helm: Path) -> None:
    def allowed(*args: str) -> str:
        policy, *_ = rendered(helm, *args)
        [variable] = [v for v in policy["spec"]["variables"]
                      if v["name"] == "allowedPriorityClasses"]
        expression: str = variable["expression"]
        return expression

    assert allowed() == "[]"
    assert allowed("--set", "admissionPolicy.allowedPriorityClasses={high,batch-low}") == (
        '["high","batch-low"]')


def test_cluster_scoped_names_carry_the_release_and_watch_namespaces_scope_the_binding(
        helm: Path) -> None:
    assert {d["metadata"]["name"] for d in rendered(helm, release="prod")} == {
        "prod-trainingjob-operator-pod-privilege", "prod-trainingjob-operator-owned-pods"}
    _, binding, _, owned_binding = rendered(helm, "--set", "watchNamespaces={a,b}")
    for b in (binding, owned_binding):
        assert b["spec"]["matchResources"] == {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}]}}


def test_only_the_operator_may_make_a_pod_a_training_jobs(users: Kubectl) -> None:
    """A uid is not secret: a user who may create pods and read the job is refused a pod that
    names the job as its controller, at create and when added later; without it, the pod is
    only theirs (and never a worker, workers.owned)."""
    users.apply(training_job("victim", gpus=0))
    uid = users.json("get", "trainingjob", "victim")["metadata"]["uid"]
    owner = {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob", "name": "victim",
             "uid": uid, "controller": True}
    forged = pod("victim-worker-7", owner=owner)
    proc = as_user(users, POD_MAKER, "create", "-f", "-", manifest=forged)
    assert proc.returncode != 0
    assert "metadata.ownerReferences: only the trainingjob-operator" in proc.stderr, proc.stderr
    own = pod("mine")
    assert as_user(users, POD_MAKER, "create", "-f", "-", manifest=own).returncode == 0
    grant(users, POD_MAKER, "get,patch", "pods")
    patched = as_user(users, POD_MAKER, "patch", "pod", "mine", "--type=merge", "-p",
                      json.dumps({"metadata": {"ownerReferences": [owner]}}))
    assert patched.returncode != 0
    assert "metadata.ownerReferences: only the trainingjob-operator" in patched.stderr
    assert "ownerReferences" not in users.json("get", "pod", "mine")["metadata"]
