"""Hypothesis strategies for hostile TrainingJob manifests, derived from the CRD's own schema.

`valid_spec` walks the openAPIV3Schema of crds/: every property the schema declares, of its
type, within its bounds (minimum, maximum, maxLength, maxItems, maxProperties, enum,
nullable), optional ones sometimes left out. Leaves whose meaning the schema cannot say
(an image, a label key, a quantity, a free-form volume) come from small lists of good values
in VALUES, so an unmutated manifest is one the API server and the operator accept.
`manifests` then applies a few MUTATIONS to it: wrong types, out-of-range numbers, huge
strings, bad quantities and label keys, empty commands, unknown and missing fields, bad
names. Each mutation records the path it touched, so a refusal can be checked to name it.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
CRD_FILE = ROOT / "crds" / "trainingjobs.training.dev.yaml"
OUTCOME = "devcluster.training.dev/"  # the annotations kwok's Stages play a worker by


def crd_schema(path: Path = CRD_FILE) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@functools.cache
def valid_spec() -> st.SearchStrategy[Any]:
    """Specs the schema in crds/ takes, read once (at test time, not import time)."""
    return from_schema(crd_schema()["properties"]["spec"])


class Key(str):
    """A map key in a path: shown as [key], as the API server's field paths do."""


Step = str | int | Key


def dotted(path: tuple[Step, ...]) -> str:
    out = ""
    for step in path:
        if isinstance(step, Key | int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


def shape(path: tuple[Step, ...]) -> str:
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
    # A mount needs a volume of the template's: the pod judges that pairing (free-form).
    "spec.volumeMounts": st.none(),
    "spec.output.volume": st.sampled_from([{"emptyDir": {}},
                                           {"persistentVolumeClaim": {"claimName": "models"}}]),
    "spec.output.path": st.sampled_from(["/output", "/models/run-1"]),
    "spec.template.metadata.labels[]": _LABEL_VALUES,
    "spec.template.spec.nodeSelector[]": _LABEL_VALUES,
    "spec.ttlSecondsAfterFinished": st.sampled_from([None, 3600]),
    "spec.stop": st.sampled_from([False, False, False, True]),
    "spec.priority": st.integers(-1000, 1000),
}
KEYS: dict[str, st.SearchStrategy[str]] = {
    "spec.template.metadata.labels": _LABEL_KEYS,
    "spec.template.metadata.annotations": _LABEL_KEYS,
    "spec.template.spec.nodeSelector": _LABEL_KEYS,
}


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
        return st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=schema.get(
            "minLength", 0), max_size=min(schema.get("maxLength", 20), 20))
    if schema.get("x-kubernetes-int-or-string"):
        return _QUANTITIES["cpu"]
    raise ValueError(f"{path}: no strategy for schema {dict(schema)}")


@dataclass
class Manifest:
    """A generated TrainingJob, and the paths its mutations touched (none: it is valid)."""

    body: dict[str, Any]
    mutated: list[tuple[Step, ...]] = field(default_factory=list)

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    def named_in(self, message: str) -> bool:
        """Does an error message name a field this manifest's mutations touched: the field
        itself or a parent below the top level (spec.resources for spec.resources.limits)?"""
        return any(dotted(path[:end]) in message for path in self.mutated
                   for end in range(len(path), 1 if len(path) > 1 else 0, -1))


Mutation = Callable[[st.DrawFn, dict[str, Any]], tuple[Step, ...]]


def _set(body: dict[str, Any], path: tuple[Step, ...], value: Any) -> tuple[Step, ...]:
    """Set a value, making the objects on the way if an earlier mutation broke them."""
    node: Any = body
    for step, following in itertools.pairwise(path):
        want = list if isinstance(following, int) else dict
        if isinstance(node, dict) and not isinstance(node.get(step), want):
            node[step] = [None] * (following + 1) if isinstance(following, int) else {}
        node = node[step]
    node[path[-1]] = value
    return path


def _leaves(node: Any, path: tuple[Step, ...] = ()) -> list[tuple[Step, ...]]:
    """Every path in a manifest (objects, lists and leaves)."""
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*path, i))
    return out


def _in_map(path: tuple[Step, ...]) -> tuple[Step, ...]:
    """Mark keys of the maps the schema declares as maps, for the error's [key] notation."""
    maps = ("requests", "limits", "labels", "annotations", "nodeSelector")
    return tuple(Key(s) if i and isinstance(s, str) and path[i - 1] in maps else s
                 for i, s in enumerate(path))


