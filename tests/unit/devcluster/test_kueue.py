"""The Kueue build (devcluster/peers) and the manifests and configuration of devcluster/kueue.py,
as plain data."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from devcluster import build, kueue

KUEUE_VERSION = "v0.13.2"


def test_the_kueue_build_is_its_own_module_cache_dir_and_override() -> None:
    assert (build.KUEUE.name, build.KUEUE.go_dir) == ("kueue", build.PEERS_DIR)
    assert build.KUEUE.packages == {"kueue": "sigs.k8s.io/kueue/cmd/kueue"}
    assert build.KUEUE.cache_env == "DEVCLUSTER_KUEUE_CACHE"
    others = (build.DEVCLUSTER, build.TOOLS, build.DNS, build.IMAGE_BINARIES)
    assert build.KUEUE.cache_env not in {b.cache_env for b in others}
    assert build.KUEUE.name not in {b.name for b in others}


def test_kueue_cache_root_is_a_sibling_of_the_others_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEVCLUSTER_KUEUE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.KUEUE.cache_root() == tmp_path / "trainingjob-operator" / "kueue"
    monkeypatch.setenv("DEVCLUSTER_KUEUE_CACHE", str(tmp_path / "k"))
    assert build.KUEUE.cache_root() == tmp_path / "k"


def test_the_kueue_key_hashes_go_mod_and_go_sum_only_upstream_main_unmodified() -> None:
    names = [name for name, _ in build.build_inputs(build.PEERS_DIR)]
    assert names == ["go.mod", "go.sum"]
    assert "tool sigs.k8s.io/kueue/cmd/kueue" in (build.PEERS_DIR / "go.mod").read_text()
    assert build.KUEUE.env == {}


def test_the_peers_go_mod_pins_kueue_and_the_flags_stamp_its_version() -> None:
    gomod = (build.PEERS_DIR / "go.mod").read_text()
    assert build.module_version(gomod, build.KUEUE_MODULE) == KUEUE_VERSION
    flags = build.KUEUE.flags()
    assert flags == build.kueue_ldflags(KUEUE_VERSION)
    assert flags.startswith("-s -w ")
    assert f"-X sigs.k8s.io/kueue/pkg/version.GitVersion={KUEUE_VERSION}" in flags


def test_the_manager_finds_its_metrics_certificate_in_an_overlay_on_etc(
        tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("tls.crt", "tls.key"):
        (certs / name).write_text(name)
    argv = kueue._with_metrics_cert(tmp_path, certs, ["kueue", "--config=c.yaml"])
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert argv[-2:] == ["kueue", "--config=c.yaml"]
    upper = tmp_path / "kueue-etc" / "upper"
    assert f"lowerdir=/etc,upperdir={upper}," in argv[6] and argv[6].endswith('exec "$@"')
    assert (upper / "kueue" / "metrics" / "certs" / "tls.key").read_text() == "tls.key"


def test_module_dir_downloads_a_module_that_go_list_has_no_dir_for(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        downloaded = any(c[:3] == ["go", "mod", "download"] for c in calls)
        return subprocess.CompletedProcess(cmd, 0, f"{tmp_path}\n" if downloaded else "\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert build.module_dir(build.PEERS_DIR, build.KUEUE_MODULE) == tmp_path
    assert [c[:3] for c in calls] == [["go", "list", "-m"], ["go", "mod", "download"],
                                      ["go", "list", "-m"]]


def test_configuration_turns_webhooks_and_leader_election_off_on_loopback(
        tmp_path: Path) -> None:
    cfg = kueue.configuration(1001, 1002, 1003, tmp_path)
    assert (cfg["apiVersion"], cfg["kind"]) == ("config.kueue.x-k8s.io/v1beta1", "Configuration")
    assert cfg["internalCertManagement"] == {"enable": False}
    assert cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["metrics"] == {"bindAddress": "127.0.0.1:1001"}
    assert cfg["health"] == {"healthProbeBindAddress": "127.0.0.1:1002"}
    assert cfg["webhook"] == {"host": "127.0.0.1", "port": 1003, "certDir": str(tmp_path)}
    assert cfg["clientConnection"] == {"qps": 500, "burst": 1000}
    assert cfg["manageJobsWithoutQueueName"] is False
    assert cfg["integrations"] == {"frameworks": ["batch/job"]}
    assert cfg["featureGates"] == {"VisibilityOnDemand": False}


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def test_queues_are_a_flavor_a_cluster_queue_sized_to_the_cluster_and_the_bench_queue() -> None:
    manifests = kueue.queues(32, "384", "4096Gi", "team-a")
    assert [m["kind"] for m in manifests] == ["ResourceFlavor", "ClusterQueue", "LocalQueue"]
    assert {m["apiVersion"] for m in manifests} == {"kueue.x-k8s.io/v1beta1"}
    flavor, cq, lq = (_by_kind(manifests)[k] for k in ("ResourceFlavor", "ClusterQueue",
                                                         "LocalQueue"))
    assert "namespace" not in flavor["metadata"] and "spec" not in flavor  # no node labels
    assert "namespace" not in cq["metadata"]
    assert cq["spec"]["namespaceSelector"] == {}  # every namespace; null would be none
    [group] = cq["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", "pods", "nvidia.com/gpu"]
    [flavor_quota] = group["flavors"]
    assert flavor_quota["name"] == flavor["metadata"]["name"]
    quotas = {r["name"]: r["nominalQuota"] for r in flavor_quota["resources"]}
    assert quotas == {"cpu": "384", "memory": "4096Gi", "pods": "10000", "nvidia.com/gpu": "32"}
    assert lq["metadata"] == {"name": "bench", "namespace": "team-a"}
    assert lq["spec"] == {"clusterQueue": cq["metadata"]["name"]}


def test_a_one_pod_job_is_suspended_in_the_bench_queue_and_not_indexed() -> None:
    job = kueue.job("one", "team-a", 2, 1, {"outcome": "succeed", "run-duration": "2s"})
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"] == {"name": "one", "namespace": "team-a",
                               "labels": {"kueue.x-k8s.io/queue-name": "bench"}}
    spec = job["spec"]
    assert spec["suspend"] is True
    assert (spec["parallelism"], spec["completions"]) == (1, 1)
    assert "completionMode" not in spec
    template = spec["template"]
    assert template["metadata"]["annotations"] == {
        "devcluster.training.dev/outcome": "succeed", "devcluster.training.dev/run-duration": "2s"}
    assert template["spec"]["restartPolicy"] == "Never"
    [container] = template["spec"]["containers"]
    assert container["resources"] == {"requests": {"nvidia.com/gpu": "2"},
                                      "limits": {"nvidia.com/gpu": "2"}}
    # kwok nodes carry no taint and the flavor no node labels: nothing to select or tolerate.
    assert "nodeSelector" not in template["spec"] and "tolerations" not in template["spec"]


def test_a_gang_job_is_indexed_with_every_pod_at_once() -> None:
    job = kueue.job("gang", "team-a", 8, 4, {"example.com/key": "v"})
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["completionMode"]) == (4, 4, "Indexed")
    assert spec["template"]["metadata"]["annotations"] == {"example.com/key": "v"}


def test_a_job_without_gpus_asks_for_no_resources() -> None:
    [container] = kueue.job("cpu", "team-a", 0, 1, {})["spec"]["template"]["spec"]["containers"]
    assert "resources" not in container
