from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from trainingjob_operator.crd import crd, render

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
        # A value of a map: the API server's error starts with spec....[key].
        assert path.endswith("[]") or "spec" in message or "metadata.name" in message, \
            (path, message)


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
    assert "'='" in " ".join(r["message"] for p, r in RULES if p == "spec.env[].name")
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
