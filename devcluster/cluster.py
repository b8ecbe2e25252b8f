"""Start, stop and inspect a devcluster: the only module here that runs processes.

All components run in one process group (the group of etcd, the first one started), so
`down` ends every one of them with a single signal and can then prove none is left.
The state of a running cluster is ``<dir>/state.json``; it is written after every start,
so even an `up` that dies half-way leaves enough behind for `down` to clean up.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import yaml

from devcluster import build, dns, hostnode, images, realnode
from devcluster.components import (
    COMPONENTS,
    DEFAULT_POD_LOG,
    GPU_RESOURCE,
    LOGS_CRD_FILE,
    LOGS_CRD_PATH,
    NodeShape,
    Ports,
    command_lines,
    default_pod_log,
    kubeconfig,
    node_list,
)
from devcluster.pki import CLIENTS, Pki, node_client, node_serving, write_pki
from devcluster.realnode import Network, RealNode

STARTUP_TIMEOUT = 90.0
# Added for clusters with real nodes: importing images and a kubelet's first sync.
REAL_NODE_STARTUP_TIMEOUT = 90.0


class ClusterError(RuntimeError):
    """A refusal or failure, worded for the person who ran the command."""


@dataclass
class State:
    pgid: int
    ports: dict[str, int]
    bin_dir: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    ready_seconds: float | None = None
    # Real nodes: how many, and the bridge and 10.<octet>.0.0/16 they share.
    real_nodes: int = 0
    bridge: str = ""
    octet: int = 0
    services: bool = False  # kube-proxy runs for the real nodes' pods
    # Process groups besides pgid: a component restarted from another session (another
    # terminal) cannot join pgid, so it founds its own, which `down` ends too.
    groups: list[int] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def members(self) -> list[int]:
        """Live processes of every group of the cluster."""
        return [pid for group in (self.pgid, *self.groups) if group
                for pid in group_members(group)]

    def network(self) -> Network | None:
        return Network(self.bridge, self.octet) if self.bridge else None

    def nodes(self, data_dir: Path) -> list[RealNode]:
        network = self.network()
        return realnode.real_nodes(data_dir, network, self.real_nodes) if network else []


def state_path(data_dir: Path) -> Path:
    return data_dir / "state.json"


def kubeconfig_path(data_dir: Path) -> Path:
    return data_dir / "kubeconfig"


def read_state(data_dir: Path) -> State | None:
    try:
        return State(**json.loads(state_path(data_dir).read_text()))
    except FileNotFoundError:
        return None


def _write_state(data_dir: Path, state: State) -> None:
    tmp = state_path(data_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(state_path(data_dir))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes in process group pgid (read from /proc, so nothing escapes notice)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel reports free right now (all bound at once, so no repeats)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _check_can_start(data_dir: Path, apiserver_port: int) -> None:
    state = read_state(data_dir)
    if state is not None:
        live = [name for name, pid in state.pids.items() if _alive(pid)]
        if live or state.members():
            raise ClusterError(
                f"a devcluster is already up in {data_dir} ({state.server}, running: "
                f"{', '.join(live) or 'process group ' + str(state.pgid)}). Use it with "
                f"`export KUBECONFIG={kubeconfig_path(data_dir)}`, or stop it first with "
                f"`python -m devcluster down --dir {data_dir}` (make cluster-down).")
        raise ClusterError(
            f"stale data dir {data_dir}: it holds the state of a cluster that is no longer "
            f"running. Clean it with `python -m devcluster down --dir {data_dir}` "
            "(make cluster-down), then start again.")
    if (data_dir / "etcd").exists():
        raise ClusterError(
            f"stale data dir {data_dir}: it holds etcd data but no cluster state. Clean it with "
            f"`python -m devcluster down --dir {data_dir}` (make cluster-down), then start again.")
    if apiserver_port and not port_free(apiserver_port):
        raise ClusterError(
            f"port {apiserver_port} on 127.0.0.1 is taken by another process; choose another "
            "with --port (or DEVCLUSTER_PORT), or 0 for any free port.")


def _ssl_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert("admin")), str(pki.client_key("admin")))
    return ctx


def _get(url: str, ctx: ssl.SSLContext | None) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            body: bytes = resp.read()
            return body.decode()
    except (urllib.error.URLError, OSError):
        return None


def _is_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    return _get(url, ctx) == "ok"


def _create(url: str, body: dict[str, object], ctx: ssl.SSLContext) -> None:
    """POST one object (a direct request: a kubectl process costs ~0.2 s on 2 cores)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=ctx):
            pass
    except urllib.error.HTTPError as e:
        raise ClusterError(f"creating {body.get('kind')} at {url} failed: {e.code} "
                           f"{e.read().decode(errors='replace')}") from e


