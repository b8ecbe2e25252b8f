"""The only module that talks to the Kubernetes API (kopf, which runs the process, makes only
its discovery requests at startup and watches nothing).

Requests go out on the asyncio client of the kubernetes package (`kubernetes.aio`: aiohttp,
its connection pool, the kubeconfig's or the service account's credentials), as JSON on the
API's REST paths: no worker threads, no generated models to build and validate, so many
requests are in flight at once for the cost of a coroutine each. Errors are turned into the
few outcomes the controller distinguishes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import aiohttp
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

from trainingjob_operator.models import ObjectMeta
from trainingjob_operator.timeutil import format_time
from trainingjob_operator.vocabulary import API_VERSION, COMPONENT, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Connections to the API server: requests beyond this wait for a free one.
MAX_CONNECTIONS = 64
# A watch's HTTP request may outlive its timeoutSeconds by this much before it counts as lost.
WATCH_SLACK_SECONDS = 60
# Any other request: an API server that is frozen or cut off does not reset the connection,
# so without a limit a request would wait for ever.
REQUEST_SECONDS = 30
# A request unanswered this long means the API server is not answering (health.py says so).
STALLED_SECONDS = 5.0


# Refusals that pass by themselves. The controller-manager creates a namespace's `default`
# ServiceAccount moments after the namespace (later still while it catches up after an API
# server restart), and until then the ServiceAccount admission plugin refuses every pod
# there with 403 "error looking up service account". batch/v1 Job retries those too.
PASSING = ("error looking up service account",)


@dataclass(frozen=True)
class Created:
    ok: bool
    rejected: str | None = None  # the API's refusal (quota, admission, invalid), for people
    passing: bool = False  # a refusal to try again later, not to report
    # Answered with an error that is neither the object's nor surely the cluster's (a 500, an
    # unknown 4xx): tried again a bounded number of times (controller.CREATE_TRIES).
    flaky: bool = False
    taken: bool = False  # the name is held by an object this job does not own...
    owner_uid: str | None = None  # ...whose controller is this uid (None: it has none)


class Answer(StrEnum):
    """What an API server's answer to a create means for the object (`answer`)."""

    REJECTED = "rejected"  # the object's fault: end the job with the API's message
    PASSING = "passing"    # the cluster's, and it passes: try again, without bound
    FLAKY = "flaky"        # unclear: try again a few times, then end the job with it


# How a too-large request is answered: etcd's own error, passed on by the API server as a
# 500 (etcd-io/etcd api/v3rpc/rpctypes ErrRequestTooLarge, "etcdserver: request is too
# large"), and the API server's 413 for a body over its limit (apiserver
# pkg/endpoints/handlers/rest.go limitedReadBody: "Request entity too large: limit is 3145728").
TOO_LARGE = ("request is too large", "request entity too large")
# 500 answers that are the cluster's and pass: the API server not reaching etcd
# (etcd-io/etcd rpctypes: "etcdserver: request timed out", "etcdserver: leader changed",
# "etcdserver: no leader"; the apiserver's "Timeout: request did not complete within requested
# timeout"). Whole phrases: a webhook's URL in a message says "timeout=10s" too. A 503 or 504
# (the API server starting, or its own timeout) passes whatever it says.
UNAVAILABLE = ("etcdserver: request timed out", "etcdserver: leader changed",
               "etcdserver: no leader", "request did not complete within",
               "unable to handle the request")


def answer(status: int, message: str) -> Answer:
    """Pure: what an error answer to a create (not 409) means. 400, 403 and 422 are the
    object's (invalid, forbidden by admission or quota), as is anything too large; a
    transient answer and a missing ServiceAccount pass."""
    if passing(status, message):
        return Answer.PASSING
    if status in (400, 403, 413, 422) or any(t in message.lower() for t in TOO_LARGE):
        return Answer.REJECTED
    if transient(status, message):
        return Answer.PASSING
    return Answer.FLAKY


def transient(status: int, message: str) -> bool:
    """Pure: the API server's own state, which passes by itself: 429 (priority and fairness,
    or a watch cache still filling: "storage is (re)initializing", both with Retry-After),
    503 or 504, and a 500 of etcd out of reach (UNAVAILABLE)."""
    lowered = message.lower()
    return status in (429, 503, 504) or (status >= 500 and any(u in lowered for u in UNAVAILABLE))


