"""The fake cluster's scheduler and kubelet: scripted pods move through their phases as time passes.

A pod's status is computed from its :class:`~tests.fake_k8s.pods.PodBehavior` and its age whenever the store is
read (``materialize``), with the Events a scheduler and kubelet would record; a behavior with ``run`` really runs
the workload in a thread. Secrets a container references (not optional) must exist, as on a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import uuid

from tests.fake_k8s.pods import PodBehavior, compute_status, events_for_stage, rfc3339
from tests.fake_k8s.store import CORE, ApiError, ObjectStore


class Kubelet:
    """Pod runtime state (behavior, creation time, stage, log lines) on top of the object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.reset()

    def reset(self) -> None:
        """Forget every pod runtime and behavior."""
        with self.store.lock:
            self.runtime: dict[tuple[str, str], dict] = {}
            self.behaviors: list[PodBehavior] = []
            self.created_pods: list[dict] = []
            self.deleted_pods: list[str] = []

    def set_behavior(self, outcome: str = "succeeded", **kwargs) -> PodBehavior:
        """Script how pods created from now on behave (the latest matching behavior wins)."""
        behavior = PodBehavior(outcome=outcome, **kwargs)
        with self.store.lock:
            self.behaviors.append(behavior)
        return behavior

    def forget(self, namespace: str, name: str) -> None:
        """Record a deleted pod (its runtime goes with it)."""
        self.runtime.pop((namespace, name), None)
        self.deleted_pods.append(name)

    def logs(self, namespace: str, name: str) -> list[tuple[float, str]]:
        """``(timestamp, line)`` of every line the pod has written by now (call under ``store.lock``)."""
        runtime = self.runtime.get((namespace, name))
        now = time.time()
        return [(ts, line) for ts, line in (runtime or {}).get("logs", []) if ts <= now]

    def behavior_for(self, pod: dict) -> PodBehavior:
        for behavior in reversed(self.behaviors):
            if behavior.matches(pod):
                return behavior
        return PodBehavior()

    def create_pod(self, namespace: str, body: dict, behavior: PodBehavior | None = None) -> dict:
        containers = (body.get("spec") or {}).get("containers") or []
        if not containers or any(not c.get("name") or not c.get("image") for c in containers):
            raise ApiError(
                422,
                "Invalid",
                "Pod is invalid: spec.containers: Required value (every container needs a name and an image)",
            )
        body.pop("status", None)
        pod = self.store.create(CORE, "pods", namespace, body)
        self.created_pods.append(copy.deepcopy(pod))
        now = time.time()
        chosen = behavior or self.behavior_for(pod)
        missing = self._missing_secrets(namespace, pod)
        if missing:  # the kubelet cannot build the container's environment
            chosen = PodBehavior(outcome="config_error", message=f'secret "{missing[0]}" not found')
        started = now + chosen.schedule_seconds + chosen.pending_seconds
        self.runtime[(namespace, pod["metadata"]["name"])] = {
            "behavior": chosen,
            "created": now,
            "stage": None,
            "logs": [(started + 0.001 * i, line) for i, line in enumerate(chosen.logs)]
            if chosen.outcome not in ("unschedulable", "image_pull_error")
            else [],
        }
        pod.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        if chosen.run is not None:
            self.runtime[(namespace, pod["metadata"]["name"])]["behavior"] = dataclasses.replace(
                chosen, outcome="running", run=None
            )
            threading.Thread(
                target=self._run_workload, args=(namespace, copy.deepcopy(pod), chosen), daemon=True
            ).start()
        self.materialize()
        return pod

    def _missing_secrets(self, namespace: str, pod: dict) -> list[str]:
        """Secrets a container references (envFrom / env valueFrom, not optional) that do not exist."""
        secrets = self.store.collection(CORE, "secrets")
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
        with self.store.lock:
            for source in spec.get("envFrom") or []:
                for kind, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                    ref = source.get(kind)
                    obj = self.store.collection(CORE, plural).get((ns, (ref or {}).get("name"))) if ref else None
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
                    obj = self.store.collection(CORE, "secrets").get((ns, ref["name"])) or {}
                    if ref["key"] in (obj.get("data") or {}):
                        env[item["name"]] = base64.b64decode(obj["data"][ref["key"]]).decode()
        return env

    def _run_workload(self, namespace: str, pod: dict, behavior: PodBehavior) -> None:
        """Run a behavior's workload like a kubelet would run the container, then record how it ended."""
        key = (namespace, pod["metadata"]["name"])
        runtime = self.runtime.get(key)
        if runtime is None:
            return
        started = runtime["created"] + behavior.schedule_seconds + behavior.pending_seconds
        time.sleep(max(0.0, started - time.time()))
        try:
            exit_code, lines = behavior.run(pod)  # type: ignore[misc]
        except Exception as exc:  # the workload crashed: like a container dying with a traceback
            exit_code, lines = 1, [f"{type(exc).__name__}: {exc}"]
        with self.store.lock:
            if self.runtime.get(key) is not runtime:
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

    def materialize(self) -> None:
        now = time.time()
        store = self.store.collection(CORE, "pods")
        for key, pod in store.items():
            runtime = self.runtime.get(key)
            if runtime is None:
                continue
            status, stage = compute_status(pod, runtime["behavior"], runtime["created"], now)
            if status != pod.get("status"):
                pod["status"] = status
                if stage != "unschedulable":
                    pod["spec"]["nodeName"] = "fake-node-1"
                pod["metadata"]["resourceVersion"] = self.store.next_rv()
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
                "resourceVersion": self.store.next_rv(),
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
        self.store.collection(CORE, "events")[(ns, event_name)] = event

    def container_state(self, pod: dict, container: str) -> dict:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status["name"] == container:
                return status.get("state") or {}
        return {}
