"""Least-privilege RBAC of the kubernetes training backend (``make render`` writes it next to the trainer pod)."""

from __future__ import annotations

from typing import Any

#: Service account the training pods run as (no API token, no permissions).
TRAINER_SERVICE_ACCOUNT = "mlops-trainer"
#: Service account of Airflow's workers and triggerer, which launch and follow training pods.
LAUNCHER_SERVICE_ACCOUNT = "airflow-worker"
LAUNCHER_ROLE = "mlops-training-launcher"
#: What launching and following a pod needs (core API group): no ``pods/exec``, since there is no XCom sidecar.
TRAINER_ROLE_VERBS: dict[str, list[str]] = {
    "pods": ["create", "get", "list", "watch", "patch", "delete"],
    "pods/log": ["get"],
    "events": ["list", "watch"],
}
COMPONENT_LABELS = {"app.kubernetes.io/part-of": "mlops", "app.kubernetes.io/component": "training"}


def trainer_rbac(namespace: str) -> list[dict[str, Any]]:
    """Return the ServiceAccounts, Role and RoleBinding of the kubernetes training backend in ``namespace``.

    * ``ServiceAccount/mlops-trainer``: what training pods run as (no API token mounted, no permissions).
    * ``ServiceAccount/airflow-worker`` + ``Role/mlops-training-launcher`` + ``RoleBinding``: what Airflow's
      workers and triggerer need to launch and follow training pods in the namespace: pods
      create/get/list/watch/patch/delete, pods/log get, events list/watch. No ``pods/exec`` and no ClusterRole.
    """
    labels = dict(COMPONENT_LABELS)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": TRAINER_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": LAUNCHER_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": LAUNCHER_ROLE, "namespace": namespace, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": [resource], "verbs": list(verbs)}
                for resource, verbs in TRAINER_ROLE_VERBS.items()
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": LAUNCHER_ROLE, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LAUNCHER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": LAUNCHER_SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]


#: Where the scheduler listens (the dask-kubernetes operator points ``DASK_SCHEDULER_ADDRESS`` at this port).
DASK_SCHEDULER_PORT = 8786
DASK_DASHBOARD_PORT = 8787
DASK_WORKER_DASHBOARD_PORT = 8788
GPU_RESOURCE = "nvidia.com/gpu"
TRAINER_UID = 10001
_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": TRAINER_UID,
    "runAsGroup": TRAINER_UID,
    "fsGroup": TRAINER_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
_TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}
_TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def dask_job_manifest(
    *,
    name: str,
    namespace: str,
    image: str,
    trainer_args: list[str],
    env: dict[str, str],
    secrets: list[str],
    n_workers: int,
    worker_cpu: str,
    worker_memory: str,
    gpus_per_worker: int,
    runner_cpu: str = "1",
    runner_memory: str = "4Gi",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the ``DaskJob`` (``kubernetes.dask.org/v1``) that trains one model on a Dask cluster.

    The runner pod runs the trainer image's entry point (``python -m include.trainer``) with ``trainer_args``
    (which end in ``--engine dask``); the dask-kubernetes operator gives it ``DASK_SCHEDULER_ADDRESS``. The
    cluster's scheduler and ``n_workers`` workers run the same image (``dask scheduler`` / ``dask worker``, one
    thread each per CPU), workers with ``gpus_per_worker`` ``nvidia.com/gpu`` and the GPU node selector and
    tolerations. Credentials come from Secrets (``envFrom``), never from the spec.
    """
    from mlops_provider.training.daskjob import GROUP, KIND, RUNNER_CONTAINER, VERSION

    env_from = [{"secretRef": {"name": secret, "optional": False}} for secret in secrets]
    env_list = [{"name": key, "value": value} for key, value in env.items()]
    worker_limits: dict[str, str] = {"cpu": worker_cpu, "memory": worker_memory}
    if gpus_per_worker > 0:
        worker_limits[GPU_RESOURCE] = str(gpus_per_worker)
    gpu_placement: dict[str, Any] = {}
    if gpus_per_worker > 0:
        gpu_placement = {"nodeSelector": dict(node_selector or {}), "tolerations": [dict(t) for t in tolerations or []]}
    threads = str(max(1, int(float(worker_cpu)))) if worker_cpu.replace(".", "", 1).isdigit() else "1"
    worker_container = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["dask", "worker"],
        "args": [
            "--name",
            "$(DASK_WORKER_NAME)",
            "--nthreads",
            threads,
            "--memory-limit",
            "0",  # the container's limit is the limit (the kubelet enforces it)
            "--dashboard-address",
            str(DASK_WORKER_DASHBOARD_PORT),
        ],  # fmt: skip
        "env": [*env_list],
        "envFrom": env_from,
        "ports": [{"name": "http-dashboard", "containerPort": DASK_WORKER_DASHBOARD_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": worker_cpu, "memory": worker_memory}, "limits": worker_limits},
        "securityContext": dict(_CONTAINER_SECURITY),
        "volumeMounts": [dict(_TMP_MOUNT)],
    }
    scheduler_container = {
        "name": "scheduler",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["dask", "scheduler"],
        "args": ["--port", str(DASK_SCHEDULER_PORT), "--dashboard-address", f":{DASK_DASHBOARD_PORT}"],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "ports": [
            {"name": "tcp-comm", "containerPort": DASK_SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": DASK_DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        "securityContext": dict(_CONTAINER_SECURITY),
        "volumeMounts": [dict(_TMP_MOUNT)],
    }
    runner_container = {
        "name": RUNNER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": list(trainer_args),
        "env": env_list,
        "envFrom": env_from,
        "resources": {
            "requests": {"cpu": runner_cpu, "memory": runner_memory},
            "limits": {"cpu": runner_cpu, "memory": runner_memory},
        },
        "securityContext": dict(_CONTAINER_SECURITY),
        # The trainer writes its error to /dev/termination-log; without one, the log's tail becomes the message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [dict(_TMP_MOUNT)],
    }
    pod_common = {
        "serviceAccountName": TRAINER_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": dict(_POD_SECURITY),
        "volumes": [dict(_TMP_VOLUME)],
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**COMPONENT_LABELS, "app.kubernetes.io/name": "mlops-trainer", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "job": {"spec": {**pod_common, "restartPolicy": "Never", "containers": [runner_container]}},
            "cluster": {
                "spec": {
                    "worker": {
                        "replicas": n_workers,
                        "spec": {**pod_common, **gpu_placement, "containers": [worker_container]},
                    },
                    "scheduler": {
                        "spec": {**pod_common, "containers": [scheduler_container]},
                        "service": {
                            "type": "ClusterIP",
                            "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                            "ports": [
                                {
                                    "name": "tcp-comm",
                                    "protocol": "TCP",
                                    "port": DASK_SCHEDULER_PORT,
                                    "targetPort": "tcp-comm",
                                },
                                {
                                    "name": "http-dashboard",
                                    "protocol": "TCP",
                                    "port": DASK_DASHBOARD_PORT,
                                    "targetPort": "http-dashboard",
                                },
                            ],  # fmt: skip
                        },
                    },
                }
            },
        },
    }


DASK_LAUNCHER_ROLE = "mlops-dask-training-launcher"


def dask_job_rbac(namespace: str) -> list[dict[str, Any]]:
    """Return the Role and RoleBinding that let Airflow's workers and triggerer run DaskJobs in ``namespace``.

    Beside :func:`trainer_rbac` (whose pod permissions cover reading the runner pod and its log): DaskJobs
    create/get/list/watch/delete. The DaskCluster, its pods and Services are the dask-kubernetes operator's to make.
    """
    labels = dict(COMPONENT_LABELS)
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": DASK_LAUNCHER_ROLE, "namespace": namespace, "labels": labels},
            "rules": [
                {
                    "apiGroups": ["kubernetes.dask.org"],
                    "resources": ["daskjobs"],
                    "verbs": ["create", "get", "list", "watch", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": DASK_LAUNCHER_ROLE, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DASK_LAUNCHER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": LAUNCHER_SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]
