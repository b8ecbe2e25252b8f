"""A metrics or health port another program already holds: the operator must not start and
then sit idle looking alive. It exits at once, with an error that names the setting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import Installation, Operator


@pytest.mark.parametrize("setting", ["TRAININGJOB_METRICS_PORT", "TRAININGJOB_HEALTH_PORT"])
def test_a_taken_port_ends_the_operator_at_once_naming_the_setting(
        setting: str, installation: Installation, tmp_path: Path) -> None:
    op = Operator(installation.token_kubeconfig(tmp_path / "op.kubeconfig"),
                  tmp_path / "operator.log", name="port-clash")
    with socket.socket() as other:  # "another program on 8080", on every address
        other.bind(("0.0.0.0", 0))
        other.listen()
        port = other.getsockname()[1]
        if setting == "TRAININGJOB_METRICS_PORT":
            op.metrics_port = port
        else:
            op.health_port = port
        op.start()
        assert op.proc is not None
        try:
            code = op.proc.wait(timeout=60)
        finally:
            op.stop()
    log = op.log_path.read_text()
    assert code == 2, log  # what docs/operations.md promises
    assert f"{setting}={port}: the port is taken" in log, log
    assert f"set {setting} to a free port" in log, log
    assert "will try again" not in log and "Traceback" not in log, log
