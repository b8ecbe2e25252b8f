"""The operator's own image, built from the repository's Dockerfile on a machine that reaches
no container registry.

- Docker: the engine at ``$DOCKER_HOST`` or ``/var/run/docker.sock`` if one answers, else a
  ``dockerd`` of Debian's ``docker.io`` started here with its own data root (in the cache),
  its own socket, and no bridge, NAT or iptables rules: builds run with ``--network=none``.
- The base: Debian's ``python3-minimal`` and standard library in a root filesystem made by
  ``mmdebstrap`` from the machine's own apt sources, with dpkg's binaries and database
  removed, imported as ``trainingjob-operator-base:<key>`` (``<key>`` hashes what goes in).
  The Dockerfile takes it as ``--build-arg BASE``; elsewhere its default, an ordinary
  registry image, works unchanged.
- The Python dependencies: exactly ``requirements.lock`` (pinned with hashes), downloaded by
  pip on the host into the cache, so the build itself needs no network.

Everything is cached under ``${XDG_CACHE_HOME:-~/.cache}/trainingjob-operator/image``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "ca-certificates")
# Run inside the new root: no package manager may stay in the image.
STRIP_HOOK = ('rm -rf "$1"/usr/bin/dpkg* "$1"/usr/sbin/dpkg* "$1"/var/lib/dpkg "$1"/var/cache/* '
              '"$1"/usr/bin/debconf* "$1"/usr/share/debconf '
              '"$1"/var/log/* "$1"/usr/share/perl* "$1"/usr/bin/perl*')
EXCLUDED = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
BASE_FORMAT = "1"  # bump when the base recipe changes
PIP_VERSION = "25.3"  # the pip the builder stage runs from its wheel (the base has none)
SOCKET = "/run/trainingjob-operator-docker.sock"
LOCK = ROOT / "requirements.lock"


class ImageError(RuntimeError):
    """The image cannot be built here; the message says what is missing."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "trainingjob-operator" / "image"


def _run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise ImageError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n"
                         f"{proc.stderr[-3000:]}{proc.stdout[-2000:]}")
    return proc


