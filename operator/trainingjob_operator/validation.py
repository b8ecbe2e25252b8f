"""Pure: the spec rules the CRD schema cannot express. A job that breaks one ends
DeployFailed/InvalidSpec at once, with a message that names the field and the fix."""

from __future__ import annotations

from collections.abc import Iterable

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pod_template import OWNED_POD_FIELDS, owned_field_problem
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import pod_name

MAX_POD_NAME = 63  # a pod's hostname is its name, and a DNS label is at most 63 characters


def accelerator(resource: str, accelerators: Iterable[str]) -> bool:
    """Is the resource one of the configured accelerators (a trailing * is a prefix)?"""
    return any(resource.startswith(a[:-1]) if a.endswith("*") else resource == a
               for a in accelerators)


def invalid_spec(job: TrainingJob, settings: Settings) -> str | None:
    spec = job.spec
    longest = pod_name(job.metadata.name, spec.workers - 1)
    if len(longest) > MAX_POD_NAME:
        return (f"metadata.name is too long: worker pod names like {longest!r} must be at most "
                f"{MAX_POD_NAME} characters; shorten the TrainingJob's name")
    if spec.gpus_per_worker and "/" not in spec.gpu_resource:
        return (f"spec.gpuResource {spec.gpu_resource!r} is not an extended resource name; "
                "use a name like nvidia.com/gpu")
    for kind in ("requests", "limits"):
        if spec.gpu_resource in getattr(spec.resources, kind):
            return (f"spec.resources.{kind} sets {spec.gpu_resource}; request GPUs with "
                    "spec.gpusPerWorker instead")
        # The queue counts only spec.gpuResource: an accelerator asked for here would be
        # handed out by the scheduler from GPUs the queue reserved for other jobs.
        for name in sorted(getattr(spec.resources, kind)):
            if accelerator(name, settings.accelerators):
                return (f"spec.resources.{kind} sets {name}, an accelerator; request it with "
                        f"spec.gpusPerWorker and spec.gpuResource: {name} instead, so that "
                        "the queue counts it")
    if not spec.gpus_per_worker and spec.workers > settings.cpu_only_max_workers:
        return (f"spec.workers is {spec.workers}, but a CPU-only job (spec.gpusPerWorker 0) "
                f"may have at most {settings.cpu_only_max_workers} workers (the operator's "
                "setting TRAININGJOB_CPU_ONLY_MAX_WORKERS, chart value cpuOnlyMaxWorkers), "
                "since it skips the GPU queue; use fewer workers, or ask the cluster's "
                "admin to raise cpuOnlyMaxWorkers")
    selector = (spec.template.spec.node_selector if spec.template else None) or {}
    for key, value in sorted(settings.worker_node_selector.items()):
        if key in selector and selector[key] != value:
            return (f"spec.template.spec.nodeSelector sets {key}: {selector[key]!r}, but "
                    f"workers run only on nodes with {key}: {value!r} (the operator's "
                    "setting TRAININGJOB_WORKER_NODE_SELECTOR, chart value "
                    f"workerNodeSelector); leave {key} out of spec.template.spec.nodeSelector "
                    f"or set it to {value!r}")
    if spec.output is not None:
        sources = spec.output.volume.sources()
        if len(sources) != 1:
            return (f"spec.output.volume must name exactly one volume source, not "
                    f"{len(sources)} ({', '.join(sources) or 'none'}); e.g. "
                    "{persistentVolumeClaim: {claimName: models}}")
    # The schema refuses these at apply; an object stored before it did ends here.
    if spec.template is not None and (refused := spec.template.spec.refused()):
        field = refused[0].removeprefix("spec.template.spec.")
        if field in OWNED_POD_FIELDS:
            return owned_field_problem(field)
        return (f"{refused[0]} is not a pod field a TrainingJob may set (or not a volume type "
                "it may use); remove it")
    return None
