"""Pure: the parts of a pod a TrainingJob's template may set, as frozen models of core/v1's
shapes (affinity, tolerations, security contexts, mounts, ...), with the CEL rules that refuse
at apply what a TrainingJob may not set; pod_volumes.py holds the volumes, pod_template.py the
pod-level fields, and models.py builds the spec from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from trainingjob_operator.schema import (
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


def closed(field: str, refused: Mapping[str, str], one_of: Sequence[str] = (),
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


class ObjectFieldSelector(Part):
    api_version: str | None = Field(None, max_length=64)
    field_path: str = Field(max_length=256)


class ResourceFieldSelector(Part):
    container_name: str | None = Field(None, max_length=LABEL)
    resource: str = Field(max_length=NAME)
    divisor: PartQuantity | None = None


class LabelSelectorRequirement(Part):
    key: str = Field(max_length=KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[Annotated[str, Field(max_length=LABEL)]] | None = Field(None, max_length=8)


class LabelSelector(Part):
    match_labels: dict[str, Annotated[str, Field(max_length=LABEL)]] | None = Field(
        None, max_length=8, json_schema_extra=keys_rule("label", "matchLabels"))
    match_expressions: list[LabelSelectorRequirement] | None = Field(None, max_length=4)


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
