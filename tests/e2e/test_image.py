"""The operator image: built from the Dockerfile here (`make image`), loaded into the real
node (`make devcluster-load`), and run by a real kubelet under the restricted Pod Security
Standard with the chart's own security context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import opimage
from tests.conftest import TEST_CLUSTER_DIR
from tests.e2e.test_real_node import real_job
from tests.harness import ROOT
from tests.kube import Kubectl

pytestmark = [pytest.mark.usefixtures("real_nodes")]
TAG = "trainingjob-operator:e2e"
# `make test` builds TAG before pytest (the `e2e-image` target); a cold build takes about
# 5 minutes, so a run of these tests alone must not fail on pytest's 300 s default.
COLD_BUILD = pytest.mark.timeout(1500)
CHART_VALUES = ROOT / "charts" / "trainingjob-operator" / "values.yaml"


def _devcluster(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "devcluster", "--dir", str(TEST_CLUSTER_DIR),
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def image() -> str:
    """Built (a cache hit after the first time) and loaded into the real nodes."""
    _devcluster("image", "--tag", TAG)
    _devcluster("load-image", TAG)
    return TAG


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    docker = opimage.ensure_docker(lambda _: None)
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DOCKER_HOST": docker.host})


@COLD_BUILD
def test_the_image_is_non_root_and_holds_no_package_manager_or_compiler(image: str) -> None:
    config = _docker("image", "inspect", image, "--format", "{{.Config.User}}")
    assert config.stdout.strip() == "65532:65532"
    found = _docker("run", "--rm", "--network=none", "--entrypoint", "sh", image, "-c",
                    "for p in pip pip3 apt apt-get dpkg gcc cc g++ make perl; do "
                    "command -v $p; done; python3 -c 'import pip' 2>/dev/null && echo pip")
    assert found.stdout.strip() == "", found.stdout
    size = int(_docker("image", "inspect", image, "--format", "{{.Size}}").stdout)
    assert size < 250 * 2**20, f"the image grew to {size / 2**20:.0f} MiB"


@COLD_BUILD
def test_a_real_kubelet_runs_it_under_the_restricted_standard(image: str, kubectl: Kubectl,
                                                               ns: Kubectl) -> None:
    """The chart's securityContext (read-only root, non-root, no capabilities) in a
    namespace that enforces `restricted`: the pod is admitted and the operator starts."""
    kubectl.run("label", "namespace", str(ns.namespace),
                "pod-security.kubernetes.io/enforce=restricted")
    values: dict[str, Any] = yaml.safe_load(CHART_VALUES.read_text())
    placement = real_job("x")["spec"]["template"]["spec"]
    ns.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator-image"},
              "spec": {**placement, "restartPolicy": "Never",
                       "securityContext": values["podSecurityContext"],
                       "containers": [{"name": "operator", "image": image,
                                       "imagePullPolicy": "Never", "args": ["--help"],
                                       "securityContext": values["securityContext"]}]}})
    ns.wait("pod/operator-image", "jsonpath={.status.phase}=Succeeded", timeout=120)
    logs = ns.run("logs", "operator-image").stdout
    assert "usage: python -m trainingjob_operator" in logs
    user = ns.json("get", "pod", "operator-image")["spec"]["securityContext"]
    assert user.get("runAsNonRoot") is True


def test_devcluster_load_image_refuses_a_cluster_without_real_nodes(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "devcluster", "--dir", str(tmp_path),
                           "load-image", TAG], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "no cluster in" in proc.stderr
