"""What the probes say about the API server, from the requests' own fate (no API here)."""

import json
from typing import cast

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException
from trainingjob_operator.kube import (
    QUOTED_CHARS,
    STALLED_SECONDS,
    Answer,
    Rest,
    _same_owner_name,
    answer,
    answered,
    passing,
    said,
    transient,
    transient_answer,
)


def test_a_request_waiting_too_long_or_failing_means_the_api_server_is_not_answering() -> None:
    rest = Rest(cast(client.ApiClient, None))
    assert rest.unanswered(100.0) is None
    rest.waiting[1] = 100.0
    assert rest.unanswered(100.0 + STALLED_SECONDS - 1) is None  # an answer may still come
    assert rest.unanswered(112.0) == "a request to the API server has waited 12s for an answer"
    del rest.waiting[1]
    rest._failed("Cannot connect to host 127.0.0.1:6443")
    since = rest.failing[0] if rest.failing else 0.0
    assert rest.unanswered(since + 7) == ("the API server has not answered for 7s: Cannot "
                                          "connect to host 127.0.0.1:6443")
    rest._answered(503)  # answering, but not its storage: still lost, since the first failure
    assert rest.failing is not None and rest.failing[0] == since
    rest._answered(404)  # any answer from the API itself: back
    assert rest.unanswered(since + 8) is None


def test_only_a_missing_service_account_is_a_refusal_that_passes() -> None:
    assert passing(403, 'pods "a-worker-0" is forbidden: error looking up service account '
                        'ns/default: serviceaccount "default" not found')
    assert not passing(403, 'pods "a-worker-0" is forbidden: violates PodSecurity '
                            '"restricted:latest": host namespaces (hostNetwork=true)')
    assert not passing(403, 'pods "a-worker-0" is forbidden: exceeded quota: gpus')
    assert not passing(422, "error looking up service account")  # only the plugin's 403


@pytest.mark.parametrize(("status", "message", "means"), [
    (422, 'Pod "a-worker-0" is invalid: spec.containers[0].image: Required value',
     Answer.REJECTED),
    (400, "the object provided is unrecognized", Answer.REJECTED),
    (403, 'pods "a-worker-0" is forbidden: exceeded quota: gpus', Answer.REJECTED),
    (413, "Request entity too large: limit is 3145728", Answer.REJECTED),
    (500, "etcdserver: request is too large", Answer.REJECTED),  # etcd's, passed on as a 500
    (403, "error looking up service account ns/default", Answer.PASSING),
    (429, "Too many requests, please try again later.", Answer.PASSING),  # Retry-After
    (503, "the server is currently unable to handle the request", Answer.PASSING),
    (504, "Timeout: request did not complete within requested timeout", Answer.PASSING),
    (500, "etcdserver: request timed out", Answer.PASSING),
    (500, "etcdserver: leader changed", Answer.PASSING),
    (500, 'Internal error occurred: failed calling webhook "w": failed to call webhook: Post '
          '"https://nowhere.ns.svc:443/validate?timeout=2s": service "nowhere" not found',
     Answer.FLAKY),  # "timeout" in its URL is no timeout
    (502, "bad gateway", Answer.FLAKY),
    (418, "I'm a teapot", Answer.FLAKY),
    (404, 'namespaces "gone" not found', Answer.FLAKY),
])
def test_every_answer_to_a_create_is_the_objects_the_clusters_or_tried_a_few_times(
        status: int, message: str, means: Answer) -> None:
    """The object's fault ends the job with the API's message; the cluster's passes and is
    tried again without bound; anything else is tried a bounded number of times."""
    assert answer(status, message) is means


def test_an_existing_object_of_an_earlier_job_of_that_name_is_waited_for_not_taken() -> None:
    """Deleted and created again: the old pod's owner is the old job (same kind and name,
    another uid), and the garbage collector is deleting it; anyone else's is a squatter."""
    ours = {"metadata": {"ownerReferences": [
        {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob", "name": "j",
         "uid": "new", "controller": True}]}}
    earlier = {"metadata": {"ownerReferences": [
        {**ours["metadata"]["ownerReferences"][0], "uid": "old"}]}}
    assert _same_owner_name(earlier, ours)
    assert not _same_owner_name({"metadata": {}}, ours)  # a plain pod: a squatter
    assert not _same_owner_name({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "j", "uid": "x",
         "controller": True}]}}, ours)


# What the API server answers a list while the CRD's watch cache fills (every fresh start).
INITIALIZING = json.dumps({
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
    "message": "storage is (re)initializing", "reason": "TooManyRequests",
    "details": {"retryAfterSeconds": 1}, "code": 429})


@pytest.mark.parametrize(("status", "http_reason", "body", "line"), [
    (429, "Too Many Requests", INITIALIZING, "429 TooManyRequests: storage is (re)initializing"),
    (503, "Service Unavailable", "", "503 Service Unavailable"),
    (404, "Not Found", "404 page not found\n", "404 Not Found: 404 page not found"),
    (500, "Internal Server Error", json.dumps({"message": "a\n  webhook\tsaid"}),
     "500 Internal Server Error: a webhook said"),  # no Status reason: the HTTP one
    (502, "Bad Gateway", "<html>" + "x" * 1000,  # a proxy's page: its start only
     "502 Bad Gateway: <html>" + "x" * (QUOTED_CHARS - len("<html>"))),
])
def test_an_error_answer_is_one_line_of_status_reason_and_message(
        status: int, http_reason: str, body: str, line: str) -> None:
    assert answered(status, http_reason, body) == line


def test_an_api_exception_is_said_without_its_headers_and_body() -> None:
    err = ApiException(status=429, reason="Too Many Requests", body=INITIALIZING)
    err.headers = {"Retry-After": "1", "Audit-Id": "a1b2", "Content-Type": "application/json"}
    assert "HTTP response headers" in str(err)  # kubernetes.aio's own str(): a dump
    assert said(err) == ("the API server answered 429 TooManyRequests: storage is "
                         "(re)initializing")
    assert said(ConnectionRefusedError(111, "Connect call failed")) == (
        "[Errno 111] Connect call failed")
    assert said(TimeoutError()) == "TimeoutError"


@pytest.mark.parametrize(("status", "message", "passes"), [
    (429, "storage is (re)initializing", True),
    (429, "Too many requests, please try again later.", True),
    (503, "the server is currently unable to handle the request", True),
    (504, "", True),
    (500, "etcdserver: leader changed", True),
    (500, "Internal error occurred: failed calling webhook", False),
    (403, "error looking up service account ns/default", False),  # a create's refusal only
    (404, 'the server could not find the requested resource', False),
    (410, "too old resource version", False),
])
def test_a_transient_answer_is_the_api_servers_own_passing_state(
        status: int, message: str, passes: bool) -> None:
    assert transient(status, message) is passes
    body = json.dumps({"message": message})
    assert transient_answer(ApiException(status=status, reason="", body=body)) is passes
    assert not transient_answer(ConnectionRefusedError())
