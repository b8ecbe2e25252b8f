"""Frozen pydantic models of the TrainingJob API: the one source of the CRD schema
(see crd.py) and the typed form in which the operator reads every object it decides on."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from trainingjob_operator.pod_parts import (
    ContainerSecurityContext,
    KeyRef,
    ObjectFieldSelector,
    Part,
    ResourceFieldSelector,
    VolumeMount,
    one_of,
)
from trainingjob_operator.pod_template import TemplateSpec
from trainingjob_operator.pod_volumes import VolumeSource
from trainingjob_operator.schema import (
    LabelMap,
    Model,
    Quantity,
    keys_rule,
    rule,
    rules,
)
from trainingjob_operator.vocabulary import (
    DEFAULT_ACCELERATORS,
    DEFAULT_GPU_RESOURCE,
    RESERVED_GPU_ENV,
    Phase,
)


def _resource_names(field: str) -> dict[str, Any]:
    return rule(
        "self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] || k.startsWith('hugepages-') "
        "|| (k.contains('/') && !format.qualifiedName().validate(k).hasValue()))",
        f"{field}: resource names are cpu, memory, ephemeral-storage, hugepages-<size> or an "
        "extended resource such as example.com/fpga")


def _q(v: str) -> str:
    """An int-or-string as a quantity, without string(): the cost estimator sizes that as a
    string as long as a whole request, and the rule would exceed its budget."""
    return f"(type({v}) == int ? quantity('0').add(int({v})) : quantity({v}))"


def _valid(v: str) -> str:
    return f"(type({v}) == int || isQuantity({v}))"


# Rules over a quantity pair: both must parse before they compare (each is checked apart).
_BOTH = f"{_valid('self.requests[k]')} && {_valid('self.limits[k]')}"
_CMP = f"{_q('self.requests[k]')}.compareTo({_q('self.limits[k]')})"
_FIXED = "(k.contains('/') || k.startsWith('hugepages-'))"  # cannot be overcommitted


def _command_rule(field: str) -> dict[str, Any]:
    return rule("size(self) > 0 && self[0].trim() != ''",
                 f"{field} must start with the program to run, not an empty string or an "
                 "empty list" + (" (omit it to use the image's entrypoint)"
                                 if field == "spec.command" else ""))


def _image_rule(field: str) -> dict[str, Any]:
    return rule("self != '' && self.trim() == self && !self.contains(' ')",
                 f"{field} must name a container image without spaces, e.g. "
                 "<registry>/team/train:1.4")


# The parts of a spec copied into every worker pod, in characters: env (twice: the setup
# and the training container each get it), command, args, the setup's command and args, and
# the template's labels and annotations (keys and values), at most BUDGET in all (a rule on
# spec). With the bounds of the rest (10 volumes, 24 mounts, the nested lists of affinity...),
# the largest pod a TrainingJob can make is about 0.92 MiB of JSON (template volumes 0.25,
# affinity 0.2, the two containers 0.37 with env twice), at most WORST_CASE_POD_BYTES: well
# under the 1.5 MiB etcd takes in one request (--max-request-bytes). test_crd renders that
# pod from the largest spec the schema takes.
BUDGET = 256 * 1024
WORST_CASE_POD_BYTES = 1024 * 1024
ARG = 32 * 1024         # one command or args item
ANNOTATION = 64 * 1024  # one template annotation value


def _names_in(names: Sequence[str]) -> str:
    """A CEL test that name `k` is one of `names`, where a trailing * is a prefix."""
    exact = [n for n in names if not n.endswith("*")]
    prefixes = [n[:-1] for n in names if n.endswith("*")]
    return " || ".join([f"k in {exact!r}", *(f"k.startsWith({p!r})" for p in prefixes)])


def _no_accelerators(field: str) -> dict[str, Any]:
    """Accelerators go through the queue, whatever spec.gpuResource says (issue 22)."""
    return rule(f"!self.exists(k, {_names_in(DEFAULT_ACCELERATORS)})",
                 f"'{field} sets ' + self.filter(k, {_names_in(DEFAULT_ACCELERATORS)})[0] + "
                 "', an accelerator: request accelerators with spec.gpusPerWorker and "
                 "spec.gpuResource'")


class Setup(Model):
    """An init container that runs before training: the 'installing dependencies' step."""

    command: list[Annotated[str, Field(max_length=ARG)]] = Field(
        description="Command of the setup step, e.g. [pip, install, -r, requirements.txt].",
        max_length=64, json_schema_extra=_command_rule("spec.setup.command"))
    args: list[Annotated[str, Field(max_length=ARG)]] | None = Field(None, max_length=256)
    image: str | None = Field(None, description="Image of the setup step; default spec.image.",
                              max_length=1024, json_schema_extra=_image_rule("spec.setup.image"))


class Output(Model):
    """Where a job's artifacts go: one volume, mounted in every worker and setup container."""

    volume: VolumeSource = Field(description=(
        "A volume source as a pod spec takes it, without a name: e.g. "
        "{persistentVolumeClaim: {claimName: models}}, {nfs: {server: ..., path: ...}} or "
        "{emptyDir: {}}."))
    path: str = Field("/output", min_length=2, max_length=1024, description=(
        "Where it is mounted; TRAININGJOB_OUTPUT_DIR says the same to the training code."),
        json_schema_extra=rule("self.startsWith('/') && !self.contains(':')",
                                "spec.output.path must be an absolute path without ':', "
                                "e.g. /output"))


