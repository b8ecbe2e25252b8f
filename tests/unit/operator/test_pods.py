from __future__ import annotations

from typing import Any

from trainingjob_operator.pods import parse_pod

OWNER = {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob", "name": "j",
         "uid": "u1", "controller": True, "blockOwnerDeletion": True}


def _body(refs: list[Any] | None = None, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "j-worker-0", "namespace": "ns", "uid": "p0",
                            "labels": {"training.dev/job-name": "j"}}
    if refs is not None:
        meta["ownerReferences"] = refs
    return {"metadata": meta, "spec": {}, "status": status}


def test_the_controller_owner_reference_is_read_and_only_a_trainingjob_is_named() -> None:
    pod = parse_pod(_body([{"kind": "ReplicaSet", "uid": "r", "name": "rs"}, OWNER]))
    assert (pod.owner_uid, pod.owner_job) == ("u1", "j")
    rs = parse_pod(_body([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "j",
                           "uid": "r", "controller": True}]))
    assert (rs.owner_uid, rs.owner_job) == ("r", None)
    other = parse_pod(_body([{**OWNER, "apiVersion": "evil.example/v1"}]))
    assert (other.owner_uid, other.owner_job) == ("u1", None)
    assert (parse_pod(_body()).owner_uid, parse_pod(_body([{**OWNER, "controller": False}]))
            .owner_uid) == (None, None)


def test_text_a_pod_carries_is_made_printable_and_only_an_exit_keeps_lines() -> None:
    evil = "\x1b[31mbad\x1b[0m\rnews\u202e\nline"
    pod = parse_pod(_body(
        reason=f"Evicted{evil}", message=evil,
        conditions=[{"type": "PodScheduled", "status": "False", "reason": evil,
                     "message": evil}],
        containerStatuses=[
            {"name": "trainer", "state": {"terminated": {"exitCode": 1, "message": evil,
                                                         "reason": "Error"}}},
            {"name": "side", "state": {"waiting": {"reason": "ErrImagePull",
                                                   "message": evil}}}]))
    assert pod.reason == "Evictedbad news line" and pod.message == "bad news line"
    assert pod.conditions[0].message == "bad news line"
    assert pod.containers[0].message == "bad\nnews\nline"  # the output tail keeps its lines
    assert pod.containers[1].message == "bad news line"
