"""Build the CustomResourceDefinition from the pydantic models, so the schema in crds/ and
the operator's parsing can never disagree. ``python -m trainingjob_operator.crd`` prints it;
``make crds`` writes crds/trainingjobs.training.dev.yaml and a test fails when it is stale."""

from __future__ import annotations

import sys
from typing import Any

import yaml

from trainingjob_operator.models import TrainingJobSpec, TrainingJobStatus
from trainingjob_operator.vocabulary import GROUP, KIND, PLURAL, SHORT_NAME, TERMINAL, VERSION

# OpenAPI keywords a structural schema keeps; everything else pydantic emits is dropped.
_KEEP = {"type", "description", "default", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "maxProperties", "enum", "required", "format", "nullable",
         "x-kubernetes-validations", "x-kubernetes-int-or-string",
         "x-kubernetes-preserve-unknown-fields"}

IMMUTABLE_MESSAGE = ("spec is immutable once the TrainingJob exists, except spec.stop: to "
                     "change it, delete the TrainingJob and create it again")


TERMINAL_PHASES = sorted(p.value for p in TERMINAL)
# A finished job is a record: re-applying the same manifest is a no-op, any spec change
# (spec.stop included) is refused instead of silently doing nothing.
FINISHED_RULE = {
    "rule": (f"!has(oldSelf.status) || !has(oldSelf.status.phase) || "
             f"!(oldSelf.status.phase in {TERMINAL_PHASES!r}) || self.spec == oldSelf.spec"),
    "messageExpression": (
        "'this TrainingJob has finished (' + oldSelf.status.phase + '), so its spec cannot "
        "change: to run it again, delete it and apply it again, or create a new "
        "TrainingJob with another name'"),
    "reason": "FieldValueForbidden",
    "fieldPath": ".spec",
}


# The name becomes the worker pods' names and hostnames (DNS labels of at most 63) and, for a
# gang, its Service's (a DNS-1035 label). Checked at create only (optionalOldSelf): the name
# never changes, and a job stored before these rules keeps its status writes.
NAME_RULES = [
    {"rule": "oldSelf.hasValue() || self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
     "optionalOldSelf": True,
     "fieldPath": ".metadata",
     "message": "metadata.name must be a DNS label (lowercase letters, digits and '-', no "
                "dots): it names the worker pods, and is their hostname"},
    {"rule": "oldSelf.hasValue() || size(self.metadata.name) + "
             "size(string(self.spec.workers - 1)) <= 55", "optionalOldSelf": True,
     "fieldPath": ".metadata",
     "message": "metadata.name is too long: the worker pods are named <name>-worker-<index>, "
                "at most 63 characters; shorten the name"},
    {"rule": "oldSelf.hasValue() || self.spec.workers <= 1 || "
             "self.metadata.name.matches('^[a-z]')", "optionalOldSelf": True,
     "fieldPath": ".metadata",
     "message": "metadata.name of a gang (spec.workers more than 1) must start with a letter: "
                "it names the workers' Service, <name>-workers"},
]


# Bounds of a spec node that sets none of its own: every string, list and map is bounded, so
# neither an object nor the CEL cost of a rule over it can grow without limit.
DEFAULT_MAX_LENGTH = 1024
DEFAULT_MAX_ITEMS = 16
DEFAULT_MAX_PROPERTIES = 16


def _optional(node: dict[str, Any]) -> bool:
    return any(o.get("type") == "null" for o in node.get("anyOf", ()))


