"""Pure: the parts of a pod a TrainingJob's template may set, as frozen models of core/v1's
shapes (volumes, affinity, tolerations, security contexts, ...), with the CEL rules that refuse
at apply what a TrainingJob may not set; models.py builds the spec from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from trainingjob_operator.schema import (
    LabelMap,
    Model,
    PartQuantity,
    keys_rule,
    rule,
    rules,
)

# Parts of a pod: the shapes of core/v1, typed, with every optional field None by default and
# dumped with exclude_none, so the pod gets exactly what the user wrote. The admission policy
# judges values (who may set hostNetwork, which priority class); these judge shape.
NAME = 253   # a DNS subdomain: object, node, driver and signer names
LABEL = 63   # a label value or DNS label
KEY = 317    # a qualified name: a DNS subdomain prefix (253), '/', a name (63)
PATH = 512   # a path in a container or on a node
MODE = 0o777


def _cel_list(names: Iterable[str]) -> str:
    return "[" + ", ".join(f"has(self.{n})" for n in names) + "]"


# A refused key keeps the type a pod gives it (CEL can test only a typed property with has()).
_ANY_OF_TYPE: dict[str, dict[str, Any]] = {
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "array": {"type": "array", "items": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}},
    "string": {"type": "string"}, "integer": {"type": "integer"},
    "boolean": {"type": "boolean"}}
_REFUSED_TYPES = {
    **dict.fromkeys(("containers", "initContainers", "ephemeralContainers", "hostAliases",
                     "readinessGates", "resourceClaims", "schedulingGates"), "array"),
    **dict.fromkeys(("restartPolicy", "hostname", "subdomain", "nodeName", "preemptionPolicy",
                     "serviceAccount", "hostnameOverride"), "string"),
    **dict.fromkeys(("terminationGracePeriodSeconds", "activeDeadlineSeconds", "priority"),
                    "integer"),
    **dict.fromkeys(("hostUsers", "setHostnameAsFQDN", "shareProcessNamespace"), "boolean")}


def _closed(field: str, refused: Mapping[str, str], one_of: Sequence[str] = (),
            kind: str = "") -> Callable[[dict[str, Any]], None]:
    """The JSON Schema of a pod part whose unknown keys are refused at apply for every client.

    Structural schemas prune unknown fields, and only kubectl's strict field validation
    (the default since 1.27) turns them into errors, so the object keeps them
    (x-kubernetes-preserve-unknown-fields) and a rule refuses any: CEL cannot read an unknown
    field, but size() of the object counts every key the object holds. Each key a pod takes
    and a TrainingJob may not (`refused`: key -> the fix) is a property with a rule of its own,
    so its message names it. `one_of`: exactly one of these keys (a volume's source)."""
    def extra(schema: dict[str, Any]) -> None:
        props = schema.setdefault("properties", {})
        for name, fix in refused.items():
            props[name] = {**_ANY_OF_TYPE[_REFUSED_TYPES.get(name, "object")],
                           **rule("false", f"{field}.{name} {fix}")}
        known = sorted(props)
        checks = [(f"size(dyn(self)) == {_cel_list(known)}.filter(x, x).size()",
                  f"{field} may set only {', '.join(k for k in known if k not in refused)}: "
                  "remove the other keys")]
        if one_of:
            checks.append((f"{_cel_list([*one_of, *(k for k in refused if k not in one_of)])}"
                          ".filter(x, x).size() == 1",
                          f"{field} must set exactly one {kind}: one of {', '.join(one_of)}"))
        schema["x-kubernetes-preserve-unknown-fields"] = True
        schema.setdefault("x-kubernetes-validations", []).extend(rules(*checks)[
            "x-kubernetes-validations"])
    return extra


def one_of(field: str, names: Sequence[str], kind: str) -> dict[str, Any]:
    return rule(f"{_cel_list(names)}.filter(x, x).size() == 1",
                 f"{field} must set exactly one {kind}: one of {', '.join(names)}")


class Part(Model):
    """A part of a pod spec, dumped as the pod takes it."""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class LocalRef(Part):
    name: str = Field(max_length=NAME)


class KeyRef(Part):
    name: str = Field(max_length=NAME)
    key: str = Field(max_length=NAME)
    optional: bool | None = None


class KeyToPath(Part):
    key: str = Field(max_length=NAME)
    path: str = Field(max_length=PATH)
    mode: int | None = Field(None, ge=0, le=MODE)


class ConfigMapVolume(Part):
    name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    default_mode: int | None = Field(None, ge=0, le=MODE)
    optional: bool | None = None


class SecretVolume(Part):
    secret_name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    default_mode: int | None = Field(None, ge=0, le=MODE)
    optional: bool | None = None


class ObjectFieldSelector(Part):
    api_version: str | None = Field(None, max_length=64)
    field_path: str = Field(max_length=256)


class ResourceFieldSelector(Part):
    container_name: str | None = Field(None, max_length=LABEL)
    resource: str = Field(max_length=NAME)
    divisor: PartQuantity | None = None


class DownwardAPIFile(Part):
    path: str = Field(max_length=PATH)
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = Field(None, ge=0, le=MODE)


class DownwardAPIVolume(Part):
    items: list[DownwardAPIFile] | None = Field(None, max_length=4)
    default_mode: int | None = Field(None, ge=0, le=MODE)


class ServiceAccountTokenProjection(Part):
    audience: str | None = Field(None, max_length=NAME)
    expiration_seconds: int | None = Field(None, ge=600, le=2**32)
    path: str = Field(max_length=PATH)


class LabelSelectorRequirement(Part):
    key: str = Field(max_length=KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[Annotated[str, Field(max_length=LABEL)]] | None = Field(None, max_length=8)


class LabelSelector(Part):
    match_labels: dict[str, Annotated[str, Field(max_length=LABEL)]] | None = Field(
        None, max_length=8, json_schema_extra=keys_rule("label", "matchLabels"))
    match_expressions: list[LabelSelectorRequirement] | None = Field(None, max_length=4)


class ClusterTrustBundleProjection(Part):
    name: str | None = Field(None, max_length=NAME)
    signer_name: str | None = Field(None, max_length=NAME)
    label_selector: LabelSelector | None = None
    optional: bool | None = None
    path: str = Field(max_length=PATH)


class KeysProjection(Part):
    """A projected volume's configMap or secret source (core/v1 ConfigMapProjection,
    SecretProjection): `name`, not a volume's secretName, and no defaultMode of its own."""

    name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    optional: bool | None = None


class DownwardAPIProjection(Part):
    items: list[DownwardAPIFile] | None = Field(None, max_length=4)


class VolumeProjection(Part):
    model_config = ConfigDict(json_schema_extra=one_of(
        "projected.sources[]",
        ("configMap", "secret", "downwardAPI", "serviceAccountToken", "clusterTrustBundle"),
        "projection"))

    config_map: KeysProjection | None = None
    secret: KeysProjection | None = None
    downward_api: DownwardAPIProjection | None = Field(None, alias="downwardAPI")
    service_account_token: ServiceAccountTokenProjection | None = None
    cluster_trust_bundle: ClusterTrustBundleProjection | None = None


class ProjectedVolume(Part):
    sources: list[VolumeProjection] | None = Field(None, max_length=3)
    default_mode: int | None = Field(None, ge=0, le=MODE)


class CSIVolume(Part):
    driver: str = Field(max_length=NAME)
    read_only: bool | None = None
    fs_type: str | None = Field(None, max_length=LABEL)
    volume_attributes: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=8, json_schema_extra=rule(
            "self.all(k, size(k) <= 253)",
            "csi.volumeAttributes keys must be at most 253 characters"))
    node_publish_secret_ref: LocalRef | None = None


class EmptyDirVolume(Part):
    medium: str | None = Field(None, max_length=LABEL, json_schema_extra=rule(
        "self in ['', 'Memory', 'HugePages'] || self.startsWith('HugePages-')",
        "emptyDir.medium must be '', Memory, HugePages or HugePages-<size>"))
    size_limit: PartQuantity | None = None


class ClaimMetadata(Part):
    labels: LabelMap | None = Field(None, max_length=8, json_schema_extra=keys_rule(
        "label", "volumeClaimTemplate.metadata.labels"))
    annotations: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=8, json_schema_extra=keys_rule(
            "annotation", "volumeClaimTemplate.metadata.annotations"))