# The most of a body that is not a Status (an HTML page of a proxy, say) a log line quotes.
QUOTED_CHARS = 200


def answered(status: int, http_reason: str, body: str) -> str:
    """Pure: an error answer in one line, "429 TooManyRequests: storage is (re)initializing",
    from its Status body (its reason and message), else its HTTP reason and body text."""
    try:
        found = json.loads(body) if body.strip() else {}
    except ValueError:
        found = None
    if isinstance(found, dict):
        reason = str(found.get("reason") or http_reason or "")
        message = str(found.get("message") or "")
    else:
        reason, message = http_reason, body[:QUOTED_CHARS]
    head = f"{status} {reason}".strip()
    message = " ".join(message.split())  # a webhook's message may span lines
    return f"{head}: {message}" if message else head


def said(err: BaseException) -> str:
    """An error in one line: an answer of the API server as `answered` words it
    (kubernetes.aio's ApiException prints every header and the whole body), else its text."""
    if isinstance(err, ApiException):
        return "the API server answered " + answered(int(err.status or 0), str(err.reason or ""),
                                                     str(err.body or ""))
    return " ".join(str(err).split()) or type(err).__name__


def transient_answer(err: BaseException) -> bool:
    """Whether an error is an answer of the API server that passes by itself (`transient`)."""
    return isinstance(err, ApiException) and transient(int(err.status or 0), _reason(err))


def passing(status: int, reason: str) -> bool:
    return status == 403 and any(words in reason for words in PASSING)


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


def _controller(body: dict[str, Any]) -> dict[str, Any]:
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if isinstance(r, dict) and r.get("controller")), {})


