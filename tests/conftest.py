"""Fixtures: one devcluster for the whole session, a fresh namespace per test, kubectl.

With TEST_KUBECONFIG set, the tests use that cluster instead (e.g. kind on a machine with
Docker) and skip only those marked ``kwok``, which need devcluster's stages and GPU nodes.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from devcluster import build
from tests import harness
from tests.harness import ROOT, Cluster
from tests.kube import Kubectl

# Two test runs side by side need two clusters: DEVCLUSTER_TEST_DIR picks another directory.
TEST_CLUSTER_DIR = Path(os.environ.get("DEVCLUSTER_TEST_DIR", ROOT / ".devcluster-test"))


# Real nodes (a kubelet and containerd each) the session cluster starts besides kwok's.
REAL_NODES = int(os.environ.get("DEVCLUSTER_TEST_REAL_NODES", "1"))


def devcluster_cli(*args: str, data_dir: Path = TEST_CLUSTER_DIR,
                   timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return harness.devcluster_cli(*args, data_dir=data_dir, timeout=timeout)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        with harness.cluster(TEST_CLUSTER_DIR, "--real-nodes", str(REAL_NODES),
                             "--services") as found:
            yield found
    except harness.ClusterError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def real_nodes(cluster: Cluster) -> list[str]:
    """The cluster's real nodes; a test that needs one skips without (fails under CI)."""
    names: list[str] = [n["metadata"]["name"] for n in cluster.kubectl.json(
        "get", "nodes", "-l", "type=real")["items"]]
    if not names:
        why = ("the cluster has no real node: `python -m devcluster up --real-nodes 1` needs "
               f"root on Linux and apt-get (see {TEST_CLUSTER_DIR}/logs and the `up` output)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"under CI every test must run: {why}")
        pytest.skip(why)
    return names


# What a test needs, read from the fixtures it uses (directly or through others), as its
# markers: `make test-e2e-fast` selects on them (pyproject.toml registers them).
NEEDS = {"cluster": "cluster", "tools_dir": "tools", "operator": "operator",
         "real_nodes": "real_node", "kueue_peer": "peers"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in NEEDS.items():
            if fixture in used:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _skip_kwok_tests_elsewhere(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kwok") and os.environ.get("TEST_KUBECONFIG"):
        pytest.skip("needs devcluster's kwok stages and fake GPU nodes")


@pytest.fixture
def kubectl(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


def _fresh_namespace(kubectl: Kubectl, prefix: str) -> Iterator[Kubectl]:
    """kubectl bound to a new namespace, deleted (without waiting) afterwards."""
    name = f"{prefix}-{secrets.token_hex(2)}"
    kubectl.run("create", "namespace", name)
    try:
        yield kubectl.in_namespace(name)
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def ns(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[Kubectl]:
    """A fresh namespace for the test, named after it."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    yield from _fresh_namespace(kubectl, f"t-{slug}")


@pytest.fixture
def other_ns(kubectl: Kubectl) -> Iterator[Kubectl]:
    """A second namespace: a bystander tenant whose jobs must not be slowed by the test's."""
    yield from _fresh_namespace(kubectl, "t-bystander")


# The Helm release every e2e test's operator runs under: installed once per session, and
# the operator process authenticates with a TokenRequest token of the chart's service account.
RELEASE = "trainingjob-operator"
OPERATOR_NAMESPACE = "trainingjob-system"
CHART = ROOT / "charts" / "trainingjob-operator"


@dataclass(frozen=True)
class Installation:
    """The chart installed in the cluster: where, as whom, and with which helm."""

    cluster: Cluster
    helm: Path
    namespace: str = OPERATOR_NAMESPACE
    service_account: str = RELEASE

    def run_helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.helm), f"--kubeconfig={self.cluster.kubeconfig}", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc

    def token_kubeconfig(self, path: Path, duration: str = "6h") -> Path:
        """A kubeconfig that authenticates as the chart's service account (TokenRequest API,
        `kubectl create token`), not as the cluster admin. Each call is a new token."""
        kubectl = self.cluster.kubectl
        token = kubectl.run("create", "token", self.service_account, "-n", self.namespace,
                            f"--duration={duration}").stdout.strip()
        admin = yaml.safe_load(self.cluster.kubeconfig.read_text())
        config = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"][:1],
                  "users": [{"name": self.service_account, "user": {"token": token}}],
                  "contexts": [{"name": "operator", "context": {
                      "cluster": admin["clusters"][0]["name"], "user": self.service_account}}],
                  "current-context": "operator"}
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


@pytest.fixture(scope="session")
def tools_dir() -> Path:
    return build.ensure_tools()


@pytest.fixture(scope="session")
def installation(cluster: Cluster, tools_dir: Path) -> Installation:
    """`helm install` of the chart (CRD, RBAC, Deployment) into a namespace that enforces the
    restricted Pod Security Standard. The Deployment's pods do not tolerate the real nodes'
    taint (devcluster/README.md, Real nodes), so they land on kwok nodes, which play them
    without running a container; the operator the tests drive runs as a local process (see
    `operator`), and test_image runs the image itself under a real node's kubelet."""
    kubectl = cluster.kubectl
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": OPERATOR_NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}}})
    installed = Installation(cluster, tools_dir / "helm")
    installed.run_helm("upgrade", "--install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE)
    kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.training.dev")
    return installed


class Operator(harness.Operator):
    """The operator as a real process against the session's cluster, with leader election
    on, as the chart's service account, with short grace periods so the failure rows play
    out in seconds."""

    ENV: ClassVar[dict[str, str]] = {
        "TRAININGJOB_IMAGE_PULL_GRACE_SECONDS": "4", "TRAININGJOB_CONFIG_ERROR_GRACE_SECONDS": "4",
        "TRAININGJOB_NODE_LOST_GRACE_SECONDS": "2", "TRAININGJOB_LEADER_CHECK_SECONDS": "1",
        "TRAININGJOB_QUEUE_REFRESH_SECONDS": "1", "TRAININGJOB_LEADER_ELECT": "true",
        "TRAININGJOB_LEASE_NAME": RELEASE, "POD_NAMESPACE": OPERATOR_NAMESPACE}

    def __init__(self, kubeconfig: Path, log_path: Path, name: str = "local-operator-0",
                 env: dict[str, str] | None = None) -> None:
        super().__init__(kubeconfig, log_path, name, self.ENV)
        self.extra_env = env or {}


@pytest.fixture(scope="session")
def operator(cluster: Cluster, installation: Installation,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The chart installed and the operator running as its service account, for every test
    that asks for it."""
    state = cluster.data_dir or tmp_path_factory.mktemp("operator")
    kubeconfig = installation.token_kubeconfig(state / "operator.kubeconfig")
    op = Operator(kubeconfig, state / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def running_operator(operator: Operator) -> Operator:
    """The session's operator, restarted if an earlier test left it stopped."""
    if not operator.alive():
        operator.start()
    return operator
