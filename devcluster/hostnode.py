"""What real nodes do to the machine: packages, the bridge, cgroups, and the clean-up.

Every step here is undone by :func:`clean_node` and :func:`delete_bridge`, which `down`
runs whatever state the cluster was left in, so nothing outlives a cluster: no process,
container, mount, network namespace, cgroup or bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devcluster.realnode import (
    CTR,
    KUBE_PROXY_TABLE,
    NFT,
    PACKAGES,
    Network,
    RealNode,
    fence_rules,
    fence_table,
    short_link,
)

CGROUP_V1 = Path("/sys/fs/cgroup")


def missing_prerequisite() -> str | None:
    """Why this machine cannot run a real node even after installing packages, or None."""
    if platform.system() != "Linux":
        return f"real nodes need Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "real nodes need root (a kubelet and containerd manage cgroups and mounts)"
    missing = [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]
    if missing and shutil.which("apt-get") is None:
        return (f"real nodes need the packages {', '.join(missing)} and there is no apt-get "
                "to install them")
    if not shutil.which("ip"):
        return "real nodes need the `ip` command (Debian package iproute2)"
    return None


def install_packages(log: Callable[[str], None] | None = None) -> None:
    """Install the Debian packages real nodes need, if any is missing."""
    missing = [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if log:
        log(f"devcluster: installing {', '.join(missing)} with apt-get (once per machine)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(missing)} failed: "
                               f"{proc.stderr[-2000:]}")


def taken_octets() -> set[int]:
    """Second octets of the 10.x.0.0/16 networks this machine already has a route or
    address in (ours included: a bridge left behind keeps its network)."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=True).stdout
    taken = set()
    for route in json.loads(out or "[]"):
        dst = str(route.get("dst", ""))
        if dst.startswith("10."):
            taken.add(int(dst.split(".")[1].split("/")[0]))
    return taken


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def bridge_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def create_bridge(network: Network, node_ips: list[str]) -> None:
    """The bridge every real node's pods join, with the DNS address and one per node."""
    if not bridge_exists(network.bridge):
        _ip("link", "add", network.bridge, "type", "bridge")
    _ip("addr", "replace", f"{network.gateway}/16", "dev", network.bridge)
    for address in node_ips:
        _ip("addr", "replace", f"{address}/32", "dev", network.bridge)
    _ip("link", "set", network.bridge, "up")


def fence(network: Network) -> None:
    """Keep the pods' traffic on this machine (realnode.fence_rules)."""
    unfence(network)
    subprocess.run([NFT, "-f", "-"], input=fence_rules(network), text=True, check=True,
                   capture_output=True)


def unfence(network: Network) -> None:
    subprocess.run([NFT, "delete", "table", "inet", fence_table(network)], capture_output=True)


def remove_kube_proxy_rules() -> None:
    """kube-proxy's own tables (it names them itself; one kube-proxy per machine)."""
    for family in ("ip", "ip6"):
        subprocess.run([NFT, "delete", "table", family, KUBE_PROXY_TABLE], capture_output=True)


def delete_bridge(name: str) -> None:
    if bridge_exists(name):
        _ip("link", "delete", name)


def link_short_dir(data_dir: Path) -> None:
    nodes = data_dir / "nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    link = short_link(data_dir)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(nodes)


def unlink_short_dir(data_dir: Path) -> None:
    link = short_link(data_dir)
    if link.is_symlink():
        link.unlink()


def _cgroup_dirs(root: str) -> list[Path]:
    """The node's cgroup root in every mounted v1 hierarchy (and the unified one)."""
    dirs = []
    for hierarchy in sorted(CGROUP_V1.iterdir()) if CGROUP_V1.is_dir() else []:
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            dirs.append(hierarchy / root.lstrip("/"))
    return dirs


def create_cgroup_root(root: str) -> None:
    """The kubelet refuses a cgroupRoot that does not exist; it creates what is below."""
    for d in _cgroup_dirs(root):
        d.mkdir(exist_ok=True)


def _kill_cgroup_tree(d: Path) -> None:
    for procs in d.rglob("cgroup.procs"):
        try:
            pids = procs.read_text().split()
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def remove_cgroup_root(root: str, timeout: float = 10.0) -> None:
    """Kill whatever still runs in the node's cgroups, then remove them bottom-up."""
    deadline = time.monotonic() + timeout
    for d in _cgroup_dirs(root):
        while d.exists():
            _kill_cgroup_tree(d)
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            try:
                d.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: Path) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def running_tasks(node: RealNode) -> list[str]:
    """Container tasks containerd still runs for the node (sandboxes included)."""
    if not node.containerd_socket.exists():
        return []
    proc = subprocess.run([CTR, "--address", str(node.containerd_socket), "-n", "k8s.io",
                           "tasks", "ls", "-q"], capture_output=True, text=True, timeout=20)
    return proc.stdout.split() if proc.returncode == 0 else []


def clean_node(node: RealNode) -> None:
    """After its kubelet and containerd are gone: end the shims and containers they left,
    then unmount and delete everything under the node's dir."""
    for pid in _processes_mentioning(str(node.containerd_socket)):  # the shims
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    remove_cgroup_root(node.cgroup_root)
    unmount_under(node.dir)
    if node.dir.exists():
        shutil.rmtree(node.dir, ignore_errors=True)


def leftovers(node: RealNode) -> list[str]:
    """What of the node is still on the machine: processes, mounts, cgroups, files."""
    found = [f"process {pid}" for pid in _processes_mentioning(str(node.containerd_socket))]
    found += [f"mount {m}" for m in _mounts_under(node.dir)] if node.dir.exists() else []
    found += [f"cgroup {d}" for d in _cgroup_dirs(node.cgroup_root) if d.exists()]
    found += [f"dir {node.dir}"] if node.dir.exists() else []
    link = short_link(node.data_dir)
    found += [f"link {link}"] if link.is_symlink() else []
    return found
