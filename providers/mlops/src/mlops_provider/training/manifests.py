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