class ClaimResources(Part):
    requests: dict[str, PartQuantity] | None = Field(None, max_length=4)
    limits: dict[str, PartQuantity] | None = Field(None, max_length=4)


class TypedLocalRef(Part):
    api_group: str | None = Field(None, max_length=NAME)
    kind: str = Field(max_length=LABEL)
    name: str = Field(max_length=NAME)


class TypedObjectRef(TypedLocalRef):
    namespace: str | None = Field(None, max_length=LABEL)


class ClaimSpec(Part):
    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                               "ReadWriteOncePod"]] | None = Field(None, max_length=4)
    resources: ClaimResources | None = None
    storage_class_name: str | None = Field(None, max_length=NAME)
    volume_mode: Literal["Filesystem", "Block"] | None = None
    selector: LabelSelector | None = None
    data_source: TypedLocalRef | None = None
    data_source_ref: TypedObjectRef | None = None
    volume_attributes_class_name: str | None = Field(None, max_length=NAME)


class ClaimTemplate(Part):
    metadata: ClaimMetadata | None = None
    spec: ClaimSpec


class EphemeralVolume(Part):
    volume_claim_template: ClaimTemplate


class PersistentVolumeClaimVolume(Part):
    claim_name: str = Field(max_length=NAME)
    read_only: bool | None = None


