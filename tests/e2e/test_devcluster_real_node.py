"""devcluster's real nodes as a person uses them: up beside another cluster, a real pod,
and a `down` that leaves nothing of the node on the machine."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import hostnode
from devcluster.cluster import group_members, read_state
from devcluster.images import TRAINER_IMAGE
from devcluster.realnode import REAL_NODE_TAINT
from tests.conftest import Cluster, devcluster_cli
from tests.kube import Kubectl

pytestmark = [pytest.mark.real_node, pytest.mark.usefixtures("real_nodes")]


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


def test_a_second_cluster_with_a_real_node_runs_a_pod_and_down_leaves_nothing(
        cluster: Cluster, second_dir: Path) -> None:
    data_dir = second_dir
    up = devcluster_cli("up", "--nodes", "0", "--real-nodes", "1", "--real-node-gpus", "2",
                        data_dir=data_dir)
    assert up.returncode == 0, up.stderr
    assert "and 1 real nodes x 2 nvidia.com/gpu" in up.stderr
    state = read_state(data_dir)
    assert state is not None and state.real_nodes == 1
    first = read_state(cluster.data_dir) if cluster.data_dir else None
    if first is not None:  # two clusters side by side: two bridges, two networks
        assert (state.bridge, state.octet) != (first.bridge, first.octet)
    (node,) = state.nodes(data_dir)
    second = Kubectl(cluster.bin_dir / "kubectl", data_dir / "kubeconfig")
    assert second.run("get", "node", node.name, "-o",
                      "jsonpath={.status.allocatable.nvidia\\.com/gpu}").stdout == "2"
    second.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"}, "spec": {
        "tolerations": [{"key": REAL_NODE_TAINT["key"], "operator": "Exists"}],
        "containers": [{"name": "c", "image": TRAINER_IMAGE, "command": ["sleep", "3600"]}]}})
    second.wait("pod/sleeper", "condition=Ready", timeout=60)
    assert hostnode.running_tasks(node)  # the sandbox and the container
    assert _netns_mounts(data_dir)

    down = devcluster_cli("down", data_dir=data_dir)
    assert down.returncode == 0 and "stopped" in down.stderr, down.stderr
    assert group_members(state.pgid) == []
    assert hostnode.leftovers(node) == []
    assert not hostnode.bridge_exists(state.bridge)
    assert _netns_mounts(data_dir) == []
    shims = subprocess.run(["pgrep", "-f", str(node.containerd_socket)], capture_output=True)
    assert shims.returncode == 1  # no process mentions the node's containerd any more
    # The first cluster's real node is untouched.
    if first is not None and cluster.data_dir is not None:
        assert hostnode.bridge_exists(first.bridge)
        for n in first.nodes(cluster.data_dir):
            assert n.containerd_socket.exists()
            assert cluster.kubectl.run("get", "node", n.name, "-o", "jsonpath={.status."
                                       "conditions[?(@.type=='Ready')].status}").stdout == "True"
