"""Fixtures: one devcluster for the whole session, a fresh namespace per test, kubectl.

With TEST_KUBECONFIG set, the tests use that cluster instead (e.g. kind on a machine with
Docker) and skip only those marked ``kwok``, which need devcluster's stages and GPU nodes.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devcluster import build
from tests.kube import Kubectl

ROOT = Path(__file__).resolve().parent.parent
TEST_CLUSTER_DIR = ROOT / ".devcluster-test"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path
    data_dir: Path | None  # None when the cluster is not a devcluster (TEST_KUBECONFIG)

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.bin_dir / "kubectl", self.kubeconfig)


def devcluster_cli(*args: str, data_dir: Path = TEST_CLUSTER_DIR,
                   timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devcluster", "--dir", str(data_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    bin_dir = build.ensure_binaries()
    external = os.environ.get("TEST_KUBECONFIG")
    if external:
        yield Cluster(Path(external), bin_dir, None)
        return
    devcluster_cli("down")  # a previous run that was killed may have left one behind
    started = devcluster_cli("up")
    if started.returncode != 0:
        pytest.fail(f"devcluster up failed:\n{started.stderr}\n{started.stdout}")
    try:
        yield Cluster(TEST_CLUSTER_DIR / "kubeconfig", bin_dir, TEST_CLUSTER_DIR)
    finally:
        devcluster_cli("down")


@pytest.fixture(autouse=True)
def _skip_kwok_tests_elsewhere(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kwok") and os.environ.get("TEST_KUBECONFIG"):
        pytest.skip("needs devcluster's kwok stages and fake GPU nodes")


@pytest.fixture
def kubectl(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


@pytest.fixture
def ns(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[Kubectl]:
    """kubectl bound to a fresh namespace, deleted (without waiting) after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"t-{slug}-{secrets.token_hex(2)}"
    kubectl.run("create", "namespace", name)
    try:
        yield kubectl.in_namespace(name)
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)