class HostPathVolume(Part):
    path: str = Field(max_length=PATH)
    type: Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"] | None = None


class NFSVolume(Part):
    server: str = Field(max_length=NAME)
    path: str = Field(max_length=PATH)
    read_only: bool | None = None


# The restricted Pod Security profile's volume types, and hostPath and nfs (the admission
# policy lets only users who may create such pods use those two).
VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                  "persistentVolumeClaim", "projected", "secret", "hostPath", "nfs")
# Every other type a pod takes mounts from the node or the network (gitRepo clones as root on
# the node: CVE-2025-1767): refused at apply.
_PVC_FIX = ("is not a volume type a TrainingJob may use: use a PersistentVolumeClaim "
            "(persistentVolumeClaim or ephemeral) backed by that storage, or csi")
REFUSED_VOLUME_SOURCES = {name: _PVC_FIX for name in (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume",
    "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "image", "iscsi",
    "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
    "vsphereVolume")}


class VolumeSource(Part):
    """One volume source as a pod's volume takes it; a key the schema no longer takes (an
    object stored before it did) is kept apart, for `sources` to name, and never rendered."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_closed(
        "spec.output.volume", REFUSED_VOLUME_SOURCES, VOLUME_SOURCES, "volume source"))

    config_map: ConfigMapVolume | None = None
    csi: CSIVolume | None = None
    downward_api: DownwardAPIVolume | None = Field(None, alias="downwardAPI")
    empty_dir: EmptyDirVolume | None = None
    ephemeral: EphemeralVolume | None = None
    persistent_volume_claim: PersistentVolumeClaimVolume | None = None
    projected: ProjectedVolume | None = None
    secret: SecretVolume | None = None
    host_path: HostPathVolume | None = None
    nfs: NFSVolume | None = None

    def sources(self) -> list[str]:
        """Every source key it holds, with the ones the schema does not take."""
        typed = [str(f.alias) for n, f in type(self).model_fields.items()
                 if n != "name" and getattr(self, n) is not None]
        return sorted([*typed, *(k for k in self.model_extra or {} if k != "name")])

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True,
                               exclude=set(self.model_extra or ()))


class Volume(VolumeSource):
    model_config = ConfigDict(json_schema_extra=_closed(
        "spec.template.spec.volumes[]", REFUSED_VOLUME_SOURCES, VOLUME_SOURCES,
        "volume source"))

    name: str = Field(max_length=LABEL)


class NodeSelectorRequirement(Part):
    key: str = Field(max_length=KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[Annotated[str, Field(max_length=NAME)]] | None = Field(None, max_length=8)


class NodeSelectorTerm(Part):
    match_expressions: list[NodeSelectorRequirement] | None = Field(None, max_length=4)
    match_fields: list[NodeSelectorRequirement] | None = Field(None, max_length=2)


class NodeSelector(Part):
    node_selector_terms: list[NodeSelectorTerm] = Field(max_length=3)


class PreferredSchedulingTerm(Part):
    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(Part):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[
        PreferredSchedulingTerm] | None = Field(None, max_length=2)


class PodAffinityTerm(Part):
    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[Annotated[str, Field(max_length=LABEL)]] | None = Field(None, max_length=4)
    topology_key: str = Field(min_length=1, max_length=KEY)
    match_label_keys: list[Annotated[str, Field(max_length=KEY)]] | None = Field(
        None, max_length=4)
    mismatch_label_keys: list[Annotated[str, Field(max_length=KEY)]] | None = Field(
        None, max_length=4)


class WeightedPodAffinityTerm(Part):
    weight: int = Field(ge=1, le=100)
    pod_affinity_term: PodAffinityTerm


class PodAffinity(Part):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        None, max_length=2)
    preferred_during_scheduling_ignored_during_execution: list[
        WeightedPodAffinityTerm] | None = Field(None, max_length=2)


class Affinity(Part):
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


class Toleration(Part):
    key: str | None = Field(None, max_length=KEY)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(None, max_length=LABEL)
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class TopologySpreadConstraint(Part):
    max_skew: int = Field(ge=1, le=2**31 - 1)
    topology_key: str = Field(min_length=1, max_length=KEY)
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: LabelSelector | None = None
    min_domains: int | None = Field(None, ge=1, le=2**31 - 1)
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    node_taints_policy: Literal["Honor", "Ignore"] | None = None
    match_label_keys: list[Annotated[str, Field(max_length=KEY)]] | None = Field(
        None, max_length=4)


class SeccompProfile(Part):
    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    localhost_profile: str | None = Field(None, max_length=PATH)


class SELinuxOptions(Part):
    user: str | None = Field(None, max_length=LABEL)
    role: str | None = Field(None, max_length=LABEL)
    type: str | None = Field(None, max_length=LABEL)
    level: str | None = Field(None, max_length=LABEL)


class Sysctl(Part):
    name: str = Field(max_length=NAME)
    value: str = Field(max_length=1024)


class PodSecurityContext(Part):
    run_as_user: int | None = Field(None, ge=0, le=2**31 - 1)
    run_as_group: int | None = Field(None, ge=0, le=2**31 - 1)
    run_as_non_root: bool | None = None
    fs_group: int | None = Field(None, ge=0, le=2**31 - 1)
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = None
    supplemental_groups: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = Field(
        None, max_length=32)
    seccomp_profile: SeccompProfile | None = None
    app_armor_profile: SeccompProfile | None = None
    se_linux_options: SELinuxOptions | None = None
    sysctls: list[Sysctl] | None = Field(None, max_length=16)


class Capabilities(Part):
    add: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=64)
    drop: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=64)


class ContainerSecurityContext(Part):
    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    read_only_root_filesystem: bool | None = None
    run_as_non_root: bool | None = None
    run_as_user: int | None = Field(None, ge=0, le=2**31 - 1)
    run_as_group: int | None = Field(None, ge=0, le=2**31 - 1)
    seccomp_profile: SeccompProfile | None = None
    app_armor_profile: SeccompProfile | None = None
    se_linux_options: SELinuxOptions | None = None
    proc_mount: Literal["Default", "Unmasked"] | None = None


class VolumeMount(Part):
    name: str = Field(max_length=LABEL)
    mount_path: str = Field(min_length=1, max_length=PATH)
    read_only: bool | None = None
    sub_path: str | None = Field(None, max_length=PATH)
    sub_path_expr: str | None = Field(None, max_length=PATH)
    mount_propagation: str | None = Field(None, max_length=32, json_schema_extra=rule(
        "self in ['None', 'HostToContainer']",
        "spec.volumeMounts[].mountPropagation must be None or HostToContainer: a "
        "TrainingJob's mounts never propagate back to the node (Bidirectional)"))


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

    model_config = ConfigDict(extra="allow", json_schema_extra=_closed(
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
