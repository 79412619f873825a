"""Unit tests of the training area: trainer plan/splits/metrics, gate criteria, MLflow hook, pod/job specs."""

from __future__ import annotations

import json

import pytest


# ---------------------------------------------------------------------------------------------- trainer
def test_training_plan_uses_cuda_and_quantile_dmatrix_only_with_a_gpu():
    from include.trainer.train import DEFAULT_PARAMS, TrainingError, training_plan

    gpu = training_plan(DEFAULT_PARAMS, gpu=True)
    assert gpu["device"] == "cuda" and gpu["matrix"] == "QuantileDMatrix"
    assert gpu["booster"]["tree_method"] == "hist" and gpu["booster"]["device"] == "cuda"
    cpu = training_plan(DEFAULT_PARAMS, gpu=False)
    assert cpu["device"] == "cpu" and cpu["matrix"] == "DMatrix"
    forced = {**DEFAULT_PARAMS, "xgboost": {**DEFAULT_PARAMS["xgboost"], "device": "cuda"}}
    with pytest.raises(TrainingError, match="no GPU is visible"):
        training_plan(forced, gpu=False)


def test_gpu_visible_honours_cuda_visible_devices():
    from include.trainer.train import gpu_visible

    assert gpu_visible({"CUDA_VISIBLE_DEVICES": ""}) is False
    assert gpu_visible({"CUDA_VISIBLE_DEVICES": "-1"}) is False


def test_params_file_merges_over_defaults_and_rejects_unknown_keys(tmp_path, repo_root):
    from include.trainer.train import TrainingError, load_params

    params = load_params(repo_root / "include" / "trainer" / "params.yaml")
    assert params["xgboost"]["tree_method"] == "hist" and params["early_stopping_rounds"] > 0
    assert params["threshold"]["policy"] in ("max_f1", "fixed", "min_precision")
    custom = tmp_path / "p.yaml"
    custom.write_text("xgboost: {max_depth: 3}\nn_estimators: 20\n")
    merged = load_params(custom)
    assert merged["xgboost"]["max_depth"] == 3 and merged["xgboost"]["eta"] == 0.1 and merged["n_estimators"] == 20
    custom.write_text("n_estimator: 20\n")
    with pytest.raises(TrainingError, match="unknown keys"):
        load_params(custom)


def test_snapshot_paths_accept_folder_or_file():
    from include.trainer.train import snapshot_paths

    assert snapshot_paths("s3://b/ts/abc/data.parquet") == ("s3://b/ts/abc/data.parquet", "s3://b/ts/abc/manifest.json")
    assert snapshot_paths("gs://b/ts/abc/") == ("gs://b/ts/abc/data.parquet", "gs://b/ts/abc/manifest.json")


def test_time_split_is_ordered_and_never_splits_a_timestamp():
    import pandas as pd

    from mlops_provider.training.evaluation import EvaluationError, holdout_window, time_split

    ts = pd.date_range("2026-01-01", periods=100, freq="h", tz="UTC").repeat(2)
    df = pd.DataFrame({"event_timestamp": ts, "x": range(200)}).sample(frac=1, random_state=1)
    split = time_split(df, "event_timestamp", validation_fraction=0.2, holdout_fraction=0.2)
    assert split.train["event_timestamp"].max() < split.validation["event_timestamp"].min()
    assert split.validation["event_timestamp"].max() < split.holdout["event_timestamp"].min()
    assert len(split.train) + len(split.validation) + len(split.holdout) == 200
    assert set(holdout_window(df, "event_timestamp", 0.2)["x"]) == set(split.holdout["x"])
    with pytest.raises(EvaluationError, match="timestamp column"):
        time_split(df, "ts", validation_fraction=0.2, holdout_fraction=0.2)


def test_metrics_threshold_policies_and_single_class_error():
    import numpy as np

    from mlops_provider.training.evaluation import EvaluationError, binary_metrics, choose_threshold

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.random(500) * 0.4, 0, 1)
    m = binary_metrics(y, p, 0.5)
    assert m["roc_auc"] > 0.9 and 0 <= m["ece"] <= 1 and m["brier"] < 0.25 and m["threshold"] == 0.5
    assert choose_threshold(y, p, {"policy": "fixed", "value": 0.3}) == 0.3
    t = choose_threshold(y, p, {"policy": "min_precision", "min_precision": 0.95})
    assert binary_metrics(y, p, t)["precision"] >= 0.95
    assert 0 < choose_threshold(y, p, {"policy": "max_f1"}) < 1
    with pytest.raises(EvaluationError, match="both classes"):
        binary_metrics(np.zeros(10), np.zeros(10), 0.5)


def test_feature_matrix_rejects_non_numeric_features():
    import pandas as pd

    from mlops_provider.training.evaluation import EvaluationError, feature_matrix

    df = pd.DataFrame({"a": [1, 2], "b": [True, False], "c": ["x", "y"]})
    assert list(feature_matrix(df, ["b", "a"]).dtypes.astype(str)) == ["float32", "float32"]
    with pytest.raises(EvaluationError, match=r"c \(object\)"):
        feature_matrix(df, ["a", "c"])


