"""Pure: the worker pods and the headless Service of a job.

Each worker is one pod, restartPolicy Never, named <job>-worker-<i> with the job's Service as
its subdomain, so every worker has a DNS name before it is ready (rendezvous). The pod gets
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, a GPU limit, the operator's node set
(worker_node_selector) in its nodeSelector, and is pinned to the node its reservation names;
the user's template adds pod-level fields, never the ones listed in OWNED_POD_FIELDS, and
spec.securityContext is every container's. The pod is always in the job's
namespace: Pod Security Admission and the quota of that namespace judge it.
"""

from __future__ import annotations

import copy
from typing import Any

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pod_template import OWNED_POD_FIELDS as _OWNED
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import (
    API_VERSION,
    ATTEMPT_LABEL,
    GPU_DEVICES_ENV,
    GPU_DEVICES_NONE,
    INDEX_LABEL,
    JOB_LABEL,
    KIND,
    MAIN_CONTAINER,
    MANAGED_BY,
    OUTPUT_DIR_ENV,
    OUTPUT_VOLUME,
    SETUP_CONTAINER,
    master_addr,
    pod_name,
    service_name,
)

# Pod spec fields the operator owns; a template that sets them is an InvalidSpec.
# activeDeadlineSeconds is how it stops a worker at the end of a job (decision.StopPod).
# A failed container's termination message is the tail of its log (diagnosis.py reads it);
# one that succeeds keeps what it wrote to /dev/termination-log (results.py reads it).
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"
# A job of one worker meets only itself: the rendezvous store is in its own pod.
SOLO_MASTER_ADDR = "127.0.0.1"
OWNED_POD_FIELDS = tuple(_OWNED)  # the schema refuses them in a template (models.py)


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": job.metadata.name,
            "uid": job.metadata.uid, "controller": True, "blockOwnerDeletion": True}


def selector(job: TrainingJob) -> dict[str, str]:
    return {JOB_LABEL: job.metadata.name}


def _env(job: TrainingJob, index: int, settings: Settings) -> list[dict[str, Any]]:
    name, ns = job.metadata.name, job.metadata.namespace
    ours = {"WORLD_SIZE": str(job.spec.workers), "RANK": str(index),
            "MASTER_ADDR": master_addr(name, ns) if job.spec.workers > 1 else SOLO_MASTER_ADDR,
            "MASTER_PORT": str(settings.master_port), "TRAININGJOB_NAME": name,
            "TRAININGJOB_ATTEMPT": str(job.status.attempt)}
    if job.spec.output is not None:
        ours[OUTPUT_DIR_ENV] = job.spec.output.path
    if not job.spec.gpus_per_worker:
        # NVIDIA's device plugin README: a container that requests no GPU from an image with
        # NVIDIA_VISIBLE_DEVICES=all (every CUDA base image) sees every GPU of the node under
        # the NVIDIA runtime; "void" makes that runtime behave as runc (no devices).
        ours[GPU_DEVICES_ENV] = GPU_DEVICES_NONE
    env = [{"name": k, "value": v} for k, v in ours.items()]
    for var in job.spec.env or []:
        if var.name not in ours:
            env.append(var.model_dump(by_alias=True, exclude_none=True))
    return env


def _resources(job: TrainingJob) -> dict[str, Any]:
    # Quantities go out as strings, the API's canonical form.
    requests = {k: str(v) for k, v in job.spec.resources.requests.items()}
    limits = {k: str(v) for k, v in job.spec.resources.limits.items()}
    if job.spec.gpus_per_worker:
        limits[job.spec.gpu_resource] = str(job.spec.gpus_per_worker)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _pin(spec: dict[str, Any], node: str) -> None:
    """Require the reserved node: the admission decision is the placement, not a hint."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for t in terms:  # terms are ORed: pin every one of them
        t.setdefault("matchFields", []).extend(copy.deepcopy(term["matchFields"]))
    required["nodeSelectorTerms"] = terms


def _mounts(job: TrainingJob) -> list[Any]:
    """The user's volume mounts, and the output volume's."""
    mounts: list[Any] = [m.dump() for m in job.spec.volume_mounts or []]
    if job.spec.output is not None:
        mounts.append({"name": OUTPUT_VOLUME, "mountPath": job.spec.output.path})
    return mounts


def worker_pod(job: TrainingJob, index: int, node: str | None,
               settings: Settings) -> dict[str, Any]:
    spec = job.spec
    template = spec.template
    labels = {**(template.metadata.labels if template else {}), **MANAGED_BY,
              JOB_LABEL: job.metadata.name, INDEX_LABEL: str(index),
              ATTEMPT_LABEL: str(job.status.attempt)}
    mounts = _mounts(job)
    container: dict[str, Any] = {"name": MAIN_CONTAINER, "image": spec.image,
                                 "env": _env(job, index, settings),
                                 "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY}
    for key, value in (("command", spec.command), ("args", spec.args),
                       ("workingDir", spec.working_dir), ("volumeMounts", mounts)):
        if value:
            container[key] = value
    resources = _resources(job)
    if resources:
        container["resources"] = resources
    if spec.security_context:
        container["securityContext"] = spec.security_context.dump()
    pod_spec: dict[str, Any] = template.spec.dump() if template else {}  # a fresh dict
    for field in OWNED_POD_FIELDS:
        pod_spec.pop(field, None)
    name = pod_name(job.metadata.name, index)
    if spec.output is not None:
        volume = spec.output.volume.dump()
        pod_spec["volumes"] = [*pod_spec.get("volumes", []), {"name": OUTPUT_VOLUME, **volume}]
    pod_spec.update({
        "restartPolicy": "Never", "hostname": name,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "containers": [container],
    })
    if settings.worker_node_selector:
        # The configured node set. The scheduler ANDs nodeSelector with required node
        # affinity (both must hold), so no template affinity can place a worker outside it:
        # https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity
        pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}),
                                    **settings.worker_node_selector}
    if spec.workers > 1:  # worker 0's DNS name comes from the headless Service
        pod_spec["subdomain"] = service_name(job.metadata.name)
    if spec.setup is not None:
        setup: dict[str, Any] = {"name": SETUP_CONTAINER, "image": spec.setup.image or spec.image,
                                 "command": spec.setup.command,
                                 "env": _env(job, index, settings),
                                 "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY}
        if spec.setup.args:
            setup["args"] = spec.setup.args
        if mounts:
            setup["volumeMounts"] = mounts
        if spec.security_context:
            setup["securityContext"] = spec.security_context.dump()
        pod_spec["initContainers"] = [setup]
    if node:
        _pin(pod_spec, node)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": job.metadata.namespace, "labels": labels,
                     "annotations": dict(template.metadata.annotations) if template else {},
                     "ownerReferences": [owner_reference(job)]},
        "spec": pod_spec,
    }


def workers_service(job: TrainingJob, settings: Settings) -> dict[str, Any]:
    """Headless: every worker gets a stable DNS name for rendezvous, ready or not."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(job.metadata.name),
                     "namespace": job.metadata.namespace,
                     "labels": {**MANAGED_BY, JOB_LABEL: job.metadata.name},
                     "ownerReferences": [owner_reference(job)]},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": selector(job),
                 "ports": [{"name": "rendezvous", "port": settings.master_port,
                            "targetPort": settings.master_port}]},
    }
