"""Pure: the pod-level fields a TrainingJob's template may set, and the ones the operator
owns or no TrainingJob may set, each refused at apply with its fix."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from trainingjob_operator.pod_parts import (
    NAME,
    Affinity,
    LocalRef,
    Part,
    PodSecurityContext,
    Toleration,
    TopologySpreadConstraint,
    closed,
)
from trainingjob_operator.pod_volumes import Volume
from trainingjob_operator.schema import LabelMap, keys_rule

# Pod spec fields the operator owns, with what sets them instead; a template that sets one is
# refused at apply (an object stored before that ends InvalidSpec: validation.py).
_SPEC_FIELDS = "spec.image, spec.command, spec.setup and the other spec fields"


OWNED_POD_FIELDS: dict[str, str] = {
    "containers": _SPEC_FIELDS, "initContainers": "spec.setup",
    "restartPolicy": "spec.retries", "hostname": "metadata.name (a worker's hostname is its "
    "pod's name)", "subdomain": "metadata.name (the workers' Service is <name>-workers)",
    "terminationGracePeriodSeconds": "spec.terminationGracePeriodSeconds",
    "nodeName": "spec.template.spec.nodeSelector or affinity",
    "activeDeadlineSeconds": "spec.timeouts.runSeconds"}


def owned_field_problem(field: str) -> str:
    return f"spec.template.spec.{field} is set by the operator; use {OWNED_POD_FIELDS[field]} " \
           "instead"


_NOT_IN_A_JOB = "cannot be set in a TrainingJob's template"


# The other fields of a PodSpec (Kubernetes 1.34): refused, each with its fix.
REFUSED_POD_FIELDS: dict[str, str] = {
    **{f: f"is set by the operator; use {use} instead" for f, use in OWNED_POD_FIELDS.items()},
    "resources": f"{_NOT_IN_A_JOB}: use spec.resources (per worker)",
    "resourceClaims": f"{_NOT_IN_A_JOB}: request accelerators with spec.gpusPerWorker and "
                      "spec.gpuResource",
    "priority": f"{_NOT_IN_A_JOB}: use priorityClassName",
    "serviceAccount": f"{_NOT_IN_A_JOB}: use serviceAccountName",
    **{f: f"{_NOT_IN_A_JOB}: it is not one of the pod fields a TrainingJob may set" for f in (
        "dnsConfig", "ephemeralContainers", "hostAliases", "hostUsers", "hostnameOverride",
        "os", "overhead", "preemptionPolicy", "readinessGates", "schedulingGates",
        "setHostnameAsFQDN", "shareProcessNamespace")}}


class TemplateSpec(Part):
    """The pod-level fields a TrainingJob may set. Keys of an object stored before the schema
    refused them are kept apart (`refused`), never rendered."""

    model_config = ConfigDict(extra="allow", json_schema_extra=closed(
        "spec.template.spec", REFUSED_POD_FIELDS))

    node_selector: LabelMap | None = Field(None, max_length=64, json_schema_extra=keys_rule(
        "nodeSelector", "spec.template.spec.nodeSelector"))
    tolerations: list[Toleration] | None = Field(None, max_length=32)
    affinity: Affinity | None = None
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        None, max_length=4)
    volumes: list[Volume] | None = Field(None, max_length=10)
    service_account_name: str | None = Field(None, max_length=NAME)
    automount_service_account_token: bool | None = None
    image_pull_secrets: list[LocalRef] | None = Field(None, max_length=16)
    priority_class_name: str | None = Field(None, max_length=NAME)
    scheduler_name: str | None = Field(None, max_length=NAME)
    security_context: PodSecurityContext | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(None, alias="hostPID")
    host_ipc: bool | None = Field(None, alias="hostIPC")
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default"] | None = Field(
        None, description="None needs dnsConfig, which a TrainingJob cannot set.")
    enable_service_links: bool | None = None
    runtime_class_name: str | None = Field(None, max_length=NAME)

    def refused(self) -> list[str]:
        """Keys no TrainingJob may set that an older object holds, volumes' included."""
        out = [f"spec.template.spec.{k}" for k in sorted(self.model_extra or {})]
        for i, volume in enumerate(self.volumes or ()):
            out += [f"spec.template.spec.volumes[{i}].{k}"
                    for k in sorted(volume.model_extra or {})]
        return out

    def dump(self) -> dict[str, Any]:
        out = self.model_dump(by_alias=True, exclude_none=True, exclude={
            *(self.model_extra or ()), "volumes"})
        if self.volumes is not None:
            out["volumes"] = [v.dump() for v in self.volumes]
        return out
