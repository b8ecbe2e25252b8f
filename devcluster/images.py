"""The container images of devcluster's real nodes, built without Docker or a registry.

Two images, each written as an OCI image layout tarball (``oci-layout``, ``index.json``,
``blobs/sha256/...``: one gzip layer, an image config and a manifest) by tarfile, gzip and
hashlib alone, for ``ctr images import``:

- ``PAUSE_IMAGE``: ``/pause`` (``devcluster/images/cmd/pause``), the pod sandbox process;
- ``TRAINER_IMAGE``: ``/bin/trainer`` (``devcluster/images/cmd/trainer``, the test workload)
  with busybox from Debian's ``busybox-static`` for ``sh`` and friends, ``/tmp`` and an
  ``/etc/passwd`` with root and nobody (65532).

The archives are deterministic (fixed mtimes, uid 0, sorted entries, gzip mtime 0), so the same
inputs always give the same digests. They are cached under ``$DEVCLUSTER_IMAGES_DIR``, else
``${XDG_CACHE_HOME:-~/.cache}/trainingjob-operator/images/<key>/``, where ``<key>`` hashes the
two binaries, the busybox-static .deb and ``FORMAT_VERSION``. The .deb is downloaded once
(``apt-get download``) and kept in ``<root>/debs/``; delete that directory to take a newer one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devcluster import build

PAUSE_IMAGE = "devcluster.local/pause:3.10"
TRAINER_IMAGE = "devcluster.local/trainer:1"

# Bump whenever what this module writes changes for the same binaries and .deb.
FORMAT_VERSION = "1"

BUSYBOX_PACKAGE = "busybox-static"
BUSYBOX_APPLETS = (
    "[", "awk", "cat", "cp", "date", "df", "echo", "env", "false", "free", "grep", "head",
    "hostname", "id", "kill", "ln", "ls", "mkdir", "mv", "nc", "nslookup", "printf", "ps",
    "pwd", "rm", "sed", "seq", "sh", "sleep", "stat", "tail", "tee", "test", "timeout",
    "touch", "tr", "true", "uname", "wc", "wget", "whoami",
)
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65532:65532:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65532:\n"

# Every timestamp in an image: the archives must not depend on when they were built.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says what is missing."""


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink of a layer; ``path`` is relative to the image's root."""

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""  # of a symlink


def file(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, "file", data, mode)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode=mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, target=target)


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one image: its name, one layer's entries and the runtime config."""

    name: str  # e.g. devcluster.local/trainer:1
    entries: tuple[Entry, ...]
    entrypoint: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str = ""
    arch: str = "amd64"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _tar(members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """An uncompressed tar of (header, data) pairs, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: str, mode: int, size: int = 0, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    info.mode, info.size, info.linkname = mode, size, target
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
    return info


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """The layer as an uncompressed tar: sorted, parent directories added, fixed metadata."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        path = entry.path.strip("/")
        if not path or path in by_path:
            raise ValueError(f"empty or duplicate path in layer: {entry.path!r}")
        by_path[path] = entry
    for path in list(by_path):
        parent = path.rpartition("/")[0]
        while parent and parent not in by_path:
            by_path[parent] = directory(parent)
            parent = parent.rpartition("/")[0]
    return _tar((_info(path, e.kind, e.mode, len(e.data), e.target),
                 e.data if e.kind == "file" else None)
                for path, e in sorted(by_path.items()))


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def build_archive(spec: ImageSpec) -> bytes:
    """The image as an OCI image layout tarball, the same bytes for the same spec."""
    layer = layer_tar(spec.entries)
    layer_gz = _gzip(layer)
    runtime: dict[str, Any] = {"Entrypoint": list(spec.entrypoint), "WorkingDir": "/"}
    if spec.env:
        runtime["Env"] = list(spec.env)
    if spec.user:
        runtime["User"] = spec.user
    config = _json({
        "created": CREATED, "architecture": spec.arch, "os": "linux", "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created": CREATED, "created_by": "devcluster/images.py"}],
    })
    manifest = _json({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(layer_gz),
                    "size": len(layer_gz)}],
    })
    tag = spec.name.rpartition(":")[2] if ":" in spec.name.rpartition("/")[2] else "latest"
    index = _json({
        "schemaVersion": 2, "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": spec.arch, "os": "linux"},
            "annotations": {ANNOTATION_CONTAINERD_NAME: spec.name, ANNOTATION_REF: tag},
        }],
    })
    blobs = {_digest(b).removeprefix("sha256:"): b for b in (layer_gz, config, manifest)}
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index,
             **{f"blobs/sha256/{hex_}": blob for hex_, blob in blobs.items()}}
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("blobs", "dir", 0o755), None), (_info("blobs/sha256", "dir", 0o755), None)]
    members += [(_info(name, "file", 0o644, len(data)), data)
                for name, data in sorted(files.items())]
    return _tar(members)


