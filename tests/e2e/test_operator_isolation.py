"""One job the operator cannot read, place or render never stops the others (issue 22).

A TrainingJob stored before a schema change is made honestly: the CRD is replaced for a
moment by a copy whose spec.template.spec takes anything, the job is created under it, and
the real CRD is put back. The operator is down meanwhile, so its first list after the restart
holds the bad job, a bystander in another namespace, and (with a page size of 2) more jobs
than one page.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Operator
from tests.kube import Kubectl, eventually, status_of, stop, training_job, wait_phase

pytestmark = [pytest.mark.kwok]

CRD = "trainingjobs.training.dev"
# Refused by the real schema (nodeSelector keys must be qualified names), taken by the
# permissive copy: which of the two the API server serves now.
PROBE = training_job("probe", template={"spec": {"nodeSelector": {"not a key!": "x"}}})


def _template_spec(version: dict[str, Any]) -> dict[str, Any]:
    props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    template: dict[str, Any] = props["template"]["properties"]
    return template


def _replace_crd(kubectl: Kubectl, change: Callable[[dict[str, Any]], None]) -> None:
    body = kubectl.json("get", "crd", CRD)
    change(body)
    kubectl.run("replace", "-f", "-", input_text=json.dumps(body))


def _serves(ns: Kubectl, permissive: bool) -> None:
    """Wait until the API server validates with the schema just installed."""
    def probe() -> bool:
        taken = ns.run("apply", "--dry-run=server", "-f", "-", check=False,
                       input_text=json.dumps(PROBE)).returncode == 0
        return taken is permissive
    eventually(probe, timeout=30, what=f"the {'permissive' if permissive else 'real'} schema")


@pytest.fixture
def stopped_operator(running_operator: Operator) -> Iterator[Operator]:
    """The session's operator, stopped for the test; started again as it was after it."""
    running_operator.stop()
    try:
        yield running_operator
    finally:
        running_operator.stop()
        running_operator.extra_env = {}
        running_operator.start()


def _log_since(op: Operator, offset: int) -> str:
    return op.log_path.read_bytes()[offset:].decode(errors="replace")


def test_a_job_stored_before_a_schema_change_ends_invalid_spec_and_stalls_no_one(
        ns: Kubectl, other_ns: Kubectl, kubectl: Kubectl, stopped_operator: Operator) -> None:
    real: list[dict[str, Any]] = []

    def permissive(body: dict[str, Any]) -> None:
        real.extend(copy.deepcopy(body["spec"]["versions"]))
        for version in body["spec"]["versions"]:
            _template_spec(version)["spec"] = {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": True}

    def restore(body: dict[str, Any]) -> None:
        body["spec"]["versions"] = real

    _replace_crd(kubectl, permissive)
    try:
        _serves(ns, permissive=True)
        # placement reads affinity as an object: a string made every pass raise (issue 22)
        ns.apply(training_job("bad", template={"spec": {"affinity": "x"}}))
    finally:
        _replace_crd(kubectl, restore)
    _serves(ns, permissive=False)
    other_ns.apply(training_job("bystander"))

    offset = stopped_operator.log_path.stat().st_size if stopped_operator.log_path.exists() \
        else 0
    started = time.monotonic()
    stopped_operator.start()
    wait_phase(other_ns, "bystander", "Running", timeout=60)
    assert time.monotonic() - started < 30  # the operator's start, one list, one pass

    # It ends InvalidSpec naming the field, in its status if the API server lets that be
    # written (the CRD's CEL rules may fail on a spec the schema no longer fits: then in the
    # Event alone, which says so), and holds nothing.
    def said() -> str | None:
        events = ns.json("get", "events", "--field-selector",
                         "involvedObject.kind=TrainingJob,involvedObject.name=bad")["items"]
        return next((e["message"] for e in events if e["reason"] == "InvalidSpec"), None)
    message = eventually(said, timeout=60, what="the InvalidSpec Event of bad")
    assert "spec.template.spec.affinity" in message, message
    assert "create the TrainingJob again" in message or "create it again" in message, message
    bad = status_of(ns, "bad")
    if bad.get("phase"):
        assert (bad["phase"], bad["reason"]) == ("DeployFailed", "InvalidSpec"), bad
        assert "spec.template.spec.affinity" in bad["message"], bad["message"]
    else:
        assert "refuses this job's status" in message, message
    assert not bad.get("reservation")
    assert ns.json("get", "pods")["items"] == []  # it holds nothing

    # More passes after it: none of them logs it again.
    other_ns.apply(training_job("after"))
    wait_phase(other_ns, "after", "Running", timeout=30)
    log = _log_since(stopped_operator, offset)
    assert log.count(f"{ns.namespace}/bad: ") <= 1, log  # its one error line
    assert log.count("Traceback") <= 1, log
    for name in ("bystander", "after"):
        stop(other_ns, name)


def test_a_relist_of_more_jobs_than_one_page_decides_every_one(
        ns: Kubectl, stopped_operator: Operator) -> None:
    """Jobs created while the operator is down are known to it only from its first list:
    with a page size of 2, each of the five comes from a different page than some other."""
    names = [f"paged-{i}" for i in range(5)]
    for name in names:
        ns.apply(training_job(name, gpus=0))
    offset = stopped_operator.log_path.stat().st_size
    stopped_operator.extra_env = {"TRAININGJOB_LIST_PAGE_SIZE": "2"}
    stopped_operator.start()
    for name in names:
        wait_phase(ns, name, "Running", timeout=60)
    listed = re.search(r"listed (\d+) objects of /apis/training.dev/v1alpha1/trainingjobs in "
                       r"(\d+) pages", _log_since(stopped_operator, offset))
    assert listed is not None and int(listed[2]) == -(-int(listed[1]) // 2) >= 3, listed
    for name in names:
        stop(ns, name)
