"""Build binaries from the Go modules in devcluster/ and cache them outside the repo.

Go modules, each built by one ``go build`` and cached under its own key:

- ``devcluster/go``: the control plane (``ensure_binaries``), in ``.../devcluster/<key>/bin``;
- ``devcluster/tools``: helm and tjcheck for charts and tests (``ensure_tools``), in
  ``.../tools/<key>/bin``;
- ``devcluster/peers``: Kueue's manager, the peer ``make bench`` compares the operator with
  (``ensure_kueue``), in ``.../kueue/<key>/bin``.

The cache key hashes every input of a build (go.mod, go.sum, the module's own Go sources,
the Go toolchain version and the link flags), so a second build of the same inputs is a
lookup, and a changed input can never be served a stale binary.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent / "go"
TOOLS_DIR = Path(__file__).resolve().parent / "tools"
# Cluster DNS for real nodes: CoreDNS with only the plugins devcluster uses (own module: its
# dependency versions are CoreDNS's, not the control plane's).
DNS_DIR = Path(__file__).resolve().parent / "dns"
# The programs inside the images real nodes run (pause, trainer): static, standard library only.
IMAGES_DIR = Path(__file__).resolve().parent / "images"
# Peers compared with the operator (make bench): own module, so its dependency versions are
# Kueue's (k8s.io/* v0.33.3, controller-runtime v0.21.0), not the control plane's.
PEERS_DIR = Path(__file__).resolve().parent / "peers"

# Binary name -> Go package, as listed in go.mod (tool directives and ./cmd wrappers).
PACKAGES: dict[str, str] = {
    "etcd": "./cmd/etcd",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
}

TOOL_PACKAGES: dict[str, str] = {
    "helm": "helm.sh/helm/v3/cmd/helm",
    "tjcheck": "./cmd/tjcheck",
}

DNS_PACKAGES: dict[str, str] = {"coredns": "./cmd/coredns"}

IMAGE_PACKAGES: dict[str, str] = {"pause": "./cmd/pause", "trainer": "./cmd/trainer"}

# Kueue's own manager, as released (a tool directive in devcluster/peers/go.mod).
KUEUE_PACKAGES: dict[str, str] = {"kueue": "sigs.k8s.io/kueue/cmd/kueue"}

# Kubernetes reads its version from variables its release scripts set at link time.
_K8S_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


class BuildError(RuntimeError):
    """The Go build failed; the message carries the tail of its output."""


def module_version(gomod: str, module: str, path: Path = GO_DIR / "go.mod") -> str:
    """The version go.mod requires of ``module`` (after tidy every dependency is listed)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    if match is None:
        raise BuildError(f"{module} is not required in {path}")
    return match.group(1)


