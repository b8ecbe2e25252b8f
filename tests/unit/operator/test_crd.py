from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from trainingjob_operator.crd import crd, render
from trainingjob_operator.models import BUDGET, WORST_CASE_POD_BYTES, TrainingJob, read_job
from trainingjob_operator.render import worker_pod
from trainingjob_operator.settings import Settings

CRD_FILE = Path(__file__).resolve().parents[3] / "crds" / "trainingjobs.training.dev.yaml"


def test_checked_in_crd_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == render(), "crds/ is stale: run `make crds`"


def test_crd_fits_client_side_apply() -> None:
    assert len(CRD_FILE.read_bytes()) < 256 * 1024


def test_schema_is_structural_no_refs_or_unions() -> None:
    text = yaml.safe_dump(crd())
    assert "$ref" not in text and "anyOf" not in text and "allOf" not in text


def test_printer_columns_and_names() -> None:
    version = crd()["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Reason", "Workers", "GPUs", "Queue", "Age"]
    assert crd()["spec"]["names"]["shortNames"] == ["tj"]
    assert version["subresources"] == {"status": {}}


def test_defaults_are_in_the_schema() -> None:
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["workers"]["default"] == 1 and props["gpusPerWorker"]["default"] == 1
    assert props["gpuResource"]["default"] == "nvidia.com/gpu"
    assert props["timeouts"]["default"] == {}
    assert props["timeouts"]["properties"]["deploySeconds"]["default"] == 900
    assert "stop" not in spec["x-kubernetes-validations"][-1]["rule"]