# ---------------------------------------------------------------------------------------------- gate
def test_gate_criteria_pass_fail_and_segments():
    from mlops_provider.operators.mlflow import DEFAULT_CRITERIA, evaluate_criteria, merge_criteria

    criteria = merge_criteria(DEFAULT_CRITERIA, {"min_metrics": {"pr_auc": 0.3}, "segments": {"min_rows": 1}})
    assert criteria["min_metrics"] == {"roc_auc": 0.65, "pr_auc": 0.3}
    good = {"roc_auc": 0.9, "pr_auc": 0.5, "log_loss": 0.2}
    failures, checks = evaluate_criteria(criteria, good, {"roc_auc": 0.88, "pr_auc": 0.5, "log_loss": 0.21})
    assert failures == [] and all(c["passed"] for c in checks)
    failures, _ = evaluate_criteria(criteria, good, {"roc_auc": 0.95, "pr_auc": 0.5, "log_loss": 0.1})
    assert any(f.startswith("roc_auc: candidate 0.9000 vs champion 0.9500") for f in failures)
    assert any(f.startswith("log_loss:") for f in failures)
    failures, _ = evaluate_criteria(
        criteria, good, None, {"atm": {"roc_auc": 0.5}, "pos": {"roc_auc": 0.9}}, {"pos": {"roc_auc": 0.99}}
    )
    assert any("segment channel=atm" in f for f in failures) and any("segment channel=pos" in f for f in failures)
    assert merge_criteria(DEFAULT_CRITERIA, {"segments": None}).get("segments") is None


# ---------------------------------------------------------------------------------------------- hook
def test_mlflow_hook_local_default_and_connection_parsing(monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import get_settings

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    local = MlflowHook()
    assert local.tracking_uri == get_settings().mlflow_local_tracking_uri and local.ui_url() is None
    assert local.credential_env() == {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_PROD",
        json.dumps({"conn_type": "mlflow", "host": "mlflow.internal", "schema": "https", "port": 8443,
                    "login": "svc", "password": "s3cret", "extra": {"ui_url": "https://ml.example.com"}}),
    )  # fmt: skip
    hook = MlflowHook("mlflow_prod")
    assert hook.tracking_uri == "https://mlflow.internal:8443" and hook.registry_uri == hook.tracking_uri
    assert hook.model_version_url("fraud", 3) == "https://ml.example.com/#/models/fraud/versions/3"
    import os

    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    with hook.credentials():
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    client = hook.get_client()
    import mlflow

    assert isinstance(client, mlflow.MlflowClient)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TOKEN",
        json.dumps({"conn_type": "mlflow", "host": "https://m.example.com/", "password": "tok",
                    "extra": {"auth_type": "token", "registry_uri": "https://reg.example.com"}}),
    )  # fmt: skip
    token = MlflowHook("mlflow_token")
    assert token.tracking_uri == "https://m.example.com" and token.registry_uri == "https://reg.example.com"
    assert token.credential_env() == {"MLFLOW_TRACKING_TOKEN": "tok"}
    ok, message = MlflowHook("mlflow_prod").test_connection()
    assert ok is False and "not reachable" in message and "s3cret" not in message


def test_provider_info_declares_the_mlflow_connection_form():
    from mlops_provider.get_provider_info import get_provider_info

    conn = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == "mlflow")
    assert conn["hook-class-name"] == "mlops_provider.hooks.mlflow.MlflowHook"
    assert {"registry_uri", "ui_url", "auth_type", "insecure_tls"} <= set(conn["conn-fields"])


# ---------------------------------------------------------------------------------------------- pods / jobs
def _pod_operator(**kwargs):
    from mlops_provider.operators.training_kubernetes import XGBoostTrainPodOperator

    return XGBoostTrainPodOperator(
        task_id="train", model_name="fraud_detector", training_set_uri="s3://bucket/ts/abc/data.parquet",
        mlflow_tracking_uri="https://mlflow.example.com", image="ghcr.io/example/trainer:1", namespace="mlops",
        random_name_suffix=False, **kwargs,
    )  # fmt: skip


def test_pod_operator_extends_the_parent_template_fields():
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from mlops_provider.operators.training import XGBoostTrainOperator
    from mlops_provider.operators.training_kubernetes import XGBoostTrainPodOperator

    fields = XGBoostTrainPodOperator.template_fields
    assert set(KubernetesPodOperator.template_fields) <= set(fields)
    assert {"model_name", "training_set_uri", "params_file", "mlflow_tracking_uri"} <= set(fields)
    assert {"model_name", "training_set", "kubernetes_conn_id", "mlflow_conn_id"} <= set(
        XGBoostTrainOperator.template_fields
    )


