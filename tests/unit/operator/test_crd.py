from __future__ import annotations

from pathlib import Path

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
