"""The Helm chart and the kustomize base: helm lint/template, then the API server's verdict.

Every rendering is checked by `kubectl apply --dry-run=server` (admission, schema, Pod Security
`restricted` warnings) against the session's cluster; nothing is installed here (the session's
operator fixture installs the chart). RBAC is checked rule by rule in both watch modes.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import build
from tests.kube import Kubectl

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trainingjob-operator"
RELEASE = "trainingjob-operator"
NAMESPACE = "trainingjob-system"
PSA = "would violate PodSecurity"

Obj = dict[str, Any]

# The operator's whole authority (see kube.py, handlers.py, election.py), verbatim; that it is
# what the code requests is tests/unit/test_chart_files.py's test.
NAMESPACED_RULES = [
    {"apiGroups": ["training.dev"], "resources": ["trainingjobs"],
     "verbs": ["list", "watch", "delete"]},
    {"apiGroups": ["training.dev"], "resources": ["trainingjobs/status"], "verbs": ["patch"]},
    {"apiGroups": ["training.dev"], "resources": ["trainingjobs/finalizers"],
     "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["pods"],
     "verbs": ["list", "watch", "get", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
CLUSTER_RULES = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]
LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "resourceNames": ["trainingjob-operator"], "verbs": ["get", "update"]},
]


@pytest.fixture(scope="module")
def helm() -> Path:
    return build.ensure_tools(log=False) / "helm"


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)


def template(helm: Path, *args: str, release: str = RELEASE,
             namespace: str = NAMESPACE) -> str:
    proc = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def manifests(rendered: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def env_of(deployment: Obj) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def dry_run(kubectl: Kubectl, *args: str, input_text: str | None = None) -> str:
    """`kubectl apply --dry-run=server`; returns stderr (warnings), fails on any error."""
    proc = kubectl.run("apply", "--dry-run=server", *args, input_text=input_text)
    assert PSA not in proc.stderr, proc.stderr
    return proc.stderr + proc.stdout


@pytest.fixture
def restricted_ns(ns: Kubectl) -> Kubectl:
    """The test's namespace, enforcing (and warning about) the restricted Pod Security level."""
    ns.run("label", "namespace", str(ns.namespace), "pod-security.kubernetes.io/enforce=restricted",
           "pod-security.kubernetes.io/warn=restricted")
    return ns


@pytest.fixture
def two_namespaces(kubectl: Kubectl) -> Iterator[list[str]]:
    names = [f"t-chart-watch-{i}-{secrets.token_hex(2)}" for i in range(2)]
    for name in names:
        kubectl.run("create", "namespace", name)
    try:
        yield names
    finally:
        for name in names:
            kubectl.run("delete", "namespace", name, "--wait=false", check=False)


# --- helm alone -----------------------------------------------------------------------------

@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={a,b}"],
                                    ["--set", "metrics.serviceMonitor.enabled=true"]],
                         ids=["defaults", "watch-namespaces", "service-monitor"])
def test_helm_lint_strict(helm: Path, values: list[str]) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(("setting", "named"), [
    ("replicaCont=2", "replicaCont"),
    ("image.pullPolicy=Sometimes", "pullPolicy"),
    ("logFormat=xml", "logFormat"),
    ("settings.imagePullGraceSecs=5", "imagePullGraceSecs"),
    ("metrics.serviceMonitor.enable=true", "enable"),
    ("replicaCount=two", "replicaCount"),
    ("accelerators={gpu}", "accelerators"),
    ("cpuOnlyMaxWorkers=-1", "cpuOnlyMaxWorkers"),
    ("workerNodeSelector.pool=a b", "workerNodeSelector"),
])
def test_a_misspelt_or_mistyped_value_fails_naming_it(helm: Path, setting: str,
                                                      named: str) -> None:
    for command in ("template", "lint"):
        args = [command, RELEASE, str(CHART)] if command == "template" else [command, str(CHART)]
        proc = run_helm(helm, *args, "--set", setting)
        assert proc.returncode != 0, f"helm {command} --set {setting} passed"
        assert named in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_more_than_one_replica_without_leader_election_is_refused(helm: Path) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set",
                    "leaderElection.enabled=false")
    assert proc.returncode != 0
    assert "leaderElection.enabled" in proc.stderr


