from __future__ import annotations

import re
import subprocess
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


def test_helm_ldflags_stamp_helm_and_its_default_kubernetes_version() -> None:
    flags = build.helm_ldflags("v3.18.6", "v0.33.13")
    assert flags.startswith("-s -w ")
    assert "-X helm.sh/helm/v3/internal/version.version=v3.18.6" in flags
    # helm's Makefile: client-go v0.<minor>.x means Kubernetes 1.<minor> for lint and template.
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        assert f"-X {pkg}.k8sVersionMajor=1 -X {pkg}.k8sVersionMinor=33" in flags


def test_the_two_builds_have_their_own_module_cache_dir_and_override() -> None:
    assert (build.DEVCLUSTER.name, build.DEVCLUSTER.go_dir) == ("devcluster", build.GO_DIR)
    assert (build.TOOLS.name, build.TOOLS.go_dir) == ("tools", build.TOOLS_DIR)
    assert build.DEVCLUSTER.cache_env != build.TOOLS.cache_env
    assert build.DEVCLUSTER.packages is build.PACKAGES
    assert build.TOOLS.packages is build.TOOL_PACKAGES


def test_tools_cache_root_is_a_sibling_of_devcluster_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEVCLUSTER_CACHE", raising=False)
    monkeypatch.delenv("DEVCLUSTER_TOOLS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.TOOLS.cache_root() == tmp_path / "trainingjob-operator" / "tools"
    # Overriding the control plane's cache does not move the tools, and the reverse.
    monkeypatch.setenv("DEVCLUSTER_CACHE", str(tmp_path / "dc"))
    assert build.TOOLS.cache_root() == tmp_path / "trainingjob-operator" / "tools"
    monkeypatch.setenv("DEVCLUSTER_TOOLS_CACHE", str(tmp_path / "t"))
    assert build.TOOLS.cache_root() == tmp_path / "t"
    assert build.DEVCLUSTER.cache_root() == tmp_path / "dc"


def test_the_tools_go_mod_pins_helm_3_18_on_the_cluster_kubernetes_libraries() -> None:
    gomod = (build.TOOLS_DIR / "go.mod").read_text()
    assert build.module_version(gomod, "helm.sh/helm/v3").startswith("v3.18.")
    devcluster_gomod = (build.GO_DIR / "go.mod").read_text()
    for module in ("k8s.io/api", "k8s.io/apimachinery", "k8s.io/client-go"):
        # The same staging release as the control plane, so the Go build cache is shared.
        assert build.module_version(gomod, module) == build.module_version(devcluster_gomod,
                                                                           module)


def test_every_tool_is_a_tool_directive_or_a_wrapper_of_the_tools_module() -> None:
    gomod = (build.TOOLS_DIR / "go.mod").read_text()
    for name, package in build.TOOL_PACKAGES.items():
        if package.startswith("./"):
            assert (build.TOOLS_DIR / package / "main.go").is_file(), name
        else:
            assert re.search(rf"^tool\s+(\(\n(\t\S+\n)*)?\t?{re.escape(package)}$", gomod,
                             re.MULTILINE), f"{package} is not a tool directive"


def test_tools_inputs_cover_their_own_module_only() -> None:
    names = [name for name, _ in build.build_inputs(build.TOOLS_DIR)]
    assert names[:2] == ["go.mod", "go.sum"]
    assert not any(name.startswith("..") for name in names)


def test_devcluster_key_inputs_are_unchanged_by_the_second_module() -> None:
    # The key of the control plane hashes exactly these files, as before devcluster/tools.
    names = [name for name, _ in build.build_inputs(build.GO_DIR)]
    assert names == ["go.mod", "go.sum", "cmd/etcd/main.go"]
    gomod = (build.GO_DIR / "go.mod").read_text()
    assert build.DEVCLUSTER.flags() == build.ldflags(build.module_version(gomod,
                                                                          "k8s.io/kubernetes"))


def test_tools_flags_come_from_the_tools_go_mod() -> None:
    gomod = (build.TOOLS_DIR / "go.mod").read_text()
    assert build.TOOLS.flags() == build.helm_ldflags(
        build.module_version(gomod, "helm.sh/helm/v3"),
        build.module_version(gomod, "k8s.io/client-go"))
    names = [name for name, _ in build.build_inputs(build.TOOLS_DIR)]
    assert "cmd/tjcheck/main.go" in names


def _fake_module(tmp_path: Path) -> build.GoBuild:
    go_dir = tmp_path / "mod"
    (go_dir / "cmd" / "hello").mkdir(parents=True)
    (go_dir / "go.mod").write_text("module x\n")
    (go_dir / "go.sum").write_text("")
    (go_dir / "cmd" / "hello" / "main.go").write_text("package main\n")
    return build.GoBuild("fake", go_dir, {"hello": "./cmd/hello", "helm": "example.com/helm"},
                         lambda gomod, path: "-s -w", "FAKE_CACHE")


def test_ensure_builds_once_into_the_keyed_dir_then_hits_the_cache(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_module(tmp_path)
    monkeypatch.setenv("FAKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "go_version", lambda: "go1.26.8")
    calls: list[tuple[list[str], Path, dict[str, str]]] = []

    def fake_go_build(cmd: list[str], cwd: Path, env: dict[str, str],
                      **_: object) -> subprocess.CompletedProcess[str]:
        calls.append((cmd, cwd, env))
        out = Path(cmd[cmd.index("-o") + 1])
        for name in ("hello", "helm"):
            (out / name).write_text("binary")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_go_build)
    target = fake.ensure(log=False)
    key = build.cache_key(build.build_inputs(fake.go_dir), "go1.26.8", "-s -w")
    assert target == tmp_path / "cache" / key / "bin"
    assert sorted(p.name for p in target.iterdir()) == ["hello", "helm"]
    [(cmd, cwd, env)] = calls
    assert cmd[:4] == ["go", "build", "-ldflags", "-s -w"]
    assert cmd[-2:] == ["./cmd/hello", "example.com/helm"]
    assert cwd == fake.go_dir
    assert env["GOTOOLCHAIN"] == "local"
    assert fake.ensure(log=False) == target
    assert len(calls) == 1  # the second call was a cache hit
    # A changed wrapper is a new key, so a new build.
    (fake.go_dir / "cmd" / "hello" / "main.go").write_text("package main // changed\n")
    assert fake.ensure(log=False) != target
    assert len(calls) == 2


def test_ensure_reports_a_failed_build_and_leaves_no_cache_entry(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_module(tmp_path)
    monkeypatch.setenv("FAKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "go_version", lambda: "go1.26.8")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(
        cmd, 1, "", "cmd/hello/main.go:1: syntax error"))
    with pytest.raises(build.BuildError, match="syntax error"):
        fake.ensure(log=False)
    assert list((tmp_path / "cache").iterdir()) == []