def _openapi(node: dict[str, Any], defs: dict[str, Any], spec: bool) -> dict[str, Any]:
    """Turn pydantic's JSON Schema into a Kubernetes structural schema (no $ref, no anyOf).

    In the spec (`spec`), an Optional field is not nullable: the API server prunes a null of
    a field that is not `nullable: true` before defaulting, and the default applies
    ("Defaulting and Nullable" of the CRD docs), so a null means unset and no stored spec
    holds one (a null inside made the immutability rule's == false, and refused every status
    write). The status keeps its nulls (the operator's merge patches clear fields with them).
    Every string, list and map of the spec is bounded (DEFAULT_MAX_*) unless it sets a bound."""
    if "$ref" in node:
        merged = {**defs[node["$ref"].rsplit("/", 1)[1]],
                  **{k: v for k, v in node.items() if k != "$ref"}}
        return _openapi(merged, defs, spec)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        out = _openapi({**options[0], **rest}, defs, spec)
        if not spec:
            out["nullable"] = True
        return out
    out = {k: v for k, v in node.items() if k in _KEEP}
    if out.get("default") is None:
        out.pop("default", None)
    elif isinstance(out["default"], dict):
        out["default"] = {}  # nested defaults apply from the sub-schema
    if node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {k: _openapi(v, defs, spec)
                                 for k, v in node["properties"].items()}
            for name, prop in out["properties"].items():
                # An optional sub-object that is not Optional always exists, so its own
                # defaults show in the stored object (and GitOps sees no drift).
                if (prop.get("type") == "object" and "properties" in prop
                        and not _optional(node["properties"][name])
                        and not prop.get("nullable") and name not in node.get("required", [])):
                    prop.setdefault("default", {})
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _openapi(extra, defs, spec)
        elif extra is True or node.get("x-kubernetes-preserve-unknown-fields"):
            out["x-kubernetes-preserve-unknown-fields"] = True
        if "maxItems" in out and "additionalProperties" in out:
            out["maxProperties"] = out.pop("maxItems")
        if spec and "additionalProperties" in out:
            out.setdefault("maxProperties", DEFAULT_MAX_PROPERTIES)
        if spec and "properties" in out and out.get("x-kubernetes-preserve-unknown-fields"):
            # A closed object (pod_parts.closed) holds no key but its properties.
            out.setdefault("maxProperties", len(out["properties"]))
    if node.get("type") == "array":
        out["items"] = _openapi(node["items"], defs, spec)
        if spec:
            out.setdefault("maxItems", DEFAULT_MAX_ITEMS)
    if spec and (node.get("type") == "string" or out.get("x-kubernetes-int-or-string")):
        out.setdefault("maxLength", DEFAULT_MAX_LENGTH)
    return out


def _schema(model: type[Any], spec: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _openapi(raw, raw.get("$defs", {}), spec)


def _immutability_rule(spec: dict[str, Any]) -> dict[str, str]:
    parts = []
    for field in sorted(spec["properties"]):
        if field == "stop":
            continue
        if field in spec.get("required", []) or "default" in spec["properties"][field]:
            parts.append(f"self.{field} == oldSelf.{field}")
        else:
            parts.append(f"has(self.{field}) == has(oldSelf.{field}) && "
                         f"(!has(self.{field}) || self.{field} == oldSelf.{field})")
    return {"rule": " && ".join(f"({p})" for p in parts), "message": IMMUTABLE_MESSAGE}


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
    {"name": "Workers", "type": "string", "jsonPath": ".status.workerSummary",
     "description": "ready/total workers"},
    {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpus"},
    {"name": "Queue", "type": "integer", "jsonPath": ".status.queue.position",
     "description": "position in the GPU queue while Pending (1 = next)"},
    {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority", "priority": 1},
    {"name": "Model", "type": "string", "jsonPath": ".status.result.model", "priority": 1,
     "description": "what a Completed job produced (status.result.model)"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def crd() -> dict[str, Any]:
    spec = _schema(TrainingJobSpec, spec=True)
    spec["description"] = ("What to train and on how many GPUs. Immutable once created, "
                           "except spec.stop.")
    spec.setdefault("x-kubernetes-validations", []).append(_immutability_rule(spec))
    status = _schema(TrainingJobStatus, spec=False)
    status["description"] = "Written by the operator only."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": KIND.lower(), "shortNames": [SHORT_NAME]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A distributed training job: a gang of GPU worker pods.",
                    "required": ["spec"],
                    "x-kubernetes-validations": [FINISHED_RULE, *NAME_RULES],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec, "status": status,
                    },
                }},
            }],
        },
    }


def render() -> str:
    header = ("# Generated from operator/trainingjob_operator/models.py by `make crds`; "
              "do not edit.\n")
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
