"""A served Kubernetes API for the operator's smoke test, built on kmock.

usage: kmock_apiserver.py   (prints "PORT <n>" once listening; stops when stdin closes)

kmock's KubernetesEmulator keeps objects in memory and serves list, get, watch and
delete (with finalizers). This subclass adds what an operator's writes need from a
real API server: server-side apply (create or update, by PATCH), JSON patches
(RFC 6902, with a `test` of an absent path against null, as the API server allows),
merge patches (RFC 7386), replace with `resourceVersion` conflicts (409), the status
subresource, and metadata the server owns (uid, resourceVersion, generation,
creationTimestamp). A write that changes nothing emits no watch event, as with a
real server; otherwise a reconcile of the owner would trigger itself forever.
"""

import asyncio
import copy
import datetime
import itertools
import sys
import uuid

import aiohttp.web
import jsonpatch
import jsonpointer
import kmock
from kmock._internal import enums
from kmock._internal.k8s import KubernetesError, KubernetesObjectNotFoundError

RESOURCES = {
    "sales-system.io/v1alpha1/salessystems": ("SalesSystem", {"status"}),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/secrets": ("Secret", set()),
    "v1/services": ("Service", {"status"}),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", {"status"}),
    "apps/v1/deployments": ("Deployment", {"status"}),
    "apps/v1/statefulsets": ("StatefulSet", {"status"}),
    "batch/v1/cronjobs": ("CronJob", {"status"}),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", {"status"}),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", set()),
    "networking.k8s.io/v1/ingresses": ("Ingress", {"status"}),
    "coordination.k8s.io/v1/leases": ("Lease", set()),
    "events.k8s.io/v1/events": ("Event", set()),
}

VERSIONS = itertools.count(1)


def conflict(message):
    return KubernetesError(status=409, reason="Conflict", message=message)


def merge(base, patch, null_deletes):
    for key, value in patch.items():
        if value is None and null_deletes:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value, null_deletes)
        else:
            base[key] = copy.deepcopy(value)


def without_volatile(obj):
    obj = copy.deepcopy(obj)
    obj.get("metadata", {}).pop("resourceVersion", None)
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def json_patch(doc, operations):
    kept = []
    for op in operations:
        if op.get("op") == "test" and op.get("value") is None:
            try:
                jsonpointer.resolve_pointer(doc, op["path"])
            except jsonpointer.JsonPointerException:
                continue  # absent counts as null
        kept.append(op)
    try:
        return jsonpatch.apply_patch(doc, kept)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise KubernetesError(status=422, reason="Invalid", message=f"json patch: {e}")


class ApiServer(kmock.KubernetesEmulator):
    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        for key, (kind, subresources) in RESOURCES.items():
            self.resources[key] = {
                "kind": kind, "namespaced": True, "subresources": subresources,
                "verbs": {"get", "list", "watch", "create", "update", "patch", "delete"},
            }

    def _stored(self, key):
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def _store(self, key, new, old):
        if old is not None and without_volatile(new) == without_volatile(old):
            return old, None
        meta = new.setdefault("metadata", {})
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = 1
            event = "ADDED"
        else:
            for server_owned in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
                if server_owned in old["metadata"]:
                    meta[server_owned] = old["metadata"][server_owned]
            body = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}
            if body(new) != body(old):
                meta["generation"] = old["metadata"].get("generation", 1) + 1
            event = "MODIFIED"
        meta["resourceVersion"] = str(next(VERSIONS))
        meta.pop("managedFields", None)
        if key in self.objects:
            del self.objects[key]
        self.objects[key] = new
        return new, event

    def _write(self, request):
        data = request.data if request.data is not None else {}
        namespace = request.namespace or (data.get("metadata") or {}).get("namespace")
        name = request.name or (data.get("metadata") or {}).get("name")
        key = (request.resource, namespace, name)
        old = self._stored(key)
        content_type = request.headers.get("Content-Type", "")
        status_only = request.subresource == "status"

        if request.method == enums.method.POST:
            if old is not None:
                raise KubernetesError(status=409, reason="AlreadyExists", message=f"{name} already exists")
            new = copy.deepcopy(data)
            new.setdefault("metadata", {})["namespace"] = namespace
            return self._store(key, new, None) + (201,)

        if old is None and not ("apply-patch" in content_type and not status_only):
            raise KubernetesObjectNotFoundError()

        if request.method == enums.method.PUT:
            expected = (data.get("metadata") or {}).get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise conflict(f"the object {name} has been modified")
            new = copy.deepcopy(data)
            if status_only:
                new = {**old, "status": data.get("status")}
            elif "status" in old:
                new["status"] = old["status"]
        elif "json-patch" in content_type:
            new = json_patch(old, data)
        elif "apply-patch" in content_type:
            applied = copy.deepcopy(data)
            if old is None:
                new = applied
                new.setdefault("metadata", {})["namespace"] = namespace
            else:
                new = copy.deepcopy(old)
                metadata = applied.pop("metadata", {})
                for field in ("labels", "annotations", "ownerReferences"):
                    if field in metadata:
                        new["metadata"][field] = metadata[field]
                for field, value in applied.items():
                    if field != "status" or status_only:
                        new[field] = value
        else:  # merge patch
            new = copy.deepcopy(old)
            merge(new, {"status": data.get("status")} if status_only else data, null_deletes=True)
        if status_only:
            new = {**old, "status": new.get("status")}
        if new.get("metadata", {}).get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del self.objects[key]
            self.objects[key] = new
            self.objects[key].delete()
            return new, "DELETED", 200
        return self._store(key, new, old) + (200,)

    async def _render_error(self, exc):
        # Reasons as the API server spells them (clients match on them).
        if isinstance(exc, KubernetesError):
            reason = {404: "NotFound", 422: "Invalid"}.get(exc.status, exc.reason)
            return aiohttp.web.json_response({
                "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "code": exc.status, "reason": reason, "message": exc.message or reason,
            }, status=exc.status)
        return await super()._render_error(exc)

    async def _handle(self, request):
        writes = (enums.method.POST, enums.method.PATCH, enums.method.PUT)
        if request.resource is not None and request.method in writes:
            async with self._lock:
                try:
                    obj, event, status = self._write(request)
                except KubernetesError as e:
                    return await self._render_error(e)
                if event is not None:
                    await self._buses[request.resource].put({"type": event, "object": copy.deepcopy(obj)})
            return aiohttp.web.json_response(obj, status=status)
        return await super()._handle(request)


async def main():
    async with ApiServer() as handler, kmock.Server(handler) as server:
        print(f"PORT {server.port}", flush=True)
        loop = asyncio.get_running_loop()
        # Serve until whoever started us closes our stdin (or dies).
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