def _ready_check(name: str, ports: dict[str, int],
                 ctx: ssl.SSLContext) -> Callable[[], bool] | None:
    """What says a control-plane component is serving (None: kwok, seen only in its nodes)."""
    if name == "etcd":
        return lambda: '"true"' in (_get(
            f"http://127.0.0.1:{ports['etcd_client']}/health", None) or "")
    if name == "kube-apiserver":
        return functools.partial(_is_ok, f"https://127.0.0.1:{ports['apiserver']}/readyz", ctx)
    port = {"kube-controller-manager": ports["controller_manager"],
            "kube-scheduler": ports["scheduler"]}.get(name)
    return functools.partial(_is_ok, f"https://127.0.0.1:{port}/healthz", ctx) if port else None


class _Launch:
    """One `up` in progress: starts components in order and records each in state.json."""

    def __init__(self, data_dir: Path, bin_dir: Path, pki: Pki, ports: Ports,
                 advertise: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.argv = command_lines(bin_dir, data_dir, pki, ports, advertise)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state = State(pgid=0, ports=asdict(ports),
                           bin_dir=str(bin_dir))

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            def popen(group: int) -> subprocess.Popen[bytes]:
                return subprocess.Popen(self.argv[name], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.data_dir,
                                        process_group=group,
                                        env={**os.environ, **env} if env else None)
            # The first component founds a new group (pgid 0 = its own pid); the rest join
            # it. setpgid cannot join a group of another session (EPERM), nor one whose
            # members are all gone: a restart from there founds a group of its own.
            try:
                proc = popen(self.state.pgid)
            except (PermissionError, subprocess.SubprocessError):
                proc = popen(0)
                self.state.groups.append(proc.pid)
        self.procs[name] = proc
        if not self.state.pgid:
            self.state.pgid = proc.pid
        self.state.pids[name] = proc.pid
        _write_state(self.data_dir, self.state)

    def wait_until(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not check():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise ClusterError(f"{name} exited with code {proc.returncode} while "
                                       f"waiting for {what}. End of its log:\n{tail}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs are in {self.logs}")
            time.sleep(0.1)


def _kubectl(bin_dir: Path, kubeconfig_file: Path, *args: str,
             input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig_file}", *args],
                          input=input_text, capture_output=True, text=True, timeout=60)


def up(data_dir: Path, shape: NodeShape, apiserver_port: int = 0,
       log: Callable[[str], None] = print, real_nodes: int = 0,
       real_node_gpus: int = 8, services: bool = False) -> State:
    """Build (or reuse) the binaries, start every component and wait until ready.

    ``real_nodes`` kubelets with their own containerd join the kwok nodes where this machine
    can run them; where it cannot, `up` says why in one line and goes on without them.
    ``services``: kube-proxy maps ClusterIPs for their pods (one cluster per machine may ask:
    kube-proxy's nftables tables have fixed names).
    """
    data_dir = data_dir.resolve()
    _check_can_start(data_dir, apiserver_port)
    if real_nodes:
        why_not = hostnode.missing_prerequisite()
        if why_not:
            log(f"devcluster: no real nodes: {why_not}; continuing with kwok nodes only")
            real_nodes = 0
    bin_dir = build.ensure_binaries()
    extra_bins = _real_node_builds(log) if real_nodes else None
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    network = (realnode.network_for(data_dir, hostnode.taken_octets()) if real_nodes
               else None)
    nodes = realnode.real_nodes(data_dir, network, real_nodes) if network else []
    pki = write_pki(data_dir / "pki", {n.name: n.ip for n in nodes})
    auto = free_ports(6)
    ports = Ports(etcd_client=auto[0], etcd_peer=auto[1], apiserver=apiserver_port or auto[2],
                  controller_manager=auto[3], scheduler=auto[4], kwok=auto[5])
    launch = _Launch(data_dir, bin_dir, pki, ports,
                     advertise=network.gateway if network and services else "127.0.0.1")
    if network:
        launch.state.real_nodes, launch.state.bridge = len(nodes), network.bridge
        launch.state.octet = network.octet
        launch.state.services = services
    server = f"https://127.0.0.1:{ports.apiserver}"
    ca = pki.ca_cert.read_bytes()
    kube_dir = data_dir / "kubeconfigs"
    kube_dir.mkdir(exist_ok=True)
    for name, (user, _group) in CLIENTS.items():
        config = kubeconfig(server, ca, pki.client_cert(name).read_bytes(),
                            pki.client_key(name).read_bytes(), user)
        (kube_dir / f"{name}.yaml").write_text(yaml.safe_dump(config))
    admin = kube_dir / "admin.yaml"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    ctx = _ssl_context(pki)
    try:
        def ready(name: str) -> Callable[[], bool]:
            check = _ready_check(name, launch.state.ports, ctx)
            assert check is not None
            return check

        for name in ("etcd", "kube-apiserver"):
            launch.start(name)
            launch.wait_until(f"{name} to serve", ready(name), deadline)
        controllers = ("kube-controller-manager", "kube-scheduler")
        for name in controllers:
            launch.start(name)
        # While the controllers start: the Logs CRD kwok watches (per-pod log files).
        _create(f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                yaml.safe_load(LOGS_CRD_FILE.read_text()), ctx)
        for name in controllers:
            launch.wait_until(f"{name} /healthz", ready(name), deadline)
        launch.wait_until("kwok's Logs CRD to be served", lambda: _get(
            f"{server}{LOGS_CRD_PATH}", ctx) is not None, deadline)
        write_default_pod_log(data_dir)
        launch.start("kwok")
        created = _kubectl(bin_dir, admin, "apply", "-f", "-",
                           input_text=json.dumps(node_list(shape))) if shape.count else None
        if created is not None and created.returncode != 0:
            raise ClusterError(f"registering the fake GPU nodes failed: {created.stderr}")
        if network and extra_bins:
            _start_real_nodes(launch, nodes, network, extra_bins, server, ca, pki, admin,
                              deadline + REAL_NODE_STARTUP_TIMEOUT)
        launch.wait_until("the default service account", lambda: _kubectl(
            bin_dir, admin, "get", "serviceaccount", "default", "-n", "default",
        ).returncode == 0, deadline)
        total = shape.count + len(nodes)
        launch.wait_until(f"{total} schedulable nodes", lambda: _schedulable_nodes(
            bin_dir, admin) >= total, deadline + REAL_NODE_STARTUP_TIMEOUT)
        for node in nodes:
            patched = _kubectl(bin_dir, admin, "patch", "node", node.name,
                               "--subresource=status", "--type=merge", "-p", json.dumps(
                                   realnode.gpu_capacity_patch(GPU_RESOURCE, real_node_gpus)))
            if patched.returncode != 0:
                raise ClusterError(f"advertising GPUs on {node.name} failed: {patched.stderr}")
    except BaseException:
        log(f"devcluster: start failed; stopping what was started (logs: {launch.logs})")
        down(data_dir)
        raise
    launch.state.ready_seconds = round(time.monotonic() - started, 2)
    _write_state(data_dir, launch.state)
    shutil.copyfile(admin, kubeconfig_path(data_dir))
    kubeconfig_path(data_dir).chmod(0o600)
    return launch.state


@dataclass(frozen=True)
class _RealNodeBins:
    dns_dir: Path
    images: dict[str, Path]  # image name -> OCI archive


def _real_node_builds(log: Callable[[str], None]) -> _RealNodeBins:
    """Packages, CoreDNS and the images: everything a real node needs before it starts."""
    try:
        hostnode.install_packages(log)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        raise ClusterError(f"installing the packages real nodes need failed: {err}") from err
    return _RealNodeBins(dns_dir=build.ensure_dns(), images=images.ensure_images())


def image_targets(data_dir: Path) -> list[RealNode]:
    """The real nodes an image can be loaded into; a clear error when there are none."""
    state = read_state(data_dir.resolve())
    if state is None:
        raise ClusterError(f"no cluster in {data_dir}; start one with `make cluster-up`")
    nodes = state.nodes(data_dir.resolve())
    if not nodes:
        raise ClusterError("this cluster has no real node to load an image into; start it "
                           "with --real-nodes 1")
    return nodes


def load_image(nodes: list[RealNode], archive: Path) -> list[str]:
    """Import an image archive (`docker save` or OCI) into every real node's containerd, as
    `kind load docker-image` does for kind; the names of the nodes it went to."""
    for node in nodes:
        proc = subprocess.run([realnode.CTR, "--address", str(node.containerd_socket),
                               "--namespace", "k8s.io", "images", "import", str(archive)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"ctr images import on {node.name} failed: {proc.stderr}")
    return [n.name for n in nodes]


def _start_real_nodes(launch: _Launch, nodes: list[RealNode], network: Network,
                      bins: _RealNodeBins, server: str, ca: bytes, pki: Pki,
                      admin: Path, deadline: float) -> None:
    """The bridge, then per node containerd (with the images) and the kubelet; then the
    cluster DNS on the bridge."""
    hostnode.create_bridge(network, [n.ip for n in nodes])
    hostnode.fence(network)
    hostnode.link_short_dir(launch.data_dir)
    bin_dir = Path(launch.state.bin_dir)
    certs_of = {n.name: realnode.NodeCerts(
        ca=pki.ca_cert, serving_cert=pki.client_cert(node_serving(n.name)),
        serving_key=pki.client_key(node_serving(n.name))) for n in nodes}
    for node in nodes:
        node.dir.mkdir(parents=True, exist_ok=True)
        node.cni_conf_dir.mkdir(exist_ok=True)
        hostnode.create_cgroup_root(node.cgroup_root)
        node.containerd_config.write_text(realnode.containerd_config(node, images.PAUSE_IMAGE))
        (node.cni_conf_dir / "10-devcluster.conflist").write_text(
            json.dumps(realnode.cni_conflist(node), indent=2))
        node.kubelet_config.write_text(yaml.safe_dump(
            realnode.kubelet_config(node, certs_of[node.name])))
        stem = node_client(node.name)
        node.kubeconfig.write_text(yaml.safe_dump(kubeconfig(
            server, ca, pki.client_cert(stem).read_bytes(), pki.client_key(stem).read_bytes(),
            f"system:node:{node.name}")))
        containerd, kubelet = node.process_name
        launch.argv[containerd] = realnode.containerd_argv(node)
        launch.argv[kubelet] = realnode.kubelet_argv(bin_dir, node)
        launch.start(containerd, realnode.containerd_env(dict(os.environ)))
    for node in nodes:
        launch.wait_until(f"containerd of {node.name}", node.containerd_socket.exists,
                          deadline)
        images.import_images(Path(realnode.CTR), str(node.containerd_socket), bins.images)
        launch.start(node.process_name[1])
    rbac = _kubectl(bin_dir, admin, "apply", "-f", "-",
                    input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                           "items": dns.coredns_rbac()}))
    if rbac.returncode != 0:
        raise ClusterError(f"granting CoreDNS its reads failed: {rbac.stderr}")
    health, ready = free_ports(2)
    launch.state.ports.update(dns_health=health, dns_ready=ready)
    corefile = launch.data_dir / "Corefile"
    corefile.write_text(dns.corefile(
        listen_ip=network.gateway, port=53, health_port=launch.state.ports["dns_health"],
        ready_port=launch.state.ports["dns_ready"],
        kubeconfig=launch.data_dir / "kubeconfigs" / "coredns.yaml"))
    launch.argv["coredns"] = dns.command_line(bins.dns_dir, corefile)
    launch.start("coredns")
    launch.wait_until("CoreDNS /ready", lambda: _get(
        f"http://127.0.0.1:{ready}/ready", None) is not None, deadline)
    if launch.state.services:
        _start_kube_proxy(launch, nodes[0], bin_dir, deadline)


