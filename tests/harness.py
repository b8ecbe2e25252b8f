"""What the tests, `make bench` and `make soak` run against, started and stopped in one
place: a devcluster (or the cluster TEST_KUBECONFIG names) and the operator as a process.

The pytest fixtures (conftest.py), the benchmark and the soak all go through these, so a
change to how a cluster comes up or how the operator is launched is made once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devcluster import build
from devcluster.cluster import free_ports
from tests.kube import Kubectl

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 60  # an operator not ready by then does not start


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path
    data_dir: Path | None  # None when the cluster is not a devcluster (TEST_KUBECONFIG)

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.bin_dir / "kubectl", self.kubeconfig)


def devcluster_cli(*args: str, data_dir: Path,
                   timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devcluster", "--dir", str(data_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


class ClusterError(RuntimeError):
    pass


@contextmanager
def devcluster(data_dir: Path, *up_args: str) -> Iterator[Cluster]:
    """A fresh devcluster in `data_dir` (`devcluster up` with `up_args`), down again after;
    one a killed run left behind is taken down first."""
    bin_dir = build.ensure_binaries(log=False)
    devcluster_cli("down", data_dir=data_dir)
    started = devcluster_cli("up", *up_args, data_dir=data_dir)
    if started.returncode != 0:
        raise ClusterError(f"devcluster up failed:\n{started.stderr}\n{started.stdout}")
    try:
        yield Cluster(data_dir / "kubeconfig", bin_dir, data_dir)
    finally:
        devcluster_cli("down", data_dir=data_dir)


@contextmanager
def cluster(data_dir: Path, *up_args: str) -> Iterator[Cluster]:
    """The cluster TEST_KUBECONFIG names, as it is; else a devcluster (`devcluster`)."""
    external = os.environ.get("TEST_KUBECONFIG")
    if external:
        yield Cluster(Path(external), build.ensure_binaries(log=False), None)
        return
    with devcluster(data_dir, *up_args) as found:
        yield found


class Operator:
    """The operator as a real process (python -m trainingjob_operator) against a cluster:
    `env` and then `extra_env` (what one test changes, and resets) on top of this process's
    environment; metrics and health on free ports."""

    def __init__(self, kubeconfig: Path, log_path: Path, name: str = "local-operator-0",
                 env: Mapping[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.name = name
        self.env = dict(env or {})
        self.extra_env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port, self.health_port = free_ports(2)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "TRAININGJOB_METRICS_PORT": str(self.metrics_port),
               "TRAININGJOB_HEALTH_PORT": str(self.health_port), "POD_NAME": self.name,
               **self.env, **self.extra_env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "trainingjob_operator"],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        """Until /readyz answers 200: every informer's first list is in."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"{self.health_url}/readyz", timeout=2):
                    return
            except OSError:
                if not self.alive() or time.monotonic() > deadline:
                    raise ClusterError(f"the operator did not get ready within {seconds} s; "
                                       f"see {self.log_path}") from None
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextmanager
def running(kubeconfig: Path, log_path: Path,
            env: Mapping[str, str] | None = None) -> Iterator[Operator]:
    """An operator started and ready, stopped after."""
    op = Operator(kubeconfig, log_path, env=env)
    op.start()
    try:
        op.wait_ready()
        yield op
    finally:
        op.stop()
