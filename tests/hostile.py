"""Hypothesis strategies for hostile TrainingJob manifests, derived from the CRD's own schema.

`valid_spec` walks the openAPIV3Schema of crds/: every property the schema declares, of its
type, within its bounds (minimum, maximum, maxLength, maxItems, maxProperties, enum,
nullable), optional ones sometimes left out. Leaves whose meaning the schema cannot say
(an image, a label key, a quantity) and the parts that are pod fields (spec.template.spec,
spec.securityContext, spec.output.volume, env sources, volume mounts) come from small lists of
good values in VALUES, so an unmutated manifest is one the API server, the chart's admission
policy (for a user who may not create pods) and the operator accept, whatever shape the CRD
gives those parts.

`manifests` then applies a few MUTATIONS to it: wrong types, out-of-range numbers, huge
strings, bad quantities and label keys, empty commands, unknown and missing fields, bad
names; and, as tables of STRIKES (each a hostile value at a path), the free-form parts
broken in type and shape, explicit nulls, pod fields the operator owns, objects near and
beyond every size bound, accelerators outside spec.gpuResource, a CPU-only gang of 4096,
reserved GPU env names, Pod Security payloads and control characters. Each mutation records
the path it touched, so a refusal can be checked to name it; a strike also says whether a user
who may not create pods must be refused it at apply (`privileged`), whether the job must
never get a pod (`no_pods`) and whether it is near the size limits (`big`).
`catalogue` applies every strike once to one plain job, so that each is probed every run;
`generated` draws a fixed, derandomized sample of combinations.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
CRD_FILE = ROOT / "crds" / "trainingjobs.training.dev.yaml"
OUTCOME = "devcluster.training.dev/"  # the annotations kwok's Stages play a worker by


def crd_schema(path: Path = CRD_FILE) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


class Key(str):
    """A map key in a path: shown as [key], as the API server's field paths do."""

    __slots__ = ()


Step = str | int | Key
FieldPath = tuple[Step, ...]
END = -1  # in a strike's path: append to the list there


def dotted(path: FieldPath) -> str:
    out = ""
    for step in path:
        if isinstance(step, Key | int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


def shape(path: FieldPath) -> str:
    """The schema path of a value path: list indexes and map keys as []."""
    return dotted(tuple(Key("") if not isinstance(s, str) or isinstance(s, Key) else s
                        for s in path))


_IMAGES = st.sampled_from(["team/train:1.4", "train:1.0", "team/train@sha256:" + "a" * 64])
_WORDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_./", min_size=1, max_size=12)
_LABEL_KEYS = st.sampled_from(["team", "example.com/team", "app.kubernetes.io/part-of",
                               "a_b.c-d", "x" * 63])
_LABEL_VALUES = st.sampled_from(["", "a", "v1.2_x-y", "Z" * 63])
_QUANTITIES = {"cpu": st.sampled_from([1, 2, "100m", "0.5", "1"]),
               "memory": st.sampled_from(["64Mi", "1Gi", "1G", 134217728, "0.5Gi"])}


@st.composite
def _resources(draw: st.DrawFn) -> dict[str, Any]:
    """Requests no more than limits, as the schema's rule wants."""
    names = draw(st.lists(st.sampled_from(sorted(_QUANTITIES)), unique=True, max_size=2))
    out: dict[str, Any] = {}
    for part in draw(st.lists(st.sampled_from(["requests", "limits"]), unique=True)):
        out[part] = {n: draw(_QUANTITIES[n]) for n in names}
    if "requests" in out and "limits" in out:
        out["limits"] = dict(out["requests"])
    return out


_TOLERATIONS: list[dict[str, Any]] = [
    {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "team", "operator": "Equal", "value": "a", "effect": "NoExecute",
     "tolerationSeconds": 60}]
_VOLUMES: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}},
                                  {"name": "cfg", "configMap": {"name": "cfg"}},
                                  {"name": "shm", "emptyDir": {"medium": "Memory"}}]
# A pod overlay nothing refuses: every node matches its required affinity (kubernetes.io/os),
# its tolerations name their taint, its volumes are of the restricted profile's types.
_POD_OVERLAY = st.fixed_dictionaries({}, optional={
    "nodeSelector": st.dictionaries(_LABEL_KEYS, _LABEL_VALUES, max_size=2),
    "tolerations": st.lists(st.sampled_from(_TOLERATIONS), max_size=2,
                            unique_by=lambda t: str(t["key"])),
    "affinity": st.sampled_from([
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
        {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "gpu", "operator": "In", "values": ["a100"]}]}}]}}]),
    "volumes": st.lists(st.sampled_from(_VOLUMES), max_size=2,
                        unique_by=lambda v: str(v["name"])),
    "securityContext": st.sampled_from([
        {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        {"fsGroup": 1000}]),
    "schedulerName": st.just("default-scheduler"),
    "enableServiceLinks": st.booleans(),
})

# Leaves by schema path ([] for any list index or map key); what the schema cannot say.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "spec.image": _IMAGES,
    "spec.setup.image": _IMAGES,
    "spec.command": st.lists(_WORDS, min_size=1, max_size=3),
    "spec.setup.command": st.lists(_WORDS, min_size=1, max_size=3),
    "spec.workers": st.integers(1, 3),
    "spec.gpusPerWorker": st.sampled_from([0, 0, 0, 1, 2]),
    "spec.gpuResource": st.just("nvidia.com/gpu"),
    "spec.resources": _resources(),
    # value or valueFrom, not both (the schema's rule on an env entry)
    "spec.env[]": st.fixed_dictionaries(
        {"name": st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,10}\Z")},
        optional={"value": st.text(max_size=20)}) | st.fixed_dictionaries(
        {"name": st.just("POD"), "valueFrom": st.just({"fieldRef": {
            "fieldPath": "metadata.name"}})}),
    "spec.workingDir": st.sampled_from(["/work", "/"]),
    # A mount needs a volume of the template's: valid_spec pairs them.
    "spec.volumeMounts": st.just([]),
    "spec.securityContext": st.sampled_from([
        {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        {"runAsNonRoot": True, "readOnlyRootFilesystem": True}]),
    "spec.output.volume": st.just({"emptyDir": {}}),
    "spec.output.path": st.sampled_from(["/output", "/models/run-1"]),
    "spec.template.metadata.labels[]": _LABEL_VALUES,
    "spec.template.spec": _POD_OVERLAY,
    "spec.ttlSecondsAfterFinished": st.sampled_from([None, 3600]),
    "spec.stop": st.sampled_from([False, False, False, True]),
    "spec.priority": st.integers(-1000, 1000),
}
KEYS: dict[str, st.SearchStrategy[str]] = {
    "spec.template.metadata.labels": _LABEL_KEYS,
    "spec.template.metadata.annotations": _LABEL_KEYS,
}


