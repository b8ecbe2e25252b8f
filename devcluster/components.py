"""Pure description of a devcluster: each component's command line, the kubeconfigs and
the fake GPU nodes. No I/O here, so the whole shape of the cluster is testable as data."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devcluster.pki import SERVICE_CLUSTER_IP_RANGE, Pki

# Start order; each component needs the ones before it.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Writes by service accounts (the operator), one JSON line each; see audit-policy.yaml.
AUDIT_POLICY_FILE = Path(__file__).resolve().parent / "audit-policy.yaml"
AUDIT_LOG = "audit.log"
# kwok manages exactly the nodes that carry this annotation; tests and users can add others.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
STAGES_FILE = Path(__file__).resolve().parent / "stages" / "pod-stages.yaml"
# Any node Stage replaces kwok's default node stages, so this file holds the whole node lifecycle.
NODE_STAGES_FILE = STAGES_FILE.with_name("node-stages.yaml")
# Container logs (kwok's kubelet API): the default ClusterLogs, and the Logs CRD `up` installs.
LOGS_FILE = STAGES_FILE.with_name("logs.yaml")
LOGS_CRD_FILE = STAGES_FILE.with_name("logs-crd.yaml")
LOGS_CRD_PATH = "/apis/kwok.x-k8s.io/v1alpha1/logs"
# The log every container shows unless a Logs object names another file; relative to the data
# dir (kwok's working directory, which resolves LOGS_FILE's relative path against it).
DEFAULT_POD_LOG = Path("pod-logs") / "default.log"
DEFAULT_POD_LOG_LINES = 5
# kwok serves the kubelet API of every fake node on this address (the nodes' InternalIP).
KUBELET_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int  # kwok's kubelet API (logs), the kubelet port of every fake node


@dataclass(frozen=True)
class NodeShape:
    """The fake GPU nodes to register: count and per-node capacity."""

    count: int = 4
    gpus: int = 8
    cpu: str = "96"
    memory: str = "1024Gi"
    pods: int = 110


def kubeconfig(server: str, ca_cert: bytes, client_cert: bytes, client_key: bytes,
               user: str) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded, so it can be copied anywhere)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": {
            "server": server, "certificate-authority-data": b64(ca_cert)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(client_cert), "client-key-data": b64(client_key)}}],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": user}}],
        "current-context": "devcluster",
    }


def command_lines(bin_dir: Path, data_dir: Path, pki: Pki, ports: Ports,
                  advertise: str = "127.0.0.1") -> dict[str, list[str]]:
    """The argv of every component, keyed by COMPONENTS' names."""
    kubeconfigs = data_dir / "kubeconfigs"
    etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
    serving = [f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}"]
    # The controllers authenticate their own /healthz callers against the API server;
    # these paths stay open so the launcher can probe them without a token.
    open_paths = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
    fast_client = ["--kube-api-qps=500", "--kube-api-burst=1000"]

    def client_of(name: str) -> list[str]:
        path = kubeconfigs / f"{name}.yaml"
        return [f"--kubeconfig={path}", f"--authentication-kubeconfig={path}",
                f"--authorization-kubeconfig={path}"]

    return {
        "etcd": [
            str(bin_dir / "etcd"), "--name=devcluster", f"--data-dir={data_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-cluster=devcluster=http://127.0.0.1:{ports.etcd_peer}",
            "--quota-backend-bytes=4294967296", "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(bin_dir / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            # Served on loopback; advertised (the `kubernetes` Service's endpoint, which may
            # not be loopback) at the real nodes' bridge, where a relay forwards to it.
            "--bind-address=127.0.0.1", f"--advertise-address={advertise}",
            f"--secure-port={ports.apiserver}", *serving, f"--client-ca-file={pki.ca_cert}",
            # Real nodes' kubelets are confined to their own node's objects.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,ServiceAccount",
            # As kubeadm and managed clusters run it: a namespace's Pod Security level, not a
            # cluster-wide refusal, decides who gets a privileged container.
            "--allow-privileged=true",
            f"--kubelet-client-certificate={pki.client_cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={pki.client_key('apiserver-kubelet-client')}",
            # Node addresses, never names: a name would be looked up in the machine's DNS.
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer={SA_ISSUER}", f"--api-audiences={SA_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--audit-policy-file={AUDIT_POLICY_FILE}",
            f"--audit-log-path={data_dir / AUDIT_LOG}", "--audit-log-format=json",
            "--profiling=false", "--v=1",
        ],
        "kube-controller-manager": [
            str(bin_dir / "kube-controller-manager"), *client_of("kube-controller-manager"),
            "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}", *serving,
            open_paths, "--leader-elect=false", "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            *fast_client, "--v=1",
        ],
        "kube-scheduler": [
            str(bin_dir / "kube-scheduler"), *client_of("kube-scheduler"),
            "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}", *serving,
            open_paths, "--leader-elect=false", *fast_client, "--v=1",
        ],
        "kwok": [
            str(bin_dir / "kwok"), f"--kubeconfig={kubeconfigs / 'kwok.yaml'}",
            f"--config={STAGES_FILE}", f"--config={NODE_STAGES_FILE}", "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40", "--cidr=10.244.0.1/16", "--v=INFO",
            # The kubelet API for `kubectl logs`: the node Stages publish --node-ip as each
            # node's InternalIP and --node-port as its kubelet port, where the API server
            # connects (https; without --kubelet-certificate-authority it does not verify).
            f"--config={LOGS_FILE}", "--enable-crds=Logs",
            f"--server-address={KUBELET_HOST}:{ports.kwok}", f"--node-ip={KUBELET_HOST}",
            f"--node-port={ports.kwok}", *serving,
        ],
    }


def cri_log_line(message: str, when: datetime, stream: str = "stdout") -> str:
    """One line of a container log file in the CRI format kwok (like the kubelet) reads:
    ``<RFC 3339 time> <stdout|stderr> F <message>``; F marks a full (not partial) line."""
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream must be stdout or stderr, not {stream!r}")
    if "\n" in message:
        raise ValueError("one line per call: the message must not contain a newline")
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {stream} F {message}\n"


def default_log_message(number: int) -> str:
    return f"devcluster log line {number}/{DEFAULT_POD_LOG_LINES}"


def default_pod_log(when: datetime) -> str:
    """The content `up` writes to DEFAULT_POD_LOG: DEFAULT_POD_LOG_LINES numbered lines."""
    return "".join(cri_log_line(default_log_message(n), when)
                   for n in range(1, DEFAULT_POD_LOG_LINES + 1))


def node_manifest(index: int, shape: NodeShape) -> dict[str, Any]:
    """A fake GPU node: kwok plays its kubelet; the scheduler sees real capacity."""
    name = f"gpu-node-{index}"
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods),
                 GPU_RESOURCE: str(shape.gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "type": "kwok",
                "node.kubernetes.io/instance-type": f"fake-gpu-{shape.gpus}x",
                "nvidia.com/gpu.present": "true" if shape.gpus else "false",
            },
        },
        "spec": {},
        "status": {"capacity": resources, "allocatable": resources},
    }


def node_list(shape: NodeShape) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List",
            "items": [node_manifest(i, shape) for i in range(shape.count)]}