DEPLOY_SECONDS = 900
MAX_DEPLOY_SECONDS = 7 * 86400


class Timeouts(Model):
    queue_seconds: int | None = Field(
        None, ge=1, description="Longest time Pending (queued for GPUs); unset = no limit.")
    deploy_seconds: int = Field(
        DEPLOY_SECONDS, ge=1, le=MAX_DEPLOY_SECONDS, description="Longest time from "
        "admission to every worker running (scheduling, image pull, setup); then "
        "DeployFailed. Always bounded: at most a week.")
    run_seconds: int | None = Field(
        None, ge=1, description="Longest time Running; then Failed with DeadlineExceeded. "
        "Queue and deploy time do not count. Unset = no limit.")

    @field_validator("deploy_seconds", mode="before")
    @classmethod
    def _stored_null(cls, value: Any) -> Any:
        """An object stored when the CRD took deploySeconds: null has the default."""
        return DEPLOY_SECONDS if value is None else value


class Retries(Model):
    limit: int = Field(3, ge=0, le=100, description="Restarts of the whole gang after "
                       "infrastructure disruptions (eviction, node lost); user errors never retry.")


class Resources(Model):
    """Quantities, names and their pairs are checked as a pod's container would be."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage']"
         f".all(k, !(k in self.requests) || !(k in self.limits) || !({_BOTH}) || {_CMP} <= 0)",
         "spec.resources.requests of cpu, memory or ephemeral-storage must not be more than "
         "spec.resources.limits of the same"),
        (f"!has(self.requests) || self.requests.all(k, !{_FIXED} || (has(self.limits) && "
         "k in self.limits))",
         "spec.resources: an extended resource (a name with /) or hugepages cannot be "
         "overcommitted: set it in spec.resources.limits (requests may be left out)"),
        # Each value is checked apart: an invalid one makes this one fail too, no harm.
        (f"!has(self.requests) || !has(self.limits) || self.requests.all(k, !{_FIXED} || "
         f"!(k in self.limits) || {_CMP} == 0)",
         "spec.resources: an extended resource (a name with /) or hugepages must request "
         "what it limits: leave it out of spec.resources.requests"),
        ("[has(self.requests) ? self.requests : {}, has(self.limits) ? self.limits : {}]"
         f".all(m, m.all(k, !k.contains('/') || !{_valid('m[k]')} || {_q('m[k]')}"
         ".isInteger()))",
         "spec.resources: an extended resource (a name with /) must be a whole number")))

    # At most 8 each: a quantity's estimated CEL cost is that of a whole request.
    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=8,
                                          json_schema_extra={"x-kubernetes-validations": [
                                              *_resource_names("spec.resources.requests")[
                                                  "x-kubernetes-validations"],
                                              *_no_accelerators("spec.resources.requests")[
                                                  "x-kubernetes-validations"]]})
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=8,
                                        json_schema_extra={"x-kubernetes-validations": [
                                            *_resource_names("spec.resources.limits")[
                                                "x-kubernetes-validations"],
                                            *_no_accelerators("spec.resources.limits")[
                                                "x-kubernetes-validations"]]})


class TemplateMetadata(Model):
    labels: LabelMap = Field(default_factory=dict, max_length=64, json_schema_extra=keys_rule(
        "label", "spec.template.metadata.labels"))
    annotations: dict[str, Annotated[str, Field(max_length=ANNOTATION)]] = Field(
        default_factory=dict, max_length=64, json_schema_extra=keys_rule(
            "annotation", "spec.template.metadata.annotations"))


class PodTemplate(Model):
    """Pod-level overlay in PodTemplateSpec shape; the operator owns containers."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: TemplateSpec = Field(default_factory=TemplateSpec, description=(
        "Pod spec fields merged into every worker: nodeSelector, tolerations, affinity, "
        "topologySpreadConstraints, volumes, serviceAccountName, "
        "automountServiceAccountToken, imagePullSecrets, priorityClassName, schedulerName, "
        "securityContext, hostNetwork, hostPID, hostIPC, dnsPolicy, enableServiceLinks, "
        "runtimeClassName. Any other key is refused."))