def _start_kube_proxy(launch: _Launch, node: RealNode, bin_dir: Path, deadline: float) -> None:
    """One kube-proxy for the machine (every real node shares the bridge and its rules), and
    the relay from the API server's advertised address on the bridge to its loopback one."""
    api = launch.state.ports["apiserver"]
    launch.argv["apiserver-relay"] = [sys.executable, "-m", "devcluster.relay",
                                      f"{node.network.gateway}:{api}", f"127.0.0.1:{api}"]
    launch.start("apiserver-relay")
    healthz, metrics = free_ports(2)
    launch.state.ports.update(kube_proxy_healthz=healthz, kube_proxy_metrics=metrics)
    config = launch.data_dir / "kube-proxy.yaml"
    config.write_text(yaml.safe_dump(realnode.kube_proxy_config(
        node, launch.data_dir / "kubeconfigs" / "kube-proxy.yaml", healthz, metrics)))
    launch.argv["kube-proxy"] = realnode.kube_proxy_argv(bin_dir, config)
    launch.start("kube-proxy")
    launch.wait_until("kube-proxy /healthz", lambda: _get(
        f"http://127.0.0.1:{healthz}/healthz", None) is not None, deadline)


def pod_log_path(data_dir: Path) -> Path:
    """The log file every container shows unless a Logs object gives its pod another."""
    return data_dir.resolve() / DEFAULT_POD_LOG


