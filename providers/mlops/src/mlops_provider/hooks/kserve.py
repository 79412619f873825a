"""KServe InferenceServices through the Airflow Kubernetes connection and ``CustomObjectsApi``.

The KServe SDK is not installed in Airflow's environment (it pins dependencies Airflow cannot take); an
InferenceService is a custom object, so the Kubernetes client is all that is needed. The connection is the
``kubernetes`` connection type of ``apache-airflow-providers-cncf-kubernetes`` (kubeconfig, in-cluster, context).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe >= 0.15 calls RawDeployment "Standard"; both run plain Deployments without Knative traffic splitting.
RAW_MODES = frozenset({"RawDeployment", "Standard"})
SERVERLESS_MODES = frozenset({"Serverless", "Knative"})


class KServeHook(BaseHook):
    """Create, read, patch and delete KServe InferenceServices.

    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` (default from ``[mlops] kubernetes_conn_id``).
    :param namespace: default namespace of the InferenceServices (default ``[mlops] namespace``).
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = "kubernetes"
    hook_name = "KServe (Kubernetes)"

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
    def kubernetes_hook(self):
        """The cncf.kubernetes provider's hook that owns the connection handling."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def get_conn(self) -> CustomObjectsApi:
        """Return a ``CustomObjectsApi`` on the connection's cluster."""
        from kubernetes.client import CustomObjectsApi

        return CustomObjectsApi(self.kubernetes_hook.api_client)

    @cached_property
    def api(self) -> CustomObjectsApi:
        """Cached ``CustomObjectsApi``."""
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """List InferenceServices in the namespace (the UI's Test button)."""
        try:
            items = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL).get("items", [])
        except Exception as exc:  # the Test button shows any failure as text
            return False, f"Cannot list InferenceServices in {self.namespace}: {exc}"
        return True, f"Connected; {len(items)} InferenceService(s) in namespace {self.namespace}."

    # -- CRUD ------------------------------------------------------------------------------------------------------
    def get_inference_service(self, name: str, namespace: str | None = None) -> dict | None:
        """Return the InferenceService, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_inference_service(self, body: dict, namespace: str | None = None) -> dict:
        """Create the InferenceService ``body``."""
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        self.log.info("Creating InferenceService %s/%s", namespace, body["metadata"]["name"])
        return self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def patch_inference_service(self, name: str, patch: dict, namespace: str | None = None) -> dict:
        """JSON-merge-patch the InferenceService (``None`` values delete fields)."""
        self.log.info("Patching InferenceService %s/%s", namespace or self.namespace, name)
        return self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace or self.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def delete_inference_service(self, name: str, namespace: str | None = None) -> None:
        """Delete the InferenceService if it exists."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise


# -- status helpers (pure functions over the object, shared by the operator and the trigger) -------------------------
def deployment_mode(isvc: dict) -> str:
    """Return the deployment mode KServe reports (status), else the annotation, else ``Serverless``."""
    status_mode = (isvc.get("status") or {}).get("deploymentMode")
    if status_mode:
        return status_mode
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEPLOYMENT_MODE_ANNOTATION) or "Serverless"


def is_raw_mode(isvc: dict) -> bool:
    """Whether the InferenceService runs without Knative (no revision traffic splitting)."""
    return deployment_mode(isvc) in RAW_MODES


def predictor_status(isvc: dict) -> dict:
    """Return ``status.components.predictor`` (empty dict when absent)."""
    return ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}


def predictor_traffic(isvc: dict) -> list[dict]:
    """Return the traffic KServe reports for the predictor (``status.components.predictor.traffic``)."""
    return list(predictor_status(isvc).get("traffic") or [])


def traffic_split(isvc: dict) -> dict[str, int]:
    """Map revision name to its reported traffic percent."""
    split: dict[str, int] = {}
    for target in predictor_traffic(isvc):
        name = target.get("revisionName") or ("latest" if target.get("latestRevision") else "unknown")
        split[name] = split.get(name, 0) + int(target.get("percent") or 0)
    return split


def condition(isvc: dict, type_: str) -> dict | None:
    """Return the status condition of ``type_`` or None."""
    for cond in (isvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def storage_uri_of(isvc: dict) -> str | None:
    """Return the predictor's storage URI: ``model.storageUri``, else the server's ``--storage_uri`` argument."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or {}
    if model.get("storageUri"):
        return model["storageUri"]
    for arg in model.get("args") or []:
        if str(arg).startswith("--storage_uri="):
            return str(arg).split("=", 1)[1]
    return None


def endpoint_url_of(isvc: dict) -> str | None:
    """Return the external URL KServe reports (``status.url``), else the in-cluster address."""
    status = isvc.get("status") or {}
    return status.get("url") or (status.get("address") or {}).get("url")