@functools.cache
def valid_spec() -> st.SearchStrategy[Any]:
    """Specs the schema in crds/ takes, read once (at test time, not import time)."""
    return _paired(from_schema(crd_schema()["properties"]["spec"]))


@st.composite
def _paired(draw: st.DrawFn, specs: st.SearchStrategy[Any]) -> Any:
    """Mount a template volume now and then: a mount names a volume the pod has."""
    spec = draw(specs)
    volumes = ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    if volumes and draw(st.booleans()):
        spec["volumeMounts"] = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"}
                                for v in volumes]
    return spec


def from_schema(schema: Mapping[str, Any], path: str = "spec") -> st.SearchStrategy[Any]:
    """Valid values of a structural schema node (VALUES and KEYS override leaves)."""
    if path in VALUES:
        return VALUES[path]
    values = _typed(schema, path)
    if schema.get("nullable"):
        values = st.none() | values
    return values


def _typed(schema: Mapping[str, Any], path: str) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        if props:
            return st.fixed_dictionaries(
                {k: from_schema(v, f"{path}.{k}") for k, v in props.items() if k in required},
                optional={k: from_schema(v, f"{path}.{k}") for k, v in props.items()
                          if k not in required})
        if "additionalProperties" in schema:
            return st.dictionaries(KEYS.get(path, _WORDS),
                                   from_schema(schema["additionalProperties"], f"{path}[]"),
                                   max_size=min(3, schema.get("maxProperties", 3)))
        return st.just({})  # free-form: {} is valid everywhere the schema allows one
    if kind == "array":
        return st.lists(from_schema(schema["items"], f"{path}[]"),
                        min_size=schema.get("minItems", 0),
                        max_size=min(3, schema.get("maxItems", 3)))
    if kind == "integer":
        low = schema.get("minimum", 0)
        return st.integers(low, min(schema.get("maximum", low + 10_000), low + 10_000))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= schema.get("maxLength", 20))
        return st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=schema.get(
            "minLength", 0), max_size=min(schema.get("maxLength", 20), 20))
    if schema.get("x-kubernetes-int-or-string"):
        return _QUANTITIES["cpu"]
    raise ValueError(f"{path}: no strategy for schema {dict(schema)}")


def _lookup(body: Any, path: FieldPath) -> tuple[bool, Any]:
    """(found, value) at a path; an earlier mutation may have broken the way there."""
    node = body
    for step in path:
        in_dict = isinstance(node, dict) and not isinstance(step, int) and step in node
        if not in_dict and not (isinstance(node, list) and isinstance(step, int)
                                and 0 <= step < len(node)):
            return False, None
        node = node[step]
    return True, node


# The parts the schema keeps as given, or where the chart's policy (not the schema) refuses
# and says the field's own name ("a gitRepo volume", "seccompProfile"), not its path.
FREE_FORM_ROOTS: tuple[FieldPath, ...] = (
    ("spec", "template", "spec"), ("spec", "template", "metadata", "annotations"),
    ("spec", "securityContext"), ("spec", "output", "volume"), ("spec", "volumeMounts"),
    ("spec", "env"))
# Field names too common to show that a message means this field.
GENERIC = {"spec", "template", "metadata", "name", "value", "values", "key", "operator",
           "type", "path", "items", "env", "args", "command", "image", "volume", "volumes",
           "limits", "requests", "resources", "labels", "annotations", "output", "effect",
           "securityContext", "workers", "containers", "level", "user", "role"}
CONTAINER_FIELDS = {"command", "args", "env", "workingDir", "volumeMounts", "securityContext",
                    "resources", "image"}


def words(path: FieldPath) -> list[str]:
    """The field's own names, inside a free-form part: what a policy's message may say. A
    field that names an object (runtimeClassName) is also named by that object's kind
    ('RuntimeClass "nvidia" not found')."""
    for root in FREE_FORM_ROOTS:
        if path[:len(root)] == root:
            names = [s for s in path[len(root):] if isinstance(s, str)
                     and len(s) >= (6 if isinstance(s, Key) else 4) and s not in GENERIC]
            return names + [n[:-4] for n in names if n.endswith("Name") and len(n) > 8
                            and not isinstance(n, Key)]
    return []


_ANY_CONTAINER = object()  # in a pod path: containers or initContainers
_ANY_INDEX = object()


def pod_paths(path: FieldPath) -> list[str]:
    """Regexes of the pod field a spec path becomes (spec.template.spec.volumes[0].nfs is the
    pod's spec.volumes[N].nfs; spec.env[0] is spec.containers[N].env[0]), from the field
    itself up to the pod-level field that holds it."""
    pod: tuple[object, ...]
    if path[:3] == ("spec", "template", "spec"):
        pod, floor = ("spec", *path[3:]), 2
    elif path[:3] == ("spec", "template", "metadata"):
        pod, floor = ("metadata", *path[3:]), 2
    elif path[:3] == ("spec", "output", "volume"):
        pod, floor = ("spec", "volumes", _ANY_INDEX, *path[3:]), 3
    elif len(path) > 1 and path[0] == "spec" and path[1] in CONTAINER_FIELDS:
        pod, floor = ("spec", _ANY_CONTAINER, _ANY_INDEX, *path[1:]), 4
    elif path[:2] == ("spec", "setup") and len(path) > 2:
        pod, floor = ("spec", _ANY_CONTAINER, _ANY_INDEX, *path[2:]), 4
    else:
        return []

    def regex(steps: tuple[object, ...]) -> str:
        out = ""
        for step in steps:
            if step is _ANY_CONTAINER:
                out += r"\.(?:initContainers|containers)"
            elif step is _ANY_INDEX or (isinstance(step, int) and not isinstance(step, bool)):
                out += r"(?:\[\d+\])?"  # Go's decoding errors leave indexes out
            elif isinstance(step, Key):
                out += r"\[" + re.escape(step) + r"\]"
            else:
                out += ("." if out else "") + re.escape(str(step))
        return out

    return [regex(pod[:end]) for end in range(len(pod), floor - 1, -1)]


Setting = tuple[FieldPath, Any]


@dataclass(frozen=True, eq=False)
class Strike:
    """One hostile change: values set at paths (recorded: what a refusal should name), after
    setup settings that let it reach its field (not recorded)."""

    label: str
    sets: tuple[Setting, ...]
    setup: tuple[Setting, ...] = ()
    privileged: bool = False  # more than Pod Security baseline, or than the issue allows
    no_pods: bool = False     # the queue cannot count it or it is unbounded: never a pod
    big: bool = False         # near the object size limits: "too large" is a fair answer


def strike(label: str, *sets: Setting, setup: Iterable[Setting] = (), privileged: bool = False,
           no_pods: bool = False, big: bool = False) -> Strike:
    return Strike(label, tuple(sets), tuple(setup), privileged, no_pods, big)


