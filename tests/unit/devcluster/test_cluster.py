"""The launcher's refusals and bookkeeping, on real files and sockets, without a cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from devcluster import cluster


def _stale_state(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    gone = 2**22 + 1  # above the kernel's pid_max: never a live process
    (data_dir / "state.json").write_text(json.dumps(
        {"pgid": gone, "ports": {"apiserver": 1}, "bin_dir": "/x", "pids": {"etcd": gone}}))


def test_state_of_dead_processes_is_refused_as_stale(tmp_path: Path) -> None:
    _stale_state(tmp_path)
    with pytest.raises(cluster.ClusterError, match=r"stale data dir .*make cluster-down"):
        cluster._check_can_start(tmp_path, 0)


def test_etcd_data_without_state_is_refused_as_stale(tmp_path: Path) -> None:
    (tmp_path / "etcd").mkdir()
    with pytest.raises(cluster.ClusterError, match="holds etcd data but no cluster state"):
        cluster._check_can_start(tmp_path, 0)


def test_live_processes_are_refused_as_already_up(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        tmp_path.joinpath("state.json").write_text(json.dumps(
            {"pgid": sleeper.pid, "ports": {"apiserver": 6443}, "bin_dir": "/x",
             "pids": {"etcd": sleeper.pid}}))
        with pytest.raises(cluster.ClusterError, match=r"already up .*running: etcd"):
            cluster._check_can_start(tmp_path, 0)
        assert cluster.group_members(sleeper.pid) == [sleeper.pid]
        assert cluster.down(tmp_path) is True  # stops the whole group
        assert cluster.group_members(sleeper.pid) == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(cluster.ClusterError, match=rf"port {port} on 127\.0\.0\.1 is taken"):
            cluster._check_can_start(tmp_path, port)


def test_empty_dir_may_start(tmp_path: Path) -> None:
    cluster._check_can_start(tmp_path / "new", 0)


def test_down_is_idempotent_and_keeps_logs(tmp_path: Path) -> None:
    _stale_state(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "etcd.log").write_text("kept")
    (tmp_path / "etcd").mkdir()
    assert cluster.down(tmp_path) is False
    assert cluster.down(tmp_path) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = cluster.free_ports(5)
    assert len(set(ports)) == 5
    assert all(cluster.port_free(p) for p in ports)


def test_status_without_state_says_not_running(tmp_path: Path) -> None:
    healthy, text = cluster.status(tmp_path)
    assert not healthy and "not running" in text


def test_own_process_is_alive_and_a_reaped_child_is_not() -> None:
    assert cluster._alive(os.getpid())
    child = subprocess.Popen(["true"])
    child.wait()
    assert not cluster._alive(child.pid)


def test_stop_and_start_refuse_without_a_cluster_or_with_an_unknown_component(
        tmp_path: Path) -> None:
    with pytest.raises(cluster.ClusterError, match="no cluster runs in"):
        cluster.stop_component(tmp_path, "etcd")
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        tmp_path.joinpath("state.json").write_text(json.dumps(
            {"pgid": sleeper.pid, "ports": {"apiserver": 6443}, "bin_dir": "/x",
             "pids": {"etcd": sleeper.pid}}))
        with pytest.raises(cluster.ClusterError, match="choose one of etcd, kube-apiserver"):
            cluster.start_component(tmp_path, "coredns")
        with pytest.raises(cluster.ClusterError, match=r"etcd already runs \(pid"):
            cluster.start_component(tmp_path, "etcd")
        assert cluster.stop_component(tmp_path, "kwok") is None  # not running: nothing to do
        assert cluster.stop_component(tmp_path, "etcd") == sleeper.pid
        assert sleeper.wait(timeout=5) == -15  # SIGTERM, and waited for
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_restart_from_another_session_founds_a_group_that_down_ends_too(
        tmp_path: Path) -> None:
    first = subprocess.Popen(["sleep", "30"], start_new_session=True)
    second = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        tmp_path.joinpath("state.json").write_text(json.dumps(
            {"pgid": first.pid, "ports": {}, "bin_dir": "/x", "pids": {"etcd": first.pid},
             "groups": [second.pid]}))
        state = cluster.read_state(tmp_path)
        assert state is not None and sorted(state.members()) == sorted([first.pid, second.pid])
        assert cluster.down(tmp_path) is True
        assert first.wait(timeout=5) and second.wait(timeout=5)
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
