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
