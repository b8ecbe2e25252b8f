"""Pure description of devcluster's real nodes: a kubelet and its own containerd each.

Everything a real node needs (paths, addresses, the containerd, CNI and kubelet
configurations, command lines) is computed here from the data dir, with no I/O, so the
whole shape is testable as data; ``hostnode.py`` does what touches the machine.

Networking stays on this machine: one bridge per cluster, no default route in pods and no
masquerade, so a pod can reach other pods, the node addresses and the cluster DNS on the
bridge, and nothing else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster.pki import SERVICE_CLUSTER_IP_RANGE

# Tells real nodes from kwok's (whose nodes carry type=kwok).
REAL_NODE_LABEL = ("type", "real")
# Keeps pods that don't ask for a real node (every kwok test) off it.
REAL_NODE_TAINT = {"key": "devcluster.training.dev/real-node", "value": "true",
                   "effect": "NoSchedule"}
CLUSTER_DOMAIN = "cluster.local"
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
CNI_BIN_DIR = "/usr/lib/cni"
# Debian packages a real node needs, and a file each installs.
NFT = "/usr/sbin/nft"
PACKAGES = {"containerd": CONTAINERD, "runc": "/usr/bin/runc",
            "containernetworking-plugins": f"{CNI_BIN_DIR}/bridge", "nftables": NFT}
# The second octet of the pod network comes from this range (10.<octet>.0.0/16).
_OCTETS = range(200, 250)
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248


@dataclass(frozen=True)
class Network:
    """One bridge for every real node of a cluster: pods, node addresses and DNS on it."""

    bridge: str
    octet: int  # the pod network is 10.<octet>.0.0/16

    @property
    def cidr(self) -> str:
        return f"10.{self.octet}.0.0/16"

    @property
    def gateway(self) -> str:
        """The bridge's own address: where the cluster DNS listens."""
        return f"10.{self.octet}.0.1"

    def node_ip(self, index: int) -> str:
        return f"10.{self.octet}.254.{index + 1}"

    def pod_range(self, index: int) -> tuple[str, str]:
        """Node ``index`` hands out 10.<octet>.<index+1>.2-254: one /16, so all is on-link."""
        return f"10.{self.octet}.{index + 1}.2", f"10.{self.octet}.{index + 1}.254"


def _digest(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()


def network_for(data_dir: Path, taken_octets: set[int]) -> Network:
    """The cluster's bridge (named after its data dir, at most 15 characters) and a
    10.x.0.0/16 not routed on the machine yet, stable for a data dir."""
    digest = _digest(data_dir)
    start = int(digest[:8], 16) % len(_OCTETS)
    for step in range(len(_OCTETS)):
        octet = _OCTETS[(start + step) % len(_OCTETS)]
        if octet not in taken_octets:
            return Network(bridge=f"dc{digest[:8]}", octet=octet)
    raise ValueError(f"every 10.x.0.0/16 with x in {_OCTETS.start}-{_OCTETS.stop - 1} is "
                     "routed on this machine already; remove a devcluster bridge")


@dataclass(frozen=True)
class RealNode:
    """Where one real node keeps its state, and its addresses."""

    index: int
    data_dir: Path
    network: Network

    @property
    def name(self) -> str:
        return f"real-node-{self.index}"

    @property
    def dir(self) -> Path:
        return self.data_dir / "nodes" / self.name

    @property
    def ip(self) -> str:
        return self.network.node_ip(self.index)

    @property
    def short_dir(self) -> Path:
        """The node's dir through a short link (see ``short_link``): a unix socket's path may
        hold at most 107 bytes, and a data dir can be deep."""
        return short_link(self.data_dir) / self.name

    @property
    def containerd_socket(self) -> Path:
        return self.short_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.dir / "containerd.toml"

    @property
    def containerd_state(self) -> Path:
        return self.dir / "containerd-state"

    @property
    def kubelet_config(self) -> Path:
        return self.dir / "kubelet.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig.yaml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.dir / "cni"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's own cgroup root: two kubelets on one machine must not share one."""
        return f"/devcluster-{_digest(self.data_dir)[:8]}-{self.name}"

    @property
    def process_name(self) -> tuple[str, str]:
        """The names of its two processes in state.json."""
        return f"containerd-{self.name}", f"kubelet-{self.name}"


def short_link(data_dir: Path) -> Path:
    """/run/devcluster-<digest>: a symlink to <data dir>/nodes, made by `up`, removed by
    `down`. Sockets and the kubelet's dir are reached through it."""
    return Path("/run") / f"devcluster-{_digest(data_dir)[:8]}"


def real_nodes(data_dir: Path, network: Network, count: int) -> list[RealNode]:
    return [RealNode(i, data_dir, network) for i in range(count)]


def containerd_config(node: RealNode, sandbox_image: str) -> str:
    """containerd's config (version 2), all state under the node's dir.

    - ``restrict_oom_score_adj``: processes here lack CAP_SYS_RESOURCE, and runc fails every
      sandbox ("can't get final child's PID from pipe: EOF") when it lowers oom_score_adj.
    - ``netns_mounts_under_state_dir``: the pods' network namespaces live under the node's
      dir, so `down` finds every one of them.
    - ``SystemdCgroup = false``: the kubelet's cgroupfs driver (no systemd here).
    """
    d = node.dir
    return f"""version = 2
root = "{d / 'containerd-root'}"
state = "{node.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{node.containerd_socket}"

[ttrpc]
  address = "{node.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'containerd-opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node.cni_conf_dir}"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
"""


def cni_conflist(node: RealNode) -> dict[str, Any]:
    """The pod network: the cluster's bridge, addresses from the node's own range.

    No default route and no masquerade: a pod reaches the /16 on the bridge (pods of every
    real node, node addresses, the DNS), the Service addresses through this machine, and
    nothing beyond it (`fence_rules`).
    """
    start, end = node.network.pod_range(node.index)
    return {
        "cniVersion": "0.4.0",
        "name": "devcluster",
        "plugins": [{
            "type": "bridge",
            "bridge": node.network.bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(node.dir / "cni-ipam"),
                "ranges": [[{"subnet": node.network.cidr, "rangeStart": start,
                             "rangeEnd": end, "gateway": node.network.gateway}]],
                # ClusterIPs go to this machine, where kube-proxy (when it runs) maps them.
                "routes": [{"dst": SERVICE_CLUSTER_IP_RANGE}],
            },
        }],
    }


