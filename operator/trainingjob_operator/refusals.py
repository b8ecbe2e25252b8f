"""Pure: how a job ends when the shell could not carry out its decision: the API refused
a pod or the Service, a foreign object holds a worker's name, or the operator cannot decide,
place or render it from what it holds (an unusable or unreadable object). Each is one edge
of the lifecycle (lifecycle.moved), so the history and conditions follow as for any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trainingjob_operator.decision import Decision, Event, deletes, stops
from trainingjob_operator.lifecycle import moved
from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import unreadable_status
from trainingjob_operator.vocabulary import ADMITTED, EventType, Phase, Reason, service_name
from trainingjob_operator.workers import owned, worker_name_taken

# How the API server words a Pod Security Admission refusal (k8s.io/pod-security-admission).
POD_SECURITY_REFUSAL = "violates PodSecurity"


def pod_rejected(job: TrainingJob, worker: int, error: str, now: datetime,
                 settings: Settings) -> Decision:
    """The API refused a worker pod; a Pod Security refusal says which fields answer it (the
    containers are the operator's, so their securityContext comes from spec.securityContext)."""
    if POD_SECURITY_REFUSAL in error:
        fix = ("the namespace's Pod Security level refuses it: remove what it names from "
               "spec.template, and set spec.securityContext (every container) and "
               "spec.template.spec.securityContext (the pod) as it asks")
    elif TOO_LARGE in error.lower():
        fix = ("the pod is larger than the API server stores (spec.env is copied into the "
               "setup and the training container): make spec.env, spec.args and "
               "spec.template smaller, and create the TrainingJob again")
    else:
        fix = "fix the quota, policy or spec field it names"
    return moved(job, Phase.DEPLOY_FAILED, Reason.POD_REJECTED,
                  f"the API server rejected worker {worker}'s pod: {error}; {fix}", now,
                  settings, reservation=None)


TOO_LARGE = "too large"  # how the API server and etcd word a refusal of a too-large object


def service_rejected(job: TrainingJob, error: str, now: datetime,
                     settings: Settings) -> Decision:
    """The API refused the gang's headless Service: without it no worker finds worker 0."""
    return moved(job, Phase.DEPLOY_FAILED, Reason.SERVICE_REJECTED,
                  f"the API server rejected the workers' Service "
                  f"{service_name(job.metadata.name)}: {error}; fix the namespace's quota "
                  "(services) or the policy it names, and create the TrainingJob again",
                  now, settings, reservation=None)


def name_taken(job: TrainingJob, kind: str, name: str, owner_uid: str | None, now: datetime,
               settings: Settings) -> Decision:
    """A create answered AlreadyExists by an object the job does not own (kube.create read
    it): nothing it does may count as the job's."""
    verdict = worker_name_taken(job, kind, name, owner_uid)
    return moved(job, verdict.phase, verdict.reason, verdict.message, now, settings,
                  reservation=None)


def unusable(job: TrainingJob, pods: Sequence[PodView], problem: str, now: datetime,
             settings: Settings) -> Decision:
    """The operator could not decide, place or render this job from what it holds (a shape
    the models let through, stored before a schema change): it ends, releasing its GPUs and
    stopping its workers, instead of failing every pass. A finished job stays as it is."""
    phase = job.status.phase
    if phase is not None and phase.terminal:
        return Decision()
    pods = [p for p in pods if owned(job, p)]
    current = [p for p in pods if p.attempt == job.status.attempt]
    stale = [p for p in pods if p.attempt != job.status.attempt]
    grace = job.spec.termination_grace_period_seconds
    return moved(job, Phase.FAILED if phase is Phase.RUNNING else Phase.DEPLOY_FAILED,
                  Reason.INVALID_SPEC, problem, now, settings,
                  [*stops(current, grace), *deletes(stale, grace)], reservation=None, queue=None)


# An unreadable job's pods go with this grace (the spec that would say is what cannot be
# read): the API's own default terminationGracePeriodSeconds.
UNREADABLE_GRACE_SECONDS = 30


def unreadable(job: Unreadable, pods: Sequence[PodView], now: datetime) -> Decision:
    """An object the models cannot read ends in DeployFailed/InvalidSpec (Failed if it was
    Running), once, instead of crashing the operator; an active one had pods and GPUs, and
    its pods are deleted, so it holds neither. A finished one stays as it is (only a pod
    still running, which a finished job never has, is deleted)."""
    was = Phase(job.phase) if job.phase in {p.value for p in Phase} else None
    pods = [p for p in pods if p.owner_uid == job.metadata.uid]  # never a squatter's
    if job.phase and (was is None or was.terminal):
        left = [p for p in pods if not p.finished]
        return Decision(actions=tuple(deletes(left, UNREADABLE_GRACE_SECONDS)))
    status = unreadable_status(job.problems, now, job.metadata.generation,
                               Phase.FAILED if was is Phase.RUNNING else Phase.DEPLOY_FAILED,
                               admitted=was in ADMITTED)
    return Decision(status, tuple(deletes(pods, UNREADABLE_GRACE_SECONDS)),
                    events=(Event(EventType.WARNING, Reason.INVALID_SPEC,
                                  str(status.message)),), releases=True)
