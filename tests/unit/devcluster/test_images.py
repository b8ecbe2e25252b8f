from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from devcluster import build, images
from devcluster.images import Entry, ImageSpec, directory, file, symlink

SPEC = ImageSpec(
    "devcluster.local/demo:7",
    (file("bin/app", b"#!app\n", 0o755), symlink("bin/sh", "app"), directory("tmp", 0o1777),
     file("etc/passwd", b"root:x:0:0::/:/bin/sh\n")),
    ("/bin/app", "--flag"), env=("PATH=/bin",), user="65532", arch="amd64")


def _members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = {}
        for info in tar.getmembers():
            f = tar.extractfile(info)
            out[info.name] = (info, f.read() if f is not None else b"")
        return out


def _layout(data: bytes) -> dict[str, Any]:
    """Walk an OCI layout: index -> manifest -> config and layer, checking every digest."""
    members = _members(data)
    blobs = {f"sha256:{name.rpartition('/')[2]}": body for name, (_, body) in members.items()
             if name.startswith("blobs/sha256/")}
    for digest, body in blobs.items():
        assert digest == "sha256:" + hashlib.sha256(body).hexdigest()

    def resolve(descriptor: dict[str, Any]) -> bytes:
        body = blobs[descriptor["digest"]]
        assert len(body) == descriptor["size"]
        return body

    index = json.loads(members["index.json"][1])
    [descriptor] = index["manifests"]
    manifest = json.loads(resolve(descriptor))
    config = json.loads(resolve(manifest["config"]))
    [layer_descriptor] = manifest["layers"]
    layer = gzip.decompress(resolve(layer_descriptor))
    return {"members": members, "index": index, "descriptor": descriptor, "manifest": manifest,
            "config": config, "layer_descriptor": layer_descriptor, "layer": layer}


