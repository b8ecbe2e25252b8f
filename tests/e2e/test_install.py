"""The chart as a platform team installs it: `helm install` into devcluster, what the
operator's identity may and may not do (`kubectl auth can-i`), the namespaced mode, upgrade
and uninstall. The operator's own lifecycle tests already run as this identity (conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CHART, OPERATOR_NAMESPACE, RELEASE, Installation, Operator
from tests.e2e.test_operator_ha import ready
from tests.harness import Cluster
from tests.kube import Kubectl, eventually, status_of, training_job, wait_phase

SA = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"


def can(kubectl: Kubectl, user: str, verb: str, resource: str, *where: str) -> bool:
    """`resource` may carry `--subresource=x`; `kind/name` means an object by name."""
    got = kubectl.run("auth", "can-i", verb, *resource.split(), f"--as={user}", *where,
                      check=False)
    assert got.stdout.strip() in ("yes", "no"), got.stderr
    return got.stdout.strip() == "yes"


def test_helm_install_rolls_out_under_the_restricted_pod_security_standard(
        installation: Installation, cluster: Cluster) -> None:
    kubectl = cluster.kubectl
    status = installation.run_helm("status", RELEASE, "-n", OPERATOR_NAMESPACE).stdout
    assert "STATUS: deployed" in status
    # kwok plays the pods: this proves the ReplicaSet's pods passed admission, including
    # the namespace's `enforce: restricted` Pod Security level.
    kubectl.run("rollout", "status", f"deployment/{RELEASE}", "-n", OPERATOR_NAMESPACE,
                "--timeout=60s")
    pods = kubectl.json("get", "pods", "-n", OPERATOR_NAMESPACE, "-l",
                        f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert len(pods) == 2
    for pod in pods:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == RELEASE
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        container = spec["containers"][0]["securityContext"]
        assert container["readOnlyRootFilesystem"] is True
        assert container["allowPrivilegeEscalation"] is False
        assert container["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize(("verb", "resource", "allowed"), [
    ("list", "trainingjobs.training.dev", True),
    ("watch", "trainingjobs.training.dev", True),
    ("patch", "trainingjobs.training.dev --subresource=status", True),
    ("create", "pods", True),
    ("get", "pods", True),  # after a 409 AlreadyExists: whose pod holds the name
    ("patch", "pods", True),  # spec.activeDeadlineSeconds: stop a worker, keep its logs
    ("delete", "pods", True),
    ("create", "services", True),
    ("get", "services", True),
    ("create", "events", True),
    ("list", "nodes", True),
    ("delete", "trainingjobs.training.dev", True),  # a finished job past its TTL
    # Everything it does not need:
    ("get", "secrets", False),
    ("list", "secrets", False),
    ("get", "configmaps", False),
    ("update", "trainingjobs.training.dev", False),
    ("patch", "trainingjobs.training.dev", False),
    ("create", "trainingjobs.training.dev", False),
    ("update", "pods", False),
    ("create", "pods --subresource=exec", False),
    ("patch", "pods --subresource=status", False),
    ("delete", "services", False),
    ("list", "services", False),
    ("patch", "events", False),
    ("patch", "nodes", False),
    ("create", "deployments.apps", False),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", False),
    ("create", "rolebindings.rbac.authorization.k8s.io", False),
    ("create", "serviceaccounts --subresource=token", False),
])
def test_the_operator_identity_is_least_privilege(cluster: Cluster, installation: Installation,
                                                  verb: str, resource: str,
                                                  allowed: bool) -> None:
    assert can(cluster.kubectl, SA, verb, resource, "-n", "some-team") is allowed


def test_leader_election_may_touch_only_its_own_lease(cluster: Cluster,
                                                      installation: Installation) -> None:
    kubectl = cluster.kubectl
    mine = f"leases.coordination.k8s.io/{RELEASE}"
    assert can(kubectl, SA, "update", mine, "-n", OPERATOR_NAMESPACE)
    assert can(kubectl, SA, "create", "leases.coordination.k8s.io", "-n", OPERATOR_NAMESPACE)
    assert not can(kubectl, SA, "patch", mine, "-n", OPERATOR_NAMESPACE)  # it updates (PUT)
    assert not can(kubectl, SA, "update", "leases.coordination.k8s.io/other", "-n",
                   OPERATOR_NAMESPACE)
    assert not can(kubectl, SA, "update", mine, "-n", "kube-system")


def test_namespaced_install_grants_only_the_listed_namespaces_and_uninstall_keeps_jobs(
        cluster: Cluster, installation: Installation, ns: Kubectl) -> None:
    """A second release watching one namespace: its identity may create pods there and
    nowhere else, reads nodes cluster-wide; uninstalling it leaves the TrainingJobs."""
    kubectl = cluster.kubectl
    release, home = "tj-team", f"{ns.namespace}-op"
    kubectl.run("create", "namespace", home)
    try:
        installation.run_helm("install", release, str(CHART), "-n", home, "--skip-crds",
                              "--set", f"watchNamespaces={{{ns.namespace}}}",
                              "--set", "replicaCount=1")
        sa = f"system:serviceaccount:{home}:{release}-trainingjob-operator"
        assert can(kubectl, sa, "list", "nodes")
        assert can(kubectl, sa, "create", "pods", "-n", str(ns.namespace))
        assert can(kubectl, sa, "patch", "trainingjobs.training.dev --subresource=status",
                   "-n", str(ns.namespace))
        assert not can(kubectl, sa, "create", "pods", "-n", "default")
        for verb in ("list", "watch", "get", "create", "patch", "delete"):  # nodes only
            assert not can(kubectl, sa, verb, "pods", "-A"), f"{verb} pods cluster-wide"
        assert not can(kubectl, sa, "list", "trainingjobs.training.dev", "-A")

        ns.apply(training_job("survivor"))
        upgraded = installation.run_helm("upgrade", release, str(CHART), "-n", home,
                                         "--reuse-values", "--set", "logFormat=plain")
        assert "has been upgraded" in upgraded.stdout
        installation.run_helm("uninstall", release, "-n", home)
        assert not can(kubectl, sa, "create", "pods", "-n", str(ns.namespace))
        assert ns.json("get", "tj", "survivor")["metadata"]["name"] == "survivor"
    finally:
        installation.run_helm("uninstall", release, "-n", home, check=False)
        kubectl.run("delete", "namespace", home, "--wait=false", check=False)


@pytest.mark.kwok
def test_a_namespaced_install_runs_jobs_in_its_namespace_and_leaves_the_others_alone(
        cluster: Cluster, installation: Installation, operator: Operator, ns: Kubectl,
        tmp_path: Path) -> None:
    """The operator as a namespaced release's identity (RoleBindings in the watched
    namespace only): its informers list per namespace, so it becomes ready, runs a job there,
    and never touches a job elsewhere."""
    kubectl = cluster.kubectl
    release, home, other = "tj-scoped", f"{ns.namespace}-op", f"{ns.namespace}-other"
    for name in (home, other):
        kubectl.run("create", "namespace", name)
    operator.stop()  # the session's operator watches every namespace
    try:
        installation.run_helm("install", release, str(CHART), "-n", home, "--skip-crds",
                              "--set", f"watchNamespaces={{{ns.namespace}}}",
                              "--set", "replicaCount=1")
        scoped = Installation(cluster, installation.helm, namespace=home,
                              service_account=f"{release}-trainingjob-operator")
        own = Operator(scoped.token_kubeconfig(tmp_path / "scoped.kubeconfig"),
                       tmp_path / "scoped.log", name="scoped-operator",
                       env={"TRAININGJOB_NAMESPACES": str(ns.namespace),
                            "TRAININGJOB_LEASE_NAME": f"{release}-trainingjob-operator",
                            "POD_NAMESPACE": home})
        own.start()
        try:
            eventually(lambda: ready(f"{own.health_url}/readyz"), timeout=40,
                       what="the namespaced operator's readiness")
            elsewhere = kubectl.in_namespace(other)
            elsewhere.apply(training_job("ignored"))
            ns.apply(training_job("mine", annotations={"outcome": "succeed",
                                                       "run-duration": "1s"}))
            wait_phase(ns, "mine", "Completed")
            assert status_of(elsewhere, "ignored") == {}, "a job outside its namespaces moved"
            assert "Traceback" not in own.log_path.read_text()
        finally:
            own.stop()
    finally:
        installation.run_helm("uninstall", release, "-n", home, check=False)
        for name in (home, other):
            kubectl.run("delete", "namespace", name, "--wait=false", check=False)
        operator.start()