def write_default_pod_log(data_dir: Path) -> Path:
    path = pod_log_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_pod_log(datetime.now(UTC)))
    return path


def _schedulable_nodes(bin_dir: Path, kubeconfig_file: Path) -> int:
    """Nodes that are Ready and no longer carry the node controller's not-ready taint."""
    out = _kubectl(bin_dir, kubeconfig_file, "get", "nodes", "-o", "json")
    if out.returncode != 0:
        return 0
    count = 0
    for node in json.loads(out.stdout)["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        tainted = any(t["key"].startswith("node.kubernetes.io/")
                      for t in node.get("spec", {}).get("taints", []))
        count += ready and not tainted
    return count


def _stop_group(pgid: int, grace: float = 10.0) -> None:
    if not pgid:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.1)
    left = group_members(pgid)
    if left:
        raise ClusterError(f"processes {left} of group {pgid} survived SIGKILL")


def down(data_dir: Path) -> bool:
    """Stop every component and remove the cluster's state; True if something was running.

    Idempotent: with nothing running it only cleans a stale data dir. Logs are kept.
    Real nodes first end their pods through their kubelets (so containerd tears down each
    pod's network), then whatever is left of them is killed, unmounted and removed.
    """
    data_dir = data_dir.resolve()
    state = read_state(data_dir)
    running = False
    if state is not None:
        running = bool(state.members())
        nodes = state.nodes(data_dir)
        if nodes and running:
            _drain_real_nodes(state, data_dir, nodes)
        for group in (state.pgid, *state.groups):
            _stop_group(group)
        for node in nodes:
            hostnode.clean_node(node)
        if state.services:
            hostnode.remove_kube_proxy_rules()
        network = state.network()
        if network is not None:
            hostnode.unfence(network)
            hostnode.delete_bridge(network.bridge)
    hostnode.unlink_short_dir(data_dir)
    if (data_dir / "nodes").exists():  # an `up` that died before writing its state
        hostnode.unmount_under(data_dir / "nodes")
        shutil.rmtree(data_dir / "nodes", ignore_errors=True)
    for child in ("etcd", "pki", "kubeconfigs", "kubeconfig", "state.json", "Corefile",
                  "kube-proxy.yaml"):
        path = data_dir / child
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return running