def _apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None:
        raise ImageError(f"need {', '.join(packages)} and there is no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if _run(install, env=env, check=False).returncode != 0:  # a fresh machine: no lists yet
        _run(["apt-get", "update", "-q"], env=env)
        _run(install, env=env)


@dataclass(frozen=True)
class Docker:
    host: str  # unix:///...

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([_docker_cli(), *args], env=self.env(), check=check)


def _docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise ImageError("no docker client: install Debian's docker.io")
    return found


def _answers(host: str) -> bool:
    try:
        proc = subprocess.run([_docker_cli(), "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=20,
                              env={**os.environ, "DOCKER_HOST": host})
    except (ImageError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def ensure_docker(log: Callable[[str], None]) -> Docker:
    """An engine that answers: the user's, else one started here (and left running, like a
    cache: the next build reuses it)."""
    for host in filter(None, (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock",
                              f"unix://{SOCKET}")):
        if (not host.startswith("unix://") or Path(host[7:]).exists()) and _answers(host):
            return Docker(host)
    if shutil.which("dockerd") is None:
        log("image: installing Debian's docker.io (dockerd)")
        _apt_install("docker.io")
    data = cache_root() / "docker"
    data.mkdir(parents=True, exist_ok=True)
    log(f"image: starting dockerd on {SOCKET} (data in {data}; no bridge, no iptables)")
    with (data / "dockerd.log").open("ab") as out:
        subprocess.Popen(
            ["dockerd", f"--data-root={data / 'root'}", "--exec-root=/run/trainingjob-docker",
             "--pidfile=/run/trainingjob-docker.pid", f"--host=unix://{SOCKET}",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
             "--ip-masq=false"], stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Path(SOCKET).exists() and _answers(f"unix://{SOCKET}"):
            return Docker(f"unix://{SOCKET}")
        time.sleep(0.5)
    raise ImageError(f"dockerd did not answer on {SOCKET} within 60 s; see {data}/dockerd.log")


def base_key() -> str:
    h = hashlib.sha256()
    for part in (BASE_FORMAT, SUITE, *BASE_PACKAGES, STRIP_HOOK, *EXCLUDED):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def _sources() -> Path:
    """The machine's own apt sources, so the base comes from the mirror it already uses."""
    for candidate in (Path("/etc/apt/sources.list.d/debian.sources"),
                      Path("/etc/apt/sources.list")):
        if candidate.exists():
            return candidate
    raise ImageError("no apt sources (/etc/apt/sources.list.d/debian.sources) to build the "
                     "base image from")


def ensure_base(docker: Docker, log: Callable[[str], None]) -> str:
    ref = f"trainingjob-operator-base:{base_key()}"
    if docker("image", "inspect", ref, check=False).returncode == 0:
        return ref
    if shutil.which("mmdebstrap") is None:
        log("image: installing Debian's mmdebstrap")
        _apt_install("mmdebstrap")
    work = cache_root() / "base"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = work / f"{base_key()}.tar"
    log(f"image: building the base ({', '.join(BASE_PACKAGES)} from {SUITE}) with mmdebstrap")
    started = time.monotonic()
    _run(["mmdebstrap", "--variant=essential", f"--include={','.join(BASE_PACKAGES)}",
          *(f"--dpkgopt=path-exclude={p}" for p in EXCLUDED),
          f"--customize-hook={STRIP_HOOK}", SUITE, str(rootfs), str(_sources())])
    docker("import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", str(rootfs), ref)
    rootfs.unlink()
    log(f"image: base {ref} in {time.monotonic() - started:.0f}s")
    return ref


def ensure_wheels(log: Callable[[str], None]) -> Path:
    """requirements.lock's wheels (hash-checked by pip) and pip's own, downloaded once."""
    key = hashlib.sha256(LOCK.read_bytes() + PIP_VERSION.encode()).hexdigest()[:16]
    wheels = cache_root() / "wheels" / key
    if (wheels / ".complete").exists():
        return wheels
    log("image: downloading the locked wheels")
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--python-version=3.11", "--platform=manylinux2014_x86_64",
           "--platform=manylinux_2_28_x86_64", "--platform=manylinux_2_17_x86_64",
           "--dest", str(wheels)]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    _run([*pip, "--require-hashes", "-r", str(LOCK)], env=env)
    _run([*pip, f"pip=={PIP_VERSION}"], env=env)
    (wheels / ".complete").touch()
    return wheels


def _context(wheels: Path) -> Path:
    """What the Dockerfile copies, and nothing else."""
    ctx = cache_root() / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "operator").mkdir(parents=True)
    for name in ("Dockerfile", "requirements.lock"):
        shutil.copy2(ROOT / name, ctx / name)
    shutil.copytree(ROOT / "operator" / "trainingjob_operator",
                    ctx / "operator" / "trainingjob_operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(wheels, ctx / "wheels", ignore=shutil.ignore_patterns(".complete"))
    return ctx


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size_bytes: int


def build_image(tag: str, log: Callable[[str], None]) -> Built:
    started = time.monotonic()
    docker = ensure_docker(log)
    base = os.environ.get("BASE_IMAGE") or ensure_base(docker, log)
    ctx = _context(ensure_wheels(log))
    log(f"image: docker build -t {tag} (base {base}, no network)")
    docker("build", "--network=none", "--build-arg", f"BASE={base}", "-t", tag, str(ctx))
    size = int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())
    return Built(tag, time.monotonic() - started, size)


def save(tag: str, dest: Path, log: Callable[[str], None]) -> Path:
    """`docker save` of the image, for the real nodes' containerd (`ctr images import`)."""
    docker = ensure_docker(log)
    docker("save", "-o", str(dest), tag)
    return dest

