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
from mlops_provider.serving.status import (
    GROUP,
    ISTIO_GROUP,
    ISTIO_PLURALS,
    ISTIO_VERSION,
    KIND,
    PLURAL,
    VERSION,
)

__all__ = ["GROUP", "KIND", "PLURAL", "VERSION", "KServeHook"]


class KServeHook(KubernetesCustomObjectHook):
    """Create, read, patch and delete KServe InferenceServices and the Istio objects that mirror traffic to them.

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
        return self.read_custom_object(GROUP, VERSION, PLURAL, name, namespace or self.namespace)

    def create_inference_service(self, body: dict, namespace: str | None = None) -> dict:
        """Create the InferenceService ``body``."""
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        if body.get("kind", KIND) != KIND:
            raise ValueError(f"Expected a {KIND} manifest, got kind {body.get('kind')!r}.")
        self.log.info("Creating InferenceService %s/%s", namespace, body["metadata"]["name"])
        return self.kubernetes_hook.create_custom_object(
            group=GROUP, version=VERSION, plural=PLURAL, body=body, namespace=namespace
        )

    def apply_inference_service(self, body: dict, namespace: str | None = None) -> dict:
        """Create the InferenceService ``body``, or bring the existing one to its spec (idempotent)."""
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        if body.get("kind", KIND) != KIND:
            raise ValueError(f"Expected a {KIND} manifest, got kind {body.get('kind')!r}.")
        self.log.info("Applying InferenceService %s/%s", namespace, body["metadata"]["name"])
        return self.apply_custom_object(GROUP, VERSION, PLURAL, body, namespace)

    def patch_inference_service(self, name: str, patch: dict, namespace: str | None = None) -> dict:
        """JSON-merge-patch the InferenceService (``None`` values delete fields)."""
        self.log.info("Patching InferenceService %s/%s", namespace or self.namespace, name)
        return self.merge_patch_custom_object(GROUP, VERSION, PLURAL, name, patch, namespace or self.namespace)

    def delete_inference_service(self, name: str, namespace: str | None = None) -> None:
        """Delete the InferenceService if it exists."""
        if self.delete_custom_object_if_exists(GROUP, VERSION, PLURAL, name, namespace or self.namespace):
            self.log.info("Deleted InferenceService %s/%s", namespace or self.namespace, name)

    # -- Istio objects in front of InferenceServices (the shadow's mirror) ------------------------------------------
    def get_istio_object(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """Return the ``networking.istio.io`` object (``VirtualService``, ``DestinationRule``), or None."""
        return self.read_custom_object(
            ISTIO_GROUP, ISTIO_VERSION, _istio_plural(kind), name, namespace or self.namespace
        )

    def apply_istio_object(self, body: dict, namespace: str | None = None) -> dict:
        """Create the Istio object ``body``, or bring the existing one to its spec (idempotent)."""
        namespace = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        self.log.info("Applying %s %s/%s", body["kind"], namespace, body["metadata"]["name"])
        return self.apply_custom_object(ISTIO_GROUP, ISTIO_VERSION, _istio_plural(body["kind"]), body, namespace)

    def delete_istio_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the Istio object if it exists; return whether it did."""
        namespace = namespace or self.namespace
        deleted = self.delete_custom_object_if_exists(ISTIO_GROUP, ISTIO_VERSION, _istio_plural(kind), name, namespace)
        if deleted:
            self.log.info("Deleted %s %s/%s", kind, namespace, name)
        return deleted


def _istio_plural(kind: str) -> str:
    try:
        return ISTIO_PLURALS[kind]
    except KeyError:
        raise ValueError(f"Expected an Istio kind of {sorted(ISTIO_PLURALS)}, got {kind!r}.") from None
