"""Pure: every word of the TrainingJob API that more than one module says, spelled once.

The resource names, the phases and the sets of them, the reasons a status or an Event can
carry, the condition types, the labels on worker pods and the names of the objects a job owns.
The operator, the CRD builder and the kubectl plugin all import them from here, so a new
reason or label is one line in one place.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "training.dev"
VERSION = "v1alpha1"
PLURAL = "trainingjobs"
KIND = "TrainingJob"
SHORT_NAME = "tj"
API_VERSION = f"{GROUP}/{VERSION}"
# Who writes: Events' source, the managed-by label, the lease's default name.
COMPONENT = "trainingjob-operator"

Key = tuple[str, str]  # (namespace, name) of a TrainingJob


class Phase(StrEnum):
    PENDING = "Pending"
    CREATED = "Created"
    DEPLOYING = "Deploying"
    RUNNING = "Running"
    COMPLETED = "Completed"
    DEPLOY_FAILED = "DeployFailed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @property
    def terminal(self) -> bool:
        return not self.active


ACTIVE = frozenset({Phase.PENDING, Phase.CREATED, Phase.DEPLOYING, Phase.RUNNING})
TERMINAL = frozenset(Phase) - ACTIVE
# Phases whose job holds capacity (a reservation or pods).
ADMITTED = frozenset({Phase.CREATED, Phase.DEPLOYING, Phase.RUNNING})
# Phases that went wrong: a Warning Event, and the Failed and Stalled conditions.
FAILED_PHASES = frozenset({Phase.DEPLOY_FAILED, Phase.FAILED})


class Reason(StrEnum):
    """Why a job is in its phase: status.reason, the history's and the Events' reason.
    PHASE_REASONS says which phase may carry which."""

    WAITING_FOR_CAPACITY = "WaitingForCapacity"
    NO_NODE_FITS = "NoNodeFits"
    GANG_TOO_LARGE = "GangTooLarge"  # all the nodes it may use could not hold every worker
    QUEUED_BEHIND_HIGHER_PRIORITY = "QueuedBehindHigherPriority"
    WORKER_LOST = "WorkerLost"  # Pending again (a retry), or the end when retries are used up
    ADMITTED = "Admitted"
    CREATING_WORKERS = "CreatingWorkers"
    WORKERS_RUNNING = "WorkersRunning"
    SUCCEEDED = "Succeeded"
    INVALID_SPEC = "InvalidSpec"
    QUEUE_TIMEOUT = "QueueTimeout"
    DEPLOY_TIMEOUT = "DeployTimeout"
    UNSCHEDULABLE = "Unschedulable"
    POD_REJECTED = "PodRejected"
    SERVICE_REJECTED = "ServiceRejected"  # the gang's headless Service was refused
    # A pod with a worker's name exists that this job does not own (ownerReference uid).
    WORKER_NAME_TAKEN = "WorkerNameTaken"
    SETUP_FAILED = "SetupFailed"
    DEPENDENCIES_FAILED = "DependenciesFailed"  # the setup's pip could not resolve them
    INVALID_IMAGE_NAME = "InvalidImageName"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"  # host memory: the container's limit
    GPU_OUT_OF_MEMORY = "GPUOutOfMemory"
    RENDEZVOUS_FAILED = "RendezvousFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    STOPPED_BY_USER = "StoppedByUser"
    # Event only: the rank-0 worker's result could not be read (the job still Completed).
    RESULT_IGNORED = "ResultIgnored"
    # Shown by the plugin for an object it cannot parse; never written by the operator.
    UNREADABLE = "Unreadable"


# Why a job waits in the queue (queue.Waiting): the reasons a waiting status may change to.
QUEUE_REASONS = frozenset({Reason.WAITING_FOR_CAPACITY, Reason.NO_NODE_FITS,
                           Reason.GANG_TOO_LARGE, Reason.QUEUED_BEHIND_HIGHER_PRIORITY})
# The end of a job whose spec or object the operator cannot use: from any active phase.
_UNUSABLE = frozenset({Reason.INVALID_SPEC, Reason.WORKER_NAME_TAKEN})
# The one phase -> reasons table: status.transition and status.refresh refuse any other
# pair, and a unit test holds every reason but EVENT_ONLY to some phase.
PHASE_REASONS: dict[Phase, frozenset[Reason]] = {
    Phase.PENDING: QUEUE_REASONS | {Reason.WORKER_LOST},  # WorkerLost: a retry
    Phase.CREATED: frozenset({Reason.ADMITTED}),
    Phase.DEPLOYING: frozenset({Reason.CREATING_WORKERS}),
    Phase.RUNNING: frozenset({Reason.WORKERS_RUNNING}),
    Phase.COMPLETED: frozenset({Reason.SUCCEEDED}),
    Phase.DEPLOY_FAILED: _UNUSABLE | {
        Reason.QUEUE_TIMEOUT, Reason.DEPLOY_TIMEOUT, Reason.UNSCHEDULABLE, Reason.POD_REJECTED,
        Reason.SERVICE_REJECTED, Reason.SETUP_FAILED, Reason.DEPENDENCIES_FAILED,
        Reason.INVALID_IMAGE_NAME, Reason.IMAGE_PULL_FAILED, Reason.CONTAINER_CONFIG_ERROR,
        Reason.WORKER_LOST},  # WorkerLost: a reserved node lost before any pod started
    Phase.FAILED: _UNUSABLE | {
        Reason.ERROR, Reason.OOM_KILLED, Reason.GPU_OUT_OF_MEMORY, Reason.RENDEZVOUS_FAILED,
        Reason.DEADLINE_EXCEEDED, Reason.WORKER_LOST},
    Phase.STOPPED: frozenset({Reason.STOPPED_BY_USER}),
}
EVENT_ONLY = frozenset({Reason.RESULT_IGNORED, Reason.UNREADABLE})  # never a status's reason


# Which spec.timeouts limit ended a job with this reason (the timeouts metric's label).
TIMEOUT_OF: dict[str, str] = {Reason.QUEUE_TIMEOUT: "queue", Reason.DEPLOY_TIMEOUT: "deploy",
              Reason.UNSCHEDULABLE: "deploy", Reason.DEADLINE_EXCEEDED: "run"}


class ConditionType(StrEnum):
    ADMITTED = "Admitted"
    RUNNING = "Running"
    FINISHED = "Finished"
    COMPLETE = "Complete"
    FAILED = "Failed"
    # The "abnormal-true" pair kstatus (Flux, cli-utils) reads: an active job is still in
    # progress, a failed one will not progress any more.
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


# The phases in which each condition is True. Admitted is also True on a finished job whose
# last attempt was admitted (status.conditions). Each condition owns its reason: a True one
# carries the job's reason (Admitted=True: Admitted; Finished=True: the phase it ended in),
# a False one the phase that keeps it False (Failed=False reason=Completed), except
# Admitted=False, which carries why the job is not admitted (WaitingForCapacity,
# QueueTimeout...). docs/operations.md shows the table.
CONDITION_TRUE_IN: dict[ConditionType, frozenset[Phase]] = {
    ConditionType.ADMITTED: ADMITTED,
    ConditionType.RUNNING: frozenset({Phase.RUNNING}),
    ConditionType.FINISHED: TERMINAL,
    ConditionType.COMPLETE: frozenset({Phase.COMPLETED}),
    ConditionType.FAILED: FAILED_PHASES,
    ConditionType.RECONCILING: ACTIVE,
    ConditionType.STALLED: FAILED_PHASES,
}
ConditionReason = Reason | Phase  # a condition's reason: a Reason, or the phase that explains it


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


# Labels on every worker pod (and the Service): which job, which worker, which attempt.
JOB_LABEL = f"{GROUP}/job-name"
INDEX_LABEL = f"{GROUP}/worker-index"
ATTEMPT_LABEL = f"{GROUP}/attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": COMPONENT}
MAIN_CONTAINER = "trainer"
SETUP_CONTAINER = "setup"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
# Extended resources that are accelerators: whatever spec.gpuResource says, a job that asks
# for one of these goes through the queue (a trailing * matches any suffix: MIG profiles).
DEFAULT_ACCELERATORS = ("nvidia.com/gpu", "nvidia.com/mig-*", "amd.com/gpu", "gpu.intel.com/*")
# Env names that choose which devices a container sees (NVIDIA's and AMD's container
# runtimes read them): set by the device plugin, never by a job.
GPU_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
GPU_DEVICES_NONE = "void"  # what a worker that asks for no GPU gets (render.py)
RESERVED_GPU_ENV = (GPU_DEVICES_ENV, "CUDA_VISIBLE_DEVICES",
                    "NVIDIA_MIG_CONFIG_DEVICES", "NVIDIA_MIG_MONITOR_DEVICES",
                    "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")


OUTPUT_VOLUME = "output"  # the volume spec.output mounts in every worker
OUTPUT_DIR_ENV = "TRAININGJOB_OUTPUT_DIR"


def pod_name(job: str, index: int) -> str:
    return f"{job}-worker-{index}"


def service_name(job: str) -> str:
    """The headless Service that gives every worker a DNS name."""
    return f"{job}-workers"


def master_addr(job: str, namespace: str) -> str:
    """Worker 0's DNS name, where the others meet it (MASTER_ADDR)."""
    return f"{pod_name(job, 0)}.{service_name(job)}.{namespace}.svc"
