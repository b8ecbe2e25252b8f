"""What the probes say about the API server, from the requests' own fate (no API here)."""

from typing import cast

from kubernetes.aio import client
from trainingjob_operator.kube import STALLED_SECONDS, Rest, passing


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
