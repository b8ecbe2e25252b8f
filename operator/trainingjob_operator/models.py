"""Frozen pydantic models of the TrainingJob API: the one source of the CRD schema
(see crd.py) and the typed form in which the operator reads every object it decides on."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from trainingjob_operator.vocabulary import (
    DEFAULT_ACCELERATORS,
    DEFAULT_GPU_RESOURCE,
    RESERVED_GPU_ENV,
    Phase,
)

# A free-form object that Kubernetes stores as given (PodTemplateSpec parts, env sources...).
FreeForm = Annotated[dict[str, Any], WithJsonSchema(
    {"type": "object", "x-kubernetes-preserve-unknown-fields": True})]


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL validations in the CRD schema; each message names the field and the fix. A message
    that starts with a quote is a messageExpression (it can name what is wrong)."""
    return {"x-kubernetes-validations": [
        {"rule": rule, "messageExpression" if message[0] in "'\"[" else "message": message}
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


# A quantity inside a pod part: its shape only (the pod's own validation judges the value);
# the quantity rule, repeated in every item of nested lists, would exceed the CEL budget.
PartQuantity = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True,
                                                    "maxLength": 64})]


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
    return _rule(f"!self.exists(k, {_names_in(DEFAULT_ACCELERATORS)})",
                 f"'{field} sets ' + self.filter(k, {_names_in(DEFAULT_ACCELERATORS)})[0] + "
                 "', an accelerator: request accelerators with spec.gpusPerWorker and "
                 "spec.gpuResource'")


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
                           **_rule("false", f"{field}.{name} {fix}")}
        known = sorted(props)
        rules = [(f"size(dyn(self)) == {_cel_list(known)}.filter(x, x).size()",
                  f"{field} may set only {', '.join(k for k in known if k not in refused)}: "
                  "remove the other keys")]
        if one_of:
            rules.append((f"{_cel_list([*one_of, *(k for k in refused if k not in one_of)])}"
                          ".filter(x, x).size() == 1",
                          f"{field} must set exactly one {kind}: one of {', '.join(one_of)}"))
        schema["x-kubernetes-preserve-unknown-fields"] = True
        schema.setdefault("x-kubernetes-validations", []).extend(_rules(*rules)[
            "x-kubernetes-validations"])
    return extra


def _one_of(field: str, names: Sequence[str], kind: str) -> dict[str, Any]:
    return _rule(f"{_cel_list(names)}.filter(x, x).size() == 1",
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
        None, max_length=8, json_schema_extra=_keys_rule("label", "matchLabels"))
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
    model_config = ConfigDict(json_schema_extra=_one_of(
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
        None, max_length=8, json_schema_extra=_rule(
            "self.all(k, size(k) <= 253)",
            "csi.volumeAttributes keys must be at most 253 characters"))
    node_publish_secret_ref: LocalRef | None = None


class EmptyDirVolume(Part):
    medium: str | None = Field(None, max_length=LABEL, json_schema_extra=_rule(
        "self in ['', 'Memory', 'HugePages'] || self.startsWith('HugePages-')",
        "emptyDir.medium must be '', Memory, HugePages or HugePages-<size>"))
    size_limit: PartQuantity | None = None


class ClaimMetadata(Part):
    labels: LabelMap | None = Field(None, max_length=8, json_schema_extra=_keys_rule(
        "label", "volumeClaimTemplate.metadata.labels"))
    annotations: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=8, json_schema_extra=_keys_rule(
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
    mount_propagation: str | None = Field(None, max_length=32, json_schema_extra=_rule(
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

    node_selector: LabelMap | None = Field(None, max_length=64, json_schema_extra=_keys_rule(
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
        json_schema_extra=_rule("self.startsWith('/') && !self.contains(':')",
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
    labels: LabelMap = Field(default_factory=dict, max_length=64, json_schema_extra=_keys_rule(
        "label", "spec.template.metadata.labels"))
    annotations: dict[str, Annotated[str, Field(max_length=ANNOTATION)]] = Field(
        default_factory=dict, max_length=64, json_schema_extra=_keys_rule(
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
    model_config = ConfigDict(json_schema_extra=_one_of(
        "spec.env[].valueFrom", ("fieldRef", "resourceFieldRef", "configMapKeyRef",
                                 "secretKeyRef"), "source"))

    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeyRef | None = None
    secret_key_ref: KeyRef | None = None


class EnvVar(Model):
    model_config = ConfigDict(json_schema_extra=_rule(
        "!has(self.valueFrom) || !has(self.value) || self.value == ''",
        "spec.env: set value or valueFrom, not both"))

    name: str = Field(min_length=1, max_length=256, json_schema_extra=_rules(
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
    model_config = ConfigDict(json_schema_extra=_rules(
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
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1, description="Higher is admitted first.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    stop: bool = Field(False, json_schema_extra=_rule(
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
