"""Record real TrainingJob objects, one per phase, for the GitOps health tests.

    .venv/bin/python -m tests.record_fixtures --kubeconfig .devcluster/kubeconfig [--start-operator]

Applies a few of examples/ to the cluster (each in a namespace `fixtures-<example>` of its own),
watches them with `kubectl get -w -o json` and saves, for every phase, the first object the
API server reported in that phase, plus the object as created (no status yet) and the object
right after `spec.stop` was set and before the operator acted on it (metadata.generation
ahead of status.observedGeneration). managedFields and uid are dropped; the rest is as
recorded. The cluster needs devcluster's kwok stages (the examples' pod annotations) and the
operator running, or `--start-operator` to run `python -m trainingjob_operator` for the
recording. Re-record whenever the status format changes; tests/fixtures/trainingjobs/README.md
says what each file is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from devcluster import build

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "trainingjobs"
TERMINAL = ("Completed", "DeployFailed", "Failed", "Stopped")
# The operator's grace periods, short as in the e2e tests (tests/conftest.py Operator.ENV).
OPERATOR_ENV = {
    "TRAININGJOB_IMAGE_PULL_GRACE_SECONDS": "4", "TRAININGJOB_CONFIG_ERROR_GRACE_SECONDS": "4",
    "TRAININGJOB_NODE_LOST_GRACE_SECONDS": "2", "TRAININGJOB_LEADER_CHECK_SECONDS": "1",
    "TRAININGJOB_QUEUE_REFRESH_SECONDS": "1", "TRAININGJOB_METRICS_PORT": "0",
    "TRAININGJOB_HEALTH_PORT": "0"}

Obj = dict[str, Any]
Pick = Callable[[Obj], bool]


def phase_is(phase: str) -> Pick:
    return lambda o: (o.get("status") or {}).get("phase") == phase


def no_status(o: Obj) -> bool:
    return not o.get("status")


def generation_ahead(o: Obj) -> bool:
    observed = (o.get("status") or {}).get("observedGeneration")
    return observed is not None and o["metadata"].get("generation", 0) > observed


@dataclass
class Recording:
    """One example applied and watched; `picks` name the fixtures taken from its events."""

    example: str
    picks: dict[str, Pick]
    stop_when_running: bool = False
    events: list[Obj] = field(default_factory=list)
    watch: subprocess.Popen[str] | None = None
    stop_sent: bool = False

    @property
    def namespace(self) -> str:
        return "fixtures-" + Path(self.example).stem.replace("_", "-")

    @property
    def manifest(self) -> Obj:
        docs = yaml.safe_load_all((ROOT / "examples" / self.example).read_text())
        job: Obj = next(d for d in docs if d["kind"] == "TrainingJob")
        return job

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    def last_phase(self) -> str | None:
        for o in reversed(self.events):
            phase = (o.get("status") or {}).get("phase")
            if phase:
                return str(phase)
        return None


PLAN = [
    Recording("1-worker.yaml", {
        "NoStatus": no_status, "Pending": phase_is("Pending"), "Created": phase_is("Created"),
        "Deploying": phase_is("Deploying"), "Running": phase_is("Running"),
        "Completed": phase_is("Completed")}),
    Recording("failure-setup.yaml", {"DeployFailed": phase_is("DeployFailed")}),
    Recording("failure-oomkilled.yaml", {"Failed": phase_is("Failed")}),
    Recording("stop.yaml", {"StopNotObserved": generation_ahead,
                            "Stopped": phase_is("Stopped")}, stop_when_running=True),
]


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.argv = [str(binary), f"--kubeconfig={kubeconfig}"]

    def __call__(self, *args: str, check: bool = True, input_text: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.argv, *args], capture_output=True, text=True,
                              input=input_text, timeout=180)
        if check and proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)


def _read_events(stream: IO[str], rec: Recording, changed: threading.Condition) -> None:
    """kubectl -w -o json --output-watch-events prints one JSON event per line."""
    for line in stream:
        line = line.strip()
        if not line:
            continue
        event = json.loads(line)
        obj = event.get("object") or {}
        if obj.get("kind") != "TrainingJob" or obj["metadata"]["name"] != rec.name:
            continue
        with changed:
            rec.events.append(obj)
            changed.notify_all()


def sanitize(obj: Obj) -> Obj:
    out: Obj = json.loads(json.dumps(obj))
    out["metadata"].pop("managedFields", None)
    out["metadata"].pop("uid", None)
    return out


def record(kubectl: Kubectl, out_dir: Path, timeout: float, keep: bool,
           alive: Callable[[], str | None] = lambda: None) -> dict[str, Obj]:
    """Apply, watch and pick; `alive` returns why the recording cannot go on, if it cannot."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/trainingjobs.training.dev")
    changed = threading.Condition()
    threads = []
    for rec in PLAN:
        kubectl("delete", "namespace", rec.namespace, "--ignore-not-found", "--wait=true")
        kubectl("create", "namespace", rec.namespace)
        rec.watch = kubectl.popen("get", "trainingjobs", "-n", rec.namespace, "--watch",
                                  "-o", "json", "--output-watch-events")
        assert rec.watch.stdout is not None
        t = threading.Thread(target=_read_events, args=(rec.watch.stdout, rec, changed),
                             daemon=True)
        t.start()
        threads.append(t)
    time.sleep(2)  # the watches list the (empty) namespaces before the jobs are created
    for rec in PLAN:
        kubectl("apply", "-n", rec.namespace, "-f", str(ROOT / "examples" / rec.example))
    deadline = time.monotonic() + timeout
    try:
        with changed:
            while True:
                for rec in PLAN:
                    if rec.stop_when_running and not rec.stop_sent and \
                            rec.last_phase() == "Running":
                        kubectl("patch", "trainingjob", rec.name, "-n", rec.namespace,
                                "--type=merge", "-p", '{"spec":{"stop":true}}')
                        rec.stop_sent = True
                if all(rec.last_phase() in TERMINAL for rec in PLAN):
                    break
                problem = alive()
                if problem:
                    raise SystemExit(problem)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit("timed out; last phases: " + ", ".join(
                        f"{rec.example}={rec.last_phase()}" for rec in PLAN))
                changed.wait(timeout=min(left, 1.0))
    finally:
        for rec in PLAN:
            if rec.watch is not None:
                rec.watch.terminate()
                rec.watch.wait()
        if not keep:
            for rec in PLAN:
                kubectl("delete", "namespace", rec.namespace, "--wait=false", check=False)
    found: dict[str, Obj] = {}
    missing = []
    for rec in PLAN:
        for fixture, pick in rec.picks.items():
            obj = next((o for o in rec.events if pick(o)), None)
            if obj is None:
                missing.append(f"{fixture} (from {rec.example})")
            else:
                found[fixture] = sanitize(obj)
    if missing:
        raise SystemExit("not seen in the watch: " + ", ".join(missing))
    out_dir.mkdir(parents=True, exist_ok=True)
    for fixture, obj in found.items():
        (out_dir / f"{fixture}.json").write_text(json.dumps(obj, indent=2) + "\n")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.record_fixtures",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--kubectl", type=Path, help="default: devcluster's kubectl")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--timeout", type=float, default=240, help="seconds for all to finish")
    parser.add_argument("--start-operator", action="store_true",
                        help="run python -m trainingjob_operator for the recording")
    parser.add_argument("--keep", action="store_true", help="keep the namespaces afterwards")
    args = parser.parse_args(argv)
    kubectl = Kubectl(args.kubectl or build.ensure_binaries() / "kubectl",
                      args.kubeconfig.resolve())
    operator: subprocess.Popen[bytes] | None = None
    log_path = args.kubeconfig.resolve().parent / "record-fixtures-operator.log"

    def alive() -> str | None:
        if operator is None or operator.poll() is None:
            return None
        tail = log_path.read_text(errors="replace")[-3000:]
        return f"the operator exited {operator.returncode}; {log_path} ends:\n{tail}"

    if args.start_operator:
        env = {**os.environ, **OPERATOR_ENV, "KUBECONFIG": str(args.kubeconfig.resolve())}
        with log_path.open("wb") as log:
            operator = subprocess.Popen([sys.executable, "-m", "trainingjob_operator"],
                                        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        found = record(kubectl, args.out, args.timeout, args.keep, alive)
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
    for fixture, obj in sorted(found.items()):
        status = obj.get("status") or {}
        print(f"{fixture:16} generation={obj['metadata'].get('generation')} "
              f"observed={status.get('observedGeneration')} phase={status.get('phase')} "
              f"reason={status.get('reason')}")
    print(f"wrote {len(found)} fixtures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
