"""Frozen pydantic models of the TrainingJob API: the one source of the CRD schema
(see crd.py) and the typed form in which the operator reads every object it decides on."""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

from trainingjob_operator.vocabulary import DEFAULT_GPU_RESOURCE, Phase

IntOrString = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]
# A free-form object that Kubernetes stores as given (PodTemplateSpec parts, env sources...).
FreeForm = Annotated[dict[str, Any], WithJsonSchema(
    {"type": "object", "x-kubernetes-preserve-unknown-fields": True})]


def _rule(rule: str, message: str) -> dict[str, Any]:
    """A CEL validation in the CRD schema; the message names the field and the fix."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python, immutable, unknown keys ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel,
                              extra="ignore")


class Setup(Model):
    """An init container that runs before training: the 'installing dependencies' step."""

    command: list[str] = Field(description="Command of the setup step, e.g. "
                               "[pip, install, -r, requirements.txt].", max_length=64)
    args: list[str] | None = Field(None, max_length=256)
    image: str | None = Field(None, description="Image of the setup step; default spec.image.")


class Output(Model):
    """Where a job's artifacts go: one volume, mounted in every worker and setup container."""

    volume: FreeForm = Field(description=(
        "A volume source as a pod spec takes it, without a name: e.g. "
        "{persistentVolumeClaim: {claimName: models}}, {nfs: {server: ..., path: ...}} or "
        "{emptyDir: {}}."))  # exactly one source: validation.py (CEL cannot size a free map)
    path: str = Field("/output", min_length=2, max_length=1024, description=(
        "Where it is mounted; TRAININGJOB_OUTPUT_DIR says the same to the training code."),
        json_schema_extra=_rule("self.startsWith('/') && !self.contains(':')",
                                "spec.output.path must be an absolute path without ':', "
                                "e.g. /output"))


class Timeouts(Model):
    queue_seconds: int | None = Field(
        None, ge=1, description="Longest time Pending (queued for GPUs); null = no limit.")
    deploy_seconds: int | None = Field(
        900, ge=1, description="Longest time from admission to every worker running "
        "(scheduling, image pull, setup); then DeployFailed. null = no limit.")
    run_seconds: int | None = Field(
        None, ge=1, description="Longest time Running; then Failed with DeadlineExceeded. "
        "Queue and deploy time do not count. null = no limit.")


class Retries(Model):
    limit: int = Field(3, ge=0, le=100, description="Restarts of the whole gang after "
                       "infrastructure disruptions (eviction, node lost); user errors never retry.")


class Resources(Model):
    requests: dict[str, IntOrString] = Field(default_factory=dict, max_length=16)
    limits: dict[str, IntOrString] = Field(default_factory=dict, max_length=16)


class TemplateMetadata(Model):
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)


