from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from devcluster import hostnode
from devcluster.realnode import (
    PULL_PROXY,
    REAL_NODE_LABEL,
    REAL_NODE_TAINT,
    Network,
    NodeCerts,
    cni_conflist,
    containerd_config,
    containerd_env,
    fence_rules,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
    network_for,
    real_nodes,
)

DATA = Path("/data/dc")
NET = Network(bridge="dcabcdef01", octet=210)
CERTS = NodeCerts(ca=Path("/pki/ca.crt"), serving_cert=Path("/pki/s.crt"),
                  serving_key=Path("/pki/s.key"))


def test_the_network_is_stable_per_data_dir_and_avoids_routed_ranges() -> None:
    first = network_for(DATA, set())
    assert network_for(DATA, set()) == first
    assert len(first.bridge) <= 15  # the kernel's limit on interface names
    moved = network_for(DATA, {first.octet})
    assert moved.octet != first.octet and moved.bridge == first.bridge
    assert network_for(Path("/data/other"), set()).bridge != first.bridge
    with pytest.raises(ValueError, match="routed"):
        network_for(DATA, set(range(256)))


def test_nodes_have_distinct_addresses_ranges_and_cgroups_inside_the_network() -> None:
    nodes = real_nodes(DATA, NET, 3)
    net = ipaddress.ip_network(NET.cidr)
    assert len({n.ip for n in nodes}) == 3
    assert len({n.cgroup_root for n in nodes}) == 3
    ranges = [NET.pod_range(n.index) for n in nodes]
    assert len(set(ranges)) == 3
    for start, end in ranges:
        assert ipaddress.ip_address(start) in net and ipaddress.ip_address(end) in net
    assert all(ipaddress.ip_address(n.ip) in net for n in nodes)
    assert ipaddress.ip_address(NET.gateway) not in {ipaddress.ip_address(n.ip) for n in nodes}


def test_containerd_keeps_its_state_under_the_node_dir_and_never_lowers_oom_score() -> None:
    node = real_nodes(DATA, NET, 1)[0]
    config = tomllib.loads(containerd_config(node, "devcluster.local/pause:3.10"))
    for key in ("root", "state"):
        assert Path(config[key]).is_relative_to(node.dir)
    assert config["grpc"]["address"] == str(node.containerd_socket)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "devcluster.local/pause:3.10"
    assert cri["cni"]["conf_dir"] == str(node.cni_conf_dir)
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False


def test_pods_get_no_route_beyond_the_bridge_but_the_service_range() -> None:
    node = real_nodes(DATA, NET, 2)[1]
    (plugin,) = cni_conflist(node)["plugins"]
    assert plugin["bridge"] == NET.bridge and plugin["ipMasq"] is False
    assert "isDefaultGateway" not in plugin  # no default route
    (range_,) = plugin["ipam"]["ranges"][0:1][0]
    assert (range_["rangeStart"], range_["rangeEnd"]) == NET.pod_range(1)
    assert plugin["ipam"]["routes"] == [{"dst": "10.96.0.0/16"}]  # ClusterIPs, via the host
    assert Path(plugin["ipam"]["dataDir"]).is_relative_to(node.dir)


def test_the_fence_drops_what_pods_send_off_the_bridge() -> None:
    rules = fence_rules(NET)
    assert f"table inet devcluster-{NET.bridge}" in rules
    assert "hook forward" in rules
    assert f'iifname "{NET.bridge}" oifname != "{NET.bridge}" drop' in rules


def test_kube_proxy_maps_services_with_nftables_and_leaves_the_machines_sysctls() -> None:
    node = real_nodes(DATA, NET, 1)[0]
    config = kube_proxy_config(node, Path("/k/kube-proxy.yaml"), 1001, 1002)
    assert (config["mode"], config["clusterCIDR"]) == ("nftables", NET.cidr)
    assert config["hostnameOverride"] == node.name
    assert config["nodePortAddresses"] == [f"{NET.gateway}/32"]  # never the machine's own
    assert config["healthzBindAddress"] == "127.0.0.1:1001"
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0


def test_the_kubelet_serves_on_its_node_address_and_authorizes_through_the_api() -> None:
    node = real_nodes(DATA, NET, 1)[0]
    config = kubelet_config(node, CERTS)
    assert config["address"] == config["healthzBindAddress"] == node.ip
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == "/pki/ca.crt"
    assert config["authorization"]["mode"] == "Webhook"
    assert config["cgroupDriver"] == "cgroupfs" and config["failSwapOn"] is False
    assert config["makeIPTablesUtilChains"] is False
    assert config["clusterDNS"] == [NET.gateway]
    assert config["registerWithTaints"] == [REAL_NODE_TAINT]
    assert config["containerRuntimeEndpoint"] == f"unix://{node.containerd_socket}"
    argv = kubelet_argv(Path("/bin"), node)
    assert f"--node-ip={node.ip}" in argv
    assert f"--node-labels={REAL_NODE_LABEL[0]}={REAL_NODE_LABEL[1]}" in argv
    assert f"--hostname-override={node.name}" in argv


def test_containerd_pulls_only_through_a_closed_loopback_proxy() -> None:
    env = containerd_env({"PATH": "/bin", "NO_PROXY": "*", "no_proxy": "*",
                          "HTTPS_PROXY": "http://proxy.example:3128"})
    assert env["PATH"] == "/bin"
    assert "NO_PROXY" not in env and "no_proxy" not in env
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        assert env[key] == PULL_PROXY
        assert PULL_PROXY.startswith("http://127.0.0.1:")


def test_a_machine_that_cannot_run_real_nodes_is_told_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devcluster.hostnode.os.geteuid", lambda: 1000)
    assert "need root" in (hostnode.missing_prerequisite() or "")
    monkeypatch.setattr("devcluster.hostnode.platform.system", lambda: "Darwin")
    assert "need Linux" in (hostnode.missing_prerequisite() or "")
