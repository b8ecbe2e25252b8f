"""Pure decisions of `stop`, `wait` and `logs`: what to do, what to say, how to exit."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainingjob_operator.models import TrainingJob, read_job
from trainingjob_operator.plugin.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PluginError
from trainingjob_operator.plugin.summary import WorkerPod, is_active
from trainingjob_operator.vocabulary import (
    ADMITTED,
    JOB_LABEL,
    MAIN_CONTAINER,
    TERMINAL,
    Phase,
    Reason,
    pod_name,
)

STOP_PATCH = json.dumps({"spec": {"stop": True}})


def ref(job: TrainingJob) -> str:
    return f"trainingjob '{job.metadata.name}'"


def how_it_ended(job: TrainingJob) -> str:
    """`Completed (Succeeded) at 2026-...: all 2 workers exited 0`."""
    status = job.status
    phase = status.phase.value if status.phase else "?"
    out = f"{phase} ({status.reason})" if status.reason else phase
    if status.completion_time:
        out += f" at {status.completion_time}"
    return out + (f": {status.message}" if status.message else "")


# --- stop ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StopPlan:
    patch: bool   # send the merge patch spec.stop=true
    message: str  # printed when not patching (nothing to do)


def stop_plan(job: TrainingJob) -> StopPlan:
    if not is_active(job):
        return StopPlan(False, f"{ref(job)} already finished: {how_it_ended(job)}; "
                        "nothing to stop")
    if job.spec.stop:
        return StopPlan(False, f"{ref(job)}: stop was already requested; it is "
                        f"{job.status.phase or 'new'} and will end Stopped "
                        f"({Reason.STOPPED_BY_USER})")
    return StopPlan(True, "")


def stopped_message(job: TrainingJob) -> str:
    """What follows the patch, from the phase the job was in."""
    grace = job.spec.termination_grace_period_seconds
    phase = job.status.phase
    if phase in ADMITTED and phase is not Phase.CREATED:
        n = job.spec.workers
        who = "its worker gets" if n == 1 else f"its {n} workers get"
        what = (f"{who} SIGTERM and {grace}s (terminationGracePeriodSeconds) to checkpoint "
                "and exit, then SIGKILL")
    elif phase is Phase.CREATED:
        what = "its GPU reservation is released before any worker starts"
    else:
        what = "it leaves the GPU queue without starting"
    return (f"{ref(job)} stop requested: {what}; the job ends Stopped ({Reason.STOPPED_BY_USER}).\n"
            f"Follow it with: kubectl trainingjob wait {job.metadata.name}")


def refused_message(job: TrainingJob | None, stderr: str) -> str:
    """The API refused the patch (e.g. the CRD refuses spec changes on a finished job):
    say how the job ended when that is why, and the API's own words."""
    said = stderr.strip().removeprefix("error: ").strip()
    if job is not None and not is_active(job):
        return f"{ref(job)} already finished: {how_it_ended(job)}\nthe API server said: {said}"
    return f"the API server refused the stop: {said}"


# --- wait ---------------------------------------------------------------------------

def has_finished(body: dict[str, Any]) -> bool:
    """Whether a job body (from the watch) is in a terminal phase."""
    job = read_job(body)
    phase = job.status.phase if isinstance(job, TrainingJob) else job.phase
    return phase in TERMINAL



def wait_exit_code(phase: Phase | None) -> int:
    """0 Completed; 1 Failed, DeployFailed or Stopped; 2 not finished (timed out)."""
    if phase is Phase.COMPLETED:
        return EXIT_OK
    if phase in (Phase.FAILED, Phase.DEPLOY_FAILED, Phase.STOPPED):
        return EXIT_FAILED
    return EXIT_USAGE


def wait_result(job: TrainingJob | None, name: str, namespace: str) -> dict[str, Any]:
    """The `wait -o json` object. result: Completed, Failed, DeployFailed, Stopped, Timeout
    (still active when the wait ended) or NotFound; exitCode: the command's exit code."""
    if job is None:
        return {"name": name, "namespace": namespace, "phase": None, "reason": None,
                "message": None, "result": "NotFound", "exitCode": EXIT_USAGE}
    phase = job.status.phase
    finished = phase is not None and not phase.active
    return {"name": name, "namespace": namespace, "phase": phase.value if phase else None,
            "reason": job.status.reason, "message": job.status.message,
            "result": phase.value if finished and phase else "Timeout",
            "exitCode": wait_exit_code(phase)}