def test_defaults_render_the_operator_deployment(helm: Path) -> None:
    docs = manifests(template(helm))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget",
                     "Role", "RoleBinding", "Service", "ServiceAccount",
                     *["ValidatingAdmissionPolicy"] * 2, *["ValidatingAdmissionPolicyBinding"] * 2]
    assert {d["metadata"]["name"] for d in docs} == {
        "trainingjob-operator", "trainingjob-operator-leader-election",
        "trainingjob-operator-metrics", "trainingjob-operator-pod-privilege",
        "trainingjob-operator-owned-pods"}
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "trainingjob-operator"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532,
                                      "runAsGroup": 65532, "fsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["image"] == "trainingjob-operator:0.1.0"
    assert "command" not in container and "args" not in container  # the image's entrypoint
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"memory": "512Mi"}}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    env = env_of(deployment)
    assert env == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "TRAININGJOB_LEADER_ELECT": "true",
        "TRAININGJOB_LEASE_NAME": "trainingjob-operator",
        "TRAININGJOB_LEASE_NAMESPACE": NAMESPACE,
        "TRAININGJOB_LOG_FORMAT": "json",
        "TRAININGJOB_METRICS_PORT": "8080",
        "TRAININGJOB_HEALTH_PORT": "8081",
        "TRAININGJOB_ACCELERATORS": "nvidia.com/gpu,nvidia.com/mig-*,amd.com/gpu,gpu.intel.com/*",
        "TRAININGJOB_CPU_ONLY_MAX_WORKERS": "16",
        "TRAININGJOB_WORKER_NODE_SELECTOR": "{}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # Two replicas prefer two nodes; one disruption at a time.
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = spec["selector"]["matchLabels"]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    service = one(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    labels = spec["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_values_reach_the_deployment(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "settings": {"imagePullGraceSeconds": 300, "historyLimit": 1000000,
                     "leaderCheckSeconds": 0.5, "sweepSeconds": 3},  # the old key still passes
        "extraEnv": [{"name": "EXTRA", "value": "x"}],
        "logFormat": "plain", "podLabels": {"team": "ml"},
        "podAnnotations": {"a": "b"}, "priorityClassName": "ops",
        "nodeSelector": {"role": "ops"}, "tolerations": [{"operator": "Exists"}],
        "accelerators": ["amd.com/gpu", "example.com/accel-*"], "cpuOnlyMaxWorkers": 4,
        "workerNodeSelector": {"example.com/pool": "training"}}))
    docs = manifests(template(helm, "-f", str(values), "--set",
                              "settings.queueWritesPerSecond=2.5", "--set",
                              "image.repository=example/operator,image.tag=1.2.3"))
    deployment = one(docs, "Deployment")
    env = env_of(deployment)
    assert env["TRAININGJOB_IMAGE_PULL_GRACE_SECONDS"] == "300"
    assert env["TRAININGJOB_HISTORY_LIMIT"] == "1000000"  # not 1e+06
    assert env["TRAININGJOB_LEADER_CHECK_SECONDS"] == "0.5"
    assert env["TRAININGJOB_SWEEP_SECONDS"] == "3"  # the operator reads it only as a fallback
    assert env["TRAININGJOB_QUEUE_WRITES_PER_SECOND"] == "2.5"
    assert env["TRAININGJOB_LOG_FORMAT"] == "plain"
    assert env["TRAININGJOB_ACCELERATORS"] == "amd.com/gpu,example.com/accel-*"
    assert env["TRAININGJOB_CPU_ONLY_MAX_WORKERS"] == "4"
    assert env["TRAININGJOB_WORKER_NODE_SELECTOR"] == '{"example.com/pool":"training"}'
    assert env["EXTRA"] == "x"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["spec"]["priorityClassName"] == "ops"
    assert pod["spec"]["nodeSelector"] == {"role": "ops"}
    assert pod["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert pod["spec"]["containers"][0]["image"] == "example/operator:1.2.3"


def test_names_follow_release_and_overrides(helm: Path) -> None:
    def names(*args: str, release: str = RELEASE) -> set[str]:
        return {d["metadata"]["name"] for d in manifests(template(helm, *args, release=release))
                if d["kind"] in ("Deployment", "ServiceAccount")}

    assert names() == {"trainingjob-operator"}
    assert names(release="prod") == {"prod-trainingjob-operator"}
    assert names("--set", "fullnameOverride=tjo") == {"tjo"}
    assert names("--set", "nameOverride=tj", release="prod") == {"prod-tj"}
    assert names("--set", "serviceAccount.name=runner") == {"trainingjob-operator", "runner"}
    docs = manifests(template(helm, "--set", "serviceAccount.create=false,rbac.create=false"))
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "PodDisruptionBudget",
                                         "ValidatingAdmissionPolicy",
                                         "ValidatingAdmissionPolicyBinding"}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_one_replica_has_no_budget_and_no_anti_affinity(helm: Path) -> None:
    docs = manifests(template(helm, "--set", "replicaCount=1,leaderElection.enabled=false"))
    assert not by_kind(docs, "PodDisruptionBudget")
    assert not by_kind(docs, "Role"), "no Lease rules without leader election"
    deployment = one(docs, "Deployment")
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    assert env_of(deployment)["TRAININGJOB_LEADER_ELECT"] == "false"