def _running(data_dir: Path, name: str) -> tuple[State, int | None]:
    """The state of a running cluster and the pid of component ``name``, if it runs."""
    state = read_state(data_dir)
    if state is None or not state.members():
        raise ClusterError(f"no cluster runs in {data_dir}; start one with `make cluster-up`")
    if name not in COMPONENTS:
        raise ClusterError(f"{name!r} is not a component that can be stopped or started; "
                           f"choose one of {', '.join(COMPONENTS)}")
    pid = state.pids.get(name)
    return state, pid if pid is not None and _alive(pid) else None


def stop_component(data_dir: Path, name: str, sig: int = signal.SIGTERM,
                   timeout: float = 30.0) -> int | None:
    """Stop one component and wait until it has exited; its data (etcd's too) stays.
    The pid it had, or None if it was not running."""
    data_dir = data_dir.resolve()
    _state, pid = _running(data_dir, name)
    if pid is None:
        return None
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += 5.0
        time.sleep(0.05)
    return pid


def start_component(data_dir: Path, name: str, timeout: float = STARTUP_TIMEOUT) -> int:
    """Start one stopped component with the command line, ports and data it had, and wait
    until it serves (for etcd, until the API server is ready again too). Its pid."""
    data_dir = data_dir.resolve()
    state, pid = _running(data_dir, name)
    if pid is not None:
        raise ClusterError(f"{name} already runs (pid {pid}); stop or restart it instead")
    pki = Pki(data_dir / "pki")
    network = state.network()
    launch = _Launch(data_dir, Path(state.bin_dir), pki, Ports(**{
        f.name: state.ports[f.name] for f in fields(Ports)}),
        advertise=network.gateway if network and state.services else "127.0.0.1")
    launch.state = state
    launch.start(name)
    ctx = _ssl_context(pki)
    deadline = time.monotonic() + timeout
    for serving in dict.fromkeys((name, "kube-apiserver")):
        check = _ready_check(serving, state.ports, ctx)
        if check is not None:
            launch.wait_until(f"{serving} to serve", check, deadline)
    return launch.state.pids[name]


