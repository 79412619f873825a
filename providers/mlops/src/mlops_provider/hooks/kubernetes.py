"""Custom objects (InferenceServices, DaskJobs) through the Airflow Kubernetes connection.

Neither the KServe SDK nor dask-kubernetes is installed in Airflow's environment: their objects are custom
objects, so the cncf.kubernetes ``KubernetesHook`` (its custom-object methods and ``custom_object_client``, with
the provider's connection handling and API retries) is all the bundle's hooks need. The connection is the
``kubernetes`` connection type of ``apache-airflow-providers-cncf-kubernetes`` (kubeconfig, in-cluster, context).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook


class KubernetesCustomObjectHook(BaseHook):
    """The Kubernetes connection and default namespace shared by the hooks of one kind of custom object.

    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` (default ``[mlops] kubernetes_conn_id``).
    :param namespace: default namespace of the objects (default ``[mlops] namespace``).
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = "kubernetes"

    def __init__(self, kubernetes_conn_id: str | None = None, namespace: str | None = None) -> None:
        super().__init__()
        self._conn_id = kubernetes_conn_id
        self._namespace = namespace

    @cached_property
    def kubernetes_conn_id(self) -> str:
        """The Kubernetes connection id in use."""
        if self._conn_id:
            return self._conn_id
        from mlops_provider.settings import get_settings

        return get_settings().kubernetes_conn_id

    @cached_property
    def namespace(self) -> str:
        """The default namespace."""
        if self._namespace:
            return self._namespace
        from mlops_provider.settings import get_settings

        return get_settings().namespace

    @cached_property
    def kubernetes_hook(self) -> KubernetesHook:
        """The cncf.kubernetes provider's hook that owns the connection and the custom-object calls."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def get_conn(self) -> Any:
        """Return the ``CustomObjectsApi`` of the Kubernetes hook (for calls the subclass does not wrap)."""
        return self.kubernetes_hook.custom_object_client

    # -- custom objects by group/version/plural (404 on read or delete is an answer, not an error) ----------------
    def read_custom_object(self, group: str, version: str, plural: str, name: str, namespace: str) -> dict | None:
        """Return the object, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.kubernetes_hook.get_custom_object(
                group=group, version=version, plural=plural, name=name, namespace=namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def merge_patch_custom_object(
        self, group: str, version: str, plural: str, name: str, patch: dict, namespace: str
    ) -> dict:
        """JSON-merge-patch the object (``None`` values delete fields)."""
        # KubernetesHook has no patch method for custom objects: its client, with an explicit merge patch.
        return self.get_conn().patch_namespaced_custom_object(
            group, version, namespace, plural, name, patch, _content_type="application/merge-patch+json"
        )

    def apply_custom_object(self, group: str, version: str, plural: str, body: dict, namespace: str) -> dict:
        """Create ``body``, or replace the existing object of that name when its labels or spec differ (idempotent).

        Applying the same body twice, or after a killed try, leaves one object equal to it; a write that loses a
        race with another writer (409) reads the object again and retries.
        """
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        for _ in range(3):
            current = self.read_custom_object(group, version, plural, name, namespace)
            try:
                if current is None:
                    return self.kubernetes_hook.create_custom_object(
                        group=group, version=version, plural=plural, body=body, namespace=namespace
                    )
                labels = (current.get("metadata") or {}).get("labels") or {}
                wanted = (body.get("metadata") or {}).get("labels") or {}
                if current.get("spec") == body.get("spec") and all(labels.get(k) == v for k, v in wanted.items()):
                    return current
                metadata = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
                return self.get_conn().replace_namespaced_custom_object(
                    group, version, namespace, plural, name, {**body, "metadata": metadata}
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise RuntimeError(f"{plural} {namespace}/{name} kept changing under three attempts to apply it.")

    def delete_custom_object_if_exists(self, group: str, version: str, plural: str, name: str, namespace: str) -> bool:
        """Delete the object; return whether it existed."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.kubernetes_hook.delete_custom_object(
                group=group, version=version, plural=plural, name=name, namespace=namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