class PodTemplate(Model):
    """Pod-level overlay in PodTemplateSpec shape; the operator owns containers."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: FreeForm = Field(default_factory=dict, description=(
        "Pod spec fields merged into every worker: nodeSelector, tolerations, affinity, "
        "volumes, serviceAccountName, imagePullSecrets, priorityClassName, schedulerName."))


class EnvVar(Model):
    name: str = Field(min_length=1, max_length=256)
    value: str | None = None
    value_from: FreeForm | None = None


class TrainingJobSpec(Model):
    image: str = Field(description="Container image of the training step, e.g. "
                       "<registry>/team/train:1.4.", max_length=1024,
                       json_schema_extra=_rule("self != '' && !self.contains(' ')",
                                               "spec.image must name a container image without "
                                               "spaces, e.g. <registry>/team/train:1.4"))
    command: list[str] | None = Field(None, max_length=64,
                                      description="Entrypoint; default the image's.")
    args: list[str] | None = Field(None, max_length=256)
    env: list[EnvVar] | None = Field(None, max_length=256)
    working_dir: str | None = Field(None, max_length=4096)
    volume_mounts: list[FreeForm] | None = Field(None, max_length=64)
    workers: int = Field(1, le=4096, json_schema_extra=_rule(
        "self >= 1", "spec.workers must be at least 1: it is the number of worker pods "
        "in the gang"), description=(
        "Number of worker pods in the gang. All are admitted at once, when GPUs for every "
        "worker are free; each gets RANK 0..workers-1 and WORLD_SIZE=workers."))
    gpus_per_worker: int = Field(1, le=1024, json_schema_extra=_rule(
        "self >= 0", "spec.gpusPerWorker must be 0 (CPU-only) or more"), description=(
        "GPUs each worker requests (limit on spec.gpuResource); 0 runs CPU-only."))
    gpu_resource: str = Field(DEFAULT_GPU_RESOURCE, min_length=1, max_length=253,
                              description="Extended resource name of the GPUs.")
    resources: Resources = Field(default_factory=Resources,
                                 description="Per-worker requests and limits besides GPUs.")
    setup: Setup | None = None
    priority: int = Field(0, description="Higher is admitted first.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    stop: bool = Field(False, json_schema_extra=_rule(
        "self || !oldSelf", "spec.stop cannot be set back to false: a stopped job stays "
        "stopped; create a new TrainingJob to run again"),
        description="Set true to stop the job (terminal): workers get "
                       "SIGTERM and terminationGracePeriodSeconds to checkpoint.")
    termination_grace_period_seconds: int = Field(60, ge=0, le=86400)
    template: PodTemplate | None = None
    security_context: FreeForm | None = Field(None, description=(
        "Container securityContext of the setup and training containers, e.g. "
        "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}, which the restricted "
        "Pod Security Standard requires of every container; pod-level settings (runAsNonRoot, "
        "seccompProfile) go in template.spec.securityContext."))
    output: Output | None = None
    ttl_seconds_after_finished: int | None = Field(None, ge=0, description=(
        "Delete the TrainingJob (and its pods and Service) this long after it finished, as "
        "a batch/v1 Job does; null: the operator's default (the chart's "
        "ttlSecondsAfterFinished), which keeps it unless set."))


class HistoryEntry(Model):
    phase: Phase
    reason: str
    message: str = ""
    time: str
    attempt: int | None = Field(None, description="The attempt this transition belongs to.")


class Condition(Model):
    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class WorkerCounts(Model):
    total: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0


class QueueInfo(Model):
    """Where a Pending job stands and why; refreshed at most every few seconds."""

    position: int | None = Field(None, description="1 = next to be admitted, counting the "
                                 "jobs still waiting cluster-wide.")
    namespace_position: int | None = Field(None, description="The same among the waiting "
                                           "jobs of this namespace.")
    gpus_needed: int
    gpus_free: int = Field(description="Free GPUs on the nodes this job's workers may use.")
    largest_node_gpus: int | None = None
    updated_time: str | None = None


class JobResult(Model):
    """What a Completed job produced, as its rank-0 worker reported it (results.py)."""

    model: str | None = Field(None, max_length=1024, description="Where the model is: a URI "
                              "or a path in spec.output.")
    metrics: dict[str, float] = Field(default_factory=dict, max_length=32)


class FailureRecord(Model):
    """The container that ended a Failed or DeployFailed job, and the end of its output."""

    worker: int
    pod: str
    container: str
    exit_code: int | None = None
    reason: str | None = Field(None, description="The container's own reason (Error, "
                               "OOMKilled, ImagePullBackOff...); status.reason is the job's.")
    output: str = Field("", max_length=2048, description="The last lines it printed "
                        "(stdout and stderr as its log holds them), at most about 1 KiB.")


class Reservation(Model):
    """GPUs held for an admitted attempt: one node per worker, recorded before pods exist."""

    attempt: int
    nodes: list[str] = Field(default_factory=list, max_length=4096)


class TrainingJobStatus(Model):
    phase: Phase | None = None
    reason: str | None = None
    message: str | None = None
    observed_generation: int | None = None
    attempt: int = 1
    workers: WorkerCounts | None = None
    worker_summary: str | None = Field(None, description="ready/total workers.")
    gpus: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    phase_time: str | None = Field(None, description="When the current phase began.")
    history: list[HistoryEntry] = Field(default_factory=list, max_length=64)
    queue: QueueInfo | None = None
    reservation: Reservation | None = None
    failure: FailureRecord | None = None
    result: JobResult | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    kopf: FreeForm | None = None


class ObjectMeta(Model):
    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 1
    resource_version: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


class TrainingJob(Model):
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: TrainingJobStatus = Field(default_factory=TrainingJobStatus)

    @property
    def total_gpus(self) -> int:
        return self.spec.workers * self.spec.gpus_per_worker


class Unreadable(Model):
    """A TrainingJob the models cannot parse (e.g. stored before a schema change)."""

    metadata: ObjectMeta
    problems: str
    phase: str | None = None


def _interned(value: Any) -> Any:
    """The same strings once in memory: a status repeats its message in every condition and
    its times and reasons across history, for each of 10,000 jobs the index holds."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    return value


def read_job(body: dict[str, Any]) -> TrainingJob | Unreadable:
    """Parse once, at the watch boundary; never raise on what a user could store."""
    try:
        return TrainingJob.model_validate(_interned(body))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in err.errors())
        meta = body.get("metadata") or {}
        return Unreadable(metadata=ObjectMeta.model_validate(
            {k: v for k, v in meta.items() if k in ("name", "namespace", "uid",
                                                    "resourceVersion", "generation")}),
            problems=problems, phase=(body.get("status") or {}).get("phase"))