def restart_component(data_dir: Path, name: str, sig: int = signal.SIGTERM) -> int:
    """stop_component, then start_component: a crash (SIGKILL) or a clean restart."""
    stop_component(data_dir, name, sig)
    return start_component(data_dir, name)


def _drain_real_nodes(state: State, data_dir: Path, nodes: list[RealNode],
                      timeout: float = 30.0) -> None:
    """Cordon the real nodes and force-delete their pods, then wait until their kubelets
    have stopped every container: a best effort, `clean_node` catches the rest."""
    bin_dir, admin = Path(state.bin_dir), data_dir / "kubeconfigs" / "admin.yaml"
    if not admin.exists():
        return
    for node in nodes:
        _kubectl(bin_dir, admin, "cordon", node.name)
        _kubectl(bin_dir, admin, "delete", "pods", "--all-namespaces", "--force",
                 "--grace-period=0", "--wait=false", f"--field-selector=spec.nodeName={node.name}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(hostnode.running_tasks(n) for n in nodes):
        time.sleep(0.2)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def status(data_dir: Path) -> tuple[bool, str]:
    """(healthy, a table of components with pid, liveness and resident memory)."""
    data_dir = data_dir.resolve()
    state = read_state(data_dir)
    if state is None:
        return False, f"devcluster: not running (no state in {data_dir})"
    lines = [f"devcluster: {state.server}  kubeconfig {kubeconfig_path(data_dir)}"]
    healthy, total = True, 0
    for name in [*COMPONENTS, *(n for n in state.pids if n not in COMPONENTS)]:
        pid = state.pids.get(name)
        alive = pid is not None and _alive(pid)
        rss = _rss_kib(pid) if pid and alive else 0
        total += rss
        healthy &= alive
        lines.append(f"  {name:<24} pid {pid or '-':<8} {'running' if alive else 'DOWN':<8}"
                     f" {rss / 1024:7.1f} MiB")
    lines.append(f"  {'total':<24} {'':<17} {total / 1024:7.1f} MiB")
    if state.ready_seconds is not None:
        lines.append(f"  up to ready in {state.ready_seconds:.1f}s")
    return healthy, "\n".join(lines)


def env_line(data_dir: Path) -> str:
    return f"export KUBECONFIG={kubeconfig_path(data_dir.resolve())}"