def test_service_monitor_only_when_enabled(helm: Path) -> None:
    assert not by_kind(manifests(template(helm)), "ServiceMonitor")
    docs = manifests(template(helm, "--set", "metrics.serviceMonitor.enabled=true",
                              "--set", "metrics.serviceMonitor.interval=15s",
                              "--set", "metrics.serviceMonitor.labels.release=prom"))
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                             "interval": "15s"}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items())


# --- RBAC -------------------------------------------------------------------------------------

def all_rules(docs: list[Obj]) -> list[Obj]:
    return [rule for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]]


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={a,b}"]],
                         ids=["cluster-wide", "namespaced"])
def test_rbac_is_least_privilege(helm: Path, values: list[str]) -> None:
    docs = manifests(template(helm, *values))
    rules = all_rules(docs)
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert not {"secrets", "configmaps", "deployments"} & set(rule["resources"]), rule
        if "trainingjobs" in rule["resources"]:  # delete: only ttlSecondsAfterFinished
            assert set(rule["verbs"]) <= {"list", "watch", "delete"}, rule
    # Exactly these rules, in either mode: the modes differ only in how they are bound.
    assert sorted(map(repr, rules)) == sorted(
        map(repr, NAMESPACED_RULES + CLUSTER_RULES + LEASE_RULES))
    role = one(docs, "Role", "trainingjob-operator-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == LEASE_RULES
    subjects = [s for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
                for s in d["subjects"]]
    assert subjects and all(s == {"kind": "ServiceAccount", "name": "trainingjob-operator",
                                  "namespace": NAMESPACE} for s in subjects)


def test_rbac_cluster_wide_binds_one_cluster_role(helm: Path) -> None:
    docs = manifests(template(helm))
    role = one(docs, "ClusterRole")
    assert role["rules"] == NAMESPACED_RULES + CLUSTER_RULES
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [b["metadata"]["name"] for b in by_kind(docs, "RoleBinding")] == [
        "trainingjob-operator-leader-election"]


def test_rbac_namespaced_binds_the_job_rules_in_each_namespace(helm: Path) -> None:
    docs = manifests(template(helm, "--set", "watchNamespaces={a,b}"))
    jobs = one(docs, "ClusterRole", "trainingjob-operator")
    assert jobs["rules"] == NAMESPACED_RULES
    nodes = one(docs, "ClusterRole", "trainingjob-operator-nodes")
    assert nodes["rules"] == CLUSTER_RULES
    assert all(r["resources"] == ["nodes"] for r in nodes["rules"]), "no pod rights cluster-wide"
    cluster_binding = one(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == "trainingjob-operator-nodes"
    bindings = {b["metadata"]["namespace"]: b["roleRef"] for b in by_kind(docs, "RoleBinding")
                if b["metadata"]["name"] == "trainingjob-operator"}
    assert bindings == {ns: {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "trainingjob-operator"} for ns in ("a", "b")}
    assert env_of(one(docs, "Deployment"))["TRAININGJOB_NAMESPACES"] == "a,b"


# --- the API server's verdict -----------------------------------------------------------------

def test_defaults_pass_server_dry_run_under_restricted(helm: Path,
                                                        restricted_ns: Kubectl) -> None:
    namespace = str(restricted_ns.namespace)
    rendered = template(helm, namespace=namespace)
    out = dry_run(restricted_ns, "-f", "-", input_text=rendered)
    assert "deployment.apps/trainingjob-operator created (server dry run)" in out


def test_watch_namespaces_pass_server_dry_run(helm: Path, kubectl: Kubectl,
                                              restricted_ns: Kubectl,
                                              two_namespaces: list[str]) -> None:
    namespace = str(restricted_ns.namespace)
    rendered = template(helm, "--set", "watchNamespaces={" + ",".join(two_namespaces) + "}",
                        namespace=namespace)
    # Objects in three namespaces: kubectl without a namespace of its own.
    out = dry_run(kubectl, "-f", "-", input_text=rendered)
    assert out.count("rolebinding.rbac.authorization.k8s.io/trainingjob-operator created") == 2


def test_service_monitor_render_passes_without_the_monitor(helm: Path,
                                                           restricted_ns: Kubectl) -> None:
    """The Prometheus Operator's CRD is not installed here: the ServiceMonitor is the one
    object the API server cannot know, and everything else is unchanged and valid."""
    namespace = str(restricted_ns.namespace)
    docs = manifests(template(helm, "--set", "metrics.serviceMonitor.enabled=true",
                              namespace=namespace))
    others = [d for d in docs if d["kind"] != "ServiceMonitor"]
    assert len(others) == len(docs) - 1
    assert others == manifests(template(helm, namespace=namespace))
    dry_run(restricted_ns, "-f", "-", input_text=yaml.safe_dump_all(others))
    proc = restricted_ns.run("apply", "--dry-run=server", "-f", "-", check=False,
                             input_text=yaml.safe_dump(one(docs, "ServiceMonitor")))
    assert proc.returncode != 0 and "ServiceMonitor" in proc.stderr


def test_kustomize_base_passes_server_dry_run(kubectl: Kubectl) -> None:
    # The namespace for real (the dry run of the rest needs it, as a real apply would create
    # it first); never deleted: the session's operator may be installed there.
    kubectl.run("apply", "-f", str(ROOT / "deploy" / "namespace.yaml"))
    out = dry_run(kubectl, "-k", str(ROOT / "deploy"))
    for created in ("customresourcedefinition.apiextensions.k8s.io/trainingjobs.training.dev",
                    "deployment.apps/trainingjob-operator", "clusterrole.rbac.authorization."
                    "k8s.io/trainingjob-operator", "poddisruptionbudget.policy/"
                    "trainingjob-operator"):
        assert created in out, out


def test_kustomize_base_is_the_charts_defaults_without_helm_labels(kubectl: Kubectl,
                                                                   helm: Path) -> None:
    built = manifests(kubectl.run("kustomize", str(ROOT / "deploy")).stdout)
    assert {(d["kind"], d["metadata"]["name"]) for d in built} == {
        ("Namespace", NAMESPACE), ("CustomResourceDefinition", "trainingjobs.training.dev")} | {
        (d["kind"], d["metadata"]["name"]) for d in manifests(template(helm))}
    text = yaml.safe_dump_all(built)
    assert "helm.sh/chart" not in text and "managed-by: Helm" not in text
    namespace = one(built, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_deploy_is_not_stale(helm: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "charts" / "render_deploy.py"), "--check",
                           "--helm", str(helm)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
