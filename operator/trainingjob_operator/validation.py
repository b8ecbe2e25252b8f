"""Pure: the spec rules the CRD schema cannot express. A job that breaks one ends
DeployFailed/InvalidSpec at once, with a message that names the field and the fix."""

from __future__ import annotations

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.render import OWNED_POD_FIELDS
from trainingjob_operator.vocabulary import pod_name

_USE_INSTEAD = {"activeDeadlineSeconds": "spec.timeouts.runSeconds",
                "terminationGracePeriodSeconds": "spec.terminationGracePeriodSeconds"}
MAX_POD_NAME = 63  # a pod's hostname is its name, and a DNS label is at most 63 characters


def invalid_spec(job: TrainingJob) -> str | None:
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
    if spec.output is not None:
        sources = sorted(k for k in spec.output.volume if k != "name")
        if len(sources) != 1:
            return (f"spec.output.volume must name exactly one volume source, not "
                    f"{len(sources)} ({', '.join(sources) or 'none'}); e.g. "
                    "{persistentVolumeClaim: {claimName: models}}")
    if spec.template is not None:
        for field in OWNED_POD_FIELDS:
            if field in spec.template.spec:
                instead = _USE_INSTEAD.get(
                    field, "spec.image, spec.command, spec.setup and the other spec fields")
                return f"spec.template.spec.{field} is set by the operator; use {instead} instead"
    return None
