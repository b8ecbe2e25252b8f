"""Pure: what each worker pod is doing, and what that means for the job.

The failure mapping: a setup (init) container that exits non-zero is DeployFailed/SetupFailed;
a bad image name fails at once, an image pull or container config error after its grace
(the registry or a Secret may still come); the training container exiting non-zero is
Failed/Error, or OOMKilled; a worker lost to the infrastructure (evicted, disrupted, its node
gone) restarts the whole gang until spec.retries.limit is used up, then Failed/WorkerLost.
The verdicts carry messages a person can act on: which worker, which container, the exit
code and signal, and what to change.

A pod is a worker only if the job owns it: its controller ownerReference has the job's uid
(`owned`). Pods are found by the job-name label, which anyone who may create pods in the
namespace can set; a pod that squats a worker's name ends the job (`name_taken`).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from trainingjob_operator.diagnosis import diagnose, last_meaningful_line, tail
from trainingjob_operator.models import FailureRecord, TrainingJob
from trainingjob_operator.pods import ContainerView, PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.timeutil import parse_time
from trainingjob_operator.vocabulary import MAIN_CONTAINER, Phase, Reason, pod_name


class WorkerState(StrEnum):
    MISSING = "Missing"              # no pod (yet, or deleted and gone)
    UNSCHEDULABLE = "Unschedulable"  # the scheduler found no node
    STARTING = "Starting"            # bound; sandbox, image pull, setup
    WAITING_ERROR = "WaitingError"   # a container cannot start (image, config)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"                # the training container exited non-zero / OOMKilled
    SETUP_FAILED = "SetupFailed"
    LOST = "Lost"                    # evicted, disrupted, deleted by someone else


@dataclass(frozen=True)
class Worker:
    index: int
    state: WorkerState
    pod: PodView | None = None
    container: ContainerView | None = None  # the container the state is about
    detail: str = ""


# The kubelet's own words for containers that cannot start or were killed.
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
BAD_IMAGE_NAME = "InvalidImageName"
OUT_OF_MEMORY = "OOMKilled"
WAITING_ERRORS = IMAGE_PULL | CONFIG_ERRORS | {BAD_IMAGE_NAME}


def owned(job: TrainingJob, pod: PodView) -> bool:
    """The job's own pod: its controller ownerReference is the job's uid, as render sets it
    on every pod the operator makes (a uid is never reused, so a pod of an earlier job of
    the same name is not this one's)."""
    return bool(job.metadata.uid) and pod.owner_uid == job.metadata.uid


def squatter(job: TrainingJob, pods: Sequence[PodView]) -> PodView | None:
    """A pod not the job's that holds one of its workers' names, so the worker cannot be
    made. One whose controller is an earlier TrainingJob of this name (deleted, and created
    again) is not one: the garbage collector deletes it, since that owner is gone."""
    names = {pod_name(job.metadata.name, i) for i in range(job.spec.workers)}
    return next((p for p in sorted(pods, key=lambda p: p.name)
                 if p.name in names and p.owner_uid != job.metadata.uid
                 and p.owner_job != job.metadata.name), None)


def worker_name_taken(job: TrainingJob, kind: str, name: str,
                      owner_uid: str | None) -> Verdict:
    """A pod (or the gang's Service, `kind`) named as the job needs exists and is not the
    job's; whatever it does is not the job's. The one wording of WorkerNameTaken, for the
    decision (a squatter in the pod index) and for a create answered AlreadyExists."""
    ns = job.metadata.namespace
    whose = f"uid {owner_uid}" if owner_uid else "none"
    return Verdict(
        Phase.FAILED if job.status.phase is Phase.RUNNING else Phase.DEPLOY_FAILED,
        Reason.WORKER_NAME_TAKEN,
        f"a {kind} named {name} already exists in namespace {ns} and is not this job's (its "
        f"controller is {whose}, not TrainingJob {job.metadata.name}); nothing it does counts "
        f"as the job's: delete it (kubectl delete {kind.lower()} {name} -n {ns}) and create "
        "the TrainingJob again, since a job that ended never restarts, or create the "
        "TrainingJob under another name")


def classify(index: int, pod: PodView | None) -> Worker:
    if pod is None:
        return Worker(index, WorkerState.MISSING)
    disruption = pod.condition("DisruptionTarget")
    if pod.deletion_timestamp or pod.reason == "Evicted" or (
            disruption is not None and disruption.status == "True"):
        if disruption is not None and disruption.status == "True":
            why = f"{disruption.reason}: {disruption.message}" if disruption.message \
                else str(disruption.reason)
        elif pod.reason:
            why = f"{pod.reason}: {pod.message}" if pod.message else pod.reason
        else:
            why = "its pod was deleted by someone other than the operator"
        return Worker(index, WorkerState.LOST, pod, detail=why)
    for init in pod.init_containers:
        if init.state == "terminated" and init.exit_code:
            return Worker(index, WorkerState.SETUP_FAILED, pod, init)
        if init.state == "waiting" and init.reason in WAITING_ERRORS:
            return Worker(index, WorkerState.WAITING_ERROR, pod, init)
    main = next((c for c in pod.containers if c.name == MAIN_CONTAINER), None)
    if main is not None:
        if main.state == "terminated":
            ok = main.exit_code == 0
            return Worker(index, WorkerState.SUCCEEDED if ok else WorkerState.FAILED, pod, main)
        if main.state == "waiting" and main.reason in WAITING_ERRORS:
            return Worker(index, WorkerState.WAITING_ERROR, pod, main)
        if main.state == "running":
            return Worker(index, WorkerState.RUNNING, pod, main)
    if pod.phase == "Failed":  # failed without a container status we understand
        return Worker(index, WorkerState.LOST, pod, detail=f"{pod.reason}: {pod.message}")
    scheduled = pod.condition("PodScheduled")
    if not pod.node_name and scheduled is not None and scheduled.reason == "Unschedulable":
        return Worker(index, WorkerState.UNSCHEDULABLE, pod, detail=scheduled.message or "")
    return Worker(index, WorkerState.STARTING, pod)


@dataclass(frozen=True)
class Verdict:
    """The job-level outcome of its workers' states; `retry` sends the gang back to Pending."""

    phase: Phase
    reason: Reason
    message: str
    retry: bool = False
    failure: FailureRecord | None = None  # the container that ended it, if one did


def _signal(code: int) -> str:
    if code <= 128:
        return ""
    try:
        return f", signal {code - 128} ({signal.Signals(code - 128).name})"
    except ValueError:
        return f", signal {code - 128}"


def _who(w: Worker) -> str:
    return f"worker {w.index} (pod {w.pod.name if w.pod else '-'})"


def _started(w: Worker) -> datetime | None:
    if w.pod is None:
        return None
    return parse_time(w.pod.start_time or w.pod.creation_timestamp)


def failure(job: TrainingJob, w: Worker, now: datetime, settings: Settings) -> Verdict | None:
    """The failure-mapping row for one worker, or None while it is fine or within grace."""
    c = w.container
    image = job.spec.image
    if w.state in (WorkerState.SETUP_FAILED, WorkerState.FAILED) and c is not None:
        return _exited(job, w, c)
    if w.state is WorkerState.WAITING_ERROR and c is not None:
        detail = f"{c.reason}: {c.message}" if c.message else str(c.reason)
        record = _record(w, c)
        if c.reason == BAD_IMAGE_NAME:
            return Verdict(Phase.DEPLOY_FAILED, Reason.INVALID_IMAGE_NAME,
                           f"{_who(w)}: image {image!r} is not a valid image name "
                           f"({detail}); fix spec.image", failure=record)
        grace = (settings.image_pull_grace_seconds if c.reason in IMAGE_PULL
                 else settings.config_error_grace_seconds)
        since = _started(w)
        if since is not None and now - since < timedelta(seconds=grace):
            return None
        if c.reason in IMAGE_PULL:
            return Verdict(Phase.DEPLOY_FAILED, Reason.IMAGE_PULL_FAILED,
                           f"{_who(w)}: cannot pull image {image!r} after {grace:.0f}s ({detail}); "
                           "check spec.image and the pull secrets in "
                           "spec.template.spec.imagePullSecrets", failure=record)
        return Verdict(Phase.DEPLOY_FAILED, Reason.CONTAINER_CONFIG_ERROR,
                       f"{_who(w)}: container {c.name} cannot be created ({detail}); check the "
                       "Secrets, ConfigMaps and volumes it references", failure=record)
    return None


def _record(w: Worker, c: ContainerView) -> FailureRecord:
    """The container that ended the job; a terminated one's message is the tail of its
    output (FallbackToLogsOnError), a waiting one's is the kubelet's and is not output."""
    output = tail(c.message or "") if c.state == "terminated" else ""
    return FailureRecord(worker=w.index, pod=w.pod.name if w.pod else "", container=c.name,
                         exit_code=c.exit_code, reason=c.reason, output=output)


def _exited(job: TrainingJob, w: Worker, c: ContainerView) -> Verdict:
    """A container exited non-zero: known failures by their output (diagnosis.TABLE), then
    the host OOM killer, then the exit code with the last line it printed."""
    record = _record(w, c)
    setup = w.state is WorkerState.SETUP_FAILED
    what = f"{_who(w)}: {'setup container' if setup else 'container'} {c.name}"
    code = f"exited with code {c.exit_code}{_signal(c.exit_code or 0)}"
    logs = f"kubectl logs {record.pod}" + (f" -c {c.name}" if setup else "")
    if c.reason == OUT_OF_MEMORY and not setup:
        limit = job.spec.resources.limits.get("memory", "unset")
        return Verdict(Phase.FAILED, Reason.OOM_KILLED,
                       f"{what} was OOMKilled (exit code {c.exit_code}): it needs more memory "
                       f"than its limit ({limit}); raise spec.resources.limits.memory or reduce "
                       "the batch size", failure=record)
    known = diagnose(c.name, record.output)
    if known is not None:
        return Verdict(known.row.phase, known.row.reason,
                       f"{what} {code}: {known.line!r}; {known.advice}; see {logs}",
                       failure=record)
    said = last_meaningful_line(record.output)
    said = f": {said!r}" if said else ""
    if setup:
        return Verdict(Phase.DEPLOY_FAILED, Reason.SETUP_FAILED,
                       f"{what} {code}{said}; see {logs}, and fix spec.setup", failure=record)
    return Verdict(Phase.FAILED, Reason.ERROR, f"{what} {code}{said}; see {logs}",
                   failure=record)


def grace_deadline(w: Worker, settings: Settings) -> datetime | None:
    """When a worker waiting with a graced error turns into a failure (for the sweep)."""
    c = w.container
    if w.state is not WorkerState.WAITING_ERROR or c is None or c.reason == BAD_IMAGE_NAME:
        return None
    since = _started(w)
    if since is None:
        return None
    grace = (settings.image_pull_grace_seconds if c.reason in IMAGE_PULL
             else settings.config_error_grace_seconds)
    return since + timedelta(seconds=grace)


def lost_worker(job: TrainingJob, w: Worker) -> Verdict:
    attempt, limit = job.status.attempt, job.spec.retries.limit
    if attempt - 1 < limit:
        return Verdict(Phase.PENDING, Reason.WORKER_LOST,
                       f"{_who(w)} was lost ({w.detail}); restarting the gang, attempt "
                       f"{attempt + 1} of at most {limit + 1}", retry=True)
    return Verdict(Phase.FAILED, Reason.WORKER_LOST,
                   f"{_who(w)} was lost ({w.detail}) and spec.retries.limit={limit} restarts are "
                   "used up")


def _problem(w: Worker) -> str:
    """The last thing known to hold a worker back, for the deploy-timeout message."""
    who = _who(w)
    if w.state is WorkerState.MISSING or w.pod is None:
        return f"{who} was never created"
    if w.state is WorkerState.UNSCHEDULABLE:
        return f"{who} could not be scheduled: {w.detail}"
    if not w.pod.node_name:
        return f"{who} is not scheduled yet"
    c = w.container or next(
        (c for c in (*w.pod.init_containers, *w.pod.containers) if c.state != "terminated"), None)
    if c is None:
        return f"{who} is {w.state.value.lower()}"
    what = "setup container" if c in w.pod.init_containers else "container"
    detail = f"{c.reason}: {c.message}" if c.reason and c.message else (c.reason or "starting")
    return f"{who}: {what} {c.name} is {c.state or 'waiting'} ({detail})"


def deploy_timeout(job: TrainingJob, workers: Sequence[Worker]) -> Verdict:
    """spec.timeouts.deploySeconds is over: name the first worker that holds the gang back."""
    limit = job.spec.timeouts.deploy_seconds
    unschedulable = [w for w in workers if w.state is WorkerState.UNSCHEDULABLE]
    slow = unschedulable or [w for w in workers
                             if w.state not in (WorkerState.RUNNING, WorkerState.SUCCEEDED)]
    reason = Reason.UNSCHEDULABLE if unschedulable else Reason.DEPLOY_TIMEOUT
    what = _problem(slow[0]) if slow else "workers did not start"
    return Verdict(Phase.DEPLOY_FAILED, reason,
                   f"not every worker was running within spec.timeouts.deploySeconds={limit}s; "
                   f"{what}")
