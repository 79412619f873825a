"""The fake Kubernetes API server answers the real ``kubernetes`` client like a cluster would."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def _api(fake_k8s):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(fake_k8s.kubeconfig_path))
    return client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)


def _pod(name: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "base", "image": "busybox:1.36"}]},
    }


def test_pod_lifecycle_logs_selectors_and_delete(fake_k8s):
    from kubernetes.client.exceptions import ApiException

    core, _ = _api(fake_k8s)
    fake_k8s.set_pod_behavior("succeeded", logs=["hello", "world"], pending_seconds=0.1, run_seconds=0.3)
    created = core.create_namespaced_pod("default", _pod("p1", {"app": "train"}))
    assert created.metadata.uid and created.status.phase == "Pending"
    # The kubelet refuses logs while the container is still being created.
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_pod_log("p1", "default", container="base")
    assert excinfo.value.status == 400
    time.sleep(0.15)
    stream = core.read_namespaced_pod_log(
        "p1", "default", container="base", follow=True, timestamps=True, _preload_content=False
    )
    lines = [line.decode() for line in stream.stream() if line]
    text = "".join(lines)
    assert "Z hello\n" in text and text.rstrip().endswith("Z world")
    pod = core.read_namespaced_pod("p1", "default")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert [p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=train").items] == ["p1"]
    assert core.list_namespaced_pod("default", label_selector="app=train,already_checked!=True,!airflow-worker").items
    assert not core.list_namespaced_pod("default", label_selector="app in (serve, other)").items
    reasons = [e.reason for e in core.list_namespaced_event("default", field_selector="involvedObject.name=p1").items]
    assert reasons[:3] == ["Scheduled", "Pulling", "Pulled"]
    core.patch_namespaced_pod("p1", "default", {"metadata": {"labels": {"already_checked": "True"}}})
    assert not core.list_namespaced_pod("default", label_selector="app=train,already_checked!=True").items
    core.delete_namespaced_pod("p1", "default")
    assert fake_k8s.pods() == [] and fake_k8s.deleted_pods == ["p1"]
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_pod("p1", "default")
    assert excinfo.value.status == 404


def test_pod_failure_modes_are_reported_like_a_cluster(fake_k8s):
    core, _ = _api(fake_k8s)
    fake_k8s.set_pod_behavior("unschedulable", match={"case": "pending"})
    fake_k8s.set_pod_behavior("oomkilled", exit_code=0, pending_seconds=0, run_seconds=0, match={"case": "oom"})
    fake_k8s.set_pod_behavior("image_pull_error", pending_seconds=0, match={"case": "pull"})
    fake_k8s.set_pod_behavior(
        "failed", reason="Error", message="boom", exit_code=3, pending_seconds=0, run_seconds=0, match={"case": "fail"}
    )
    for case in ("pending", "oom", "pull", "fail"):
        core.create_namespaced_pod("default", _pod(f"pod-{case}", {"case": case}))
    time.sleep(0.05)
    pending = core.read_namespaced_pod("pod-pending", "default").status
    assert pending.phase == "Pending" and pending.conditions[0].reason == "Unschedulable"
    oom = core.read_namespaced_pod("pod-oom", "default").status
    assert oom.phase == "Succeeded"
    assert oom.container_statuses[0].state.terminated.reason == "OOMKilled"
    assert oom.container_statuses[0].state.terminated.exit_code == 0
    pull = core.read_namespaced_pod("pod-pull", "default").status
    assert pull.container_statuses[0].state.waiting.reason == "ErrImagePull"
    failed = core.read_namespaced_pod("pod-fail", "default").status
    assert failed.phase == "Failed" and failed.container_statuses[0].state.terminated.message == "boom"
    warnings = {e.reason for e in core.list_namespaced_event("default").items if e.type == "Warning"}
    assert {"FailedScheduling", "Failed", "OOMKilling"} <= warnings
    # Each pod was created by exactly one POST: a failure mode never makes the client retry the create.
    assert fake_k8s.requests.count(("POST", "/api/v1/namespaces/default/pods")) == 4


def test_watch_streams_pod_changes(fake_k8s):
    from kubernetes import watch

    core, _ = _api(fake_k8s)
    fake_k8s.set_pod_behavior("succeeded", pending_seconds=0.1, run_seconds=0.1)
    core.create_namespaced_pod("default", _pod("w1", {"app": "w"}))
    core.create_namespaced_pod("default", _pod("other", {"app": "x"}))
    phases = []
    for event in watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="app=w", timeout_seconds=2):
        assert event["object"].metadata.name == "w1"
        phases.append((event["type"], event["object"].status.phase))
        if event["type"] == "MODIFIED" and event["object"].status.phase == "Succeeded":
            core.delete_namespaced_pod("w1", "default")
        if event["type"] == "DELETED":
            break
    assert phases[0] == ("ADDED", "Pending")
    assert ("MODIFIED", "Succeeded") in phases and phases[-1][0] == "DELETED"


def test_custom_objects_crud_patches_conflicts_and_controllers(fake_k8s):
    from kubernetes.client.exceptions import ApiException

    _, custom = _api(fake_k8s)
    group, version, plural = "serving.kserve.io", "v1beta1", "inferenceservices"

    def controller(obj: dict) -> None:
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "conditions": [{"type": "Ready", "status": "True"}],
        }

    fake_k8s.add_controller(plural, controller)
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "InferenceService",
        "metadata": {"name": "fraud", "labels": {"model": "fraud"}},
        "spec": {"predictor": {"model": {"storageUri": "s3://m/1"}}},
    }
    created = custom.create_namespaced_custom_object(group, version, "mlops", plural, body)
    assert created["metadata"]["generation"] == 1 and created["status"]["observedGeneration"] == 1
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object(group, version, "mlops", plural, body)
    assert excinfo.value.status == 409
    patched = custom.patch_namespaced_custom_object(
        group, version, "mlops", plural, "fraud", {"spec": {"predictor": {"canaryTrafficPercent": 10}}}
    )
    assert patched["metadata"]["generation"] == 2 and patched["status"]["observedGeneration"] == 2
    assert patched["spec"]["predictor"]["model"]["storageUri"] == "s3://m/1"
    patched = custom.patch_namespaced_custom_object(
        group,
        version,
        "mlops",
        plural,
        "fraud",
        [{"op": "replace", "path": "/spec/predictor/model/storageUri", "value": "s3://m/2"}],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["predictor"]["model"]["storageUri"] == "s3://m/2" and patched["metadata"]["generation"] == 3
    stale = dict(created)
    with pytest.raises(ApiException) as excinfo:
        custom.replace_namespaced_custom_object(group, version, "mlops", plural, "fraud", stale)
    assert excinfo.value.status == 409
    labels_only = custom.patch_namespaced_custom_object(
        group, version, "mlops", plural, "fraud", {"metadata": {"labels": {"rev": "2"}}}
    )
    assert labels_only["metadata"]["generation"] == 3
    status = custom.patch_namespaced_custom_object_status(
        group, version, "mlops", plural, "fraud", {"status": {"url": "http://fraud"}, "spec": {"ignored": True}}
    )
    assert "ignored" not in status["spec"]
    listed = custom.list_namespaced_custom_object(group, version, "mlops", plural, label_selector="model=fraud")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["fraud"]
    assert fake_k8s.get_object(group, version, "mlops", plural, "fraud")["metadata"]["labels"]["rev"] == "2"
    custom.delete_namespaced_custom_object(group, version, "mlops", plural, "fraud")
    assert fake_k8s.objects(group, version, "mlops", plural) == []
    with pytest.raises(ApiException) as excinfo:
        custom.get_namespaced_custom_object(group, version, "mlops", plural, "fraud")
    assert excinfo.value.status == 404


def test_requests_without_the_token_are_unauthorized(fake_k8s):
    """No token or a wrong one: 401 with the API server's Status body, and nothing is created."""
    import json
    import urllib.error
    import urllib.request

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{fake_k8s.url}/api/v1/namespaces/default/pods", timeout=5)
    assert excinfo.value.code == 401
    status = json.loads(excinfo.value.read())
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401}  # fmt: skip

    # The real client with a wrong bearer token fails the same way, with the reason it reports to callers.
    config = client.Configuration(host=fake_k8s.url)
    config.api_key = {"authorization": "wrong-token"}
    config.api_key_prefix = {"authorization": "Bearer"}
    config.verify_ssl = False
    core = client.CoreV1Api(client.ApiClient(config))
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod("default", _pod("intruder"))
    assert denied.value.status == 401 and denied.value.reason == "Unauthorized"
    assert json.loads(denied.value.body)["reason"] == "Unauthorized"
    assert fake_k8s.pods() == [] and fake_k8s.created_pods == []

    # The same request with the fixture's token goes through: the 401 was about the credentials only.
    allowed, _ = _api(fake_k8s)
    assert allowed.create_namespaced_pod("default", _pod("allowed")).metadata.name == "allowed"


def test_stock_kubernetes_pod_operator_runs_against_the_fake(fake_k8s):
    from tests.airflow_helpers import run_dag, task_states

    fake_k8s.set_pod_behavior("succeeded", logs=["line one", "line two"], pending_seconds=0.2, run_seconds=0.3)
    dag_run = run_dag("training_fake_k8s_kpo")
    assert task_states(dag_run) == {"kpo_sync": "success", "kpo_deferrable": "success"}
    assert len(fake_k8s.created_pods) == 2
    assert fake_k8s.pods() == []
    logs = [entry for entry in fake_k8s.request_log if entry["path"].endswith("/log")]
    assert logs and all(entry["query"].get("container") == "base" for entry in logs)