def ldflags(kubernetes_version: str) -> str:
    """Strip debug info and stamp Kubernetes' version the way its release build does."""
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in _K8S_VERSION_PACKAGES:
        flags += [
            f"-X {pkg}.gitVersion={kubernetes_version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def helm_ldflags(helm_version: str, client_go_version: str) -> str:
    """Strip debug info and stamp what helm's own Makefile stamps in a release build.

    Helm v3.18's Makefile sets ``internal/version.version`` (else ``helm version`` prints
    just "v3.18") and derives the default Kubernetes version of ``helm lint`` and
    ``helm template`` (``.Capabilities.KubeVersion``; else v1.20) from k8s.io/client-go:
    major = first number + 1, minor = second number, so client-go v0.33.x gives 1.33.
    """
    numbers = client_go_version.lstrip("v").split(".")
    major, minor = str(int(numbers[0]) + 1), numbers[1]
    flags = ["-s", "-w",
             f"-X helm.sh/helm/v3/internal/version.version={helm_version}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def kueue_ldflags(kueue_version: str) -> str:
    """Strip debug info and stamp the version as Kueue's Makefile does (LD_FLAGS sets
    ``sigs.k8s.io/kueue/pkg/version.GitVersion``; the manager logs it at start)."""
    return f"-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion={kueue_version}"


def build_inputs(go_dir: Path = GO_DIR) -> list[tuple[str, bytes]]:
    """Every file that decides what the build produces, with its path relative to go_dir."""
    # A module without dependencies (devcluster/images) has no go.sum.
    go_sum = [go_dir / "go.sum"] if (go_dir / "go.sum").exists() else []
    files = [go_dir / "go.mod", *go_sum, *sorted(go_dir.rglob("*.go"))]
    return [(str(f.relative_to(go_dir)), f.read_bytes()) for f in files]


def cache_key(inputs: list[tuple[str, bytes]], go_version: str, flags: str) -> str:
    digest = hashlib.sha256()
    for name, data in [*inputs, ("go-version", go_version.encode()), ("ldflags", flags.encode())]:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def _user_cache(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trainingjob-operator" / name


@dataclass(frozen=True)
class GoBuild:
    """One Go module whose binaries are built by one ``go build`` and cached under one key."""

    name: str  # the cache directory under trainingjob-operator/, and the log prefix
    go_dir: Path
    packages: Mapping[str, str]  # binary name -> Go package
    link_flags: Callable[[str, Path], str]  # (go.mod text, its path) -> -ldflags
    cache_env: str  # the environment variable that overrides cache_root()
    env: Mapping[str, str] = field(default_factory=dict)  # e.g. CGO_ENABLED=0 for static binaries

    def cache_root(self) -> Path:
        return Path(os.environ.get(self.cache_env) or _user_cache(self.name))

    def flags(self) -> str:
        gomod = self.go_dir / "go.mod"
        return self.link_flags(gomod.read_text(), gomod)

    def ensure(self, log: bool = True) -> Path:
        """Return a directory holding every binary in packages, building it on a cache miss."""
        flags = self.flags()
        # The build environment decides the binaries as much as the flags do.
        inputs = [*build_inputs(self.go_dir), *((f"env:{k}", v.encode())
                                                for k, v in sorted(self.env.items()))]
        target = self.cache_root() / cache_key(inputs, go_version(), flags) / "bin"
        if all((target / name).is_file() for name in self.packages):
            return target
        target.parent.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if log:
            print(f"{self.name}: building {', '.join(self.packages)} from Go modules into "
                  f"{target} (a cold build takes minutes; later builds of the same inputs are "
                  "cached)", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=target.parent.parent, prefix="build-") as tmp:
            out_dir = Path(tmp) / "bin"
            out_dir.mkdir()
            cmd = ["go", "build", "-ldflags", flags, "-o", f"{out_dir}/", *self.packages.values()]
            proc = subprocess.run(cmd, cwd=self.go_dir, env={**_go_env(), **self.env},
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"go build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # a concurrent build finished first; its result is equivalent
                shutil.rmtree(target)
            out_dir.rename(target)
        if log:
            print(f"{self.name}: built in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return target


def _devcluster_flags(gomod: str, path: Path) -> str:
    return ldflags(module_version(gomod, "k8s.io/kubernetes", path))


def _tools_flags(gomod: str, path: Path) -> str:
    return helm_ldflags(module_version(gomod, "helm.sh/helm/v3", path),
                        module_version(gomod, "k8s.io/client-go", path))


DEVCLUSTER = GoBuild("devcluster", GO_DIR, PACKAGES, _devcluster_flags, "DEVCLUSTER_CACHE")
TOOLS = GoBuild("tools", TOOLS_DIR, TOOL_PACKAGES, _tools_flags, "DEVCLUSTER_TOOLS_CACHE")


def _strip_flags(gomod: str, path: Path) -> str:
    return "-s -w"


DNS = GoBuild("dns", DNS_DIR, DNS_PACKAGES, _strip_flags, "DEVCLUSTER_DNS_CACHE")
IMAGE_BINARIES = GoBuild("images", IMAGES_DIR, IMAGE_PACKAGES, _strip_flags,
                         "DEVCLUSTER_IMAGES_CACHE", env={"CGO_ENABLED": "0"})


KUEUE_MODULE = "sigs.k8s.io/kueue"


def _kueue_flags(gomod: str, path: Path) -> str:
    return kueue_ldflags(module_version(gomod, KUEUE_MODULE, path))


KUEUE = GoBuild("kueue", PEERS_DIR, KUEUE_PACKAGES, _kueue_flags, "DEVCLUSTER_KUEUE_CACHE")


def cache_root() -> Path:
    """Where control-plane binaries live: $DEVCLUSTER_CACHE, else the user's cache directory."""
    return DEVCLUSTER.cache_root()


def _go_env() -> dict[str, str]:
    # The local toolchain only: never download another Go release.
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}


def go_version() -> str:
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.24 or newer")
    out = subprocess.run(["go", "env", "GOVERSION"], env=_go_env(), check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def ensure_binaries(log: bool = True) -> Path:
    """Return a directory holding the control-plane binaries, building them on a cache miss."""
    return DEVCLUSTER.ensure(log)


def ensure_tools(log: bool = True) -> Path:
    """Return a directory holding every binary in TOOL_PACKAGES, building it on a cache miss."""
    return TOOLS.ensure(log)


def ensure_dns(log: bool = True) -> Path:
    """Return a directory holding coredns (DNS_PACKAGES), building it on a cache miss."""
    return DNS.ensure(log)


def ensure_kueue(log: bool = True) -> Path:
    """Return a directory holding Kueue's manager (KUEUE_PACKAGES), building it on a cache miss."""
    return KUEUE.ensure(log)


def module_dir(go_dir: Path, module: str) -> Path:
    """Where the source of ``module``, at the version go_dir's go.mod requires, lies in the Go
    module cache (downloaded through the module proxy if it is not there yet)."""
    cmd = ["go", "list", "-m", "-f", "{{.Dir}}", module]
    for attempt in range(2):
        out = subprocess.run(cmd, cwd=go_dir, env=_go_env(), capture_output=True, text=True)
        if out.returncode != 0:
            raise BuildError(f"go list -m {module} failed in {go_dir}:\n{out.stderr[-2000:]}")
        if out.stdout.strip():
            return Path(out.stdout.strip())
        if attempt == 0:  # required but not downloaded yet: go list prints an empty Dir
            subprocess.run(["go", "mod", "download", module], cwd=go_dir, env=_go_env(),
                           check=True, capture_output=True)
    raise BuildError(f"{module} is not in the Go module cache after go mod download")
