"""KServe InferenceServices through the Airflow Kubernetes connection and the cncf.kubernetes ``KubernetesHook``.

The KServe SDK is not installed in Airflow's environment (it pins dependencies Airflow cannot take); an
InferenceService is a custom object, so ``KubernetesHook``'s custom-object methods (``create_custom_object``,
``get_custom_object``, ``delete_custom_object``, and its ``custom_object_client`` for patch and list) are all that
is needed, with the provider's connection handling and API retries. The connection is the ``kubernetes``
connection type of ``apache-airflow-providers-cncf-kubernetes`` (kubeconfig, in-cluster, context).
Reading an InferenceService's status is :mod:`mlops_provider.serving.status`.
"""

from __future__ import annotations

from mlops_provider.hooks.kubernetes import KubernetesCustomObjectHook
from mlops_provider.serving.status import GROUP, KIND, PLURAL, VERSION

__all__ = ["GROUP", "KIND", "PLURAL", "VERSION", "KServeHook"]


class KServeHook(KubernetesCustomObjectHook):
    """Create, read, patch and delete KServe InferenceServices.

    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` (default ``[mlops] kubernetes_conn_id``).
    :param namespace: default namespace (default ``[mlops] namespace``).
    """

    hook_name = "KServe (Kubernetes)"

    def test_connection(self) -> tuple[bool, str]:
        """List InferenceServices in the namespace (the UI's Test button)."""
        try:
            items = self.list_inference_services()
        except Exception as exc:  # the Test button shows any failure as text
            return False, f"Cannot list InferenceServices in {self.namespace}: {exc}"
        return True, f"Connected; {len(items)} InferenceService(s) in namespace {self.namespace}."

    # -- CRUD ------------------------------------------------------------------------------------------------------
    def list_inference_services(self, namespace: str | None = None) -> list[dict]:
        """Return the InferenceServices of the namespace."""
        response = self.get_conn().list_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, PLURAL)
        return list(response.get("items") or [])

    def get_inference_service(self, name: str, namespace: str | None = None) -> dict | None:
        """Return the InferenceService, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.kubernetes_hook.get_custom_object(
                group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=namespace or self.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_inference_service(self, body: dict, namespace: str | None = None) -> dict:
        """Create the InferenceService ``body``."""
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        if body.get("kind", KIND) != KIND:
            raise ValueError(f"Expected a {KIND} manifest, got kind {body.get('kind')!r}.")
        self.log.info("Creating InferenceService %s/%s", namespace, body["metadata"]["name"])
        return self.kubernetes_hook.create_custom_object(
            group=GROUP, version=VERSION, plural=PLURAL, body=body, namespace=namespace
        )

    def patch_inference_service(self, name: str, patch: dict, namespace: str | None = None) -> dict:
        """JSON-merge-patch the InferenceService (``None`` values delete fields)."""
        self.log.info("Patching InferenceService %s/%s", namespace or self.namespace, name)
        # KubernetesHook has no patch method for custom objects: its client, with an explicit merge patch.
        return self.get_conn().patch_namespaced_custom_object(
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
            self.kubernetes_hook.delete_custom_object(
                group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=namespace or self.namespace
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