def _same_owner_name(found: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """Owned by an earlier object of the same kind and name (gone: a name is unique in a
    namespace), which the garbage collector deletes it for."""
    theirs, ours = _controller(found), _controller(manifest)
    return bool(theirs) and all(theirs.get(k) == ours.get(k)
                                for k in ("apiVersion", "kind", "name"))


def _controller_uid(manifest: dict[str, Any]) -> str | None:
    refs = (manifest.get("metadata") or {}).get("ownerReferences") or []
    return next((str(r.get("uid")) for r in refs if isinstance(r, dict) and r.get("controller")),
                None)


class NotLeaderError(RuntimeError):
    """A write was attempted by a replica that does not hold the leader lease."""


class StatusRefusedError(RuntimeError):
    """A status write refused as invalid (422). The status is the operator's own, so what
    the API server cannot validate is the stored object: one kept from before a schema
    change makes the CRD's rules fail on its spec (CEL transition rules are not ratcheted,
    KEP-4008), and no retry changes that."""


class PassingRefusalError(RuntimeError):
    """A refusal that passes by itself (PASSING): the same actions again, a little later."""


def _namespaced(namespace: str, plural: str, name: str = "", group: str = "",
                version: str = "v1") -> str:
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _job_path(meta: ObjectMeta) -> str:
    return _namespaced(meta.namespace, PLURAL, meta.name, GROUP, VERSION)


class Rest:
    """JSON requests to the API server on one kubernetes.aio connection pool."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        # Whether the API server answers, as the requests find it: when the oldest request
        # still waiting was sent, and since when and why the last ones failed.
        self.waiting: dict[int, float] = {}
        self.failing: tuple[float, str] | None = None
        self._numbers = itertools.count()

    def unanswered(self, now: float) -> str | None:
        """Why the API server looks lost (None: it answered the requests of late)."""
        if self.failing is not None:
            since, why = self.failing
            return f"the API server has not answered for {now - since:.0f}s: {why}"
        oldest = min(self.waiting.values(), default=now)
        if now - oldest > STALLED_SECONDS:
            return f"a request to the API server has waited {now - oldest:.0f}s for an answer"
        return None

    def _answered(self, status: int) -> None:
        if status >= 500:  # the API server is up, but not its storage
            self._failed(f"HTTP {status}")
        else:
            self.failing = None

    def _failed(self, why: str) -> None:
        if self.failing is None:
            self.failing = (time.monotonic(), why)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Rest:
        """In a pod: its service account. Else `kubeconfig`, else $KUBECONFIG as it is now."""
        configuration = client.Configuration()
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
        else:
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = MAX_CONNECTIONS
        # As the synchronous client did: no proxy or .netrc from the environment (aiohttp
        # would look both up again on every request).
        configuration.client_session_kwargs = {"trust_env": False}
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()  # type: ignore[no-untyped-call]

    async def request(self, method: str, path: str, body: Any = None, *,
                      query: Mapping[str, str | int] | None = None,
                      content_type: str = JSON) -> dict[str, Any]:
        """The decoded response; ApiException for any status but 2xx."""
        method, url, headers, data, _ = await self.api.param_serialize(
            method=method, resource_path=path, query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": JSON}, body=body,
            auth_settings=["BearerToken"])
        key = next(self._numbers)
        self.waiting[key] = time.monotonic()
        try:
            response = await self.api.call_api(method, url, headers, data,
                                               _request_timeout=REQUEST_SECONDS)
            raw = await response.read()  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError, aiohttp.ClientError) as err:
            self._failed(said(err))
            raise
        finally:
            self.waiting.pop(key, None)
        self._answered(response.status)
        if not 200 <= response.status < 300:
            raise ApiException.from_response(http_resp=response,
                                             body=raw.decode(errors="replace"), data=None)
        return cast(dict[str, Any], json.loads(raw)) if raw else {}

    async def watch(self, path: str, resource_version: str,
                    seconds: int) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch from resource_version, as they arrive, until the server
        ends it (after `seconds`). ERROR events (410 Gone: too old) are yielded too."""
        method, url, headers, _, _ = await self.api.param_serialize(
            method="GET", resource_path=path, header_params={"Accept": JSON},
            query_params=[("watch", "1"), ("resourceVersion", resource_version),
                          ("allowWatchBookmarks", "true"), ("timeoutSeconds", seconds)],
            auth_settings=["BearerToken"])
        try:
            response = await self.api.call_api(method, url, headers,
                                               _request_timeout=seconds + WATCH_SLACK_SECONDS)
        except (OSError, TimeoutError, aiohttp.ClientError) as err:
            self._failed(said(err))
            raise
        self._answered(response.status)
        try:
            if response.status != 200:
                raw = await response.read()  # type: ignore[no-untyped-call]
                raise ApiException.from_response(http_resp=response,
                                                 body=raw.decode(errors="replace"), data=None)
            async for line in response.response.content:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.response.release()


class Kube:
    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        # Set by leader election; without it this process is the only replica.
        self.leading: Callable[[], bool] = lambda: True

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        return cls(await Rest.connect(kubeconfig))

    async def close(self) -> None:
        await self.rest.close()

    async def _write(self, method: str, path: str, body: Any = None,
                     content_type: str = JSON) -> dict[str, Any]:
        """Every write but the lease's: only the leader may make it (the backstop behind the
        controller's own check, so no code path can write from a standby)."""
        if not self.leading():
            raise NotLeaderError(f"{method} {path}: this replica is not the leader")
        return await self.rest.request(method, path, body, content_type=content_type)

    async def _read(self, path: str) -> dict[str, Any] | None:
        """A read where 404 means "not there" rather than an error."""
        try:
            return await self.rest.request("GET", path)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    async def serves_trainingjobs(self) -> bool:
        """Whether the TrainingJob API is served (its CRD installed). Discovery needs no
        RBAC grant, so the operator need not read CRDs at all."""
        found = await self._read(f"/apis/{GROUP}/{VERSION}")
        return found is not None and any(r.get("name") == PLURAL
                                         for r in found.get("resources", []))

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._read(_lease_path(namespace, name))

    async def write_lease(self, namespace: str, name: str, spec: dict[str, Any],
                          resource_version: str | None) -> bool:
        """Create the lease, or replace it only if it is still at resource_version: two
        replicas racing for it cannot both win. False when the other one did."""
        metadata: dict[str, str] = {"name": name, "namespace": namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": spec}
        try:
            if resource_version is None:
                await self.rest.request("POST", _lease_path(namespace), body)
            else:
                await self.rest.request("PUT", _lease_path(namespace, name), body)
        except ApiException as err:
            if err.status in (404, 409):
                return False
            raise
        return True

    async def patch_status(self, meta: ObjectMeta, status: dict[str, Any]) -> str | None:
        """Merge-patch the status, only if the job is still at meta.resource_version.

        Returns the new resourceVersion, or None when the job changed meanwhile (409) or is
        gone (404): the decision was made on stale state and the next event brings fresh.
        """
        body = {"metadata": {"resourceVersion": meta.resource_version}, "status": status}
        try:
            result = await self._write("PATCH", _job_path(meta) + "/status", body, MERGE_PATCH)
        except ApiException as err:
            if err.status in (404, 409):
                return None
            if err.status == 422:
                raise StatusRefusedError(_reason(err)) from err
            raise
        return str(result["metadata"]["resourceVersion"])

    async def create(self, manifest: dict[str, Any]) -> Created:
        """Create a pod or service. One that exists already under that name counts as created
        only if its controller ownerReference is this object's owner (the job's uid): the
        one GET is made on a conflict only, never in steady state."""
        plural = "pods" if manifest["kind"] == "Pod" else "services"
        meta = manifest["metadata"]
        path = _namespaced(meta["namespace"], plural)
        try:
            await self._write("POST", path, manifest)
        except ApiException as err:
            if err.status == 409:
                return await self._existing(manifest, path + "/" + meta["name"])
            reason = _reason(err)
            kind = answer(int(err.status or 0), reason)
            return Created(False, reason, passing=kind is Answer.PASSING,
                           flaky=kind is Answer.FLAKY)
        return Created(True)

    async def _existing(self, manifest: dict[str, Any], path: str) -> Created:
        """A create answered "already exists": ours (an earlier create of this job), or a
        squatter's."""
        found = await self._read(path)
        if found is None:  # deleted meanwhile: the next try creates it
            return Created(False, "it was deleted while being created", passing=True)
        meta = manifest["metadata"]
        if _controller_uid(found) == _controller_uid(manifest):
            return Created(True)
        if (found.get("metadata") or {}).get("deletionTimestamp") or _same_owner_name(
                found, manifest):  # a job deleted and created again: its objects are going
            return Created(False, f"{manifest['kind']} {meta['name']} of an earlier "
                           "TrainingJob of this name is still being deleted", passing=True)
        owner = _controller_uid(found)
        return Created(False, f"{manifest['kind']} {meta['name']} exists, not this job's",
                       taken=True, owner_uid=owner or None)

    async def delete_trainingjob(self, meta: ObjectMeta, resource_version: str) -> None:
        """Delete a finished job as the TTL-after-finished controller of batch/v1 Jobs does:
        foreground, so it goes once its pods and Service have; only the object decided on
        (uid and resourceVersion preconditions: 409 means it changed, 404 it is gone)."""
        body = {"propagationPolicy": "Foreground",
                "preconditions": {"uid": meta.uid, "resourceVersion": resource_version}}
        try:
            await self._write("DELETE", _job_path(meta), body)
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        try:
            await self._write("DELETE", _namespaced(namespace, "pods", name),
                              {"gracePeriodSeconds": grace_seconds})
        except ApiException as err:
            if err.status != 404:
                raise

    async def stop_pod(self, namespace: str, name: str, uid: str, deadline_seconds: int) -> None:
        """Set spec.activeDeadlineSeconds, so the kubelet kills the pod with its grace period
        and keeps the object (decision.STOP_DEADLINE_SECONDS says why). A JSON patch whose
        first op tests the uid: a pod gone (404) or replaced under the same name (the test
        fails, 422) is left alone."""
        patch = [{"op": "test", "path": "/metadata/uid", "value": uid},
                 {"op": "add", "path": "/spec/activeDeadlineSeconds", "value": deadline_seconds}]
        try:
            await self._write("PATCH", _namespaced(namespace, "pods", name), patch, JSON_PATCH)
        except ApiException as err:
            if err.status == 422:
                log.warning("not stopping pod %s/%s: %s", namespace, name, _reason(err))
            elif err.status != 404:
                raise

    async def event(self, meta: ObjectMeta, type_: str, reason: str, message: str) -> None:
        now = format_time(datetime.now(UTC))
        body = {
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta.name,
                               "namespace": meta.namespace, "uid": meta.uid},
            "type": type_, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        }
        try:
            await self._write("POST", _namespaced(meta.namespace, "events"), body)
        except ApiException as err:  # an event is worth a log line, never a failed transition
            log.warning("could not post event %s on %s/%s: %s", reason, meta.namespace,
                        meta.name, _reason(err))


def _lease_path(namespace: str, name: str = "") -> str:
    return _namespaced(namespace, "leases", name, "coordination.k8s.io")
