"""devcluster's real nodes as a person uses them: up beside another cluster, pods on two
real nodes that meet over the bridge, and a `down` that leaves nothing on the machine."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import hostnode
from devcluster.cluster import group_members, read_state
from devcluster.images import TRAINER_IMAGE
from devcluster.realnode import REAL_NODE_TAINT
from tests.conftest import devcluster_cli
from tests.harness import Cluster
from tests.kube import Kubectl, eventually

pytestmark = [pytest.mark.usefixtures("real_nodes")]


def _netns_mounts(under: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if "nsfs" in line and str(under) in line]


@pytest.fixture
def second_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir for a second cluster, brought down whatever the test did (pytest removes
    old tmp dirs, and a cluster whose dir is gone can no longer be found by `down`)."""
    data_dir = tmp_path / "second"
    try:
        yield data_dir
    finally:
        devcluster_cli("down", data_dir=data_dir)


def _worker(rank: int, node: str) -> dict[str, object]:
    """A trainer pod pinned to `node` that meets the other rank over the bridge, then stays."""
    env = {"RANK": str(rank), "WORLD_SIZE": "2", "MASTER_PORT": "29500",
           "MASTER_ADDR": "w-0.w.default.svc.cluster.local"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"w-{rank}", "labels": {"job": "w"}},
            "spec": {"nodeName": node, "hostname": f"w-{rank}", "subdomain": "w",
                     "tolerations": [{"key": REAL_NODE_TAINT["key"], "operator": "Exists"}],
                     "containers": [{"name": "trainer", "image": TRAINER_IMAGE,
                                     "command": ["/bin/trainer", "--steps", "1", "--sleep", "1h"],
                                     "env": [{"name": k, "value": v} for k, v in env.items()]}]}}


def test_a_second_cluster_with_two_real_nodes_runs_pods_across_them_and_down_leaves_nothing(
        cluster: Cluster, second_dir: Path) -> None:
    data_dir = second_dir
    up = devcluster_cli("up", "--nodes", "0", "--real-nodes", "2", "--real-node-gpus", "2",
                        data_dir=data_dir)
    assert up.returncode == 0, up.stderr
    assert "and 2 real nodes x 2 nvidia.com/gpu" in up.stderr
    state = read_state(data_dir)
    assert state is not None and state.real_nodes == 2
    first = read_state(cluster.data_dir) if cluster.data_dir else None
    if first is not None:  # two clusters side by side: two bridges, two networks
        assert (state.bridge, state.octet) != (first.bridge, first.octet)
    nodes = state.nodes(data_dir)
    second = Kubectl(cluster.bin_dir / "kubectl", data_dir / "kubeconfig")
    for node in nodes:
        assert second.run("get", "node", node.name, "-o",
                          "jsonpath={.status.allocatable.nvidia\\.com/gpu}").stdout == "2"
    second.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "w"},
                  "spec": {"clusterIP": "None", "selector": {"job": "w"},
                           "publishNotReadyAddresses": True}})
    for rank, node in enumerate(nodes):
        second.apply(_worker(rank, node.name))

    def met(rank: int) -> bool:
        return "rendezvous: 2 of 2 workers met" in second.run(
            "logs", f"w-{rank}", check=False).stdout

    for rank in (0, 1):  # one pod on each node, meeting over the bridge and the cluster DNS
        eventually(functools.partial(met, rank), timeout=90, what=f"w-{rank} to meet")
    assert all(hostnode.running_tasks(n) for n in nodes)  # sandboxes and containers
    assert _netns_mounts(data_dir)

    down = devcluster_cli("down", data_dir=data_dir)
    assert down.returncode == 0 and "stopped" in down.stderr, down.stderr
    assert group_members(state.pgid) == []
    for node in nodes:
        assert hostnode.leftovers(node) == []
        shims = subprocess.run(["pgrep", "-f", str(node.containerd_socket)],
                               capture_output=True)
        assert shims.returncode == 1  # no process mentions the node's containerd any more
    assert not hostnode.bridge_exists(state.bridge)
    assert _netns_mounts(data_dir) == []
    # The first cluster's real node is untouched.
    if first is not None and cluster.data_dir is not None:
        assert hostnode.bridge_exists(first.bridge)
        for n in first.nodes(cluster.data_dir):
            assert n.containerd_socket.exists()
            assert cluster.kubectl.run("get", "node", n.name, "-o", "jsonpath={.status."
                                       "conditions[?(@.type=='Ready')].status}").stdout == "True"