def wait_text(job: TrainingJob) -> str:
    return f"{ref(job)} {how_it_ended(job)}"


def timeout_message(job: TrainingJob, timeout: str) -> str:
    status = job.status
    now = f"{status.phase or 'new'}" + (f" ({status.reason})" if status.reason else "")
    said = f": {status.message}" if status.message else ""
    return f"timed out after {timeout} waiting for {ref(job)} to finish; it is {now}{said}"


# --- logs ---------------------------------------------------------------------------

def logs_argv(job: TrainingJob, pods: Sequence[WorkerPod], worker: int | None,
              tail: int | None, follow: bool) -> list[str]:
    """`kubectl logs` arguments (after the global flags). All workers: by the job's label,
    with kubectl's --prefix (rewritten to [worker-i] by `relabel`), --tail=-1 unless asked
    (with a selector kubectl would show only 10 lines), and enough concurrent requests to
    follow every worker. One worker: its pod by name. --follow only while the job is active."""
    name = job.metadata.name
    common = [f"--container={MAIN_CONTAINER}", f"--tail={-1 if tail is None else tail}"]
    if follow and is_active(job):  # a finished job writes no more: print and end
        common.append("--follow")
    if worker is not None:
        return ["logs", pod_name(name, worker), *common]
    return ["logs", f"--selector={JOB_LABEL}={name}", "--prefix",
            f"--max-log-requests={max(len(pods), job.spec.workers, 5)}", *common]


_PREFIX = re.compile(r"^\[pod/(?P<pod>[^/\]]+)/[^\]]*\] ?")


def relabel(line: str, job_name: str) -> str:
    """kubectl's `[pod/NAME-worker-3/trainer] text` -> `[worker-3] text`."""
    match = _PREFIX.match(line)
    if match is None:
        return line
    pod = match.group("pod")
    index = pod.removeprefix(pod_name(job_name, 0)[:-1])
    label = f"worker-{index}" if index != pod and index.isdigit() else pod
    return f"[{label}] {line[match.end():]}"


def logs_problem(job: TrainingJob, pods: Sequence[WorkerPod],
                 worker: int | None) -> PluginError | None:
    """Why there are no logs to show, before asking kubectl: no pods (queued, or finished
    and cleaned up), no such worker, or no training container started yet."""
    status = job.status
    if worker is not None and not 0 <= worker < job.spec.workers:
        return PluginError(f"{ref(job)} has workers 0..{job.spec.workers - 1}; "
                           f"--worker {worker} is not one of them", EXIT_USAGE)
    chosen = [p for p in pods if worker is None or p.index == worker]
    if not pods:
        if status.phase is Phase.PENDING or status.phase is None:
            why = (f"it is queued (Pending, {status.reason}): {status.message}"
                   if status.reason else "it has just been created and is not queued yet")
            return PluginError(f"{ref(job)} has no worker pods yet: {why}\n(kubectl "
                               f"trainingjob view {job.metadata.name} shows its place in the "
                               "queue)")
        if status.phase is Phase.CREATED:
            return PluginError(f"{ref(job)} has no worker pods yet: GPUs are reserved and its "
                               "pods are being created; try again in a moment")
        return PluginError(f"{ref(job)} has no worker pods left: {how_it_ended(job)}\n"
                           "(a finished job keeps the pods of workers that started; none "
                           "of its did, or they were deleted)")
    if not chosen:
        return PluginError(f"{ref(job)} has no pod for worker {worker} now (it has "
                           f"{', '.join(p.pod for p in pods)})")
    if not any(p.started for p in chosen):
        states = ", ".join(f"{p.pod}: {p.state}" for p in chosen)
        return PluginError(f"{ref(job)}: the training container has not started yet "
                           f"({states}); kubectl trainingjob view {job.metadata.name} says why")
    return None
