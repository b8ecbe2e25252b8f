"""The launcher as a person uses it: up, status, env, down, and its refusals."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from devcluster.build import GO_DIR, module_version
from devcluster.cluster import group_members, read_state
from tests.conftest import devcluster_cli
from tests.harness import Cluster
from tests.kube import Kubectl

pytestmark = pytest.mark.kwok  # these start and inspect devclusters of their own

GOMOD = (GO_DIR / "go.mod").read_text()


def _version_of(binary: Path, *args: str) -> str:
    return subprocess.run([str(binary), *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_binaries_print_their_real_upstream_versions(cluster: Cluster) -> None:
    kube = module_version(GOMOD, "k8s.io/kubernetes")
    etcd = module_version(GOMOD, "go.etcd.io/etcd/server/v3").lstrip("v")
    kwok = module_version(GOMOD, "sigs.k8s.io/kwok").lstrip("v")
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert _version_of(cluster.bin_dir / name, "--version").strip() == f"Kubernetes {kube}"
    client = json.loads(_version_of(cluster.bin_dir / "kubectl", "version", "--client",
                                    "-o", "json"))
    assert client["clientVersion"]["gitVersion"] == kube
    assert f"etcd Version: {etcd}" in _version_of(cluster.bin_dir / "etcd", "--version")
    assert kwok in _version_of(cluster.bin_dir / "kwok", "--version")
    server = json.loads(cluster.kubectl.run("version", "-o", "json").stdout)
    assert server["serverVersion"]["gitVersion"] == kube


def test_status_lists_every_component_running(cluster: Cluster) -> None:
    assert cluster.data_dir is not None
    out = devcluster_cli("status", data_dir=cluster.data_dir)
    assert out.returncode == 0, out.stderr
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        assert re.search(rf"{name}\s+pid \d+\s+running", out.stdout), out.stdout
    env = devcluster_cli("env", data_dir=cluster.data_dir)
    assert env.stdout.strip() == f"export KUBECONFIG={cluster.kubeconfig}"


def test_up_refuses_when_the_cluster_is_already_up(cluster: Cluster) -> None:
    assert cluster.data_dir is not None
    again = devcluster_cli("up", data_dir=cluster.data_dir)
    assert again.returncode == 1
    assert "already up" in again.stderr and "cluster-down" in again.stderr
    assert devcluster_cli("status", data_dir=cluster.data_dir).returncode == 0  # untouched


def test_up_refuses_a_taken_port(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.data_dir is not None
    state = read_state(cluster.data_dir)
    assert state is not None
    taken = devcluster_cli("up", "--port", str(state.ports["apiserver"]),
                           data_dir=tmp_path / "other")
    assert taken.returncode == 1
    assert f"port {state.ports['apiserver']} on 127.0.0.1 is taken" in taken.stderr
    assert not (tmp_path / "other" / "state.json").exists()


def test_up_refuses_a_stale_data_dir_until_down_cleans_it(tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    # The state of a cluster whose processes are gone (pid 2**22 + 1 is above pid_max).
    (stale / "state.json").write_text(json.dumps({
        "pgid": 2**22 + 1, "ports": {"apiserver": 1}, "bin_dir": "/nowhere",
        "pids": {"etcd": 2**22 + 1}}))
    refused = devcluster_cli("up", data_dir=stale)
    assert refused.returncode == 1
    assert f"stale data dir {stale}" in refused.stderr
    assert devcluster_cli("down", data_dir=stale).returncode == 0
    assert not (stale / "state.json").exists()


def test_a_second_cluster_comes_up_beside_and_goes_down_leaving_no_process(
        cluster: Cluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "second"
    up = devcluster_cli("up", "--nodes", "1", "--gpus-per-node", "2", data_dir=data_dir)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"export KUBECONFIG={data_dir / 'kubeconfig'}"
    state = read_state(data_dir)
    assert state is not None and len(group_members(state.pgid)) == 5
    second = Kubectl(cluster.bin_dir / "kubectl", data_dir / "kubeconfig")
    nodes = second.run("get", "nodes",
                       "-o", "jsonpath={.items[*].status.allocatable.nvidia\\.com/gpu}")
    assert nodes.stdout.split() == ["2"]

    down = devcluster_cli("down", data_dir=data_dir)
    assert down.returncode == 0 and "stopped" in down.stderr
    assert group_members(state.pgid) == []
    assert not (data_dir / "etcd").exists() and not (data_dir / "kubeconfig").exists()
    again = devcluster_cli("down", data_dir=data_dir)
    assert again.returncode == 0 and "nothing was running" in again.stderr
    assert devcluster_cli("status", data_dir=data_dir).returncode == 1