def test_gpu_pod_spec_is_complete_and_holds_no_secret_values():
    pod = _pod_operator(gpus=2, memory="32Gi", params_sha256="ab" * 32).render_pod(None)
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/example/trainer:1" and container["name"] == "base"
    assert not container.get("command")  # the image's ENTRYPOINT runs the trainer
    args = container["args"]
    assert args[args.index("--training-set-uri") + 1] == "s3://bucket/ts/abc/data.parquet"
    assert args[args.index("--expect-params-sha256") + 1] == "ab" * 32
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["serviceAccountName"] == "mlops-trainer" and spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-credentials", "optional": False}}]
    env_names = {e["name"] for e in container["env"]}
    assert "MLFLOW_TRACKING_URI" in env_names
    assert not env_names & {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"}
    cpu = _pod_operator(gpus=0).render_pod(None)
    assert "nvidia.com/gpu" not in cpu["spec"]["containers"][0]["resources"]["limits"]
    assert not cpu["spec"].get("nodeSelector") and not cpu["spec"].get("tolerations")


def test_rendered_manifests_validate_strictly_and_rbac_is_least_privilege():
    import kubernetes_validate

    from mlops_provider.operators.training import render_training_manifests

    objects = render_training_manifests()
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Pod") == 1 and "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    for obj in objects:
        kubernetes_validate.validate(obj, "1.31", strict=True)
    role = next(o for o in objects if o["kind"] == "Role")
    rules = {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        "pods": {"create", "get", "list", "watch", "patch", "delete"},
        "pods/log": {"get"},
        "events": {"list", "watch"},
    }
    assert not any("exec" in r for r in rules)
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["roleRef"]["kind"] == "Role" and binding["subjects"][0]["namespace"] == role["metadata"]["namespace"]


def test_pod_failure_description_and_oom_detection():
    from kubernetes.client import models as k8s

    from mlops_provider.operators.training_kubernetes import describe_pod_failure, was_oom_killed

    oom = k8s.V1Pod(
        status=k8s.V1PodStatus(
            phase="Succeeded",
            container_statuses=[
                k8s.V1ContainerStatus(
                    name="base", image="i", image_id="", ready=False, restart_count=0,
                    state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=0, reason="OOMKilled")),
                )
            ],
        )
    )  # fmt: skip
    assert was_oom_killed(oom) and "OOMKilled (exit code 0)" in describe_pod_failure(oom)
    pending = k8s.V1Pod(
        status=k8s.V1PodStatus(
            phase="Pending",
            conditions=[k8s.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable",
                                           message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")],
        )
    )  # fmt: skip
    assert describe_pod_failure(pending).startswith("Unschedulable: 0/3 nodes are available")


def test_vertex_trigger_serializes_every_argument():
    from mlops_provider.triggers.vertex import VertexCustomJobTrigger

    trigger = VertexCustomJobTrigger(job_name="projects/p/locations/r/customJobs/1", gcp_conn_id="gcp", region="r",
                                     poll_interval=5, timeout=60, started_at=100.0)  # fmt: skip
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.vertex.VertexCustomJobTrigger"
    assert VertexCustomJobTrigger(**kwargs).serialize() == (path, kwargs)


def test_render_only_writes_the_local_command_and_the_vertex_job(monkeypatch):
    import yaml

    from mlops_provider.operators.training import XGBoostTrainOperator

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    common = {
        "model_name": "fraud_detector",
        "training_set": {"uri": "s3://b/ts/abc/data.parquet"},
        "render_only": True,
    }
    local = XGBoostTrainOperator(task_id="train_local", backend="local", **common).render(None)
    assert local["kind"] == "command" and local["spec"]["argv"][1:3] == ["-m", "include.trainer.train"]
    assert yaml.safe_load(open(local["path"]).read()) == local["spec"]
    vertex = XGBoostTrainOperator(task_id="train_vertex", backend="vertex", gpus=2, **common).render(None)
    machine = vertex["spec"]["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]
    assert vertex["kind"] == "customjob" and machine == {
        "machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2,
    }  # fmt: skip
    env = vertex["spec"]["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]
    assert [e["name"] for e in env] == ["MLFLOW_TRACKING_URI"]


def test_mlflow_hook_sends_credentials_only_inside_its_scope(monkeypatch):
    """A loopback HTTP server records what the real MLflow client sends through the hook's client."""
    import base64
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlops_provider.hooks.mlflow import MlflowHook

    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
            body = b'{"experiments": []}' if "experiments" in self.path else b'{"registered_models": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 - search_experiments is a POST
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_AUTH", json.dumps({"conn_type": "mlflow", "host": url, "login": "svc",
                                                                   "password": "s3cret"}))  # fmt: skip
        hook = MlflowHook("mlflow_auth")
        assert hook.test_connection() == (True, f"Connected to MLflow at {url}.")
        hook.get_client().search_experiments(max_results=1)
        expected = "Basic " + base64.b64encode(b"svc:s3cret").decode()
        assert seen and all(auth == expected for _, auth in seen)
        assert "/api/2.0/mlflow/experiments/search" in {path for path, _ in seen}
        assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
    finally:
        server.shutdown()
