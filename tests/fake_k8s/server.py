"""A loopback Kubernetes API server that the real ``kubernetes`` clients (sync and asyncio) talk to.

:class:`FakeKubernetes` puts the pieces together and offers the test-side API (see ``tests/fixtures/fake_k8s.py``):

* :mod:`tests.fake_k8s.store` -- the objects, with the API server's bookkeeping, and the controllers;
* :mod:`tests.fake_k8s.api` -- the HTTP handler (routing, auth, selectors, watches, patches, pod logs);
* :mod:`tests.fake_k8s.kubelet` -- the scheduler and kubelet simulation for scripted
  :class:`~tests.fake_k8s.pods.PodBehavior` s;
* :mod:`tests.fake_k8s.kserve` -- a KServe controller to register with :meth:`FakeKubernetes.add_controller`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import yaml
from aiohttp import web

from tests.fake_k8s.api import ApiHandler
from tests.fake_k8s.kubelet import Kubelet
from tests.fake_k8s.pods import PodBehavior
from tests.fake_k8s.store import CORE, ObjectStore


class FakeKubernetes:
    """The fake cluster: state, HTTP server thread and test-side accessors."""

    def __init__(self, workdir: Path, conn_id: str = "fake_k8s") -> None:
        self.workdir = Path(workdir)
        self.conn_id = conn_id
        self.token = secrets.token_hex(16)
        self.store = ObjectStore()
        self.kubelet = Kubelet(self.store)
        self.api = ApiHandler(self.store, self.kubelet, self.token)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.kubeconfig_path = self.workdir / "kubeconfig.yaml"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKubernetes:
        """Start the HTTP server on 127.0.0.1 (free port) and write the kubeconfig."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        port_box: list[int] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self.api.dispatch)
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

    def kubeconfig(self, namespace: str = "default", token: str | None = None) -> dict:
        """Return a kubeconfig dict pointing at this server with its bearer token (or ``token``)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
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

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates as ServiceAccount ``namespace/name``, authorised by RBAC objects.

        Until the test stores a Role and RoleBinding for it (``put_object("rbac.authorization.k8s.io", "v1",
        namespace, "roles", ...)``), every request with it answers 403 Forbidden. Forgotten at ``reset()``.
        """
        token = secrets.token_hex(16)
        with self.store.lock:
            self.api.service_accounts[token] = (namespace, name)
        return token

    def service_account_connection_json(self, namespace: str, name: str, *, conn_namespace: str = "default") -> str:
        """Airflow connection (JSON form) of type ``kubernetes`` authenticating as the service account."""
        path = self.kubeconfig_path.with_name(f"kubeconfig-{namespace}-{name}-{secrets.token_hex(4)}.yaml")
        token = self.service_account_token(namespace, name)
        path.write_text(yaml.safe_dump(self.kubeconfig(conn_namespace, token=token)))
        return json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(path), "namespace": conn_namespace}}
        )

    def reset(self) -> None:
        """Forget every object, behavior, controller and request (called before each test)."""
        with self.store.lock:
            self.store.reset()
            self.kubelet.reset()
            self.api.reset()

    # ------------------------------------------------------------------ recorded traffic
    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request, in arrival order."""
        return self.api.requests

    @property
    def request_log(self) -> list[dict]:
        """Every request as ``{"method", "path", "query"}``."""
        return self.api.request_log

    @property
    def created_pods(self) -> list[dict]:
        """Every pod ever created, as stored at creation."""
        return self.kubelet.created_pods

    @property
    def deleted_pods(self) -> list[str]:
        """Names of the deleted pods."""
        return self.kubelet.deleted_pods

    # ------------------------------------------------------------------ test-side API
    def set_pod_behavior(self, outcome: str = "succeeded", **kwargs) -> PodBehavior:
        """Script how pods created from now on behave (the latest matching behavior wins); see PodBehavior."""
        return self.kubelet.set_behavior(outcome, **kwargs)

    def pods(self, namespace: str | None = None) -> list[dict]:
        """Return the pods that currently exist (status evaluated now), optionally in one namespace."""
        return self.objects(CORE, "v1", namespace, "pods")

    def pod_logs(self, name: str, namespace: str = "default") -> list[str]:
        """Return every log line the pod has written so far."""
        with self.store.lock:
            self.kubelet.materialize()
            return [line for _, line in self.kubelet.logs(namespace, name)]

    def events(self, namespace: str | None = None) -> list[dict]:
        """Return the Events recorded so far."""
        with self.store.lock:
            self.kubelet.materialize()
            return [
                copy.deepcopy(e)
                for (ns, _), e in sorted(self.store.collection(CORE, "events").items())
                if namespace is None or ns == namespace
            ]

    def create_pod(self, manifest: dict, namespace: str = "default", behavior: PodBehavior | None = None) -> dict:
        """Create a pod directly (as another client would), optionally with its own behavior."""
        with self.store.lock:
            return copy.deepcopy(self.kubelet.create_pod(namespace, copy.deepcopy(manifest), behavior))

    def resolved_env(self, pod: dict, container: str | None = None) -> dict[str, str]:
        """The environment the kubelet gives a container: ``env`` values plus Secrets/ConfigMaps it references."""
        return self.kubelet.resolved_env(pod, container)

    def get_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
        """Return a stored object (custom or core: ``group=""``), or None."""
        with self.store.lock:
            if group == CORE and plural == "pods":
                self.kubelet.materialize()
            obj = self.store.collection(group, plural).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, group: str, version: str, namespace: str | None, plural: str) -> list[dict]:
        """Return the stored objects of a collection (all namespaces when ``namespace`` is None)."""
        with self.store.lock:
            if group == CORE and plural == "pods":
                self.kubelet.materialize()
            return self.store.select(group, namespace, plural)

    def put_object(self, group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        """Create or replace an object directly (bookkeeping and controllers apply as for an API write)."""
        with self.store.lock:
            return copy.deepcopy(self.store.put(group, version, namespace, plural, body))

    def add_controller(self, plural: str, fn: Callable[[dict], None]) -> None:
        """Call ``fn(obj)`` after every write to an object of ``plural``; ``fn`` mutates ``obj`` (e.g. its status)."""
        self.store.add_controller(plural, fn)
