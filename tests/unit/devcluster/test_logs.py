"""Container logs on devcluster: the CRI log lines, the default log `up` writes, kwok's
kubelet-API flags and the ClusterLogs / Logs CRD files it reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import cluster
from devcluster.components import (
    DEFAULT_POD_LOG,
    DEFAULT_POD_LOG_LINES,
    KUBELET_HOST,
    LOGS_CRD_FILE,
    LOGS_CRD_PATH,
    LOGS_FILE,
    NODE_STAGES_FILE,
    command_lines,
    cri_log_line,
    default_log_message,
    default_pod_log,
)
from devcluster.pki import Pki
from tests.unit.devcluster.test_components import PORTS

WHEN = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
# What kwok's log reader (k8s.io/cri-client/pkg/logs, parseCRILog) accepts.
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z (stdout|stderr) F (.*)\n$")


def _kwok_flags() -> dict[str, list[str]]:
    argv = command_lines(Path("/bin"), Path("/data"), Pki(Path("/pki")), PORTS)["kwok"]
    flags: dict[str, list[str]] = {}
    for arg in argv[1:]:
        name, _, value = arg.partition("=")
        flags.setdefault(name, []).append(value)
    return flags


def test_cri_log_line_is_what_kwoks_reader_parses() -> None:
    line = cri_log_line("epoch 1 loss 0.25", WHEN)
    assert line == "2026-01-02T03:04:05.123456Z stdout F epoch 1 loss 0.25\n"
    assert CRI_LINE.match(line)
    assert cri_log_line("boom", WHEN, stream="stderr").split()[1] == "stderr"


def test_cri_log_line_writes_utc_whatever_the_zone() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert cri_log_line("x", local) == cri_log_line("x", WHEN)


@pytest.mark.parametrize(("message", "stream"), [("two\nlines", "stdout"), ("x", "stdin")])
def test_cri_log_line_refuses_what_would_break_the_file(message: str, stream: str) -> None:
    with pytest.raises(ValueError, match=r"newline|stdout or stderr"):
        cri_log_line(message, WHEN, stream=stream)


def test_default_log_has_numbered_lines() -> None:
    lines = default_pod_log(WHEN).splitlines(keepends=True)
    assert len(lines) == DEFAULT_POD_LOG_LINES
    messages = [m.group(2) for m in map(CRI_LINE.match, lines) if m]
    assert messages == [default_log_message(n) for n in range(1, DEFAULT_POD_LOG_LINES + 1)]
    assert messages[0] == f"devcluster log line 1/{DEFAULT_POD_LOG_LINES}"


def test_up_writes_the_default_log_afresh(tmp_path: Path) -> None:
    path = cluster.pod_log_path(tmp_path)
    assert path == tmp_path.resolve() / DEFAULT_POD_LOG
    path.parent.mkdir()
    path.write_text("left over by an earlier cluster\n")
    assert cluster.write_default_pod_log(tmp_path) == path
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == DEFAULT_POD_LOG_LINES
    assert all(CRI_LINE.match(line) for line in lines)


def test_kwok_serves_the_kubelet_api_on_loopback_at_the_nodes_kubelet_port() -> None:
    flags = _kwok_flags()
    assert flags["--server-address"] == [f"{KUBELET_HOST}:{PORTS.kwok}"]
    assert KUBELET_HOST == "127.0.0.1"
    # The node Stages publish these as each node's InternalIP and kubelet port.
    assert flags["--node-ip"] == [KUBELET_HOST]
    assert flags["--node-port"] == [str(PORTS.kwok)]
    stages = NODE_STAGES_FILE.read_text()
    assert "{{ with NodeIP }}" in stages and "{{ with NodePort }}" in stages
    # TLS with the devcluster serving certificate (SAN 127.0.0.1, signed by the cluster CA).
    assert flags["--tls-cert-file"] == ["/pki/serving.crt"]
    assert flags["--tls-private-key-file"] == ["/pki/serving.key"]
    assert flags["--enable-crds"] == ["Logs"]
    assert str(LOGS_FILE) in flags["--config"]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_default_cluster_logs_serve_every_container_the_default_log() -> None:
    [doc] = _docs(LOGS_FILE)
    assert (doc["apiVersion"], doc["kind"]) == ("kwok.x-k8s.io/v1alpha1", "ClusterLogs")
    assert "selector" not in doc["spec"]  # every pod
    [rule] = doc["spec"]["logs"]
    assert "containers" not in rule  # every container
    # Relative: kwok resolves it against its working directory, the data dir.
    assert rule["logsFile"] == str(DEFAULT_POD_LOG)
    assert not Path(rule["previousLogsFile"]).is_absolute()
    assert rule["previousLogsFile"] != rule["logsFile"]


def test_logs_crd_is_kwoks_namespaced_logs_kind() -> None:
    [crd] = _docs(LOGS_CRD_FILE)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert (spec["group"], spec["names"]["kind"], spec["scope"]) == (
        "kwok.x-k8s.io", "Logs", "Namespaced")
    [version] = spec["versions"]
    assert version["served"] and version["storage"]
    plural = spec["names"]["plural"]
    assert f"/apis/{spec['group']}/{version['name']}/{plural}" == LOGS_CRD_PATH
    rule = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["logs"]
    assert set(rule["items"]["properties"]) == {
        "containers", "logsFile", "previousLogsFile", "follow"}
