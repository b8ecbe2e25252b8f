"""Cluster DNS for real nodes: CoreDNS's Corefile, its RBAC and its command line.

Pure functions (no I/O), so the DNS setup is testable as data. The binary is built by
``build.ensure_dns()`` from ``devcluster/dns`` (CoreDNS v1.12.3 with only the plugins used
here: reload, bind, ready, health, errors, log, cache, template, kubernetes; no forward).

What the Corefile serves, on ``listen_ip:port`` only (UDP and TCP):

- the cluster domain and the reverse zones (``in-addr.arpa``, ``ip6.arpa``) from the API
  through the ``kubernetes`` plugin: services, and the endpoints of headless services, among
  them ``<pod hostname>.<headless service>.<namespace>.svc.<cluster domain>`` for a pod with
  ``spec.hostname`` and ``spec.subdomain`` (from the service's EndpointSlices). ``pods
  disabled``: no ``<a-b-c-d>.<namespace>.pod.<cluster domain>`` names, so no watch of every
  pod in the cluster (``verified`` would keep one in memory; none of our names need it);
- every other name: NXDOMAIN, answered at once by the ``template`` plugin, with an SOA so
  that resolvers cache the denial for NEGATIVE_TTL seconds. Nothing is ever sent to another
  server; a pod that looks up an outside name fails fast ("Name or service not known")
  instead of waiting on a timeout (REFUSED or SERVFAIL would make glibc report a temporary
  failure and callers retry).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
# The user in CoreDNS's client certificate (CN), bound to COREDNS_ROLE.
USER = "system:coredns"
COREDNS_ROLE = "system:coredns"
# TTL of the answers from the API (the kubernetes plugin's default); cache keeps none longer.
TTL = 5
CACHE_SECONDS = 30
# How long a resolver may cache the NXDOMAIN of a name outside the cluster.
NEGATIVE_TTL = 30
# The plugins in devcluster/dns/cmd/coredns/main.go, in CoreDNS's plugin.cfg order.
PLUGINS = ("reload", "bind", "ready", "health", "errors", "log", "cache", "template",
           "kubernetes")
HEALTH_HOST = "127.0.0.1"


def _port(name: str, port: int) -> int:
    if not 0 < port < 65536:
        raise ValueError(f"{name} must be a port number in 1..65535, got {port}")
    return port


def _listen_ip(listen_ip: str) -> str:
    address = ipaddress.ip_address(listen_ip)  # raises ValueError on anything else
    if address.is_unspecified:
        raise ValueError(f"listen_ip must be one address, not every address ({listen_ip})")
    return str(address)


def _domain(domain: str) -> str:
    labels = domain.strip(".").split(".")
    if not all(label and all(c.isalnum() or c == "-" for c in label) for label in labels):
        raise ValueError(f"not a DNS domain: {domain!r}")
    return ".".join(labels).lower()


def _quoted(path: Path) -> str:
    # A Corefile token in double quotes; braces would start an environment placeholder.
    text = str(path)
    if any(c in text for c in '"\\{}\n\r'):
        raise ValueError(f"path not usable in a Corefile: {text!r}")
    return f'"{text}"'


def corefile(listen_ip: str, port: int, health_port: int, ready_port: int, kubeconfig: Path,
             cluster_domain: str = CLUSTER_DOMAIN, *, log_queries: bool = True) -> str:
    """The Corefile of the cluster DNS.

    kubeconfig: server, CA and client certificate (user USER) CoreDNS reads the API with. The
    kubernetes plugin ignores ``endpoint`` and ``tls`` when given a kubeconfig, so it carries
    everything. health (``/health``) and ready (``/ready``: 200 once the services, endpoint
    slices and namespaces are listed) serve on 127.0.0.1 only. log_queries: one log line
    per query (on by default: the log then shows what pods looked up).
    """
    ip = _listen_ip(listen_ip)
    port = _port("port", port)
    health_port = _port("health_port", health_port)
    ready_port = _port("ready_port", ready_port)
    if len({port, health_port, ready_port}) != 3:
        raise ValueError("port, health_port and ready_port must differ")
    domain = _domain(cluster_domain)
    zones = (domain, *REVERSE_ZONES)
    log = "    log\n" if log_queries else ""
    soa = (f". {NEGATIVE_TTL} IN SOA ns.dns.{domain}. hostmaster.{domain}. "
           f"1 {NEGATIVE_TTL} {NEGATIVE_TTL} {NEGATIVE_TTL} {NEGATIVE_TTL}")
    return (
        "# devcluster cluster DNS, written by devcluster/dns.py. Nothing is forwarded: names\n"
        "# outside the cluster zones get NXDOMAIN from the second block.\n"
        f"{' '.join(f'{zone}:{port}' for zone in zones)} {{\n"
        f"    bind {ip}\n"
        "    errors\n"
        f"{log}"
        f"    health {HEALTH_HOST}:{health_port}\n"
        f"    ready {HEALTH_HOST}:{ready_port}\n"
        f"    cache {CACHE_SECONDS}\n"
        f"    kubernetes {' '.join(zones)} {{\n"
        f"        kubeconfig {_quoted(kubeconfig)}\n"
        "        pods disabled\n"
        f"        ttl {TTL}\n"
        "    }\n"
        "}\n"
        f".:{port} {{\n"
        f"    bind {ip}\n"
        "    errors\n"
        f"{log}"
        "    template ANY ANY {\n"
        "        rcode NXDOMAIN\n"
        f'        authority "{soa}"\n'
        "    }\n"
        "}\n"
    )


def coredns_rbac() -> list[dict[str, Any]]:
    """ClusterRole and ClusterRoleBinding (to user USER) for what the kubernetes plugin reads.

    With ``pods disabled`` it runs three informers, over all namespaces: services,
    endpointslices (discovery.k8s.io) and namespaces; it reads nothing else (no pods, and
    nodes only for federation, which we do not use).
    """
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": COREDNS_ROLE},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": COREDNS_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": COREDNS_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }
    return [role, binding]


def command_line(bin_dir: Path, corefile_path: Path) -> list[str]:
    """CoreDNS's argv: the Corefile names every address, so no other flag is needed."""
    return [str(bin_dir / "coredns"), "-conf", str(corefile_path)]


def ready_url(ready_port: int) -> str:
    """200 "OK" once the kubernetes plugin has listed the API (else 503 naming it)."""
    return f"http://{HEALTH_HOST}:{ready_port}/ready"


def health_url(health_port: int) -> str:
    return f"http://{HEALTH_HOST}:{health_port}/health"
