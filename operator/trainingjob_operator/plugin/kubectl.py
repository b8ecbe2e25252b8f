"""The plugin's only I/O: it runs the kubectl binary as a subprocess.

Why kubectl rather than a Python Kubernetes client: a kubectl plugin should reach the cluster
exactly as the `kubectl` it was started from does. Running kubectl inherits the user's
kubeconfig (KUBECONFIG or --kubeconfig), current context and namespace, exec-credential
plugins (cloud logins, OIDC), client certificates and proxy settings (HTTPS_PROXY, proxy-url)
with no second client to configure, and works with whatever kubectl version and auth
plugins the user already has. The binary is `kubectl` on PATH, or $KUBECTL.

Every body read is made printable here (text.printable_data): whatever the cluster holds
is shown to a terminal, and its control characters are not obeyed. status.failure.output
keeps its lines; every other string is one line.

Every call is one short kubectl command, except `wait`, which reads one watch (`kubectl get
--watch`, not a polling loop of GETs; unlike `kubectl wait --for=condition=...` it also
notices the job being deleted), and `logs`, which streams `kubectl logs` line by line.
"""

from __future__ import annotations

import codecs
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from trainingjob_operator.plugin.errors import (
    EXIT_FAILED,
    PluginError,
    is_not_found,
    kubectl_problem,
)
from trainingjob_operator.text import printable_data
from trainingjob_operator.vocabulary import JOB_LABEL

RESOURCE = "trainingjobs.training.dev"
WaitOutcome = Literal["met", "timeout", "gone"]
Body = dict[str, Any]
MULTILINE = ("output",)  # status.failure.output: the tail of a worker's output


def _shown(data: Any) -> Any:
    return printable_data(data, MULTILINE)


def find_kubectl() -> str:
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        raise PluginError("kubectl not found on PATH: install kubectl, or set "
                          "KUBECTL=/path/to/kubectl", EXIT_FAILED)
    return binary


class Kubectl:
    """kubectl with the user's --context and --kubeconfig on every call."""

    def __init__(self, binary: str, context: str | None = None,
                 kubeconfig: str | None = None) -> None:
        self.base = [binary]
        if kubeconfig:
            self.base.append(f"--kubeconfig={kubeconfig}")
        if context:
            self.base.append(f"--context={context}")

    def run(self, args: list[str], timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([*self.base, *args], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError as err:
            raise PluginError(f"cannot run {self.base[0]}: {err.strerror}; install kubectl or "
                              "set KUBECTL=/path/to/kubectl", EXIT_FAILED) from err
        except subprocess.TimeoutExpired as err:
            raise PluginError(f"kubectl {' '.join(args[:2])} did not answer within "
                              f"{timeout:.0f}s: is the cluster reachable?", EXIT_FAILED) from err

    def json(self, args: list[str]) -> Any:
        proc = self.run([*args, "--output=json"])
        if proc.returncode != 0:
            raise kubectl_problem(proc.stderr, args)
        return _shown(json.loads(proc.stdout))

    def current_namespace(self) -> str:
        """The namespace kubectl uses without -n (the context's, else default)."""
        proc = self.run(["config", "view", "--minify", "--output=jsonpath={..namespace}"])
        return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "default"

    def get_job(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The job's body; None when it does not exist."""
        args = ["get", RESOURCE, name, *_ns(namespace)]
        proc = self.run([*args, "--output=json"])
        if proc.returncode != 0:
            if is_not_found(proc.stderr) and "resource type" not in proc.stderr:
                return None
            raise kubectl_problem(proc.stderr, args)
        body: dict[str, Any] = _shown(json.loads(proc.stdout))
        return body

    def list_jobs(self, namespace: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
        scope = ["--all-namespaces"] if all_namespaces else _ns(namespace)
        items: list[dict[str, Any]] = self.json(["get", RESOURCE, *scope])["items"]
        return items

    def list_pods(self, job: str, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json(
            ["get", "pods", f"--selector={JOB_LABEL}={job}", *_ns(namespace)])["items"]
        return items

    def patch_stop(self, name: str, namespace: str, patch: str) -> subprocess.CompletedProcess[str]:
        return self.run(["patch", RESOURCE, name, *_ns(namespace), "--type=merge",
                         f"--patch={patch}"])

    def watch_job(self, name: str, namespace: str, timeout: float | None,
                  done: Callable[[Body], bool]) -> tuple[WaitOutcome, Body | None]:
        """Watch one job (`kubectl get --watch --output-watch-events`) until `done(body)`
        is true, the job is deleted ("gone"), or `timeout` seconds pass (None: no limit).
        Returns the outcome and the last body seen. A watch starts with the current object;
        one the API server closes (it does, every 30-60 minutes) is opened again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: dict[str, Any] | None = None
        args = ["get", RESOURCE, name, *_ns(namespace), "--watch", "--output-watch-events",
                "--output=json"]
        while True:
            opened = time.monotonic()
            proc = subprocess.Popen([*self.base, *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            try:
                for event in _events(proc, deadline):
                    if event.get("type") == "DELETED":
                        return "gone", None
                    body = _shown(event.get("object"))
                    if event.get("type") in ("ADDED", "MODIFIED") and isinstance(body, dict):
                        last = body
                        if done(body):
                            return "met", body
            except TimeoutError:
                return "timeout", last
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                errors = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            if proc.returncode != 0:
                if is_not_found(errors):
                    return "gone", None
                raise kubectl_problem(errors, args)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - opened)))  # never a tight loop

    def stream(self, args: list[str], transform: Callable[[str], str] | None = None) -> int:
        """Run kubectl with its stdout passed through line by line (rewritten by
        `transform`) and flushed as it comes, stderr straight to the terminal; kubectl's
        exit code."""
        try:
            proc = subprocess.Popen([*self.base, *args], stdout=subprocess.PIPE, text=True,
                                    bufsize=1)
        except FileNotFoundError as err:
            raise PluginError(f"cannot run {self.base[0]}: {err.strerror}", EXIT_FAILED) from err
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sys.stdout.write(transform(line) if transform else line)
                sys.stdout.flush()
            return proc.wait()
        except (KeyboardInterrupt, BrokenPipeError):
            proc.terminate()
            proc.wait()
            raise
        finally:
            proc.stdout.close()


def _events(proc: subprocess.Popen[bytes], deadline: float | None) -> Iterator[dict[str, Any]]:
    """The JSON watch events kubectl prints (pretty-printed objects one after another) as
    they arrive; ends when kubectl's output does; TimeoutError at the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    parser = json.JSONDecoder()
    buffer = ""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            if not selector.select(left):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += decode(chunk)
            while buffer.strip():
                buffer = buffer.lstrip()
                try:
                    event, end = parser.raw_decode(buffer)
                except json.JSONDecodeError:
                    break  # the rest of this object is still on its way
                buffer = buffer[end:]
                if isinstance(event, dict):
                    yield event


def _ns(namespace: str | None) -> list[str]:
    return [f"--namespace={namespace}"] if namespace else []