def wrong_type(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    paths = [p for p in _leaves(body["spec"], ("spec",))
             if "annotations" not in p and "valueFrom" not in p]
    path = draw(st.sampled_from(paths))
    value = draw(st.sampled_from(["x", 7, -1, True, None, [], {}, 1.5, ["x"], {"a": 1}]))
    return _in_map(_set(body, path, value))


INTEGERS = ["workers", "gpusPerWorker", "priority", "terminationGracePeriodSeconds",
            "ttlSecondsAfterFinished", "timeouts.queueSeconds", "timeouts.deploySeconds",
            "timeouts.runSeconds", "retries.limit"]


def out_of_range(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    where = draw(st.sampled_from(INTEGERS)).split(".")
    value = draw(st.sampled_from([-1, 0, -(2**31), 10**6, 2**31, 2**63 - 1, -(2**63)]))
    return _set(body, ("spec", *where), value)


def huge_string(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
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


def bad_quantity(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    part = draw(st.sampled_from(["requests", "limits"]))
    name = draw(st.sampled_from(["cpu", "memory", "example.com/fpga"]))
    resources = body["spec"].setdefault("resources", {})
    if not isinstance(resources, dict):
        body["spec"]["resources"] = resources = {}
    return _set(body, ("spec", "resources", part, Key(name)),
                draw(st.sampled_from(BAD_QUANTITIES)))


def bad_resources(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
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


def bad_label(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    where = draw(st.sampled_from([("metadata", "labels"), ("metadata", "annotations"),
                                  ("spec", "nodeSelector")]))
    template = body["spec"].setdefault("template", {})
    if not isinstance(template, dict):
        body["spec"]["template"] = {}
    if draw(st.booleans()) or where[1] == "annotations":
        key, value = draw(st.sampled_from(BAD_KEYS)), "v"
    else:
        key, value = "team", draw(st.sampled_from(BAD_VALUES))
    return _set(body, ("spec", "template", *where, Key(key)), value)


def empty_command(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    value = draw(st.sampled_from([[], [""], ["  "], [" ", "train.py"], ["\t"]]))
    if draw(st.booleans()):
        return _set(body, ("spec", "command"), value)
    body["spec"]["setup"] = {"command": value}
    return ("spec", "setup", "command")


def unknown_field(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    objects = [p for p in _leaves(body["spec"], ("spec",))
               if isinstance(_get(body, p), dict) and not _free_form(p)] + [("spec",)]
    path = draw(st.sampled_from(objects))
    return _in_map(_set(body, (*path, draw(st.sampled_from(["surprise", "Workers", "x-y"]))),
                        1))


def _get(body: dict[str, Any], path: tuple[Step, ...]) -> Any:
    node: Any = body
    for step in path:
        node = node[step]
    return node


def _free_form(path: tuple[Step, ...]) -> bool:
    """Inside a part the schema keeps as given (x-kubernetes-preserve-unknown-fields) or a map."""
    return any(s in ("valueFrom", "volume", "securityContext", "kopf", "requests", "limits",
                     "labels", "annotations", "nodeSelector") for s in path) or \
        path[:3] == ("spec", "template", "spec")


def missing_required(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
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


def bad_name(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
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


def bad_env(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    var: dict[str, Any] = draw(st.sampled_from([
        {"name": "A=B", "value": "1"}, {"name": "", "value": "1"}, {"name": "É", "value": "1"},
        {"name": "A\nB"},
        {"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]))
    body["spec"]["env"] = [var]
    return ("spec", "env", 0, "name") if "valueFrom" not in var else ("spec", "env", 0)


def bad_text(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
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


def huge_gang(draw: st.DrawFn, body: dict[str, Any]) -> tuple[Step, ...]:
    """Valid, but too big for any node or for all of them: waits and says so."""
    workers, per = draw(st.sampled_from([(1, 9), (1, 1024), (5, 8), (40, 1), (3, 16),
                                         (4096, 1)]))
    body["spec"].update(workers=workers, gpusPerWorker=per)
    body["metadata"]["name"] = body["metadata"]["name"][:8]
    return ("spec", "workers")


MUTATIONS: list[Mutation] = [wrong_type, out_of_range, huge_string, bad_quantity,
                             bad_resources, bad_label, empty_command, unknown_field,
                             missing_required, bad_name, bad_env, bad_text, huge_gang]


def with_outcome(spec: dict[str, Any]) -> dict[str, Any]:
    """kwok plays each worker: it succeeds after a second, so accepted jobs end by themselves."""
    template = spec["template"] = spec.get("template") or {}
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.update({OUTCOME + "outcome": "succeed", OUTCOME + "run-duration": "1s"})
    return spec


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
        out.mutated.append(mutation(draw, out.body))
    final = out.body.get("spec")
    if isinstance(final, dict) and isinstance(final.get("workers"), int) and \
            final["workers"] > 12 and final.get("gpusPerWorker") == 0:
        final["gpusPerWorker"] = 1  # a wide gang waits for GPUs; thousands of CPU pods would not
    return out