@dataclass
class Manifest:
    """A generated TrainingJob, and the paths its mutations touched (none: it is valid)."""

    body: dict[str, Any]
    mutated: list[FieldPath] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # mutation/strike labels, for reports
    asks: list[tuple[Strike, tuple[Setting, ...]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    @property
    def label(self) -> str:
        return ",".join(self.classes) or "valid"

    def named_in(self, message: str) -> bool:
        """Does an error message name a field this manifest's mutations touched: the field
        itself or a parent below the top level (spec.resources for spec.resources.limits),
        or, in a free-form part, the field's own name (seccompProfile, gitRepo)?"""
        return any(dotted(path[:end]) in message for path in self.mutated
                   for end in range(len(path), 1 if len(path) > 1 else 0, -1)) or any(
            w in message for path in self.mutated for w in words(path))

    def pod_named_in(self, message: str) -> bool:
        """Does a pod's (or the API server's) refusal name the pod field a mutation became, or,
        in a free-form part, the field's own name in any case ("Pod Overhead set...")?"""
        lower = message.lower()
        return any(re.search(p, message) for path in self.mutated for p in pod_paths(path)) \
            or any(w.lower() in lower for path in self.mutated for w in words(path))

    def strike(self, mutation: str, s: Strike) -> None:
        """Apply a strike: its setup, then its sets (recorded). END appends to a list, once
        per list: a set's END means the entry its setup appended there."""
        ends: dict[FieldPath, int] = {}
        for path, value in s.setup:
            _set(self.body, self._ends(path, ends), copy.deepcopy(value))
        done = tuple((self._ends(path, ends), value) for path, value in s.sets)
        for path, value in done:
            _set(self.body, path, copy.deepcopy(value))
        self.mutated.extend(path for path, _ in done)
        self.classes.append(f"{mutation}:{s.label}")
        # A setup that a set then fills in (the volume a source goes into) is checked by it.
        setups = tuple((path, v) for path, v in ((self._ends(p, ends), v) for p, v in s.setup)
                       if not any(done_path[:len(path)] == path for done_path, _ in done))
        self.asks.append((s, done + setups))

    def _ends(self, path: FieldPath, ends: dict[FieldPath, int]) -> FieldPath:
        out: list[Step] = []
        for step in path:
            if step == END and not isinstance(step, Key):
                stem = tuple(out)
                if stem not in ends:
                    found, node = _lookup(self.body, stem)
                    ends[stem] = len(node) if found and isinstance(node, list) else 0
                step = ends[stem]
            out.append(step)
        return tuple(out)

    def _kept(self, settings: tuple[Setting, ...]) -> bool:
        return all(_lookup(self.body, path) == (True, value) for path, value in settings)

    def privileged(self) -> list[str]:
        """The privileged strikes still in the manifest (a later mutation may undo one)."""
        return [s.label for s, kept in self.asks if s.privileged and self._kept(kept)]

    def no_pods(self) -> list[str]:
        return [s.label for s, kept in self.asks if s.no_pods and self._kept(kept)]

    @property
    def big(self) -> bool:
        return any(s.big for s, _ in self.asks)


Mutation = Callable[[st.DrawFn, dict[str, Any]], FieldPath]


def _set(body: dict[str, Any], path: FieldPath, value: Any) -> FieldPath:
    """Set a value, making the objects and lists on the way if an earlier mutation broke them
    (or they are missing); END appends to a list. Returns the path set, END resolved."""
    node: Any = body
    done: list[Step] = []
    step: Any
    for i, step in enumerate(path):
        if isinstance(node, list):
            assert isinstance(step, int)
            step = len(node) if step == END else step
            node.extend([None] * (step + 1 - len(node)))
        done.append(step)
        if i == len(path) - 1:
            node[step] = value
            break
        want = list if isinstance(path[i + 1], int) else dict
        child = node[step] if isinstance(node, list) or step in node else None
        if not isinstance(child, want):
            child = want()
            node[step] = child
        node = child
    return tuple(done)


def _leaves(node: Any, path: FieldPath = ()) -> list[FieldPath]:
    """Every path in a manifest (objects, lists and leaves)."""
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*path, i))
    return out


_MAPS = ("requests", "limits", "labels", "annotations", "nodeSelector")


def _in_map(path: FieldPath) -> FieldPath:
    """Mark keys of the maps the schema declares as maps, for the error's [key] notation."""
    return tuple(Key(s) if i and isinstance(s, str) and path[i - 1] in _MAPS else s
                 for i, s in enumerate(path))


