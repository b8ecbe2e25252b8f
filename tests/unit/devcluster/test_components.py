from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.components import (
    COMPONENTS,
    KWOK_NODE_ANNOTATION,
    LOGS_FILE,
    NODE_STAGES_FILE,
    STAGES_FILE,
    NodeShape,
    Ports,
    command_lines,
    kubeconfig,
    node_list,
    node_manifest,
)
from devcluster.pki import Pki

PORTS = Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257,
              scheduler=10259, kwok=10250)
README = Path(__file__).resolve().parents[3] / "devcluster" / "README.md"


def _lines() -> dict[str, list[str]]:
    return command_lines(Path("/bin"), Path("/data"), Pki(Path("/pki")), PORTS)


def _flag(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {argv}"
    return values[0]


def test_every_component_has_a_command_line() -> None:
    lines = _lines()
    assert tuple(lines) == COMPONENTS
    assert all(argv[0] == f"/bin/{name}" for name, argv in lines.items())


def test_apiserver_serves_tls_only_with_node_rbac_and_node_restriction() -> None:
    argv = _lines()["kube-apiserver"]
    assert _flag(argv, "secure-port") == "6443"
    assert _flag(argv, "bind-address") == "127.0.0.1"
    assert _flag(argv, "authorization-mode") == "Node,RBAC"
    assert {"ServiceAccount", "NodeRestriction"} <= set(
        _flag(argv, "enable-admission-plugins").split(","))
    assert _flag(argv, "allow-privileged") == "true"  # Pod Security Admission decides
    assert _flag(argv, "kubelet-client-certificate") == "/pki/apiserver-kubelet-client.crt"
    assert _flag(argv, "client-ca-file") == "/pki/ca.crt"
    assert _flag(argv, "etcd-servers") == "http://127.0.0.1:2379"
    assert not any(a.startswith(("--insecure", "--anonymous-auth=true")) for a in argv)


def test_nothing_listens_or_connects_beyond_loopback() -> None:
    network = re.compile(
        r"--(listen|advertise|initial|bind-address|etcd-servers|server-address)[^=]*=")
    checked = 0
    for argv in _lines().values():
        for arg in filter(network.match, argv):
            hosts = re.findall(r"(?:https?://|address=)([^:/,]+)", arg)
            assert hosts and all(h == "127.0.0.1" for h in hosts), arg
            checked += 1
    assert checked >= 10


def test_controllers_use_their_own_identities_and_gc_is_on() -> None:
    lines = _lines()
    kcm = lines["kube-controller-manager"]
    assert _flag(kcm, "kubeconfig") == "/data/kubeconfigs/kube-controller-manager.yaml"
    assert _flag(kcm, "controllers") == "*"  # garbage collector, namespace, serviceaccount...
    assert _flag(kcm, "service-account-private-key-file") == "/pki/sa.key"
    assert _flag(lines["kube-scheduler"], "kubeconfig") == \
        "/data/kubeconfigs/kube-scheduler.yaml"


def test_kwok_manages_only_annotated_nodes_with_our_stages() -> None:
    argv = _lines()["kwok"]
    assert _flag(argv, "manage-all-nodes") == "false"
    assert _flag(argv, "manage-nodes-with-annotation-selector") == f"{KWOK_NODE_ANNOTATION}=fake"
    configs = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    assert configs == [str(STAGES_FILE), str(NODE_STAGES_FILE), str(LOGS_FILE)]


def test_kubeconfig_embeds_credentials() -> None:
    config = kubeconfig("https://127.0.0.1:6443", b"CA", b"CERT", b"KEY", "me")
    cluster = config["clusters"][0]["cluster"]
    assert cluster == {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}
    assert config["users"][0] == {"name": "me", "user": {
        "client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}
    assert config["current-context"] == config["contexts"][0]["name"]


def test_gpu_node_advertises_its_capacity_and_is_managed_by_kwok() -> None:
    node = node_manifest(2, NodeShape(gpus=8, cpu="96", memory="1024Gi", pods=110))
    assert node["metadata"]["name"] == "gpu-node-2"
    assert node["metadata"]["annotations"] == {KWOK_NODE_ANNOTATION: "fake"}
    assert node["status"]["allocatable"] == {"cpu": "96", "memory": "1024Gi", "pods": "110",
                                             "nvidia.com/gpu": "8"}
    assert node["status"]["capacity"] == node["status"]["allocatable"]


def test_node_list_has_the_configured_count() -> None:
    names = [n["metadata"]["name"] for n in node_list(NodeShape(count=3))["items"]]
    assert names == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]


def _stages(path: Path = STAGES_FILE) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("path", "kind", "at_least"), [(STAGES_FILE, "Pod", 8),
                                                        (NODE_STAGES_FILE, "Node", 5)])
def test_stages_have_one_kind_and_unique_names(path: Path, kind: str, at_least: int) -> None:
    stages = _stages(path)
    names = [s["metadata"]["name"] for s in stages]
    assert len(names) == len(set(names)) >= at_least
    for stage in stages:
        assert stage["kind"] == "Stage"
        assert stage["spec"]["resourceRef"] == {"apiGroup": "v1", "kind": kind}


def test_node_stages_replace_kwoks_defaults_with_initialize_and_heartbeats() -> None:
    # Any node Stage disables kwok's default node stages: ours must initialize the node and
    # keep heartbeating it, whether it is Ready or NotReady.
    stages = {s["metadata"]["name"]: s["spec"] for s in _stages(NODE_STAGES_FILE)}
    assert "devcluster-node-initialize" in stages
    heartbeats = [spec for name, spec in stages.items() if name.endswith("heartbeat")]
    assert len(heartbeats) == 2
    for spec in heartbeats:  # at most half the node monitor grace period (50 s)
        assert spec["delay"]["jitterDurationMilliseconds"] <= 25000


def test_every_annotation_the_stages_read_is_documented() -> None:
    documented = set(re.findall(r"devcluster\.training\.dev/[a-z-]+", README.read_text()))
    for path in (STAGES_FILE, NODE_STAGES_FILE):
        used = set(re.findall(r"devcluster\.training\.dev/[a-z-]+", path.read_text()))
        assert used, f"{path.name} reads no annotations"
        assert used <= documented, f"undocumented in {path.name}: {sorted(used - documented)}"