class EnvVarSource(Part):
    model_config = ConfigDict(json_schema_extra=one_of(
        "spec.env[].valueFrom", ("fieldRef", "resourceFieldRef", "configMapKeyRef",
                                 "secretKeyRef"), "source"))

    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeyRef | None = None
    secret_key_ref: KeyRef | None = None


class EnvVar(Model):
    model_config = ConfigDict(json_schema_extra=rule(
        "!has(self.valueFrom) || !has(self.value) || self.value == ''",
        "spec.env: set value or valueFrom, not both"))

    name: str = Field(min_length=1, max_length=256, json_schema_extra=rules(
        ("self.matches('^[ -<>-~]+$')", "spec.env[].name must be printable ASCII characters "
         "other than '=', e.g. LEARNING_RATE"),
        (f"!(self in {list(RESERVED_GPU_ENV)!r})",
         "'spec.env sets ' + self + ': the device plugin sets it, to the GPUs the worker "
         "was given; remove it (request GPUs with spec.gpusPerWorker)'")))
    value: str | None = Field(None, max_length=BUDGET // 2)
    value_from: EnvVarSource | None = None


def _chars(path: str, item: str = "s") -> str:
    return f"(has({path}) ? {path}.map({item}, size({item})).sum() : 0)"


def _map_chars(path: str) -> str:
    return f"(has({path}) ? {path}.map(k, size(k) + size({path}[k])).sum() : 0)"


_BUDGETED = " + ".join([
    "(has(self.env) ? self.env.map(e, size(e.name) + (has(e.value) ? size(e.value) : 0))"
    ".sum() * 2 : 0)",
    _chars("self.command"), _chars("self.args"),
    "(has(self.setup) ? " + _chars("self.setup.command") + " + " + _chars("self.setup.args")
    + " : 0)",
    "(has(self.template) && has(self.template.metadata) ? "
    + _map_chars("self.template.metadata.labels") + " + "
    + _map_chars("self.template.metadata.annotations") + " : 0)"])
_DIGITS = str(list("0123456789"))


def _decimal(v: str, digits: int = 9) -> str:
    """An int as a decimal string, without string(): the cost estimator sizes string(int) as
    a string of any length, and the message would exceed its budget."""
    return " + ".join([*(f"({v} >= {10**i} ? {_DIGITS}[{v} / {10**i} % 10] : '')"
                         for i in range(digits - 1, 0, -1)), f"{_DIGITS}[{v} % 10]"])


# [x].map(t, ...)[0] binds the total once (CRD rules have no cel.bind).
BUDGET_RULE = (f"{_BUDGETED} <= {BUDGET}",
               f"[{_BUDGETED}].map(t, 'spec.env (counted twice: the setup and the training "
               "container each get it), spec.command, spec.args, spec.setup and "
               "spec.template.metadata.labels and annotations "
               f"total ' + {_decimal('t')} + ' characters, more than the "
               f"{BUDGET} a worker pod may take: move big values into a ConfigMap (env "
               "valueFrom.configMapKeyRef, or a configMap volume)')[0]")


class TrainingJobSpec(Model):
    model_config = ConfigDict(json_schema_extra=rules(
        ("self.gpusPerWorker == 0 || self.gpuResource.contains('/')",
         "spec.gpuResource must be an extended resource name with a domain, such as "
         "nvidia.com/gpu, when spec.gpusPerWorker is more than 0"),
        ("!has(self.resources) || [has(self.resources.requests) ? self.resources.requests : "
         "{}, has(self.resources.limits) ? self.resources.limits : {}]"
         ".all(m, !(self.gpuResource in m))",
         "'spec.resources sets ' + self.gpuResource + ': request GPUs with "
         "spec.gpusPerWorker instead'"),
        BUDGET_RULE))

    image: str = Field(description="Container image of the training step, e.g. "
                       "<registry>/team/train:1.4.", max_length=1024,
                       json_schema_extra=_image_rule("spec.image"))
    command: list[Annotated[str, Field(max_length=ARG)]] | None = Field(
        None, max_length=64, description="Entrypoint; default the image's.",
        json_schema_extra=_command_rule("spec.command"))
    args: list[Annotated[str, Field(max_length=ARG)]] | None = Field(None, max_length=256)
    env: list[EnvVar] | None = Field(None, max_length=256)
    working_dir: str | None = Field(None, max_length=4096)
    volume_mounts: list[VolumeMount] | None = Field(None, max_length=24)
    workers: int = Field(1, le=4096, json_schema_extra=rule(
        "self >= 1", "spec.workers must be at least 1: it is the number of worker pods "
        "in the gang"), description=(
        "Number of worker pods in the gang. All are admitted at once, when GPUs for every "
        "worker are free; each gets RANK 0..workers-1 and WORLD_SIZE=workers."))
    gpus_per_worker: int = Field(1, le=1024, json_schema_extra=rule(
        "self >= 0", "spec.gpusPerWorker must be 0 (CPU-only) or more"), description=(
        "GPUs each worker requests (limit on spec.gpuResource); 0 runs CPU-only."))
    gpu_resource: str = Field(DEFAULT_GPU_RESOURCE, min_length=1, max_length=253,
                              description="Extended resource name of the GPUs.",
                              json_schema_extra=rule(
                                  "!format.qualifiedName().validate(self).hasValue()",
                                  "spec.gpuResource must be a resource name such as "
                                  "nvidia.com/gpu"))
    resources: Resources = Field(default_factory=Resources,
                                 description="Per-worker requests and limits besides GPUs.")
    setup: Setup | None = None
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1, description="Higher is admitted first.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    stop: bool = Field(False, json_schema_extra=rule(
        "self || !oldSelf", "spec.stop cannot be set back to false: a stopped job stays "
        "stopped; create a new TrainingJob to run again"),
        description="Set true to stop the job (terminal): workers get "
                       "SIGTERM and terminationGracePeriodSeconds to checkpoint.")
    termination_grace_period_seconds: int = Field(60, ge=0, le=86400)
    template: PodTemplate | None = None
    security_context: ContainerSecurityContext | None = Field(None, description=(
        "Container securityContext of the setup and training containers, e.g. "
        "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}, which the restricted "
        "Pod Security Standard requires of every container; pod-level settings (runAsNonRoot, "
        "seccompProfile) go in template.spec.securityContext."))
    output: Output | None = None
    ttl_seconds_after_finished: int | None = Field(None, ge=0, description=(
        "Delete the TrainingJob (and its pods and Service) this long after it finished, as "
        "a batch/v1 Job does; unset: the operator's default (the chart's "
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
