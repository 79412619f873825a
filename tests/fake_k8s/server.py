"""A loopback Kubernetes API server that the real ``kubernetes`` clients (sync and asyncio) talk to.

It stores objects the way the API server does (namespaced collections, ``resourceVersion``,
``generation``, ``uid``, label/field selectors, watches, merge/JSON patches, 404/409/422 ``Status``
bodies, bearer-token auth) and simulates the scheduler and kubelet for pods through scripted
:class:`~tests.fake_k8s.pods.PodBehavior` s. See ``tests/fixtures/fake_k8s.py`` for the fixture API.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jsonpatch
import yaml
from aiohttp import web

from tests.fake_k8s.pods import PodBehavior, compute_status, events_for_stage, rfc3339, rfc3339_nano
from tests.fake_k8s.selectors import parse_field_selector, parse_label_selector

CORE = ""
_KINDS = {
    "pods": "Pod",
    "events": "Event",
    "services": "Service",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}


def _status(code: int, reason: str, message: str, name: str | None = None, kind: str | None = None) -> web.Response:
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


def _merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch (``null`` deletes a key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class FakeKubernetes:
    """The fake cluster: state, HTTP server thread and test-side accessors."""

    def __init__(self, workdir: Path, conn_id: str = "fake_k8s") -> None:
        self.workdir = Path(workdir)
        self.conn_id = conn_id
        self.token = secrets.token_hex(16)
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.kubeconfig_path = self.workdir / "kubeconfig.yaml"
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKubernetes:
        """Start the HTTP server on 127.0.0.1 (free port) and write the kubeconfig."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        port_box: list[int] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port_box.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-k8s-api", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake Kubernetes API server did not start")
        self.url = f"http://127.0.0.1:{port_box[0]}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig()))
        return self

    def stop(self) -> None:
        """Stop the server thread."""
        if self._loop is None:
            return

        async def shutdown() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def kubeconfig(self, namespace: str = "default") -> dict:
        """Return a kubeconfig dict pointing at this server with its bearer token."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user", "namespace": namespace}}],
            "current-context": "fake",
        }

    def connection_json(self) -> str:
        """Airflow connection (JSON form) of type ``kubernetes`` using the generated kubeconfig."""
        return json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config_path": str(self.kubeconfig_path), "namespace": "default"},
            }
        )

    def reset(self) -> None:
        """Forget every object, behavior, controller and request (called before each test)."""
        with self._lock:
            self._objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
            self._pod_runtime: dict[tuple[str, str], dict] = {}
            self._behaviors: list[PodBehavior] = []
            self._controllers: dict[str, list[Callable[[dict], None]]] = {}
            self._rv = 1000
            self.requests: list[tuple[str, str]] = []
            self.request_log: list[dict] = []
            self.created_pods: list[dict] = []
            self.deleted_pods: list[str] = []

    # ------------------------------------------------------------------ test-side API
    def set_pod_behavior(self, outcome: str = "succeeded", **kwargs) -> PodBehavior:
        """Script how pods created from now on behave (the latest matching behavior wins); see PodBehavior."""
        behavior = PodBehavior(outcome=outcome, **kwargs)
        with self._lock:
            self._behaviors.append(behavior)
        return behavior

    def pods(self, namespace: str | None = None) -> list[dict]:
        """Return the pods that currently exist (status evaluated now), optionally in one namespace."""
        with self._lock:
            self._materialize_pods()
            return [
                copy.deepcopy(p)
                for (ns, _), p in sorted(self._store(CORE, "pods").items())
                if namespace is None or ns == namespace
            ]

    def pod_logs(self, name: str, namespace: str = "default") -> list[str]:
        """Return every log line the pod has written so far."""
        with self._lock:
            self._materialize_pods()
            runtime = self._pod_runtime.get((namespace, name))
            now = time.time()
            return [line for ts, line in (runtime or {}).get("logs", []) if ts <= now]

    def events(self, namespace: str | None = None) -> list[dict]:
        """Return the Events recorded so far."""
        with self._lock:
            self._materialize_pods()
            return [
                copy.deepcopy(e)
                for (ns, _), e in sorted(self._store(CORE, "events").items())
                if namespace is None or ns == namespace
            ]

    def create_pod(self, manifest: dict, namespace: str = "default", behavior: PodBehavior | None = None) -> dict:
        """Create a pod directly (as another client would), optionally with its own behavior."""
        with self._lock:
            return copy.deepcopy(self._create_pod(namespace, copy.deepcopy(manifest), behavior))

    def get_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
        """Return a stored object (custom or core: ``group=""``), or None."""
        with self._lock:
            if group == CORE and plural == "pods":
                self._materialize_pods()
            obj = self._store(group, plural).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, group: str, version: str, namespace: str | None, plural: str) -> list[dict]:
        """Return the stored objects of a collection (all namespaces when ``namespace`` is None)."""
        with self._lock:
            if group == CORE and plural == "pods":
                self._materialize_pods()
            return [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self._store(group, plural).items())
                if namespace is None or ns == namespace
            ]

    def put_object(self, group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        """Create or replace an object directly (bookkeeping and controllers apply as for an API write)."""
        with self._lock:
            body = copy.deepcopy(body)
            body.setdefault("apiVersion", f"{group}/{version}" if group else version)
            existing = self._store(group, plural).get((namespace, body["metadata"]["name"]))
            if existing is None:
                obj = self._create(group, plural, namespace, body)
            else:
                obj = self._replace(group, plural, namespace, existing, body, subresource=None)
            return copy.deepcopy(obj)

    def add_controller(self, plural: str, fn: Callable[[dict], None]) -> None:
        """Call ``fn(obj)`` after every write to an object of ``plural``; ``fn`` mutates ``obj`` (e.g. its status)."""
        with self._lock:
            self._controllers.setdefault(plural, []).append(fn)

    # ------------------------------------------------------------------ storage
    def _store(self, group: str, plural: str) -> dict[tuple[str, str], dict]:
        return self._objects.setdefault((group, plural), {})

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _run_controllers(self, plural: str, obj: dict) -> None:
        for fn in self._controllers.get(plural, []):
            fn(obj)

    def _create(self, group: str, plural: str, namespace: str, body: dict) -> dict:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise _ApiError(
                    422, "Invalid", f'{_KINDS.get(plural, plural)} "" is invalid: metadata.name: Required value'
                )
        store = self._store(group, plural)
        if (namespace, meta["name"]) in store:
            raise _ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists', meta["name"], plural)
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(time.time())
        meta["generation"] = 1
        body.setdefault("kind", _KINDS.get(plural, body.get("kind")))
        self._run_controllers(plural, body)
        meta["resourceVersion"] = self._next_rv()
        store[(namespace, meta["name"])] = body
        return body

    def _replace(
        self, group: str, plural: str, namespace: str, existing: dict, body: dict, subresource: str | None
    ) -> dict:
        meta = body.setdefault("metadata", {})
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != existing["metadata"]["resourceVersion"]:
            raise _ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{existing["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                existing["metadata"]["name"],
                plural,
            )
        if subresource == "status":
            new = copy.deepcopy(existing)
            new["status"] = copy.deepcopy(body.get("status"))
        else:
            new = copy.deepcopy(body)
            kept = {k: existing["metadata"][k] for k in ("uid", "creationTimestamp", "generation", "namespace", "name")}
            new["metadata"] = {**new.get("metadata", {}), **kept}
            if "status" in existing:
                new["status"] = copy.deepcopy(existing["status"])
            else:
                new.pop("status", None)
            if _spec_part(new) != _spec_part(existing):
                new["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
        self._run_controllers(plural, new)
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._store(group, plural)[(namespace, existing["metadata"]["name"])] = new
        return new

    # ------------------------------------------------------------------ pods
    def _behavior_for(self, pod: dict) -> PodBehavior:
        for behavior in reversed(self._behaviors):
            if behavior.matches(pod):
                return behavior
        return PodBehavior()

    def _create_pod(self, namespace: str, body: dict, behavior: PodBehavior | None = None) -> dict:
        containers = (body.get("spec") or {}).get("containers") or []
        if not containers or any(not c.get("name") or not c.get("image") for c in containers):
            raise _ApiError(
                422,
                "Invalid",
                "Pod is invalid: spec.containers: Required value (every container needs a name and an image)",
            )
        body.pop("status", None)
        pod = self._create(CORE, "pods", namespace, body)
        self.created_pods.append(copy.deepcopy(pod))
        now = time.time()
        chosen = behavior or self._behavior_for(pod)
        missing = self._missing_secrets(namespace, pod)
        if missing:  # the kubelet cannot build the container's environment
            chosen = PodBehavior(outcome="config_error", message=f'secret "{missing[0]}" not found')
        started = now + chosen.pending_seconds
        self._pod_runtime[(namespace, pod["metadata"]["name"])] = {
            "behavior": chosen,
            "created": now,
            "stage": None,
            "logs": [(started + 0.001 * i, line) for i, line in enumerate(chosen.logs)]
            if chosen.outcome not in ("unschedulable", "image_pull_error")
            else [],
        }
        pod.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        if chosen.run is not None:
            self._pod_runtime[(namespace, pod["metadata"]["name"])]["behavior"] = dataclasses.replace(
                chosen, outcome="running", run=None
            )
            threading.Thread(
                target=self._run_workload, args=(namespace, copy.deepcopy(pod), chosen), daemon=True
            ).start()
        self._materialize_pods()
        return pod

    def _missing_secrets(self, namespace: str, pod: dict) -> list[str]:
        """Secrets a container references (envFrom / env valueFrom, not optional) that do not exist."""
        secrets = self._store(CORE, "secrets")
        missing = []
        for container in (pod.get("spec") or {}).get("containers") or []:
            refs = [(e.get("secretRef") or {}) for e in container.get("envFrom") or []]
            refs += [((e.get("valueFrom") or {}).get("secretKeyRef") or {}) for e in container.get("env") or []]
            for ref in refs:
                if ref.get("name") and not ref.get("optional") and (namespace, ref["name"]) not in secrets:
                    missing.append(ref["name"])
        return missing

    def resolved_env(self, pod: dict, container: str | None = None) -> dict[str, str]:
        """The environment the kubelet gives a container: ``env`` values plus Secrets/ConfigMaps it references."""
        import base64

        ns = pod["metadata"].get("namespace", "default")
        containers = pod["spec"]["containers"]
        spec = next((c for c in containers if container in (None, c["name"])), containers[0])
        env: dict[str, str] = {}
        with self._lock:
            for source in spec.get("envFrom") or []:
                for kind, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                    ref = source.get(kind)
                    obj = self._store(CORE, plural).get((ns, (ref or {}).get("name"))) if ref else None
                    if obj:
                        for key, value in (obj.get("data") or {}).items():
                            env[key] = base64.b64decode(value).decode() if plural == "secrets" else value
                        for key, value in (obj.get("stringData") or {}).items():
                            env[key] = value
            for item in spec.get("env") or []:
                if "value" in item:
                    env[item["name"]] = item["value"]
                elif (item.get("valueFrom") or {}).get("secretKeyRef"):
                    ref = item["valueFrom"]["secretKeyRef"]
                    obj = self._store(CORE, "secrets").get((ns, ref["name"])) or {}
                    if ref["key"] in (obj.get("data") or {}):
                        env[item["name"]] = base64.b64decode(obj["data"][ref["key"]]).decode()
        return env

    def _run_workload(self, namespace: str, pod: dict, behavior: PodBehavior) -> None:
        """Run a behavior's workload like a kubelet would run the container, then record how it ended."""
        key = (namespace, pod["metadata"]["name"])
        runtime = self._pod_runtime.get(key)
        if runtime is None:
            return
        started = runtime["created"] + behavior.pending_seconds
        time.sleep(max(0.0, started - time.time()))
        try:
            exit_code, lines = behavior.run(pod)  # type: ignore[misc]
        except Exception as exc:  # the workload crashed: like a container dying with a traceback
            exit_code, lines = 1, [f"{type(exc).__name__}: {exc}"]
        with self._lock:
            if self._pod_runtime.get(key) is not runtime:
                return  # deleted (or replaced) while it ran
            finished = time.time()
            runtime["behavior"] = dataclasses.replace(
                behavior,
                outcome="succeeded" if exit_code == 0 else "failed",
                exit_code=exit_code,
                run=None,
                logs=list(lines),
                run_seconds=finished - started,
            )
            runtime["logs"] = [(finished - 0.001 * (len(lines) - i), line) for i, line in enumerate(lines)]

    def _materialize_pods(self) -> None:
        now = time.time()
        store = self._store(CORE, "pods")
        for key, pod in store.items():
            runtime = self._pod_runtime.get(key)
            if runtime is None:
                continue
            status, stage = compute_status(pod, runtime["behavior"], runtime["created"], now)
            if status != pod.get("status"):
                pod["status"] = status
                if stage != "unschedulable":
                    pod["spec"]["nodeName"] = "fake-node-1"
                pod["metadata"]["resourceVersion"] = self._next_rv()
            if stage != runtime["stage"]:
                runtime["stage"] = stage
                for type_, reason, message in events_for_stage(pod, stage, runtime["behavior"]):
                    self._record_event(pod, type_, reason, message)

    def _record_event(self, pod: dict, type_: str, reason: str, message: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        event_name = f"{name}.{uuid.uuid4().hex[:16]}"
        ts = rfc3339(time.time())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": ts,
                "resourceVersion": self._next_rv(),
            },
            "involvedObject": {
                "kind": "Pod",
                "namespace": ns,
                "name": name,
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
                "fieldPath": "spec.containers{base}",
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "source": {"component": "default-scheduler" if reason == "FailedScheduling" else "kubelet"},
        }
        self._store(CORE, "events")[(ns, event_name)] = event

    def _container_state(self, pod: dict, container: str) -> dict:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status["name"] == container:
                return status.get("state") or {}
        return {}

    # ------------------------------------------------------------------ HTTP
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self._lock:
            self.requests.append((request.method, path))
            self.request_log.append({"method": request.method, "path": path, "query": dict(request.query)})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        try:
            return await self._route(request)
        except _ApiError as exc:
            return _status(exc.code, exc.reason, exc.message, exc.name, exc.kind)

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
            return _status(404, "NotFound", f"the server could not find the requested resource ({request.path})")
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            namespace, plural, tail = rest[1], rest[2], rest[3:]
        elif len(rest) == 1:
            namespace, plural, tail = None, rest[0], []
        else:
            return _status(404, "NotFound", f"the server could not find the requested resource ({request.path})")
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) > 1 else None
        if name is None:
            return await self._collection(request, group, version, namespace, plural)
        assert namespace is not None
        if group == CORE and plural == "pods" and sub == "log":
            return await self._pod_log(request, namespace, name)
        if sub not in (None, "status"):
            return _status(404, "NotFound", f"subresource {sub!r} is not supported by the fake")
        return await self._item(request, group, version, namespace, plural, name, sub)

    async def _collection(
        self, request: web.Request, group: str, version: str, namespace: str | None, plural: str
    ) -> web.StreamResponse:
        if request.method == "GET":
            if request.query.get("watch") in ("true", "1", "True"):
                return await self._watch(request, group, namespace, plural)
            with self._lock:
                items = self._list(group, namespace, plural, request)
                rv = str(self._rv)
            kind = _KINDS.get(plural, plural)
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
                return _status(405, "MethodNotAllowed", "create needs a namespace")
            body = await request.json()
            with self._lock:
                if group == CORE and plural == "pods":
                    obj = self._create_pod(namespace, body)
                else:
                    body.setdefault("apiVersion", f"{group}/{version}" if group else version)
                    obj = self._create(group, plural, namespace, body)
                return web.json_response(copy.deepcopy(obj), status=201)
        return _status(405, "MethodNotAllowed", f"{request.method} is not allowed on a collection")

    def _list(self, group: str, namespace: str | None, plural: str, request: web.Request) -> list[dict]:
        if group == CORE and plural == "pods":
            self._materialize_pods()
        label_ok = parse_label_selector(request.query.get("labelSelector"))
        field_ok = parse_field_selector(request.query.get("fieldSelector"))
        items = [
            copy.deepcopy(o)
            for (ns, _), o in sorted(self._store(group, plural).items())
            if (namespace is None or ns == namespace)
            and label_ok((o.get("metadata") or {}).get("labels") or {})
            and field_ok(o)
        ]
        if plural == "events":
            items.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
        return items

    async def _watch(self, request: web.Request, group: str, namespace: str | None, plural: str) -> web.StreamResponse:
        timeout = float(request.query.get("timeoutSeconds") or 60)
        since_rv = request.query.get("resourceVersion")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        seen: dict[str, str] = {}
        last: dict[str, dict] = {}
        with self._lock:
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
                with self._lock:
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
        kind = _KINDS.get(plural, plural)
        with self._lock:
            if group == CORE and plural == "pods":
                self._materialize_pods()
            store = self._store(group, plural)
            existing = store.get(key)
            if existing is None:
                raise _ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
            if request.method == "GET":
                return web.json_response(copy.deepcopy(existing))
        if request.method == "DELETE":
            with self._lock:
                obj = store.pop(key, None)
                if obj is None:
                    raise _ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
                if group == CORE and plural == "pods":
                    self._pod_runtime.pop(key, None)
                    self.deleted_pods.append(name)
                obj["metadata"]["deletionTimestamp"] = rfc3339(time.time())
                return web.json_response(obj)
        if request.method in ("PUT", "PATCH"):
            raw = await request.read()
            content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
            body = yaml.safe_load(raw) if content_type == "application/apply-patch+yaml" else json.loads(raw or b"null")
            with self._lock:
                existing = store.get(key)
                if existing is None:
                    raise _ApiError(404, "NotFound", f'{plural} "{name}" not found', name, plural)
                if request.method == "PUT":
                    if (body.get("metadata") or {}).get("name", name) != name:
                        raise _ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
                    new_body = body
                elif content_type == "application/json-patch+json":
                    try:
                        new_body = jsonpatch.apply_patch(existing, body)
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                        raise _ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
                    new_body.setdefault("metadata", {}).pop("resourceVersion", None)
                else:  # merge-patch, strategic-merge-patch and apply-patch are all treated as a JSON merge patch
                    if not isinstance(body, dict):
                        raise _ApiError(
                            400,
                            "BadRequest",
                            f"{content_type} patch body must be a JSON object; send a "
                            "list of operations as application/json-patch+json",
                        )
                    new_body = _merge_patch(existing, body)
                    if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
                        new_body["metadata"].pop("resourceVersion", None)
                obj = self._replace(group, plural, namespace, existing, new_body, subresource=sub)
                return web.json_response(copy.deepcopy(obj))
        return _status(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}")

    async def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = request.query
        follow = query.get("follow") in ("true", "1", "True")
        timestamps = query.get("timestamps") in ("true", "1", "True")
        since = None
        if query.get("sinceSeconds"):
            since = time.time() - float(query["sinceSeconds"])
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        with self._lock:
            self._materialize_pods()
            pod = self._store(CORE, "pods").get((namespace, name))
            if pod is None:
                raise _ApiError(404, "NotFound", f'pods "{name}" not found', name, "pods")
            names = [c["name"] for c in pod["spec"]["containers"]]
            container = query.get("container") or (names[0] if len(names) == 1 else None)
            if container is None:
                raise _ApiError(
                    400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: {names}"
                )
            if container not in names:
                raise _ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            state = self._container_state(pod, container)
            if "waiting" in state or not state:
                reason = (state.get("waiting") or {}).get("reason", "PodInitializing")
                raise _ApiError(
                    400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}'
                )

        def render(ts: float, line: str) -> bytes:
            return ((rfc3339_nano(ts) + " " if timestamps else "") + line + "\n").encode()

        def available() -> tuple[list[tuple[float, str]], bool]:
            with self._lock:
                self._materialize_pods()
                runtime = self._pod_runtime.get((namespace, name))
                current = self._store(CORE, "pods").get((namespace, name))
                if runtime is None or current is None:
                    return [], True
                now = time.time()
                lines = [(ts, line) for ts, line in runtime["logs"] if ts <= now and (since is None or ts >= since)]
                return lines, "terminated" in self._container_state(current, container)

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


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, name: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.name, self.kind = code, reason, message, name, kind
