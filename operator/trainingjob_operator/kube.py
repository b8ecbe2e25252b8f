"""The only module that talks to the Kubernetes API (besides kopf's own watching).

The official client is synchronous: every call runs in a worker thread so the event loop
never blocks. Errors are turned into the few outcomes the controller distinguishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trainingjob_operator.models import ObjectMeta
from trainingjob_operator.vocabulary import API_VERSION, COMPONENT, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Created:
    ok: bool
    rejected: str | None = None  # the API's refusal (quota, admission, invalid), for people


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


class NotLeaderError(RuntimeError):
    """A write was attempted by a replica that does not hold the leader lease."""


class Kube:
    def __init__(self, kubeconfig: str | None = None) -> None:
        """In a pod: its service account. Else `kubeconfig`, else $KUBECONFIG as it is now
        (the client's own default is read once, at import)."""
        configuration = client.Configuration()
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 32
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        # Set by leader election; without it this process is the only replica.
        self.leading: Callable[[], bool] = lambda: True

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Every write but the lease's: only the leader may make it (the backstop behind the
        controller's own check, so no code path can write from a standby)."""
        if not self.leading():
            raise NotLeaderError(f"{getattr(fn, '__name__', fn)}: this replica is not the leader")
        return await self._call(fn, *args, **kwargs)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T | None:
        """A read where 404 means "not there" rather than an error."""
        try:
            return await self._call(fn, *args)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    async def serves_trainingjobs(self) -> bool:
        """Whether the TrainingJob API is served (its CRD installed). Discovery needs no
        RBAC grant, so the operator need not read CRDs at all."""
        found = await self._read(self.custom.get_api_resources, GROUP, VERSION)
        return found is not None and any(r.name == PLURAL for r in found.resources)

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        lease = await self._read(self.coordination.read_namespaced_lease, name, namespace)
        if lease is None:
            return None
        return cast(dict[str, Any], self.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            lease))

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
                await self._call(self.coordination.create_namespaced_lease, namespace, body)
            else:
                await self._call(self.coordination.replace_namespaced_lease, name, namespace,
                                 body)
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
            result = await self._write(
                self.custom.patch_namespaced_custom_object_status, GROUP, VERSION,
                meta.namespace, PLURAL, meta.name, body)
        except ApiException as err:
            if err.status in (404, 409):
                return None
            raise
        return str(cast(dict[str, Any], result)["metadata"]["resourceVersion"])

    async def create(self, manifest: dict[str, Any]) -> Created:
        """Create a pod or service; an existing one with that name counts as created."""
        create = (self.core.create_namespaced_pod if manifest["kind"] == "Pod"
                  else self.core.create_namespaced_service)
        try:
            await self._write(create, manifest["metadata"]["namespace"], manifest)
        except ApiException as err:
            if err.status == 409:
                return Created(True)
            if err.status in (400, 403, 422):
                return Created(False, _reason(err))
            raise
        return Created(True)

    async def delete_trainingjob(self, meta: ObjectMeta, resource_version: str) -> None:
        """Delete a finished job as the TTL-after-finished controller of batch/v1 Jobs does:
        foreground, so it goes once its pods and Service have; only the object decided on
        (uid and resourceVersion preconditions: 409 means it changed, 404 it is gone)."""
        body = {"propagationPolicy": "Foreground",
                "preconditions": {"uid": meta.uid, "resourceVersion": resource_version}}
        try:
            await self._write(self.custom.delete_namespaced_custom_object, GROUP, VERSION,
                              meta.namespace, PLURAL, meta.name, body=body)
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        try:
            await self._write(self.core.delete_namespaced_pod, name, namespace,
                             grace_period_seconds=grace_seconds)
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
            await self._write(self.core.patch_namespaced_pod, name, namespace, patch,
                              _content_type="application/json-patch+json")
        except ApiException as err:
            if err.status == 422:
                log.warning("not stopping pod %s/%s: %s", namespace, name, _reason(err))
            elif err.status != 404:
                raise

    async def event(self, meta: ObjectMeta, type_: str, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        body = {
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta.name,
                               "namespace": meta.namespace, "uid": meta.uid},
            "type": type_, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        }
        try:
            await self._write(self.core.create_namespaced_event, meta.namespace, body)
        except ApiException as err:  # an event is worth a log line, never a failed transition
            log.warning("could not post event %s on %s/%s: %s", reason, meta.namespace,
                        meta.name, _reason(err))