def wrong_type(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    paths = [p for p in _leaves(body["spec"], ("spec",))
             if "annotations" not in p and "valueFrom" not in p]
    path = draw(st.sampled_from(paths))
    value = draw(st.sampled_from(["x", 7, -1, True, None, [], {}, 1.5, ["x"], {"a": 1}]))
    return _in_map(_set(body, path, value))


INTEGERS = ["workers", "gpusPerWorker", "priority", "terminationGracePeriodSeconds",
            "ttlSecondsAfterFinished", "timeouts.queueSeconds", "timeouts.deploySeconds",
            "timeouts.runSeconds", "retries.limit"]


def out_of_range(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    where = draw(st.sampled_from(INTEGERS)).split(".")
    value = draw(st.sampled_from([-1, 0, -(2**31), 10**6, 2**31, 2**63 - 1, -(2**63)]))
    return _set(body, ("spec", *where), value)


def huge_string(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    where = draw(st.sampled_from([("spec", "image"), ("spec", "gpuResource"),
                                  ("spec", "workingDir"), ("spec", "command", 0),
                                  ("spec", "env", 0, "name"), ("spec", "output", "path")]))
    if where[:3] == ("spec", "command", 0):
        body["spec"]["command"] = ["x"]
    if where[:3] == ("spec", "env", 0):
        body["spec"]["env"] = [{"name": "X"}]
    if where[:2] == ("spec", "output"):
        body["spec"]["output"] = {"volume": {"emptyDir": {}}}
    return _set(body, where, "x" * draw(st.sampled_from([64, 300, 1100, 5000])))


BAD_QUANTITIES = ["1.5.3Gi", "-1", -5, "abc", "", " 1", "1e999", "1Gb", "0x10", "1 Gi",
                  "\u0661", "Infinity"]


def bad_quantity(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    part = draw(st.sampled_from(["requests", "limits"]))
    name = draw(st.sampled_from(["cpu", "memory", "example.com/fpga"]))
    resources = body["spec"].setdefault("resources", {})
    if not isinstance(resources, dict):
        body["spec"]["resources"] = resources = {}
    return _set(body, ("spec", "resources", part, Key(name)),
                draw(st.sampled_from(BAD_QUANTITIES)))


def bad_resources(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    """Names and pairs a pod refuses: unknown names, requests over limits, an extended
    resource overcommitted or fractional, the GPUs set here instead of gpusPerWorker."""
    body["spec"]["resources"] = draw(st.sampled_from([
        {"requests": {"gpu": 1}}, {"limits": {"Memory": "1Gi"}},
        {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
        {"requests": {"cpu": 2}, "limits": {"cpu": "1500m"}},
        {"requests": {"example.com/fpga": 1}},
        {"requests": {"example.com/fpga": 2}, "limits": {"example.com/fpga": 1}},
        {"limits": {"example.com/fpga": "500m"}}, {"limits": {"nvidia.com/gpu": 1}},
        {"requests": {"hugepages-2Mi": "2Mi"}}, {"limits": {"a/b/c": 1}},
        {"limits": {f"example.com/r{i}": 1 for i in range(9)}}]))
    return ("spec", "resources")


BAD_KEYS = ["bad key", "-x", "x-", "a/b/c", "x" * 64, "café", "/x", "example.com/",
            "UPPER.case/k", "a" * 254 + "/k", ""]
BAD_VALUES = ["x" * 64, "a b", "-x", "x-", "café", "a/b", "\n"]


def bad_label(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    where = draw(st.sampled_from([("metadata", "labels"), ("metadata", "annotations"),
                                  ("spec", "nodeSelector")]))
    if draw(st.booleans()) or where[1] == "annotations":
        key, value = draw(st.sampled_from(BAD_KEYS)), "v"
    else:
        key, value = "team", draw(st.sampled_from(BAD_VALUES))
    return _set(body, ("spec", "template", *where, Key(key)), value)


def empty_command(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    value = draw(st.sampled_from([[], [""], ["  "], [" ", "train.py"], ["\t"]]))
    if draw(st.booleans()):
        return _set(body, ("spec", "command"), value)
    body["spec"]["setup"] = {"command": value}
    return ("spec", "setup", "command")


def unknown_field(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    objects = [p for p in _leaves(body["spec"], ("spec",))
               if isinstance(_lookup(body, p)[1], dict) and not _free_form(p)] + [("spec",)]
    path = draw(st.sampled_from(objects))
    return _in_map(_set(body, (*path, draw(st.sampled_from(["surprise", "Workers", "x-y"]))),
                        1))


def _free_form(path: FieldPath) -> bool:
    """Inside a part the schema keeps as given (x-kubernetes-preserve-unknown-fields) or a map."""
    return any(s in ("valueFrom", "volume", "volumeMounts", "securityContext", "requests",
                     "limits", "labels", "annotations", "nodeSelector")
               for s in path) or path[:3] == ("spec", "template", "spec")


def missing_required(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    which = draw(st.sampled_from(["image", "setup", "output", "env", "spec"]))
    if which == "image":
        body["spec"].pop("image", None)
        return ("spec", "image")
    if which == "spec":
        del body["spec"]
        return ("spec",)
    if which == "setup":
        body["spec"]["setup"] = {"image": "team/setup:1"}
        return ("spec", "setup", "command")
    if which == "output":
        body["spec"]["output"] = {"path": "/output"}
        return ("spec", "output", "volume")
    body["spec"]["env"] = [{"value": "1"}]
    return ("spec", "env", 0, "name")


def bad_name(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    name = body["metadata"]["name"]
    kind = draw(st.sampled_from(["dots", "digit", "long", "upper", "gang-long"]))
    if kind == "dots":
        name = f"{name}.x"
    elif kind == "digit":
        name = f"0{name}"
        body["spec"]["workers"] = draw(st.integers(1, 3))
    elif kind == "upper":
        name = name.upper()
    elif kind == "long":
        name = name + "a" * draw(st.sampled_from([47, 50, 60, 250]))
    else:
        name = name + "a" * 49
        body["spec"]["workers"] = 12
    body["metadata"]["name"] = name
    return ("metadata", "name")


def bad_env(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    var: dict[str, Any] = draw(st.sampled_from([
        {"name": "A=B", "value": "1"}, {"name": "", "value": "1"}, {"name": "É", "value": "1"},
        {"name": "A\nB"}, {"name": "A\x1b[31mB", "value": "1"},
        {"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]))
    body["spec"]["env"] = [var]
    return ("spec", "env", 0, "name") if "valueFrom" not in var else ("spec", "env", 0)


def bad_text(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    """Strings the schema's rules refuse: images with spaces, resource names, paths."""
    where, value = draw(st.sampled_from([
        (("spec", "image"), " team/train:1"), (("spec", "image"), "team/train:1\t"),
        (("spec", "image"), "team train"), (("spec", "image"), ""),
        (("spec", "gpuResource"), "gpu"), (("spec", "gpuResource"), "bad name!"),
        (("spec", "gpuResource"), ""), (("spec", "gpuResource"), "Nvidia.com/GPU"),
        (("spec", "output", "path"), "output"), (("spec", "output", "path"), "/a:b")]))
    if where[1] == "output":
        body["spec"]["output"] = {"volume": {"emptyDir": {}}}
    if where[1] == "gpuResource":
        body["spec"]["gpusPerWorker"] = 1
    return _set(body, where, value)


def huge_gang(draw: st.DrawFn, body: dict[str, Any]) -> FieldPath:
    """Valid, but too big for any node or for all of them: waits and says so."""
    workers, per = draw(st.sampled_from([(1, 9), (1, 1024), (5, 8), (40, 1), (3, 16),
                                         (4096, 1)]))
    body["spec"].update(workers=workers, gpusPerWorker=per)
    body["metadata"]["name"] = body["metadata"]["name"][:8]
    return ("spec", "workers")


# --- strikes at the free-form parts, the bounds and the security of the pods --------------

POD: FieldPath = ("spec", "template", "spec")
POD_META: FieldPath = ("spec", "template", "metadata")
CONTAINER_SC: FieldPath = ("spec", "securityContext")
OUTPUT: FieldPath = ("spec", "output", "volume")
ANNOTATIONS: FieldPath = (*POD_META, "annotations")


def at(*steps: Step) -> FieldPath:
    return steps


def _pod(label: str, rel: FieldPath, value: Any, **kw: Any) -> Strike:
    return strike(label, ((*POD, *rel), value), **kw)


@dataclass(frozen=True, eq=False)
class Table:
    """A mutation drawn from a list of strikes."""

    name: str
    strikes: tuple[Strike, ...]


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(depth):
        out = {"x": out}
    return out


_EXPR = {"key": "gpu", "operator": "In", "values": ["a100"]}
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"

# Wrong types and shapes in every part of the pod overlay (the operator reads placement from
# affinity, tolerations and nodeSelector; the pod takes the rest).
POD_SHAPES = Table("pod_shape", (
    _pod("affinity-string", at("affinity"), "x"),
    _pod("affinity-list", at("affinity"), [{"nodeAffinity": {}}]),
    _pod("node-affinity-list", at("affinity", "nodeAffinity"), []),
    _pod("node-affinity-string", at("affinity", "nodeAffinity"), "x"),
    _pod("required-string", at("affinity", "nodeAffinity", _REQUIRED), "x"),
    _pod("terms-object", at("affinity", "nodeAffinity", _REQUIRED, "nodeSelectorTerms"),
         {"matchExpressions": [_EXPR]}),
    _pod("term-string", at("affinity", "nodeAffinity", _REQUIRED, "nodeSelectorTerms", 0), "x"),
    _pod("expressions-object", at("affinity", "nodeAffinity", _REQUIRED, "nodeSelectorTerms", 0,
                                  "matchExpressions"), _EXPR),
    _pod("expression-values-string", at("affinity", "nodeAffinity", _REQUIRED,
                                        "nodeSelectorTerms", 0, "matchExpressions", 0),
         {"key": "gpu", "operator": "In", "values": "a100"}),
    _pod("expression-operator-number", at("affinity", "nodeAffinity", _REQUIRED,
                                          "nodeSelectorTerms", 0, "matchExpressions", 0),
         {"key": "gpu", "operator": 5, "values": ["a100"]}),
    _pod("expression-unknown-operator", at("affinity", "nodeAffinity", _REQUIRED,
                                           "nodeSelectorTerms", 0, "matchExpressions", 0),
         {"key": "gpu", "operator": "Near", "values": ["a100"]}),
    _pod("pod-anti-affinity-number", at("affinity", "podAntiAffinity"), 5),
    _pod("preferred-weight-string", at("affinity", "nodeAffinity",
                                       "preferredDuringSchedulingIgnoredDuringExecution"),
         [{"weight": "heavy", "preference": {"matchExpressions": [_EXPR]}}]),
    _pod("tolerations-string", at("tolerations"), "x"),
    _pod("tolerations-object", at("tolerations"), {"key": "gpu", "operator": "Exists"}),
    _pod("toleration-number", at("tolerations", END), 5),
    _pod("toleration-operator-number", at("tolerations", END), {"key": "a", "operator": 5}),
    _pod("toleration-effect-list", at("tolerations", END),
         {"key": "a", "operator": "Exists", "effect": ["NoSchedule"]}),
    _pod("toleration-seconds-string", at("tolerations", END),
         {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": "1h"}),
    _pod("node-selector-string", at("nodeSelector"), "x"),
    _pod("node-selector-list", at("nodeSelector"), ["gpu=a100"]),
    _pod("node-selector-number", at("nodeSelector", Key("gpu")), 5),
    _pod("node-selector-bool", at("nodeSelector", Key("gpu")), True),
    _pod("node-selector-list-value", at("nodeSelector", Key("gpu")), ["a100"]),
    _pod("node-selector-object-value", at("nodeSelector", Key("gpu")), {"a": "b"}),
    _pod("volumes-string", at("volumes"), "x"),
    _pod("volumes-object", at("volumes"), {"name": "v", "emptyDir": {}}),
    _pod("volume-number", at("volumes", END), 5),
    _pod("volume-name-number", at("volumes", END), {"name": 5, "emptyDir": {}}),
    _pod("volume-no-name", at("volumes", END), {"emptyDir": {}}),
    _pod("pod-security-context-string", at("securityContext"), "x"),
    _pod("run-as-user-string", at("securityContext", "runAsUser"), "root"),
    _pod("sysctls-string", at("securityContext", "sysctls"), "x"),
    _pod("scheduler-name-number", at("schedulerName"), 5),
    _pod("priority-class-list", at("priorityClassName"), ["x"]),
    _pod("image-pull-secrets-string", at("imagePullSecrets"), "x"),
    _pod("topology-spread-string", at("topologySpreadConstraints"), "x"),
    _pod("service-account-number", at("serviceAccountName"), 5),
    _pod("automount-string", at("automountServiceAccountToken"), "yes"),
    _pod("host-aliases-string", at("hostAliases"), "x"),
    _pod("dns-config-number", at("dnsConfig"), 5),
    _pod("deep-nesting", at("affinity", "nodeAffinity", "x"), _nested(60)),
))

# Volumes the pod refuses, in the template or as spec.output.volume.
VOLUME_SHAPES = Table("bad_volume", (
    _pod("no-source", at("volumes", END), {"name": "v"}),
    _pod("two-sources", at("volumes", END), {"name": "v", "emptyDir": {},
                                             "configMap": {"name": "c"}}),
    _pod("unknown-source", at("volumes", END), {"name": "v", "fooBar": {"path": "/"}}),
    _pod("source-string", at("volumes", END), {"name": "v", "emptyDir": "x"}),
    _pod("claim-without-name", at("volumes", END), {"name": "v", "persistentVolumeClaim": {}}),
    _pod("config-map-name-number", at("volumes", END), {"name": "v", "configMap": {"name": 5}}),
    _pod("duplicate-name", at("volumes"), [{"name": "dup", "emptyDir": {}},
                                           {"name": "dup", "emptyDir": {}}]),
    _pod("named-like-the-output", at("volumes", END), {"name": "output", "emptyDir": {}},
         setup=[(("spec", "output"), {"volume": {"emptyDir": {}}, "path": "/output"})]),
    strike("output-none", (OUTPUT, {})),
    strike("output-two-sources", (OUTPUT, {"emptyDir": {}, "configMap": {"name": "c"}})),
    strike("output-unknown-source", ((*OUTPUT, "fooBar"), {"path": "/"}),
           setup=[(OUTPUT, {})]),
    strike("output-source-string", ((*OUTPUT, "emptyDir"), "x"), setup=[(OUTPUT, {})]),
    strike("output-string", (OUTPUT, "x")),
    strike("output-list", (OUTPUT, [{"emptyDir": {}}])),
    strike("output-named", ((*OUTPUT, "name"), "mine"), setup=[(OUTPUT, {"emptyDir": {}})]),
    strike("mount-without-volume", (("spec", "volumeMounts", END),
                                    {"name": "nowhere", "mountPath": "/x"})),
    strike("mount-string", (("spec", "volumeMounts"), "x")),
    strike("mount-path-number", (("spec", "volumeMounts", END), {"name": "v", "mountPath": 5}),
           setup=[((*POD, "volumes", END), {"name": "v", "emptyDir": {}})]),
    strike("value-from-string", (("spec", "env", END, "valueFrom"), "x"),
           setup=[(("spec", "env", END), {"name": "FROM"})]),
    strike("value-from-unknown", (("spec", "env", END, "valueFrom"), {"fooRef": {"a": 1}}),
           setup=[(("spec", "env", END), {"name": "FROM"})]),
    strike("container-security-context-string", (CONTAINER_SC, "x")),
    strike("container-run-as-user-string", ((*CONTAINER_SC, "runAsUser"), "root")),
))

# Explicit nulls, anywhere (a null inside blocked every status write of the job).
NULLED: list[FieldPath] = [
    ("spec", "timeouts", "deploySeconds"), ("spec", "timeouts", "queueSeconds"),
    ("spec", "timeouts", "runSeconds"), ("spec", "timeouts"), ("spec", "retries"),
    ("spec", "retries", "limit"), ("spec", "template"), ("spec", "template", "spec"),
    ("spec", "template", "metadata"), ANNOTATIONS, (*POD, "affinity"),
    (*POD, "affinity", "nodeAffinity"), (*POD, "tolerations"), (*POD, "tolerations", END),
    (*POD, "nodeSelector"), (*POD, "nodeSelector", Key("gpu")), (*POD, "volumes", END),
    (*POD, "securityContext"), ("spec", "setup"), ("spec", "output"), OUTPUT,
    CONTAINER_SC, ("spec", "env"), ("spec", "env", END), ("spec", "command"),
    ("spec", "args"), ("spec", "workingDir"), ("spec", "resources"),
    ("spec", "resources", "limits"), ("spec", "resources", "limits", Key("cpu")),
    ("spec", "ttlSecondsAfterFinished"), ("spec", "volumeMounts"), ("spec", "priority"),
    ("spec", "workers"), ("spec", "gpusPerWorker"), ("spec", "image"), ("spec", "stop"),
    ("spec", "terminationGracePeriodSeconds"), ("spec", "gpuResource")]
NULLS = Table("explicit_null", (
    *(strike(f"null-{dotted(p)}".replace("[-1]", "[+]"), (p, None)) for p in NULLED),
    strike("null-in-deep-env", (("spec", "env", END, "value"), None),
           setup=[(("spec", "env", END), {"name": "NULLED"})]),
    strike("nulls-everywhere", (("spec", "timeouts", "deploySeconds"), None),
           ((*POD, "affinity"), None), ((*POD, "tolerations"), None), (CONTAINER_SC, None),
           (("spec", "ttlSecondsAfterFinished"), None)),
))

# Pod fields the operator sets itself, or that no template should carry.
UNKNOWN_POD_FIELDS = Table("pod_field", tuple(_pod(f"set-{rel[0]}", rel, value) for rel, value in [
    (at("containers"), [{"name": "x", "image": "x"}]),
    (at("initContainers"), [{"name": "x", "image": "x"}]),
    (at("ephemeralContainers"), [{"name": "x", "image": "x"}]),
    (at("nodeName"), "gpu-node-0"), (at("overhead"), {"cpu": "1"}), (at("foo"), 1),
    (at("restartPolicy"), "Always"), (at("hostname"), "x"), (at("subdomain"), "x"),
    (at("activeDeadlineSeconds"), 5), (at("terminationGracePeriodSeconds"), 0),
    (at("resourceClaims"), [{"name": "gpu", "resourceClaimName": "all-gpus"}]),
    (at("schedulingGates"), [{"name": "never"}]), (at("runtimeClassName"), "nvidia"),
    (at("preemptionPolicy"), "PreemptLowerPriority"), (at("shareProcessNamespace"), True),
    (at("os"), {"name": "windows"}), (at("hostUsers"), True), (at("priority"), 2**31 - 1),
    (at("status"), {"phase": "Succeeded"}), (at("readinessGates"), [{"conditionType": "x"}])]))

_KIB = 1024
_MIB = 1024 * _KIB


def _env_vars(count: int, size: int) -> list[dict[str, str]]:
    return [{"name": f"BIG_{i}", "value": "e" * size} for i in range(count)]


# Near and beyond every size bound. The 1.4 MiB one is just under etcd's 1.5 MiB request
# limit (etcd --max-request-bytes, default 1.5 MiB); its pod would have its env twice (setup
# and training containers): the API server or etcd refuses a pod that large.
HUGE = Table("huge", (
    strike("env-value-256k", (("spec", "env"), [{"name": "BIG", "value": "v" * 256 * _KIB}]),
           big=True),
    strike("env-value-1m", (("spec", "env"), [{"name": "BIG", "value": "v" * _MIB}]), big=True),
    strike("env-256-by-4k", (("spec", "env"), _env_vars(256, 4 * _KIB)), big=True),
    strike("env-257", (("spec", "env"), _env_vars(257, 1))),
    strike("env-and-args-1.4m", (("spec", "env"), _env_vars(200, 4 * _KIB)),
           (("spec", "args"), ["a" * 3 * _KIB] * 200),
           setup=[(("spec", "setup"), {"command": ["pip", "install", "-r", "req.txt"]})],
           big=True),
    strike("env-and-args-1.4m-no-setup", (("spec", "env"), _env_vars(200, 4 * _KIB)),
           (("spec", "args"), ["a" * 3 * _KIB] * 200), big=True),
    strike("args-256-by-4k", (("spec", "args"), ["a" * 4 * _KIB] * 256), big=True),
    strike("args-257", (("spec", "args"), ["a"] * 257)),
    strike("arg-1m", (("spec", "args"), ["a" * _MIB]), big=True),
    strike("command-64-by-16k", (("spec", "command"), ["c" * 16 * _KIB] * 64), big=True),
    strike("command-65", (("spec", "command"), ["c"] * 65)),
    strike("setup-args-1m", (("spec", "setup", "args"), ["a" * _MIB]),
           setup=[(("spec", "setup"), {"command": ["pip"]})], big=True),
    strike("image-1024", (("spec", "image"), "i" * 1024)),
    strike("working-dir-4096", (("spec", "workingDir"), "/" + "w" * 4095)),
    strike("working-dir-1m", (("spec", "workingDir"), "/" + "w" * _MIB), big=True),
    strike("annotation-300k", ((*ANNOTATIONS, Key("team")), "a" * 300 * _KIB), big=True),
    strike("annotations-64-by-4k", (ANNOTATIONS, {f"k{i}": "a" * 4 * _KIB for i in range(64)}),
           big=True),
    strike("annotations-65", (ANNOTATIONS, {f"k{i}": "a" for i in range(65)})),
    strike("labels-64", ((*POD_META, "labels"), {f"k{i}": "v" for i in range(64)})),
    strike("labels-65", ((*POD_META, "labels"), {f"k{i}": "v" for i in range(65)})),
    strike("node-selector-65", ((*POD, "nodeSelector"), {f"k{i}": "v" for i in range(65)})),
    _pod("tolerations-1000", at("tolerations"),
         [{"key": f"t{i}", "operator": "Exists"} for i in range(1000)]),
    _pod("volumes-1000", at("volumes"), [{"name": f"v{i}", "emptyDir": {}} for i in range(1000)]),
    _pod("affinity-values-10000", at("affinity"), {"nodeAffinity": {_REQUIRED: {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "gpu", "operator": "In", "values": [f"v{i}" for i in range(10000)]}]}]}}}),
    _pod("pod-string-1m", at("schedulerName"), "s" * _MIB, big=True),
    strike("volume-mounts-65", (("spec", "volumeMounts"),
                                [{"name": "scratch", "mountPath": f"/m{i}"} for i in range(65)]),
           setup=[((*POD, "volumes"), [{"name": "scratch", "emptyDir": {}}])]),
    strike("resources-9", (("spec", "resources", "limits"),
                           {f"example.com/r{i}": 1 for i in range(9)})),
))

# Accelerators asked for outside spec.gpuResource: the queue must count them or refuse them.
ACCELERATORS = ("nvidia.com/gpu", "amd.com/gpu", "nvidia.com/mig-1g.5gb")
NOT_ON_ANY_NODE = ("amd.com/gpu", "nvidia.com/mig-1g.5gb")  # devcluster's nodes have neither
HIDDEN_ACCELERATORS = Table("hidden_accelerator", tuple(
    strike(f"{part}-{name}", (("spec", "resources", part, Key(name)), 8), *(
        [(("spec", "resources", "limits", Key(name)), 8)] if part == "requests" else []),
        setup=[(("spec", "gpusPerWorker"), gpus), (("spec", "gpuResource"), resource)],
        no_pods=name in NOT_ON_ANY_NODE)
    for name in ACCELERATORS for part in ("limits", "requests")
    for gpus, resource in [(0, "nvidia.com/gpu"), (0, "example.com/fpga")]) + tuple(
    strike(f"gpu-resource-{name}", (("spec", "gpuResource"), name),
           setup=[(("spec", "gpusPerWorker"), 1)], no_pods=True) for name in NOT_ON_ANY_NODE) + (
    strike("another-gpu-resource-and-nvidia-limits",
           (("spec", "resources", "limits", Key("nvidia.com/gpu")), 8),
           setup=[(("spec", "gpusPerWorker"), 1), (("spec", "gpuResource"), "amd.com/gpu")],
           no_pods=True),
))

# A CPU-only gang skips the GPU queue: it must have a bound.
CPU_GANGS = Table("cpu_gang", tuple(
    strike(f"cpu-only-{workers}", (("spec", "workers"), workers), (("spec", "gpusPerWorker"), 0),
           no_pods=workers > 1024) for workers in (4096, 1025, 64)))

# Env names the device plugin sets: a 0-GPU job that sets them sees every GPU of the node.
RESERVED_ENV = ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
RESERVED_ENV_VALUE = "all"
RESERVED = Table("reserved_env", tuple(
    strike(f"{name}-{how}", (("spec", "env", END), var), setup=[(("spec", "gpusPerWorker"), gpus)])
    for name in RESERVED_ENV for gpus in (0, 1) for how, var in [
        (f"value-gpus-{gpus}", {"name": name, "value": RESERVED_ENV_VALUE}),
        (f"field-ref-gpus-{gpus}", {"name": name, "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.name"}}})]) + tuple(
    strike(f"operator-env-{name}", (("spec", "env", END), {"name": name, "value": "7"}))
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "TRAININGJOB_OUTPUT_DIR")))


def _sc(label: str, rel: FieldPath, value: Any, pod: bool = True, **kw: Any) -> Strike:
    """A securityContext setting, of the pod (template.spec) or of the containers."""
    where = (*POD, "securityContext") if pod else CONTAINER_SC
    return strike(label, ((*where, *rel), value), **kw)


# What Pod Security's baseline profile forbids (and the issue's list: priority classes,
# tolerations of every taint, service accounts): a user who may not create pods is refused.
# https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline
SECURITY = Table("security", (
    _pod("host-network", at("hostNetwork"), True, privileged=True),
    _pod("host-pid", at("hostPID"), True, privileged=True),
    _pod("host-ipc", at("hostIPC"), True, privileged=True),
    _pod("host-port", at("containers"), [{"name": "x", "image": "x", "ports": [
        {"containerPort": 80, "hostPort": 80}]}], privileged=True),
    _sc("privileged", at("privileged"), True, pod=False, privileged=True),
    _sc("cap-sys-admin", at("capabilities", "add"), ["SYS_ADMIN"], pod=False, privileged=True),
    _sc("cap-all", at("capabilities", "add"), ["ALL"], pod=False, privileged=True),
    _sc("cap-net-raw", at("capabilities", "add"), ["NET_RAW"], pod=False, privileged=True),
    _sc("seccomp-unconfined-pod", at("seccompProfile"), {"type": "Unconfined"}, privileged=True),
    _sc("seccomp-unconfined-container", at("seccompProfile"), {"type": "Unconfined"},
        pod=False, privileged=True),
    _sc("apparmor-unconfined-pod", at("appArmorProfile"), {"type": "Unconfined"},
        privileged=True),
    _sc("apparmor-unconfined-container", at("appArmorProfile"), {"type": "Unconfined"},
        pod=False, privileged=True),
    strike("apparmor-annotation-unconfined", (
        (*ANNOTATIONS, Key("container.apparmor.security.beta.kubernetes.io/trainer")),
        "unconfined"), privileged=True),
    _sc("proc-mount-unmasked", at("procMount"), "Unmasked", pod=False, privileged=True),
    _sc("sysctl-kernel-msgmax", at("sysctls"), [{"name": "kernel.msgmax", "value": "65536"}],
        privileged=True),
    _sc("sysctl-somaxconn", at("sysctls"), [{"name": "net.core.somaxconn", "value": "1024"}],
        privileged=True),
    _sc("selinux-spc-pod", at("seLinuxOptions"), {"type": "spc_t"}, privileged=True),
    _sc("selinux-spc-container", at("seLinuxOptions"), {"type": "spc_t"}, pod=False,
        privileged=True),
    _sc("selinux-user", at("seLinuxOptions"), {"user": "system_u"}, pod=False, privileged=True),
    _sc("windows-host-process", at("windowsOptions", "hostProcess"), True, privileged=True),
    _pod("priority-class-system-node-critical", at("priorityClassName"), "system-node-critical",
         privileged=True),
    _pod("priority-class-system-cluster-critical", at("priorityClassName"),
         "system-cluster-critical", privileged=True),
    strike("spec-priority-class-system-node-critical", (("spec", "priorityClassName"),
                                                        "system-node-critical"), privileged=True),
    _pod("tolerate-every-taint", at("tolerations", END), {"operator": "Exists"}, privileged=True),
    _pod("tolerate-every-taint-empty-key", at("tolerations", END),
         {"key": "", "operator": "Exists"}, privileged=True),
    _pod("service-account", at("serviceAccountName"), "deployer", privileged=True),
    _pod("service-account-deprecated", at("serviceAccount"), "deployer", privileged=True),
    _pod("automount-token", at("automountServiceAccountToken"), True, privileged=True),
    # Not baseline, and not refused for that: judged as any job (phase, reason, settles).
    _sc("allow-privilege-escalation", at("allowPrivilegeEscalation"), True, pod=False),
    _sc("run-as-root", at("runAsUser"), 0),
    _pod("tolerate-every-no-execute", at("tolerations", END),
         {"operator": "Exists", "effect": "NoExecute"}),
    _pod("node-selector-control-plane",
         at("nodeSelector", Key("node-role.kubernetes.io/control-plane")), ""),
))

# Volumes that mount from the node or the network (gitRepo: CVE-2025-1767): not of the
# restricted profile's volume types.
# https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
_RISKY = {"gitRepo": {"repository": "https://git.invalid/x.git"},
          "nfs": {"server": "10.0.0.1", "path": "/"},
          "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "iqn.2001-04.com.example:disk",
                    "lun": 0},
          "hostPath": {"path": "/"}, "cephfs": {"monitors": ["10.0.0.1:6789"]},
          "flexVolume": {"driver": "example.com/x"}}
RISKY_VOLUMES = Table("risky_volume", tuple(
    _pod(f"template-{kind}", at("volumes", END, kind), source,
         setup=[((*POD, "volumes", END), {"name": "risky"})], privileged=True)
    for kind, source in _RISKY.items()) + tuple(
    strike(f"output-{kind}", ((*OUTPUT, kind), source), setup=[(OUTPUT, {})], privileged=True)
    for kind, source in _RISKY.items()))

# Control characters and ANSI escapes in free text the operator may copy into messages,
# Events and the plugin's output; kwok's Stages report the termination message as the worker's.
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b[2J\r\x08\x00\x7f\u009b1m"
# What a worker's termination message may carry on devcluster: kwok's Stages cannot put DEL or
# C1 characters into a status (the pod never finishes), a kubelet could.
SAID = ESCAPES.replace("\x7f", "").replace("\u009b", "")
CONTROL_CHARS = Table("control_chars", (
    strike("env-value", (("spec", "env", END), {"name": "ESC", "value": ESCAPES})),
    strike("annotation-value", ((*ANNOTATIONS, Key("team")), ESCAPES)),
    strike("args", (("spec", "args"), [ESCAPES])),
    strike("command", (("spec", "command"), ["python", ESCAPES])),
    strike("working-dir", (("spec", "workingDir"), "/work" + ESCAPES)),
    strike("setup-command", (("spec", "setup"), {"command": ["pip", ESCAPES]})),
    strike("result-model", ((*ANNOTATIONS, Key(OUTCOME + "termination-message")),
                            json.dumps({"model": "/output/" + ESCAPES, "metrics": {
                                "loss" + ESCAPES: 0.5}}))),
    strike("result-not-json", ((*ANNOTATIONS, Key(OUTCOME + "termination-message")), SAID)),
    strike("failure-output", ((*ANNOTATIONS, Key(OUTCOME + "termination-message")),
                              "Traceback (most recent call last):\n" + SAID),
           setup=[((*ANNOTATIONS, Key(OUTCOME + "outcome")), "fail")]),
    strike("label-value", ((*POD_META, "labels", Key("team")), "a\x1bb")),
    strike("node-selector-value", ((*POD, "nodeSelector", Key("team")), "\x1b[31m")),
    strike("toleration-value", ((*POD, "tolerations", END),
                                {"key": "team", "operator": "Equal", "value": ESCAPES})),
    strike("volume-name", ((*POD, "volumes", END), {"name": "v\x1b[0m", "emptyDir": {}})),
))

TABLES: list[Table] = [POD_SHAPES, VOLUME_SHAPES, NULLS, UNKNOWN_POD_FIELDS, HUGE,
                       HIDDEN_ACCELERATORS, CPU_GANGS, RESERVED, SECURITY, RISKY_VOLUMES,
                       CONTROL_CHARS]
MUTATIONS: list[Mutation | Table] = [wrong_type, out_of_range, huge_string, bad_quantity,
                                     bad_resources, bad_label, empty_command, unknown_field,
                                     missing_required, bad_name, bad_env, bad_text, huge_gang,
                                     *TABLES]


def with_outcome(spec: dict[str, Any]) -> dict[str, Any]:
    """kwok plays each worker: it succeeds after a second, so accepted jobs end by themselves."""
    template = spec["template"] = spec.get("template") or {}
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.update({OUTCOME + "outcome": "succeed", OUTCOME + "run-duration": "1s"})
    return spec


def _mutate(draw: st.DrawFn, out: Manifest, mutation: Mutation | Table) -> None:
    if isinstance(mutation, Table):
        out.strike(mutation.name, draw(st.sampled_from(mutation.strikes)))
        return
    out.mutated.append(mutation(draw, out.body))
    out.classes.append(mutation.__name__)


@st.composite
def manifests(draw: st.DrawFn, name: str) -> Manifest:
    """A valid TrainingJob from the schema, then none to three mutations."""
    spec = with_outcome(draw(valid_spec()))
    body = {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name}, "spec": spec}
    out = Manifest(copy.deepcopy(body))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        if not isinstance(out.body.get("spec"), dict):
            break
        _mutate(draw, out, mutation)
    final = out.body.get("spec")
    if isinstance(final, dict) and isinstance(final.get("workers"), int) and \
            final["workers"] > 12 and final.get("gpusPerWorker") == 0 and \
            not any(c.startswith("cpu_gang:") for c in out.classes):
        final["gpusPerWorker"] = 1  # a wide gang waits for GPUs; thousands of CPU pods would not
    return out


# One plain job every strike of the catalogue is applied to: one GPU, so that it goes through
# the queue and placement; a template with the parts strikes break; a container
# securityContext, an env var and an output volume.
BASE_SPEC: dict[str, Any] = {
    "image": "team/train:1.4", "command": ["python", "train.py"], "workers": 1,
    "gpusPerWorker": 1, "env": [{"name": "LR", "value": "0.1"}],
    "timeouts": {"deploySeconds": 60, "runSeconds": 60},  # a worker kwok never ends, ends
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    "output": {"volume": {"emptyDir": {}}, "path": "/output"},
    "template": {"metadata": {"labels": {"team": "a"}}, "spec": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "scratch", "emptyDir": {}}]}}}


def catalogue(prefix: str = "c") -> list[Manifest]:
    """Every strike of every table, once each, on BASE_SPEC: the classes probed every run."""
    out: list[Manifest] = []
    for table in TABLES:
        for s in table.strikes:
            m = Manifest({"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
                          "metadata": {"name": f"{prefix}{len(out) + 1:03d}"},
                          "spec": with_outcome(copy.deepcopy(BASE_SPEC))})
            m.strike(table.name, s)
            out.append(m)
    return out


def generated(count: int, prefix: str = "h") -> list[Manifest]:
    """`count` manifests, the same ones every run (derandomized, no shrinking)."""
    out: list[Manifest] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        out.append(data.draw(manifests(f"{prefix}{len(out) + 1:03d}")))

    draw()
    return out
