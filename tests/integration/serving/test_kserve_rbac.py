"""The KServe deployer's rendered Role against the fake API server, which enforces RBAC for service accounts.

The Airflow workers' service account is authorised only by the Role and RoleBinding that ``make render``
writes (``render_kserve_rbac``); the fake API server answers 403 Forbidden for anything they do not grant.
"""

from __future__ import annotations

import json

import pytest

from mlops_provider.serving.manifests import render_inference_service, render_kserve_rbac
from mlops_provider.training.manifests import LAUNCHER_SERVICE_ACCOUNT

pytestmark = pytest.mark.integration

NAMESPACE = "mlops-rbac"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
RBAC = "rbac.authorization.k8s.io"


def _apply(fake_k8s, objects: list[dict]) -> None:
    plurals = {"Role": "roles", "RoleBinding": "rolebindings"}
    for obj in objects:
        fake_k8s.put_object(RBAC, "v1", obj["metadata"]["namespace"], plurals[obj["kind"]], obj)


def _worker_hook(fake_k8s, monkeypatch, namespace: str = NAMESPACE):
    from mlops_provider.hooks.kserve import KServeHook

    conn = fake_k8s.service_account_connection_json(NAMESPACE, LAUNCHER_SERVICE_ACCOUNT, conn_namespace=namespace)
    monkeypatch.setenv("AIRFLOW_CONN_FAKE_K8S_WORKER", conn)
    return KServeHook(kubernetes_conn_id="fake_k8s_worker", namespace=namespace)


def _isvc(name: str = "rbac-model") -> dict:
    return render_inference_service(
        "rbac_model", "gs://bucket/model", name=name, namespace=NAMESPACE, transformer=False
    )


def test_rendered_role_is_namespaced_and_grants_only_inference_services_and_the_shadow_objects():
    role, binding = render_kserve_rbac(NAMESPACE)
    assert (role["kind"], binding["kind"]) == ("Role", "RoleBinding")
    shadow_verbs = ["get", "create", "update", "delete"]
    assert role["rules"] == [
        {"apiGroups": [GROUP], "resources": [PLURAL],
         "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": shadow_verbs},
        {"apiGroups": ["networking.istio.io"], "resources": ["destinationrules"], "verbs": shadow_verbs},
    ]  # fmt: skip
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": LAUNCHER_SERVICE_ACCOUNT, "namespace": NAMESPACE}]


def test_make_render_writes_the_kserve_role(monkeypatch, tmp_path):
    from include.render import render_all

    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", NAMESPACE)
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_CONN_ID", "no_such_mlflow_conn")
    from mlops_provider.settings import reset_settings

    reset_settings()
    try:
        objects = render_all()
    finally:
        reset_settings()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Role", "mlops-kserve-deployer") in kinds and ("RoleBinding", "mlops-kserve-deployer") in kinds
    assert not {k for k, _ in kinds} & {"ClusterRole", "ClusterRoleBinding"}


def test_the_workers_service_account_can_roll_out_with_the_rendered_role(fake_k8s, monkeypatch):
    _apply(fake_k8s, render_kserve_rbac(NAMESPACE))
    hook = _worker_hook(fake_k8s, monkeypatch)
    created = hook.create_inference_service(_isvc())
    assert created["metadata"]["name"] == "rbac-model"
    assert hook.get_inference_service("rbac-model")["metadata"]["uid"] == created["metadata"]["uid"]
    patched = hook.patch_inference_service("rbac-model", {"metadata": {"annotations": {"x": "1"}}})
    assert patched["metadata"]["annotations"]["x"] == "1"
    assert [i["metadata"]["name"] for i in hook.list_inference_services()] == ["rbac-model"]


def test_a_permission_the_role_lacks_is_forbidden(fake_k8s, monkeypatch):
    """A Role without ``patch``: the rollout's patch of an existing InferenceService fails with 403."""
    from kubernetes.client.exceptions import ApiException

    role, binding = render_kserve_rbac(NAMESPACE)
    role["rules"][0]["verbs"] = ["get", "list", "watch", "create"]
    _apply(fake_k8s, [role, binding])
    hook = _worker_hook(fake_k8s, monkeypatch)
    hook.create_inference_service(_isvc())
    with pytest.raises(ApiException) as raised:
        hook.patch_inference_service("rbac-model", {"metadata": {"annotations": {"x": "1"}}})
    assert raised.value.status == 403
    status = json.loads(raised.value.body)
    assert status["reason"] == "Forbidden"
    assert 'cannot patch resource "inferenceservices" in API group "serving.kserve.io"' in status["message"]
    assert "x" not in fake_k8s.get_object(GROUP, VERSION, NAMESPACE, PLURAL, "rbac-model")["metadata"]["annotations"]


def test_no_role_no_access_and_nothing_outside_the_namespace(fake_k8s, monkeypatch):
    from kubernetes.client.exceptions import ApiException

    hook = _worker_hook(fake_k8s, monkeypatch)
    with pytest.raises(ApiException) as raised:  # nothing bound yet
        hook.create_inference_service(_isvc())
    assert raised.value.status == 403
    _apply(fake_k8s, render_kserve_rbac(NAMESPACE))
    other = _worker_hook(fake_k8s, monkeypatch, namespace="another-namespace")
    body = _isvc()
    body["metadata"]["namespace"] = "another-namespace"
    with pytest.raises(ApiException) as raised:
        other.create_inference_service(body, namespace="another-namespace")
    assert raised.value.status == 403
    # The server's own token (every other test's client) keeps full access.
    fake_k8s.put_object(GROUP, VERSION, "another-namespace", PLURAL, body)


def test_the_workers_service_account_can_apply_and_remove_a_shadow_with_the_rendered_role(fake_k8s, monkeypatch):
    from mlops_provider.serving.manifests import challenger_name, render_istio_shadow

    _apply(fake_k8s, render_kserve_rbac(NAMESPACE))
    hook = _worker_hook(fake_k8s, monkeypatch)
    hook.create_inference_service(_isvc())
    challenger = hook.apply_inference_service(_isvc(challenger_name("rbac-model")))
    assert hook.apply_inference_service(_isvc(challenger_name("rbac-model"))) == challenger  # again: a no-op
    objects = render_istio_shadow("rbac_model", name="rbac-model", namespace=NAMESPACE, mirror_percent=50)
    for obj in objects:
        hook.apply_istio_object(obj)
    objects[0]["spec"]["http"][0]["mirrorPercentage"] = {"value": 10.0}
    hook.apply_istio_object(objects[0])  # a changed spec replaces the stored one
    service = hook.get_istio_object("VirtualService", objects[0]["metadata"]["name"])
    assert service["spec"]["http"][0]["mirrorPercentage"] == {"value": 10.0}
    assert all(hook.delete_istio_object(o["kind"], o["metadata"]["name"]) for o in objects)
    assert not hook.delete_istio_object("VirtualService", objects[0]["metadata"]["name"])  # gone: no error
    hook.delete_inference_service(challenger_name("rbac-model"))
    assert hook.get_inference_service(challenger_name("rbac-model")) is None
    assert [i["metadata"]["name"] for i in hook.list_inference_services()] == ["rbac-model"]