def test_the_archive_is_a_valid_oci_layout_whose_digests_and_sizes_match() -> None:
    layout = _layout(images.build_archive(SPEC))
    assert json.loads(layout["members"]["oci-layout"][1]) == {"imageLayoutVersion": "1.0.0"}
    assert layout["index"]["schemaVersion"] == 2
    assert layout["index"]["mediaType"] == images.MEDIA_INDEX
    assert layout["descriptor"]["mediaType"] == images.MEDIA_MANIFEST
    assert layout["descriptor"]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert layout["manifest"]["mediaType"] == images.MEDIA_MANIFEST
    assert layout["manifest"]["config"]["mediaType"] == images.MEDIA_CONFIG
    assert layout["layer_descriptor"]["mediaType"] == images.MEDIA_LAYER
    # The config names the uncompressed layer (diff_id), the manifest the gzipped blob.
    diff_id = "sha256:" + hashlib.sha256(layout["layer"]).hexdigest()
    assert layout["config"]["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert layout["config"]["architecture"] == "amd64" and layout["config"]["os"] == "linux"
    assert layout["config"]["config"] == {"Entrypoint": ["/bin/app", "--flag"],
                                          "Env": ["PATH=/bin"], "User": "65532",
                                          "WorkingDir": "/"}


def test_the_index_names_the_image_for_containerd_and_for_oci_tools() -> None:
    annotations = _layout(images.build_archive(SPEC))["descriptor"]["annotations"]
    assert annotations == {"io.containerd.image.name": "devcluster.local/demo:7",
                           "org.opencontainers.image.ref.name": "7"}
    untagged = ImageSpec("devcluster.local:5000/demo", SPEC.entries, SPEC.entrypoint)
    annotations = _layout(images.build_archive(untagged))["descriptor"]["annotations"]
    assert annotations["org.opencontainers.image.ref.name"] == "latest"


def test_the_same_input_gives_the_same_bytes_and_any_change_another_digest() -> None:
    archive = images.build_archive(SPEC)
    assert images.build_archive(SPEC) == archive
    shuffled = ImageSpec(SPEC.name, tuple(reversed(SPEC.entries)), SPEC.entrypoint, SPEC.env,
                         SPEC.user, SPEC.arch)
    assert images.build_archive(shuffled) == archive  # entries are sorted, not taken in order
    digest = _layout(archive)["descriptor"]["digest"]
    changed = ImageSpec(SPEC.name, (*SPEC.entries, file("etc/group", b"root:x:0:\n")),
                        SPEC.entrypoint, SPEC.env, SPEC.user, SPEC.arch)
    assert _layout(images.build_archive(changed))["descriptor"]["digest"] != digest
    other_user = ImageSpec(SPEC.name, SPEC.entries, SPEC.entrypoint, SPEC.env, "0", SPEC.arch)
    assert _layout(images.build_archive(other_user))["descriptor"]["digest"] != digest


def test_archive_and_layer_entries_are_sorted_owned_by_root_and_timeless() -> None:
    layout = _layout(images.build_archive(SPEC))
    outer = list(layout["members"])
    assert outer == ["blobs", "blobs/sha256", *sorted(outer[2:])]
    layer = _members(layout["layer"])
    assert list(layer) == ["bin", "bin/app", "bin/sh", "etc", "etc/passwd", "tmp"]
    for info, _ in [*layout["members"].values(), *layer.values()]:
        assert (info.mtime, info.uid, info.gid) == (images.EPOCH, 0, 0), info.name
    assert layer["bin/app"][0].mode == 0o755 and layer["bin/app"][1] == b"#!app\n"
    assert layer["bin/sh"][0].issym() and layer["bin/sh"][0].linkname == "app"
    assert layer["tmp"][0].isdir() and layer["tmp"][0].mode == 0o1777
    assert layer["etc"][0].isdir() and layer["etc"][0].mode == 0o755  # added as a parent


def test_gzip_layers_carry_no_timestamp() -> None:
    layout = _layout(images.build_archive(SPEC))
    blob = layout["members"][f"blobs/sha256/{layout['layer_descriptor']['digest'][7:]}"][1]
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip MTIME field


@pytest.mark.parametrize("entries", [(file("a", b""), file("/a", b"")), (directory("/"),)])
def test_a_layer_refuses_duplicate_or_empty_paths(entries: tuple[Entry, ...]) -> None:
    with pytest.raises(ValueError, match="empty or duplicate"):
        images.layer_tar(entries)


def test_the_trainer_image_has_busybox_applets_tmp_and_nobody() -> None:
    spec = images.trainer_spec(b"trainer", b"busybox", "amd64")
    assert spec.name == images.TRAINER_IMAGE == "devcluster.local/trainer:1"
    assert spec.entrypoint == ("/bin/trainer",) and spec.env == ("PATH=/bin",)
    layer = _members(images.layer_tar(spec.entries))
    for applet in ("sh", "ls", "cat", "echo", "sleep", "mkdir", "env", "printf", "kill", "head",
                   "tail", "id", "true", "false", "wget", "nc", "nslookup"):
        assert layer[f"bin/{applet}"][0].linkname == "busybox", applet
    assert layer["bin/busybox"][1] == b"busybox" and layer["bin/trainer"][1] == b"trainer"
    assert layer["tmp"][0].mode == 0o1777
    assert re.search(rb"^nobody:x:65532:65532:", layer["etc/passwd"][1], re.MULTILINE)
    assert re.search(rb"^root:x:0:0:", layer["etc/passwd"][1], re.MULTILINE)
    assert re.search(rb"^nobody:x:65532:", layer["etc/group"][1], re.MULTILINE)


def test_the_pause_image_is_just_pause_as_65535() -> None:
    spec = images.pause_spec(b"pause", "arm64")
    assert spec.name == images.PAUSE_IMAGE == "devcluster.local/pause:3.10"
    assert spec.entrypoint == ("/pause",) and spec.user.split(":")[0] == "65535"
    assert list(_members(images.layer_tar(spec.entries))) == ["pause"]
    assert _layout(images.build_archive(spec))["config"]["architecture"] == "arm64"


def test_the_key_changes_with_every_input() -> None:
    key = images.images_key(b"p", b"t", b"deb", "amd64")
    assert key == images.images_key(b"p", b"t", b"deb", "amd64")
    others = [images.images_key(b"p2", b"t", b"deb", "amd64"),
              images.images_key(b"p", b"t2", b"deb", "amd64"),
              images.images_key(b"p", b"t", b"deb2", "amd64"),
              images.images_key(b"p", b"t", b"deb", "arm64"),
              images.images_key(b"pt", b"", b"deb", "amd64")]
    assert key not in others and len(set(others)) == len(others)


def test_the_archive_cache_is_outside_the_repo_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEVCLUSTER_IMAGES_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert images.images_root() == tmp_path / "trainingjob-operator" / "images"
    monkeypatch.setenv("DEVCLUSTER_IMAGES_DIR", str(tmp_path / "mine"))
    assert images.images_root() == tmp_path / "mine"


class _FakeBinaries:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir

    def ensure(self, log: bool = True) -> Path:
        return self.bin_dir


def test_ensure_images_builds_once_then_finds_the_archives(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pause").write_bytes(b"pause")
    (bin_dir / "trainer").write_bytes(b"trainer")
    root = tmp_path / "images"
    (root / "debs").mkdir(parents=True)
    (root / "debs" / "busybox-static_1.0_amd64.deb").write_bytes(b"deb")
    monkeypatch.setenv("DEVCLUSTER_IMAGES_DIR", str(root))
    monkeypatch.setattr(build, "IMAGE_BINARIES", _FakeBinaries(bin_dir))
    monkeypatch.setattr(images, "extract_busybox", lambda deb: b"busybox:" + deb.read_bytes())

    archives = images.ensure_images(log=False)
    assert set(archives) == {images.PAUSE_IMAGE, images.TRAINER_IMAGE}
    trainer = _layout(archives[images.TRAINER_IMAGE].read_bytes())
    assert _members(trainer["layer"])["bin/busybox"][1] == b"busybox:deb"
    assert images.manifest_digest(archives[images.TRAINER_IMAGE]) == trainer["descriptor"][
        "digest"]

    def no_build(spec: ImageSpec) -> bytes:
        raise AssertionError("a warm call must not build")

    monkeypatch.setattr(images, "build_archive", no_build)
    assert images.ensure_images(log=False) == archives
    (bin_dir / "trainer").write_bytes(b"trainer v2")  # a new binary is a new key
    with pytest.raises(AssertionError, match="must not build"):
        images.ensure_images(log=False)


def test_busybox_needs_apt_get_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(images.ImageError, match=r"busybox-static.*apt-get and dpkg-deb"):
        images.busybox_deb(tmp_path, log=False)


def test_import_skips_images_already_there_with_the_same_digest(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    archives = {}
    for name in ("devcluster.local/a:1", "devcluster.local/b:1"):
        spec = ImageSpec(name, (file("x", name.encode()),), ("/x",))
        archives[name] = tmp_path / f"{name[-3]}.tar"
        archives[name].write_bytes(images.build_archive(spec))
    store = {"devcluster.local/a:1": images.manifest_digest(archives["devcluster.local/a:1"]),
             "devcluster.local/b:1": "sha256:old"}
    calls: list[tuple[str, ...]] = []

    def fake_ctr(ctr: Path, address: str, *args: str) -> Any:
        calls.append(args)
        if args[:2] == ("images", "ls"):
            rows = [f"{ref} application/vnd.oci.image.manifest.v1+json {digest} 1 KiB "
                    "linux/amd64 -" for ref, digest in store.items()]
            return type("Proc", (), {"stdout": "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
                                               + "\n".join(rows)})()
        store["devcluster.local/b:1"] = images.manifest_digest(Path(args[-1]))
        return None

    monkeypatch.setattr(images, "_ctr", fake_ctr)
    images.import_images(Path("/usr/bin/ctr"), "/run/c.sock", archives)
    imports = [args for args in calls if args[:2] == ("images", "import")]
    assert imports == [("images", "import", str(archives["devcluster.local/b:1"]))]
    calls.clear()
    images.import_images(Path("/usr/bin/ctr"), "/run/c.sock", archives)
    assert [args for args in calls if args[:2] == ("images", "import")] == []


def test_the_images_module_is_standard_library_only_with_both_commands() -> None:
    gomod = (build.IMAGES_DIR / "go.mod").read_text()
    assert gomod.startswith("module trainingjob-operator/devcluster/images\n")
    assert "\ngo 1.24.0\n" in gomod and "require" not in gomod
    for package in build.IMAGE_PACKAGES.values():
        assert (build.IMAGES_DIR / package / "main.go").is_file()
    # No go.sum without dependencies: the build's cache key must not need one.
    names = [name for name, _ in build.build_inputs(build.IMAGES_DIR)]
    assert names[0] == "go.mod" and "go.sum" not in names
    assert {"cmd/pause/main.go", "cmd/trainer/main.go"} <= set(names)
