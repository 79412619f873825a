"""The dask-kubernetes operator for the fake Kubernetes API server: reconciles DaskJobs as the real one does.

Register it with ``fake_k8s.add_controller("daskjobs", DaskJobController(fake_k8s))``. Like the operator's kopf
handlers (``dask_kubernetes/operator/controller/controller.py``): a new DaskJob gets ``status.jobStatus``
``JobCreated``; then the ``DaskCluster`` named like the job (``spec.cluster.spec``, owned by the job) and the
runner pod ``<job>-runner`` (``spec.job.spec``, labels ``dask.org/cluster-name`` and
``dask.org/component=job-runner``, ``DASK_SCHEDULER_ADDRESS`` = the scheduler Service's DNS name) are created and
the status becomes ``ClusterCreated`` with ``clusterName`` and ``jobRunnerPodName``; the runner pod's phase then
moves the job to ``Running`` (``startTime``) and ``Successful`` or ``Failed`` (``endTime``), deleting the
cluster. Deleting the job garbage-collects its cluster and runner pod (owner references).

The runner pod runs as the fake kubelet's pod behaviors script it (``set_pod_behavior(..., match={
"dask.org/component": "job-runner"})``); a ``run`` workload stands in for the runner container and the
cluster's scheduler and worker pods (e.g. a ``distributed.LocalCluster`` it starts with ``replicas`` workers).
"""

from __future__ import annotations

import copy
import threading
import time

from tests.fake_k8s.pods import rfc3339
from tests.fake_k8s.store import CORE, ApiError

GROUP = "kubernetes.dask.org"
SCHEDULER_PORT = 8786


class DaskJobController:
    """Reconcile DaskJobs (see the module docstring); ``step_seconds`` is how long the operator takes per step."""

    def __init__(self, fake, step_seconds: float = 0.2, poll_seconds: float = 0.05) -> None:
        self.fake = fake
        self.step_seconds = step_seconds
        self.poll_seconds = poll_seconds
        self.transitions: dict[str, list[str]] = {}

    def __call__(self, obj: dict) -> None:
        status = obj.setdefault("status", {})
        if status.get("jobStatus"):
            return
        # kopf's on.create handler patches the status of the new object.
        status["jobStatus"] = "JobCreated"
        meta = obj["metadata"]
        self.transitions[meta["name"]] = ["JobCreated"]
        threading.Thread(
            target=self._reconcile, args=(meta["namespace"], meta["name"], meta["uid"]), daemon=True
        ).start()

    # ------------------------------------------------------------------ the operator's loop for one job
    def _job(self, namespace: str, name: str, uid: str) -> dict | None:
        job = self.fake.store.collection(GROUP, "daskjobs").get((namespace, name))
        return job if job is not None and job["metadata"].get("uid") == uid else None

    def _set_status(self, job: dict, **fields: str) -> None:
        job.setdefault("status", {}).update(fields)
        job["metadata"]["resourceVersion"] = self.fake.store.next_rv()
        if "jobStatus" in fields:
            self.transitions.setdefault(job["metadata"]["name"], []).append(fields["jobStatus"])

    def _reconcile(self, namespace: str, name: str, uid: str) -> None:
        time.sleep(self.step_seconds)
        store = self.fake.store
        with store.lock:
            job = self._job(namespace, name, uid)
            if job is None:
                return
            owner = {"apiVersion": f"{GROUP}/v1", "kind": "DaskJob", "name": name, "uid": uid, "controller": True}
            labels = dict(job["metadata"].get("labels") or {})
            cluster = {
                "apiVersion": f"{GROUP}/v1",
                "kind": "DaskCluster",
                "metadata": {
                    "name": name,
                    "labels": {**labels, "dask.org/cluster-name": name},
                    "ownerReferences": [owner],
                },
                "spec": copy.deepcopy(job["spec"]["cluster"]["spec"]),
                "status": {"phase": "Running"},
            }
            try:
                store.create(GROUP, "daskclusters", namespace, cluster)
            except ApiError:
                pass  # the operator's create is idempotent too
            pod_spec = copy.deepcopy(job["spec"]["job"]["spec"])
            address = f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"
            for container in pod_spec.get("containers") or []:
                env = container.setdefault("env", [])
                if not any(item.get("name") == "DASK_SCHEDULER_ADDRESS" for item in env):
                    env.append({"name": "DASK_SCHEDULER_ADDRESS", "value": address})
            runner = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-runner",
                    "labels": {**labels, "dask.org/cluster-name": name, "dask.org/component": "job-runner"},
                    "ownerReferences": [owner],
                },
                "spec": pod_spec,
            }
            self.fake.kubelet.create_pod(namespace, runner)
            self._set_status(job, clusterName=name, jobStatus="ClusterCreated", jobRunnerPodName=f"{name}-runner")
        while True:
            time.sleep(self.poll_seconds)
            with store.lock:
                job = self._job(namespace, name, uid)
                if job is None:
                    self._collect_garbage(namespace, name, uid)
                    return
                self.fake.kubelet.materialize()
                pod = store.collection(CORE, "pods").get((namespace, f"{name}-runner"))
                phase = ((pod or {}).get("status") or {}).get("phase")
                current = job["status"].get("jobStatus")
                if phase == "Running" and current == "ClusterCreated":
                    self._set_status(job, jobStatus="Running", startTime=rfc3339(time.time()))
                elif phase in ("Succeeded", "Failed") and current in ("ClusterCreated", "Running"):
                    store.collection(GROUP, "daskclusters").pop((namespace, name), None)
                    outcome = "Successful" if phase == "Succeeded" else "Failed"
                    self._set_status(job, jobStatus=outcome, endTime=rfc3339(time.time()))

    def _collect_garbage(self, namespace: str, name: str, uid: str) -> None:
        """What the garbage collector does once the owner is gone: delete the objects it owned."""
        store = self.fake.store
        for group, plural in ((GROUP, "daskclusters"), (CORE, "pods")):
            collection = store.collection(group, plural)
            for key, obj in list(collection.items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if key[0] == namespace and any(o.get("uid") == uid for o in owners):
                    collection.pop(key)
                    if plural == "pods":
                        self.fake.kubelet.forget(namespace, key[1])
