"""The fake API server's HTTP side: routing, auth, collections, watches, patches and pod logs.

Paths as the real API server serves them: ``/api/v1/namespaces/{ns}/{plural}[/{name}[/status|/log]]`` for core
objects, ``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/status]]`` for custom objects,
``/apis/{group}/{version}/{plural}`` across namespaces; every request needs a known bearer token (else 401):
the server's own token has full access, a service account's token is authorised by the Roles and RoleBindings
in the store (:mod:`tests.fake_k8s.rbac`, else 403); failures are ``Status`` bodies with the API server's codes
and reasons.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time

import jsonpatch
import yaml
from aiohttp import web

from tests.fake_k8s.kubelet import Kubelet
from tests.fake_k8s.pods import rfc3339, rfc3339_nano
from tests.fake_k8s.rbac import forbidden_message, is_allowed, request_verb
from tests.fake_k8s.store import CORE, KINDS, ApiError, ObjectStore, merge_patch


def status_response(
    code: int, reason: str, message: str, name: str | None = None, kind: str | None = None
) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name or kind:
        body["details"] = {"name": name, "kind": kind}
    return web.json_response(body, status=code)


class ApiHandler:
    """Answer Kubernetes API requests from the object store and the kubelet simulation.

    :param store: the object store.
    :param kubelet: the pod simulation (pod creation, status, logs).
    :param token: the bearer token every request must carry.
    """

    def __init__(self, store: ObjectStore, kubelet: Kubelet, token: str) -> None:
        self.store = store
        self.kubelet = kubelet
        self.token = token
        self.reset()

    def reset(self) -> None:
        """Forget the recorded requests and the service-account tokens."""
        self.requests: list[tuple[str, str]] = []
        self.request_log: list[dict] = []
        #: bearer token -> (namespace, name) of the service account it authenticates as.
        self.service_accounts: dict[str, tuple[str, str]] = {}

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self.store.lock:
            self.requests.append((request.method, path))
            self.request_log.append({"method": request.method, "path": path, "query": dict(request.query)})
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token != self.token and token not in self.service_accounts:
            return status_response(401, "Unauthorized", "Unauthorized")
        if token in self.service_accounts:
            denied = self._authorize(request, self.service_accounts[token])
            if denied is not None:
                return denied
        try:
            return await self._route(request)
        except ApiError as exc:
            return status_response(exc.code, exc.reason, exc.message, exc.name, exc.kind)

    def _authorize(self, request: web.Request, service_account: tuple[str, str]) -> web.Response | None:
        """``None`` when the service account's Roles allow the request, else the 403 ``Status``."""
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = CORE, parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:  # discovery (/version, /api, /apis) is open to every authenticated user
            return None
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            namespace, plural, tail = rest[1], rest[2], rest[3:]
        elif len(rest) == 1:
            namespace, plural, tail = None, rest[0], []
        else:
            return None  # routing answers 404
        name = tail[0] if tail else None
        resource = f"{plural}/{tail[1]}" if len(tail) > 1 else plural
        verb = request_verb(request.method, name, request.query.get("watch") in ("true", "1", "True"))
        scope = {"verb": verb, "group": group, "resource": resource, "namespace": namespace, "name": name}
        with self.store.lock:
            if is_allowed(self.store, service_account, **scope):
                return None
        kind = KINDS.get(plural, plural)
        return status_response(403, "Forbidden", forbidden_message(service_account, **scope), name, kind)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            return web.json_response(
                {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
            )
        if parts == ["api"]:
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if parts[:2] == ["api", "v1"]:
            group, version, rest = CORE, "v1", parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return status_response(
                404, "NotFound", f"the server could not find the requested resource ({request.path})"
            )
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            namespace, plural, tail = rest[1], rest[2], rest[3:]
        elif len(rest) == 1:
            namespace, plural, tail = None, rest[0], []
        else:
            return status_response(
                404, "NotFound", f"the server could not find the requested resource ({request.path})"
            )
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) > 1 else None
        if name is None:
            return await self._collection(request, group, version, namespace, plural)
        assert namespace is not None
        if group == CORE and plural == "pods" and sub == "log":
            return await self._pod_log(request, namespace, name)
        if sub not in (None, "status"):
            return status_response(404, "NotFound", f"subresource {sub!r} is not supported by the fake")
        return await self._item(request, group, version, namespace, plural, name, sub)

    async def _collection(
        self, request: web.Request, group: str, version: str, namespace: str | None, plural: str
    ) -> web.StreamResponse:
        if request.method == "GET":
            if request.query.get("watch") in ("true", "1", "True"):
                return await self._watch(request, group, namespace, plural)
            with self.store.lock:
                items = self._list(group, namespace, plural, request)
                rv = self.store.resource_version
            kind = KINDS.get(plural, plural)
            return web.json_response(
                {
                    "apiVersion": f"{group}/{version}" if group else version,
                    "kind": f"{kind}List",
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }
            )
        if request.method == "POST":
            if namespace is None:
                return status_response(405, "MethodNotAllowed", "create needs a namespace")
            body = await request.json()
            with self.store.lock:
                if group == CORE and plural == "pods":
                    obj = self.kubelet.create_pod(namespace, body)
                else:
                    body.setdefault("apiVersion", f"{group}/{version}" if group else version)
                    obj = self.store.create(group, plural, namespace, body)
                return web.json_response(copy.deepcopy(obj), status=201)
        return status_response(405, "MethodNotAllowed", f"{request.method} is not allowed on a collection")

    def _list(self, group: str, namespace: str | None, plural: str, request: web.Request) -> list[dict]:
        if group == CORE and plural == "pods":
            self.kubelet.materialize()
        return self.store.select(
            group, namespace, plural, request.query.get("labelSelector"), request.query.get("fieldSelector")
        )

    async def _watch(self, request: web.Request, group: str, namespace: str | None, plural: str) -> web.StreamResponse:
        timeout = float(request.query.get("timeoutSeconds") or 60)
        since_rv = request.query.get("resourceVersion")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        seen: dict[str, str] = {}
        last: dict[str, dict] = {}
        with self.store.lock:
            current = {
                o["metadata"]["name"] + "/" + o["metadata"]["namespace"]: o
                for o in self._list(group, namespace, plural, request)
            }
        for key, obj in current.items():
            rv = obj["metadata"]["resourceVersion"]
            seen[key] = rv
            last[key] = obj
            if since_rv in (None, "", "0") or int(rv) > int(since_rv):
                await response.write((json.dumps({"type": "ADDED", "object": obj}) + "\n").encode())
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                await asyncio.sleep(0.05)
                with self.store.lock:
                    current = {
                        o["metadata"]["name"] + "/" + o["metadata"]["namespace"]: o
                        for o in self._list(group, namespace, plural, request)
                    }
                for key, obj in current.items():
                    rv = obj["metadata"]["resourceVersion"]
                    if key not in seen:
                        await response.write((json.dumps({"type": "ADDED", "object": obj}) + "\n").encode())
                    elif seen[key] != rv:
                        await response.write((json.dumps({"type": "MODIFIED", "object": obj}) + "\n").encode())
                    seen[key] = rv
                    last[key] = obj
                for key in [k for k in seen if k not in current]:
                    # Like the API server, a DELETED event carries the object's last state.
                    await response.write((json.dumps({"type": "DELETED", "object": last.pop(key)}) + "\n").encode())
                    del seen[key]
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _item(
        self, request: web.Request, group: str, version: str, namespace: str, plural: str, name: str, sub: str | None
    ) -> web.StreamResponse:
        key = (namespace, name)
        kind = KINDS.get(plural, plural)
        with self.store.lock:
            if group == CORE and plural == "pods":
                self.kubelet.materialize()
            store = self.store.collection(group, plural)
            existing = store.get(key)
            if existing is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
            if request.method == "GET":
                return web.json_response(copy.deepcopy(existing))
        if request.method == "DELETE":
            with self.store.lock:
                obj = store.pop(key, None)
                if obj is None:
                    raise ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
                if group == CORE and plural == "pods":
                    self.kubelet.forget(namespace, name)
                obj["metadata"]["deletionTimestamp"] = rfc3339(time.time())
                return web.json_response(obj)
        if request.method in ("PUT", "PATCH"):
            raw = await request.read()
            content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
            body = yaml.safe_load(raw) if content_type == "application/apply-patch+yaml" else json.loads(raw or b"null")
            with self.store.lock:
                existing = store.get(key)
                if existing is None:
                    raise ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
                if request.method == "PUT":
                    if (body.get("metadata") or {}).get("name", name) != name:
                        raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
                    new_body = body
                elif content_type == "application/json-patch+json":
                    try:
                        new_body = jsonpatch.apply_patch(existing, body)
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                        raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
                    new_body.setdefault("metadata", {}).pop("resourceVersion", None)
                else:  # merge-patch, strategic-merge-patch and apply-patch are all treated as a JSON merge patch
                    if not isinstance(body, dict):
                        raise ApiError(
                            400,
                            "BadRequest",
                            f"{content_type} patch body must be a JSON object; send a "
                            "list of operations as application/json-patch+json",
                        )
                    new_body = merge_patch(existing, body)
                    if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
                        new_body["metadata"].pop("resourceVersion", None)
                obj = self.store.replace(group, plural, namespace, existing, new_body, subresource=sub)
                return web.json_response(copy.deepcopy(obj))
        return status_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}")

    async def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = request.query
        follow = query.get("follow") in ("true", "1", "True")
        timestamps = query.get("timestamps") in ("true", "1", "True")
        since = None
        if query.get("sinceSeconds"):
            since = time.time() - float(query["sinceSeconds"])
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        with self.store.lock:
            self.kubelet.materialize()
            pod = self.store.collection(CORE, "pods").get((namespace, name))
            if pod is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found', name, "pods")
            names = [c["name"] for c in pod["spec"]["containers"]]
            container = query.get("container") or (names[0] if len(names) == 1 else None)
            if container is None:
                raise ApiError(
                    400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: {names}"
                )
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            state = self.kubelet.container_state(pod, container)
            if "waiting" in state or not state:
                reason = (state.get("waiting") or {}).get("reason", "PodInitializing")
                raise ApiError(
                    400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}'
                )

        def render(ts: float, line: str) -> bytes:
            return ((rfc3339_nano(ts) + " " if timestamps else "") + line + "\n").encode()

        def available() -> tuple[list[tuple[float, str]], bool]:
            with self.store.lock:
                self.kubelet.materialize()
                runtime = self.kubelet.runtime.get((namespace, name))
                current = self.store.collection(CORE, "pods").get((namespace, name))
                if runtime is None or current is None:
                    return [], True
                now = time.time()
                lines = [(ts, line) for ts, line in runtime["logs"] if ts <= now and (since is None or ts >= since)]
                return lines, "terminated" in self.kubelet.container_state(current, container)

        lines, done = available()
        if tail is not None:
            lines = lines[-tail:] if tail else []
        if not follow:
            return web.Response(body=b"".join(render(ts, line) for ts, line in lines), content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        try:
            while True:
                for ts, line in lines[sent:]:
                    await response.write(render(ts, line))
                sent = len(lines)
                if done:
                    break
                await asyncio.sleep(0.05)
                lines, done = available()
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response
