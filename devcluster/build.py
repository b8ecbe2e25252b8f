"""Build the control-plane binaries from devcluster/go and cache them outside the repo.

The cache key hashes every input of the build (go.mod, go.sum, the wrapper sources, the Go
toolchain version and the link flags), so a second build of the same inputs is a lookup,
and a changed input can never be served a stale binary.
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
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent / "go"

# Binary name -> Go package, as listed in go.mod (tool directives and ./cmd wrappers).
PACKAGES: dict[str, str] = {
    "etcd": "./cmd/etcd",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
}

# Kubernetes reads its version from variables its release scripts set at link time.
_K8S_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


class BuildError(RuntimeError):
    """The Go build failed; the message carries the tail of its output."""


def module_version(gomod: str, module: str) -> str:
    """The version go.mod requires of ``module`` (after tidy every dependency is listed)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    if match is None:
        raise BuildError(f"{module} is not required in {GO_DIR / 'go.mod'}")
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


def build_inputs(go_dir: Path = GO_DIR) -> list[tuple[str, bytes]]:
    """Every file that decides what the build produces, with its path relative to go_dir."""
    files = [go_dir / "go.mod", go_dir / "go.sum", *sorted((go_dir / "cmd").rglob("*.go"))]
    return [(str(f.relative_to(go_dir)), f.read_bytes()) for f in files]


def cache_key(inputs: list[tuple[str, bytes]], go_version: str, flags: str) -> str:
    digest = hashlib.sha256()
    for name, data in [*inputs, ("go-version", go_version.encode()), ("ldflags", flags.encode())]:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Where built binaries live: $DEVCLUSTER_CACHE, else the user's cache directory."""
    explicit = os.environ.get("DEVCLUSTER_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trainingjob-operator" / "devcluster"


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
    """Return a directory holding every binary in PACKAGES, building it on a cache miss."""
    gomod = (GO_DIR / "go.mod").read_text()
    flags = ldflags(module_version(gomod, "k8s.io/kubernetes"))
    key = cache_key(build_inputs(), go_version(), flags)
    target = cache_root() / key / "bin"
    if all((target / name).is_file() for name in PACKAGES):
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if log:
        print(f"devcluster: building {', '.join(PACKAGES)} from Go modules into {target} "
              "(a cold build takes many minutes; later builds of the same inputs are cached)",
              file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent.parent, prefix="build-") as tmp:
        out_dir = Path(tmp) / "bin"
        out_dir.mkdir()
        cmd = ["go", "build", "-ldflags", flags, "-o", f"{out_dir}/", *PACKAGES.values()]
        proc = subprocess.run(cmd, cwd=GO_DIR, env=_go_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"go build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a concurrent build finished first; its result is equivalent
            shutil.rmtree(target)
        out_dir.rename(target)
    if log:
        print(f"devcluster: built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target
