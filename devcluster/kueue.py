"""Kueue, the peer `make bench` compares the operator with, on a devcluster.

Kueue's manager (``build.ensure_kueue()``, sigs.k8s.io/kueue v0.13.2) runs as a process on
this machine against a devcluster's kubeconfig, the way the operator does in tests, with
Kueue's webhooks out of the picture: its internal certificate management is off and no
webhook configuration is registered in the API server. What a webhook would have done, the
manifests here do themselves: a Job is created suspended with its queue label (Kueue's Job
webhook would suspend it), and the ClusterQueue names every field its defaulting webhook would.

Read in the module source (``build.module_dir(build.PEERS_DIR, build.KUEUE_MODULE)``):

- ``cmd/kueue/main.go``: with ``internalCertManagement.enable: false`` ``certsReady`` is closed
  at once (no cert rotator, which would wait for webhook configurations to inject its CA into),
  and the metrics server reads its certificate from a fixed ``/etc/kueue/metrics/certs`` and
  exits without one. The manager runs unmodified in a mount namespace of its own
  (``unshare``), where an overlay on /etc adds that directory; the machine's /etc is untouched.
  The
  webhook server always runs (``webhooks.Setup`` and each integration's ``SetupWebhook``
  register handlers, and readyz waits for it), so it gets a certificate made by ``pki.py`` and
  binds 127.0.0.1; nothing ever calls it.
- ``apis/config/v1beta1/defaults.go``: ``InternalCertManagement.Enable`` defaults to true,
  ``Webhook.Port`` 9443, metrics ``:8443``, health ``:8081``, client QPS 20 and burst 30,
  ``Integrations.Frameworks`` ["batch/job"]; the Configuration below sets each of them.
- ``pkg/config/config.go`` (``addTo``): ``webhook.host``/``port``/``certDir``,
  ``metrics.bindAddress``, ``health.healthProbeBindAddress`` and ``leaderElection`` become the
  controller-runtime manager's options.
- ``pkg/features/kube_features.go``: ``VisibilityOnDemand`` is on by default (beta) and starts
  an aggregated API server on ``:8082`` with certificates in ``/visibility``; it is turned off,
  nothing here asks for pending workloads through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devcluster import build
from devcluster.cluster import free_ports
from devcluster.pki import write_pki

API_VERSION = "kueue.x-k8s.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GPU = "nvidia.com/gpu"
FLAVOR = "devcluster-default"
CLUSTER_QUEUE = "devcluster-bench"
LOCAL_QUEUE = "bench"
# Short keys of job()'s annotations are devcluster's pod lifecycle annotations (README.md).
ANNOTATION = "devcluster.training.dev/"
# Client-side rate limits of the manager's API client (defaults 20/30): high enough that the
# API server, not the client, is what limits Kueue in a benchmark.
CLIENT_QPS = 500
CLIENT_BURST = 1000
# The CRDs as Kueue's kustomize config lists them (config/components/crd/kustomization.yaml),
# without its patches: those add conversion webhooks and CA injection.
CRD_DIR = "config/components/crd/bases"
LOG = "kueue.log"
CONFIG = "kueue-config.yaml"


class KueueError(RuntimeError):
    """The manager exited or did not get ready; the message carries the tail of its log."""


def crds() -> list[Path]:
    """Kueue's CRD manifests, from its module source in the Go module cache (the version
    devcluster/peers/go.mod requires). Apply them with ``kubectl apply --server-side``: some
    are too large for client-side apply's last-applied annotation."""
    files = sorted((build.module_dir(build.PEERS_DIR, build.KUEUE_MODULE) / CRD_DIR)
                   .glob("kueue.x-k8s.io_*.yaml"))
    if not files:
        raise build.BuildError(f"no CRDs under {CRD_DIR} in {build.KUEUE_MODULE}'s source")
    return files


def configuration(metrics_port: int, health_port: int, webhook_port: int,
                  cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta1) for a manager outside the
    cluster: no cert management, no leader election, every port on 127.0.0.1."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta1",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "clientConnection": {"qps": CLIENT_QPS, "burst": CLIENT_BURST},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def _serving_cert(workdir: Path) -> Path:
    """tls.crt/tls.key for the webhook and metrics servers: devcluster's serving certificate
    (SANs localhost and 127.0.0.1) from a PKI of Kueue's own, made once per workdir."""
    pki_dir, cert_dir = workdir / "kueue-pki", workdir / "kueue-certs"
    if not (cert_dir / "tls.crt").is_file() or not (cert_dir / "tls.key").is_file():
        pki = write_pki(pki_dir)
        cert_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pki.serving_cert, cert_dir / "tls.crt")
        shutil.copyfile(pki.serving_key, cert_dir / "tls.key")
        (cert_dir / "tls.key").chmod(0o600)
    return cert_dir


