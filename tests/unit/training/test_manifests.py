"""``make render`` objects of the kubernetes training backend: the pod and its least-privilege RBAC."""

from __future__ import annotations


def test_rendered_manifests_validate_strictly_and_rbac_is_least_privilege():
    import kubernetes_validate

    from mlops_provider.operators.training_kubernetes import render_training_manifests

    objects = render_training_manifests()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ServiceAccount", "mlops-trainer"),
        ("ServiceAccount", "airflow-worker"),
        ("Role", "mlops-training-launcher"),
        ("RoleBinding", "mlops-training-launcher"),
        ("Pod", objects[-1]["metadata"]["name"]),
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.31", strict=True)
    namespace = objects[0]["metadata"]["namespace"]
    assert {o["metadata"]["namespace"] for o in objects} == {namespace}
    assert objects[0]["automountServiceAccountToken"] is False

    role = objects[2]
    # The whole rule set, every field: core API group only, exactly these resources and verbs, nothing else.
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    ]
    binding = objects[3]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": namespace}]

    pod = objects[-1]
    assert pod["spec"]["serviceAccountName"] == "mlops-trainer"
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--training-set-uri") + 1].endswith("/training_sets/<dataset>/<content_hash>/data.parquet")