def _rules(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every CEL rule in a schema with the path of the node it sits on ([] for any key)."""
    out = [(path, r) for r in node.get("x-kubernetes-validations", [])]
    for name, child in (node.get("properties") or {}).items():
        out += _rules(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("additionalProperties"), dict):
        out += _rules(node["additionalProperties"], f"{path}[]")
    if "items" in node:
        out += _rules(node["items"], f"{path}[]")
    return out


RULES = _rules(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _at(path: str) -> str:
    return " ".join(r["rule"] for p, r in RULES if p == path)


def test_every_rule_message_names_its_field_or_the_api_names_the_key() -> None:
    for path, rule in RULES:
        message = rule.get("message") or rule.get("messageExpression") or ""
        # A value of a map: the API server's error starts with spec....[key]. A part a pod
        # spec shares (a label selector, a volume source) names itself: the error's path
        # names where it is.
        last = path.rsplit(".", 1)[-1].removesuffix("[]")
        assert path.endswith("[]") or "spec" in message or "metadata.name" in message or \
            last in message, (path, message)


def test_what_a_pod_would_refuse_apply_refuses_first() -> None:
    for part in ("requests", "limits"):
        assert "isQuantity(self)" in _at(f"spec.resources.{part}[]")
        assert "format.qualifiedName()" in _at(f"spec.resources.{part}")
    assert "compareTo" in _at("spec.resources")
    for labels in ("spec.template.metadata.labels", "spec.template.spec.nodeSelector"):
        assert "format.qualifiedName()" in _at(labels)
        assert "format.labelValue()" in _at(f"{labels}[]")
    assert "format.qualifiedName()" in _at("spec.template.metadata.annotations")
    for command in ("spec.command", "spec.setup.command"):
        assert "self[0].trim() != ''" in _at(command)
    assert "'='" in " ".join(r.get("message", "") for p, r in RULES if p == "spec.env[].name")
    assert "valueFrom" in _at("spec.env[]")
    assert "self.trim() == self" in _at("spec.image") and "self.trim()" in _at(
        "spec.setup.image")
    assert "gpuResource.contains('/')" in _at("spec")


def test_name_rules_judge_only_a_new_object() -> None:
    """The name is immutable, and an object stored before a rule must keep its status writes."""
    names = [r for p, r in RULES if p == "" and "metadata.name" in r["rule"]]
    assert len(names) == 3
    assert all(r["optionalOldSelf"] and r["rule"].startswith("oldSelf.hasValue() || ")
               for r in names)


SPEC = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _refused(node: dict[str, Any]) -> bool:
    """A property whose every value is refused (a rule of "false"): nothing is ever stored."""
    return any(r["rule"] == "false" for r in node.get("x-kubernetes-validations", []))


def _unbounded(node: dict[str, Any], path: str = "spec") -> list[str]:
    if _refused(node):
        return []
    out = []
    if (node.get("type") == "string" or node.get("x-kubernetes-int-or-string")) and \
            "maxLength" not in node and "enum" not in node:
        out.append(path)
    if node.get("type") == "array":
        out += [path] if "maxItems" not in node else []
        out += _unbounded(node["items"], f"{path}[]")
    if "additionalProperties" in node:
        out += [path] if "maxProperties" not in node else []
        out += _unbounded(node["additionalProperties"], f"{path}[]")
    if node.get("x-kubernetes-preserve-unknown-fields") and "maxProperties" not in node:
        out.append(path)
    for name, child in (node.get("properties") or {}).items():
        out += _unbounded(child, f"{path}.{name}")
    return out


def test_every_string_list_and_map_of_the_spec_is_bounded() -> None:
    assert _unbounded(SPEC) == []
    assert _unbounded({"type": "object", "properties": {"a": {"type": "string"}, "b": {
        "type": "array", "maxItems": 1, "items": {"type": "object", "additionalProperties": {
            "type": "integer"}}}}}) == ["spec.a", "spec.b[]"]


def test_an_unknown_key_of_a_closed_pod_part_is_counted() -> None:
    """Structural schemas prune unknown fields (kubectl's strict validation alone refuses
    them), so template.spec keeps them and a rule counts every key it holds."""
    template = SPEC["properties"]["template"]["properties"]["spec"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True
    assert template["maxProperties"] == len(template["properties"])
    rules = [r["rule"] for r in template["x-kubernetes-validations"]]
    assert any(r.startswith("size(dyn(self)) == [") for r in rules)
    for owned in ("containers", "initContainers", "restartPolicy", "nodeName"):
        assert _refused(template["properties"][owned])
    volume = template["properties"]["volumes"]["items"]
    assert _refused(volume["properties"]["gitRepo"]) and _refused(volume["properties"]["iscsi"])
    assert not _refused(volume["properties"]["nfs"])


def test_nulls_mean_unset_in_the_spec() -> None:
    """A null of a field that is not nullable is pruned before defaulting (CRD docs,
    "Defaulting and Nullable"): the spec schema has no nullable field, so no stored spec
    holds a null for the immutability rule to trip on."""
    assert "nullable" not in yaml.safe_dump(SPEC)
    deploy = SPEC["properties"]["timeouts"]["properties"]["deploySeconds"]
    assert deploy["default"] == 900 and deploy["maximum"] == 7 * 86400
    for optional in ("setup", "template", "output", "securityContext"):
        assert "default" not in SPEC["properties"][optional], optional


_KEY = 317
_ONE_OF = re.compile(r"has\(self\.(\w+)\)")


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _maximal(node: dict[str, Any]) -> Any:
    """The largest value the schema takes at `node` (a volume: its largest one source)."""
    if "enum" in node:
        return max(node["enum"], key=lambda e: len(json.dumps(e)))
    if node.get("x-kubernetes-int-or-string"):
        return "9" * node["maxLength"]
    kind = node.get("type")
    if kind == "string":
        return "x" * node["maxLength"]
    if kind == "integer":
        return node.get("maximum", 2**31 - 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return [_maximal(node["items"])] * node["maxItems"]
    if "additionalProperties" in node:
        value = _maximal(node["additionalProperties"])
        return {f"{i:04d}".ljust(_KEY, "k"): value for i in range(node["maxProperties"])}
    out = {k: _maximal(v) for k, v in node.get("properties", {}).items() if not _refused(v)}
    for rule in node.get("x-kubernetes-validations", []):
        if rule["rule"].endswith(".filter(x, x).size() == 1"):  # exactly one of these
            names = [n for n in _ONE_OF.findall(rule["rule"]) if n in out]
            keep = max(names, key=lambda n: _size(out[n]))
            out = {k: v for k, v in out.items() if k not in names or k == keep}
    return out


def _budgeted(spec: dict[str, Any]) -> int:
    """What BUDGET_RULE counts, in Python."""
    template = (spec.get("template") or {}).get("metadata") or {}
    env = sum(len(e["name"]) + len(e.get("value", "")) for e in spec.get("env", []))
    setup = spec.get("setup") or {}
    return (2 * env + sum(map(len, spec.get("command", []))) + sum(map(len, spec.get(
        "args", []))) + sum(map(len, setup.get("command", []))) + sum(map(len, setup.get(
            "args", []))) + sum(len(k) + len(v) for part in ("labels", "annotations")
                                for k, v in template.get(part, {}).items()))


def _largest_spec() -> dict[str, Any]:
    """Every part at its bound, and the budgeted parts in as many items as they take, filled
    up to BUDGET (JSON spends the most on many small items)."""
    spec: dict[str, Any] = _maximal(SPEC)
    spec["command"], spec["args"] = ["c"] * 64, ["a"] * 256
    spec["setup"]["command"], spec["setup"]["args"] = ["c"] * 64, ["a"] * 256
    meta = spec["template"]["metadata"]
    meta["labels"] = {f"k{i:03d}".ljust(63, "k"): "v" * 63 for i in range(64)}
    meta["annotations"] = {f"a{i:03d}".ljust(63, "a"): "" for i in range(64)}
    spec["env"] = [{"name": f"E{i:03d}", "value": ""} for i in range(256)]
    spare = BUDGET - _budgeted(spec)
    spec["env"][0]["value"] = "v" * (spare // 2)
    assert BUDGET - 1 <= _budgeted(spec) <= BUDGET
    return spec


def test_the_largest_pod_the_schema_allows_fits_in_one_etcd_request() -> None:
    """etcd takes at most 1.5 MiB in one request (--max-request-bytes); the pod a maximal
    spec renders (every bound at its maximum, BUDGET spent) stays under WORST_CASE_POD_BYTES."""
    spec = _largest_spec()
    job = read_job({"metadata": {"name": "n" * 50, "namespace": "n" * 63, "uid": "u"},
                    "spec": spec, "status": {"attempt": 1}})
    assert isinstance(job, TrainingJob), getattr(job, "problems", "")
    pod = worker_pod(job, 4095, "n" * 253, Settings())
    assert _size(pod) <= WORST_CASE_POD_BYTES <= 1024 * 1024 < 1.5 * 1024 * 1024
    # The budget is what makes it so: env alone could be far larger.
    assert _size(_maximal(SPEC["properties"]["env"])) > 1.5 * 1024 * 1024


def test_the_budget_rule_counts_what_the_pod_copies() -> None:
    rule = next(r for r in SPEC["x-kubernetes-validations"] if str(BUDGET) in r["rule"])
    for part in ("self.env", "self.command", "self.args", "self.setup.command",
                 "self.setup.args", "self.template.metadata.labels",
                 "self.template.metadata.annotations"):
        assert part in rule["rule"], part
    assert "* 2" in rule["rule"] and "ConfigMap" in rule["messageExpression"]
    assert "string(" not in rule["messageExpression"]  # its estimated cost is unbounded
