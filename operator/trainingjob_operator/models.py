"""Frozen pydantic models of the TrainingJob API: the one source of the CRD schema
(see crd.py) and the typed form in which the operator reads every object it decides on."""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

from trainingjob_operator.vocabulary import DEFAULT_GPU_RESOURCE, Phase

# A free-form object that Kubernetes stores as given (PodTemplateSpec parts, env sources...).
FreeForm = Annotated[dict[str, Any], WithJsonSchema(
    {"type": "object", "x-kubernetes-preserve-unknown-fields": True})]


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL validations in the CRD schema; each message names the field and the fix. A message
    that starts with a quote is a messageExpression (it can name what is wrong)."""
    return {"x-kubernetes-validations": [
        {"rule": rule, "messageExpression" if message[0] in "'\"" else "message": message}
        for rule, message in rules]}


def _rule(rule: str, message: str) -> dict[str, Any]:
    return _rules((rule, message))


# What a pod would refuse later, refused at apply time instead (the API server's own checks,
# through the CEL quantity and format libraries of Kubernetes 1.31 and later).
_LABEL_CHARS = ("at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
                "letter or digit")


def _keys_rule(what: str, field: str) -> dict[str, Any]:
    """Every key of a map is a qualified name (label and annotation keys, nodeSelector)."""
    return _rule("self.all(k, !format.qualifiedName().validate(k).hasValue())",
                 f"{field}: {what} keys must be qualified names: {_LABEL_CHARS}, optionally "
                 "after a DNS subdomain and /, e.g. team or example.com/team")


# A label value as pods take it; the path of the error names the key.
LabelValue = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 63, **_rule(
    "!format.labelValue().validate(self).hasValue()",
    f"a label value must be empty or {_LABEL_CHARS}")})]
LabelMap = dict[str, LabelValue]

# A resource quantity as pods take it: 500m, 2, 1.5, 64Gi; never negative.
Quantity = Annotated[int | str, WithJsonSchema({
    "x-kubernetes-int-or-string": True, "maxLength": 64, **_rule(
        "type(self) == int ? self >= 0 : "
        "isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",
        "must be a quantity of 0 or more, such as 500m, 2, 1.5 or 64Gi")})]


def _resource_names(field: str) -> dict[str, Any]:
    return _rule(
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
    return _rule("size(self) > 0 && self[0].trim() != ''",
                 f"{field} must start with the program to run, not an empty string or an "
                 "empty list" + (" (omit it to use the image's entrypoint)"
                                 if field == "spec.command" else ""))


def _image_rule(field: str) -> dict[str, Any]:
    return _rule("self != '' && self.trim() == self && !self.contains(' ')",
                 f"{field} must name a container image without spaces, e.g. "
                 "<registry>/team/train:1.4")


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python, immutable, unknown keys ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel,
                              extra="ignore")


class Setup(Model):
    """An init container that runs before training: the 'installing dependencies' step."""

    command: list[str] = Field(description="Command of the setup step, e.g. "
                               "[pip, install, -r, requirements.txt].", max_length=64,
                               json_schema_extra=_command_rule("spec.setup.command"))
    args: list[str] | None = Field(None, max_length=256)
    image: str | None = Field(None, description="Image of the setup step; default spec.image.",
                              max_length=1024, json_schema_extra=_image_rule("spec.setup.image"))


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
    """Quantities, names and their pairs are checked as a pod's container would be."""

    model_config = ConfigDict(json_schema_extra=_rules(
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
                                          json_schema_extra=_resource_names(
                                              "spec.resources.requests"))
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=8,
                                        json_schema_extra=_resource_names(
                                            "spec.resources.limits"))


class TemplateMetadata(Model):
    labels: LabelMap = Field(default_factory=dict, max_length=64, json_schema_extra=_keys_rule(
        "label", "spec.template.metadata.labels"))
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64,
                                        json_schema_extra=_keys_rule(
                                            "annotation", "spec.template.metadata.annotations"))


# The pod spec overlay stays free-form; the parts that are labels are checked as labels.
PodSpecOverlay = Annotated[dict[str, Any], WithJsonSchema({
    "type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "nodeSelector": {"type": "object", "maxProperties": 64,
                         "additionalProperties": LabelValue.__metadata__[0].json_schema,
                         **_keys_rule("nodeSelector", "spec.template.spec.nodeSelector")}}})]


class PodTemplate(Model):
    """Pod-level overlay in PodTemplateSpec shape; the operator owns containers."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: PodSpecOverlay = Field(default_factory=dict, description=(
        "Pod spec fields merged into every worker: nodeSelector, tolerations, affinity, "
        "volumes, serviceAccountName, imagePullSecrets, priorityClassName, schedulerName."))


class EnvVar(Model):
    model_config = ConfigDict(json_schema_extra=_rule(
        "!has(self.valueFrom) || !has(self.value) || self.value == ''",
        "spec.env: set value or valueFrom, not both"))

    name: str = Field(min_length=1, max_length=256, json_schema_extra=_rule(
        "self.matches('^[ -<>-~]+$')", "spec.env[].name must be printable ASCII characters "
        "other than '=', e.g. LEARNING_RATE"))
    value: str | None = None
    value_from: FreeForm | None = None


class TrainingJobSpec(Model):
    model_config = ConfigDict(json_schema_extra=_rules(
        ("self.gpusPerWorker == 0 || self.gpuResource.contains('/')",
         "spec.gpuResource must be an extended resource name with a domain, such as "
         "nvidia.com/gpu, when spec.gpusPerWorker is more than 0"),
        ("!has(self.resources) || [has(self.resources.requests) ? self.resources.requests : "
         "{}, has(self.resources.limits) ? self.resources.limits : {}]"
         ".all(m, !(self.gpuResource in m))",
         "'spec.resources sets ' + self.gpuResource + ': request GPUs with "
         "spec.gpusPerWorker instead'")))

    image: str = Field(description="Container image of the training step, e.g. "
                       "<registry>/team/train:1.4.", max_length=1024,
                       json_schema_extra=_image_rule("spec.image"))
    command: list[str] | None = Field(None, max_length=64,
                                      description="Entrypoint; default the image's.",
                                      json_schema_extra=_command_rule("spec.command"))
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
                              description="Extended resource name of the GPUs.",
                              json_schema_extra=_rule(
                                  "!format.qualifiedName().validate(self).hasValue()",
                                  "spec.gpuResource must be a resource name such as "
                                  "nvidia.com/gpu"))
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