@dataclass(frozen=True)
class NodeCerts:
    ca: Path
    serving_cert: Path
    serving_key: Path


def kubelet_config(node: RealNode, certs: NodeCerts) -> dict[str, Any]:
    """KubeletConfiguration: cgroupfs, swap allowed, serving on the node's own address
    (two kubelets on one machine cannot share 0.0.0.0), callers authenticated by the
    cluster CA and authorized by the API server (webhook)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": node.ip,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(certs.serving_cert),
        "tlsPrivateKeyFile": str(certs.serving_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(certs.ca)},
        },
        "authorization": {"mode": "Webhook"},
        # The machine's netfilter tables are not ours: no KUBE-* chains left behind.
        "makeIPTablesUtilChains": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "podLogsDir": str(node.dir / "pod-logs"),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [node.network.gateway],
        "resolvConf": "",
        "registerNode": True,
        "registerWithTaints": [REAL_NODE_TAINT],
        "maxPods": 110,
        # This machine's disk is shared with everything else: evict only when nearly full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "nodeStatusReportFrequency": "10s",
        "staticPodPath": "",
        "logging": {"format": "text"},
    }


def kubelet_argv(bin_dir: Path, node: RealNode) -> list[str]:
    key, value = REAL_NODE_LABEL
    return [str(bin_dir / "kubelet"), f"--config={node.kubelet_config}",
            f"--kubeconfig={node.kubeconfig}", f"--hostname-override={node.name}",
            f"--node-ip={node.ip}", f"--root-dir={node.short_dir / 'kubelet'}",
            f"--node-labels={key}={value}", "--v=1"]


def containerd_argv(node: RealNode) -> list[str]:
    return [CONTAINERD, f"--config={node.containerd_config}", "--log-level=warn"]


# A closed loopback port: every registry request containerd makes goes there and is refused.
PULL_PROXY = "http://127.0.0.1:9"


def containerd_env(inherited: dict[str, str]) -> dict[str, str]:
    """containerd's environment: image pulls through a proxy that is not there.

    A pull of an image that was not imported (a typo, a test of ImagePullFailed) then fails
    at once with "proxyconnect ... connection refused", without a DNS lookup or a connection
    to any other host. Go's HTTP client never proxies loopback addresses, which stay local.
    """
    env = {k: v for k, v in inherited.items() if k.lower() not in ("no_proxy", "all_proxy")}
    return {**env, "HTTPS_PROXY": PULL_PROXY, "HTTP_PROXY": PULL_PROXY,
            "https_proxy": PULL_PROXY, "http_proxy": PULL_PROXY}


def gpu_capacity_patch(resource: str, gpus: int) -> dict[str, Any]:
    """The status patch that makes a real node advertise GPUs (an extended resource: the
    kubelet keeps what it does not manage itself). Allocatable too, at once: the kubelet
    would copy it from capacity only at its next status update."""
    return {"status": {"capacity": {resource: str(gpus)}, "allocatable": {resource: str(gpus)}}}


# Services for pods on real nodes: kube-proxy (nftables mode, upstream's own table) turns
# ClusterIPs into endpoints on this machine; the `kubernetes` Service's endpoint is the API
# server's 127.0.0.1 address, reached from the bridge through route_localnet.
KUBE_PROXY_TABLE = "kube-proxy"


def kube_proxy_config(node: RealNode, kubeconfig: Path, healthz_port: int,
                      metrics_port: int) -> dict[str, Any]:
    """KubeProxyConfiguration: nftables, the pod /16 as the cluster CIDR, NodePorts only on
    the bridge's address, and the machine's conntrack sysctls left as they are."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "mode": "nftables",
        "clusterCIDR": node.network.cidr,
        "nodePortAddresses": [f"{node.network.gateway}/32"],
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }


def kube_proxy_argv(bin_dir: Path, config: Path) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={config}", "--v=1"]


def fence_table(network: Network) -> str:
    """The nftables table that keeps the pods' traffic on this machine."""
    return f"devcluster-{network.bridge}"


def fence_rules(network: Network) -> str:
    """`nft -f` input: whatever pods send that is not for the bridge (its pods, nodes, DNS)
    or for this machine is dropped, so no service address or typo ever leaves the machine
    through the default route."""
    table = fence_table(network)
    return (f"table inet {table} {{\n"
            f"  chain forward {{\n"
            f"    type filter hook forward priority 0; policy accept;\n"
            f"    iifname \"{network.bridge}\" oifname != \"{network.bridge}\" drop\n"
            f"  }}\n"
            f"}}\n")