def manifest_digest(archive: Path) -> str:
    """The digest of the (first) manifest an archive's index.json names."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ImageError(f"{archive} has no index.json")
        digest: str = json.load(member)["manifests"][0]["digest"]
        return digest


def pause_spec(pause: bytes, arch: str) -> ImageSpec:
    return ImageSpec(PAUSE_IMAGE, (file("pause", pause, 0o755),), ("/pause",),
                     user="65535:65535", arch=arch)


def trainer_spec(trainer: bytes, busybox: bytes, arch: str) -> ImageSpec:
    entries = [
        file("bin/trainer", trainer, 0o755), file("bin/busybox", busybox, 0o755),
        *(symlink(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS),
        directory("tmp", 0o1777), directory("root", 0o700),
        file("etc/passwd", PASSWD), file("etc/group", GROUP),
    ]
    return ImageSpec(TRAINER_IMAGE, tuple(entries), ("/bin/trainer",), env=("PATH=/bin",),
                     arch=arch)


def images_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("DEVCLUSTER_IMAGES_DIR")
                or Path(base) / "trainingjob-operator" / "images")


def host_arch() -> str:
    machine = platform.machine()
    if machine not in _GO_ARCH:
        raise ImageError(f"no image architecture for this machine ({machine})")
    return _GO_ARCH[machine]


def images_key(pause: bytes, trainer: bytes, busybox_deb: bytes, arch: str) -> str:
    digest = hashlib.sha256()
    for name, data in [("format", FORMAT_VERSION.encode()), ("arch", arch.encode()),
                       ("pause", pause), ("trainer", trainer), ("busybox-deb", busybox_deb)]:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def busybox_deb(root: Path, log: bool = True) -> Path:
    """The busybox-static .deb kept in ``root/debs``, downloaded with apt-get the first time."""
    debs = root / "debs"
    found = sorted(debs.glob(f"{BUSYBOX_PACKAGE}_*.deb"))
    if found:
        return found[-1]
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise ImageError(f"the trainer image needs busybox from Debian's {BUSYBOX_PACKAGE} "
                         f"package, but {' and '.join(missing)} is not on PATH (this needs a "
                         "Debian or Ubuntu machine)")
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=debs, prefix="download-") as tmp:
        if log:
            print(f"images: apt-get download {BUSYBOX_PACKAGE}", file=sys.stderr, flush=True)
        proc = _run(["apt-get", "download", BUSYBOX_PACKAGE], cwd=Path(tmp))
        if proc.returncode != 0 and os.geteuid() == 0:
            # Most often the package lists are missing or stale: refresh them once.
            if log:
                print("images: apt-get update", file=sys.stderr, flush=True)
            update = _run(["apt-get", "update"])
            if update.returncode == 0:
                proc = _run(["apt-get", "download", BUSYBOX_PACKAGE], cwd=Path(tmp))
        downloaded = sorted(Path(tmp).glob(f"{BUSYBOX_PACKAGE}_*.deb"))
        if proc.returncode != 0 or not downloaded:
            hint = ("run 'apt-get update' as root, then try again" if os.geteuid() != 0
                    else "check that Debian's package archive is reachable")
            raise ImageError(f"apt-get download {BUSYBOX_PACKAGE} failed "
                             f"({proc.returncode}): {proc.stderr.strip()[-1000:]}; {hint}")
        target = debs / downloaded[0].name
        downloaded[0].rename(target)
    return target


def extract_busybox(deb: Path) -> bytes:
    """``/bin/busybox`` of a busybox-static .deb, unpacked with dpkg-deb."""
    with tempfile.TemporaryDirectory(prefix="busybox-") as tmp:
        proc = _run(["dpkg-deb", "-x", str(deb), tmp])
        binary = Path(tmp) / "bin" / "busybox"
        if proc.returncode != 0 or not binary.is_file():
            raise ImageError(f"dpkg-deb -x {deb} gave no bin/busybox: {proc.stderr.strip()}")
        return binary.read_bytes()


def ensure_images(log: bool = True) -> dict[str, Path]:
    """Image name -> OCI archive of every image, building what the cache does not hold."""
    bin_dir = build.IMAGE_BINARIES.ensure(log)
    pause, trainer = (bin_dir / "pause").read_bytes(), (bin_dir / "trainer").read_bytes()
    root, arch = images_root(), host_arch()
    deb = busybox_deb(root, log)
    target = root / images_key(pause, trainer, deb.read_bytes(), arch)
    archives = {PAUSE_IMAGE: target / "pause.tar", TRAINER_IMAGE: target / "trainer.tar"}
    if all(path.is_file() for path in archives.values()):
        return archives
    started = time.monotonic()
    specs = {PAUSE_IMAGE: pause_spec(pause, arch),
             TRAINER_IMAGE: trainer_spec(trainer, extract_busybox(deb), arch)}
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix="build-"))
    try:
        for name, spec in specs.items():
            (tmp / archives[name].name).write_bytes(build_archive(spec))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the archives from other users
        if target.exists():  # a concurrent build finished first; its archives are identical
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log:
        print(f"images: wrote {', '.join(archives)} to {target} in "
              f"{time.monotonic() - started:.1f}s", file=sys.stderr)
    return archives


def _ctr(ctr: Path, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(ctr), "--address", address, "--namespace", "k8s.io", *args],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ImageError(f"ctr {' '.join(args)} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:]}")
    return proc


def present_images(ctr: Path, address: str) -> dict[str, str]:
    """Image name -> manifest digest of every image in containerd's k8s.io namespace."""
    lines = _ctr(ctr, address, "images", "ls").stdout.splitlines()[1:]  # REF TYPE DIGEST ...
    return {fields[0]: fields[2] for fields in map(str.split, lines) if len(fields) >= 3}


def import_images(ctr: Path, address: str, archives: Mapping[str, Path],
                  snapshotter: str | None = None) -> None:
    """Import and unpack the archives into the k8s.io namespace, where the CRI finds them.

    An image already there with the same manifest digest is skipped. ``ctr images import``
    unpacks by default, for the host's platform, into ``snapshotter`` (else containerd's
    default, overlayfs), which is what the CRI plugin runs containers from.
    """
    present = present_images(ctr, address)
    for name, archive in archives.items():
        if present.get(name) == manifest_digest(archive):
            continue
        extra = ["--snapshotter", snapshotter] if snapshotter else []
        _ctr(ctr, address, "images", "import", *extra, str(archive))
        if name not in present_images(ctr, address):
            raise ImageError(f"ctr images import {archive} did not create {name}")
