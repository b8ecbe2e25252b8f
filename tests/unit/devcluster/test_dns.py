from __future__ import annotations

import re
from pathlib import Path

import pytest

from devcluster import build, dns

KUBECONFIG = Path("/data/kubeconfigs/coredns.yaml")


def _corefile(**overrides: object) -> str:
    args: dict[str, object] = {"listen_ip": "10.200.0.1", "port": 53, "health_port": 18080,
                               "ready_port": 18181, "kubeconfig": KUBECONFIG}
    args.update(overrides)
    return dns.corefile(**args)  # type: ignore[arg-type]


def _blocks(text: str) -> dict[str, str]:
    """Server block keys -> body (top-level blocks only)."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^(\S[^{\n]*)\{\n(.*?)^\}$", text, re.MULTILINE | re.DOTALL):
        blocks[match.group(1).strip()] = match.group(2)
    return blocks


def test_cluster_block_serves_the_cluster_domain_and_reverse_zones_from_the_api() -> None:
    blocks = _blocks(_corefile())
    cluster = blocks["cluster.local:53 in-addr.arpa:53 ip6.arpa:53"]
    assert "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n" in cluster
    assert f'        kubeconfig "{KUBECONFIG}"\n' in cluster
    assert "        pods disabled\n" in cluster
    assert "        ttl 5\n" in cluster
    assert "    cache 30\n" in cluster


def test_every_block_binds_only_to_the_listen_ip() -> None:
    blocks = _blocks(_corefile())
    assert len(blocks) == 2
    for body in blocks.values():
        assert re.findall(r"^\s*bind\b.*$", body, re.MULTILINE) == ["    bind 10.200.0.1"]
        assert "except" not in body


def test_health_and_ready_listen_on_loopback_ports() -> None:
    text = _corefile(health_port=9001, ready_port=9002)
    assert re.findall(r"^\s*health .*$", text, re.MULTILINE) == ["    health 127.0.0.1:9001"]
    assert re.findall(r"^\s*ready .*$", text, re.MULTILINE) == ["    ready 127.0.0.1:9002"]
    assert dns.ready_url(9002) == "http://127.0.0.1:9002/ready"
    assert dns.health_url(9001) == "http://127.0.0.1:9001/health"


def test_other_names_get_nxdomain_locally_and_nothing_is_forwarded() -> None:
    text = _corefile()
    catch_all = _blocks(text)[".:53"]
    assert "    template ANY ANY {\n        rcode NXDOMAIN\n" in catch_all
    assert 'authority ". 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.' in catch_all
    for plugin in ("forward", "grpc", "etcd", "proxy", "fallthrough", "loop"):
        assert not re.search(rf"^\s*{plugin}\b", text, re.MULTILINE), plugin


def test_only_registered_plugins_are_used() -> None:
    text = _corefile()
    used = set()
    for body in _blocks(text).values():
        used |= {m.group(1) for m in re.finditer(r"^    (\w+)", body, re.MULTILINE)}
    assert used <= set(dns.PLUGINS)
    assert used == {"bind", "errors", "log", "health", "ready", "cache", "kubernetes",
                    "template"}


def test_plugin_list_matches_the_go_main() -> None:
    main_go = (build.DNS_DIR / "cmd" / "coredns" / "main.go").read_text()
    directives = re.search(r"var directives = \[\]string\{(.*?)\}", main_go, re.DOTALL)
    assert directives is not None
    assert tuple(re.findall(r'"(\w+)"', directives.group(1))) == dns.PLUGINS
    imports = set(re.findall(r'_ "github.com/coredns/coredns/plugin/(\w+)"', main_go))
    assert imports == set(dns.PLUGINS)
    assert "forward" not in imports


def test_custom_cluster_domain_port_and_quiet_log() -> None:
    text = _corefile(cluster_domain="Example.Test.", port=5353, log_queries=False)
    blocks = _blocks(text)
    assert set(blocks) == {"example.test:5353 in-addr.arpa:5353 ip6.arpa:5353", ".:5353"}
    assert "kubernetes example.test in-addr.arpa ip6.arpa {" in text
    assert "hostmaster.example.test." in text
    assert not re.search(r"^\s*log\b", text, re.MULTILINE)


def test_ipv6_listen_ip_is_normalized() -> None:
    assert "    bind fd00::1\n" in _corefile(listen_ip="fd00:0::1")


@pytest.mark.parametrize("overrides", [
    {"listen_ip": "0.0.0.0"},
    {"listen_ip": "::"},
    {"listen_ip": "node-1"},
    {"port": 0},
    {"port": 70000},
    {"health_port": 18181},
    {"port": 18080},
    {"cluster_domain": "cluster local"},
    {"cluster_domain": "a..b"},
    {"kubeconfig": Path('/x/{$HOME}/k.yaml')},
    {"kubeconfig": Path('/x/"k".yaml')},
])
def test_rejects_what_would_bind_widely_or_break_the_corefile(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _corefile(**overrides)


def test_rbac_grants_list_and_watch_of_what_the_plugin_reads_to_the_coredns_user() -> None:
    role, binding = dns.coredns_rbac()
    assert role["kind"] == "ClusterRole"
    granted = {(group, resource, verb)
               for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {(group, resource, verb)
              for group, resource in (("", "services"), ("", "namespaces"),
                                      ("discovery.k8s.io", "endpointslices"))
              for verb in ("list", "watch")}
    assert granted == needed  # nothing more: no writes, no secrets, no pods
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "system:coredns"}]


def test_command_line_runs_the_built_binary_with_the_corefile() -> None:
    assert dns.command_line(Path("/bin-dir"), Path("/d/Corefile")) == [
        "/bin-dir/coredns", "-conf", "/d/Corefile"]
    assert build.DNS_PACKAGES == {"coredns": "./cmd/coredns"}
