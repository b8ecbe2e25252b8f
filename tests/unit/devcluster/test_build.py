from __future__ import annotations

from pathlib import Path

import pytest

from devcluster import build

GOMOD = """module x

require (
\tgo.etcd.io/etcd/server/v3 v3.5.21
\tk8s.io/kubernetes v1.33.13
)
require sigs.k8s.io/kwok v0.7.0
"""


def test_module_version_reads_block_and_single_line_requires() -> None:
    assert build.module_version(GOMOD, "k8s.io/kubernetes") == "v1.33.13"
    assert build.module_version(GOMOD, "sigs.k8s.io/kwok") == "v0.7.0"


def test_module_version_names_the_missing_module() -> None:
    with pytest.raises(build.BuildError, match=r"k8s\.io/api is not required"):
        build.module_version(GOMOD, "k8s.io/api")


def test_the_checked_in_go_mod_pins_the_design_versions() -> None:
    gomod = (build.GO_DIR / "go.mod").read_text()
    assert build.module_version(gomod, "k8s.io/kubernetes").startswith("v1.33.")
    assert build.module_version(gomod, "go.etcd.io/etcd/server/v3") == "v3.5.21"
    assert build.module_version(gomod, "sigs.k8s.io/kwok") == "v0.7.0"


def test_ldflags_stamp_kubernetes_version_in_both_version_packages() -> None:
    flags = build.ldflags("v1.33.13")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.33.13" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
        assert f"-X {pkg}.gitMinor=33" in flags


def test_cache_key_changes_with_every_input_and_only_then() -> None:
    inputs = [("go.mod", b"a"), ("go.sum", b"b")]
    key = build.cache_key(inputs, "go1.26", "-s")
    assert key == build.cache_key(list(inputs), "go1.26", "-s")
    assert key != build.cache_key([("go.mod", b"a2"), ("go.sum", b"b")], "go1.26", "-s")
    assert key != build.cache_key(inputs, "go1.27", "-s")
    assert key != build.cache_key(inputs, "go1.26", "-s -w")
    # Moving bytes between files is a different input, not the same concatenation.
    assert key != build.cache_key([("go.mod", b"ab"), ("go.sum", b"")], "go1.26", "-s")


def test_build_inputs_cover_go_mod_go_sum_and_wrappers() -> None:
    names = [name for name, _ in build.build_inputs()]
    assert names[:2] == ["go.mod", "go.sum"]
    assert "cmd/etcd/main.go" in names


def test_cache_root_is_outside_the_repo_and_overridable(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.delenv("DEVCLUSTER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_root() == tmp_path / "trainingjob-operator" / "devcluster"
    monkeypatch.setenv("DEVCLUSTER_CACHE", str(tmp_path / "mine"))
    assert build.cache_root() == tmp_path / "mine"


def test_every_binary_is_a_tool_or_a_wrapper_of_the_module() -> None:
    gomod = (build.GO_DIR / "go.mod").read_text()
    for name, package in build.PACKAGES.items():
        if package.startswith("./"):
            assert (build.GO_DIR / package / "main.go").is_file(), name
        else:
            assert f"\t{package}\n" in gomod, f"{package} is not a tool directive"