def _with_metrics_cert(workdir: Path, cert_dir: Path, argv: list[str]) -> list[str]:
    """argv run in a private mount namespace whose /etc is an overlay holding
    kueue/metrics/certs (a copy of cert_dir), where Kueue's main looks for it."""
    upper, work = workdir / "kueue-etc" / "upper", workdir / "kueue-etc" / "work"
    certs = upper / "kueue" / "metrics" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copyfile(cert_dir / name, certs / name)
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
              ' && exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "kueue",
            *argv]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(kubeconfig: Path, workdir: Path, timeout: float = 120) -> subprocess.Popen[bytes]:
    """Run Kueue's manager against ``kubeconfig`` and return once its /readyz answers.

    Its Configuration is ``workdir/kueue-config.yaml`` (see :func:`configuration`), its log
    (appended) ``workdir/kueue.log``. Stop it with :func:`stop`; Kueue's CRDs must be applied
    first (:func:`crds`)."""
    binary = build.ensure_kueue() / "kueue"
    workdir.mkdir(parents=True, exist_ok=True)
    cert_dir = _serving_cert(workdir)
    metrics, health, webhook = free_ports(3)
    config = workdir / CONFIG
    config.write_text(yaml.safe_dump(configuration(metrics, health, webhook, cert_dir)))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    log = workdir / LOG
    with log.open("ab") as out:
        proc = subprocess.Popen(_with_metrics_cert(workdir, cert_dir,
                                                   [str(binary), f"--config={config}"]),
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not _ready(f"http://127.0.0.1:{health}/readyz"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise KueueError(f"Kueue's manager did not get ready (exit {proc.returncode}); "
                             f"the end of {log}:\n{tail}")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGTERM (the manager shuts down its controllers), SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def queues(gpus: int, cpu: str, memory: str, namespace: str,
           pods: int = 10_000) -> list[dict[str, Any]]:
    """The ResourceFlavor, a ClusterQueue holding ``gpus`` GPUs (and ``cpu``, ``memory``,
    ``pods``) and the LocalQueue "bench" in ``namespace``, in the order to apply them.

    The flavor has no node labels, so admission adds no node selector: the scheduler places
    the pods on the kwok nodes, as it does the operator's (real nodes are tainted). The
    ClusterQueue admits every namespace (``namespaceSelector: {}``; null would admit none)."""
    quota = {"cpu": cpu, "memory": memory, "pods": str(pods), GPU: str(gpus)}
    return [
        {"apiVersion": API_VERSION, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}},
        {"apiVersion": API_VERSION, "kind": "ClusterQueue", "metadata": {"name": CLUSTER_QUEUE},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{
             "coveredResources": list(quota),
             "flavors": [{"name": FLAVOR, "resources": [
                 {"name": name, "nominalQuota": value} for name, value in quota.items()]}]}]}},
        {"apiVersion": API_VERSION, "kind": "LocalQueue",
         "metadata": {"name": LOCAL_QUEUE, "namespace": namespace},
         "spec": {"clusterQueue": CLUSTER_QUEUE}},
    ]


def job(name: str, namespace: str, gpus_per_pod: int, pods: int,
        annotations: dict[str, str], queue: str | None = LOCAL_QUEUE) -> dict[str, Any]:
    """A batch/v1 Job for Kueue: suspended (no webhook suspends it), in the LocalQueue
    ``queue`` (None: a plain Job, neither suspended nor queued, as the Job controller alone
    runs it), ``pods`` pods at once (Indexed when more than one), each asking
    ``gpus_per_pod`` GPUs. ``annotations`` go on the pods: a key without a "/" is one of
    devcluster's lifecycle annotations (``outcome``, ``run-duration``, ...) and gets its
    prefix. kwok's nodes carry no taint, so the pods need no toleration or node selector."""
    container: dict[str, Any] = {"name": "trainer", "image": "team/train:1.4",
                                 "command": ["python", "train.py"]}
    if gpus_per_pod:
        gpus = {GPU: str(gpus_per_pod)}
        container["resources"] = {"requests": dict(gpus), "limits": dict(gpus)}
    spec: dict[str, Any] = {
        "suspend": queue is not None, "parallelism": pods, "completions": pods,
        "template": {
            "metadata": {"annotations": {k if "/" in k else ANNOTATION + k: v
                                         for k, v in annotations.items()}},
            "spec": {"restartPolicy": "Never", "containers": [container]}}}
    if pods > 1:
        spec["completionMode"] = "Indexed"
    labels = {QUEUE_LABEL: queue} if queue is not None else {}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec}
