"""The kubernetes training backend end to end: the real KubernetesPodOperator against the fake cluster.

The fake kubelet really runs the trainer with the pod's arguments and environment (Secrets resolved), so a
green run proves the pod spec works; MLflow is the session's real server.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from mlops_provider.lineage import AIRFLOW_DAG_ID_TAG, AIRFLOW_TASK_ID_TAG, TRAINING_SET_HASH_TAG
from mlops_provider.training.launch import argument_value
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import make_training_snapshot

pytestmark = pytest.mark.integration

NAMESPACE = "mlops"


@pytest.fixture(scope="module")
def k8s_snapshot(tmp_path_factory):
    return make_training_snapshot(tmp_path_factory.mktemp("k8s") / "snapshot", rows=2000, seed=21, signal=2.0)


@pytest.fixture
def cluster(fake_k8s, mlflow_connection, monkeypatch, tmp_path):
    """The fake cluster as the bundle's Kubernetes connection, with the MLflow credentials Secret in place."""
    monkeypatch.setenv("AIRFLOW__MLOPS__KUBERNETES_CONN_ID", fake_k8s.conn_id)
    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", NAMESPACE)
    secret = {"MLFLOW_TRACKING_USERNAME": "trainer", "MLFLOW_TRACKING_PASSWORD": "not-in-the-spec-4711"}
    fake_k8s.put_object(
        "", "v1", NAMESPACE, "secrets",
        {"kind": "Secret", "metadata": {"name": "mlflow-credentials"}, "type": "Opaque",
         "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}},
    )  # fmt: skip
    return fake_k8s


def kubelet_running_the_trainer(cluster, workdir: Path, seen_env: list | None = None):
    """A fake-kubelet workload: run the container's command line (the trainer) with the pod's environment."""

    def run(pod: dict) -> tuple[int, list[str]]:
        from include.trainer.__main__ import main, marker_line

        container = pod["spec"]["containers"][0]
        args = list(container["args"])
        # /tmp in the pod is an emptyDir: give each pod its own folder here.
        args[args.index("--output-json") + 1] = str(workdir / f"{pod['metadata']['name']}.json")
        env = cluster.resolved_env(pod)
        if seen_env is not None:
            seen_env.append(env)
        code = main(args, env=env)
        lines = [f"trainer started for {pod['metadata']['name']}"]
        if code == 0:
            lines.append(marker_line(json.loads(Path(args[args.index("--output-json") + 1]).read_text())))
        return code, lines

    return run


def _conf(model_name, snapshot, params_file, **extra):
    return {"model_name": model_name, "training_set": snapshot, "params_file": params_file, **extra}


def test_sync_pod_trains_registers_and_is_deleted(cluster, k8s_snapshot, fast_params_file, tmp_path):
    import mlflow

    seen_env: list[dict] = []
    cluster.set_pod_behavior(
        "succeeded", run=kubelet_running_the_trainer(cluster, tmp_path, seen_env), pending_seconds=0.3
    )
    name = f"k8s_{uuid.uuid4().hex[:8]}"
    dag_run = run_dag("training_kubernetes_sync", conf=_conf(name, k8s_snapshot, fast_params_file))
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert result["backend"] == "kubernetes" and result["model_version"] == "1" and result["model_name"] == name
    assert result["model_uri"] == f"models:/{name}/1" and result["metrics"]["roc_auc"] > 0.7
    # One pod, created with the GPU spec, its log followed, deleted at the end.
    assert len(cluster.created_pods) == 1 and cluster.pods() == []
    pod = cluster.created_pods[0]
    assert result["pod_name"] == pod["metadata"]["name"] and cluster.deleted_pods == [pod["metadata"]["name"]]
    assert pod["metadata"]["namespace"] == NAMESPACE
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    follows = [r for r in cluster.request_log if r["path"].endswith("/log") and r["query"].get("follow") == "True"]
    assert follows and follows[0]["query"]["container"] == "base"
    # The credentials reached the container from the Secret, never through the spec.
    assert seen_env[0]["MLFLOW_TRACKING_PASSWORD"] == "not-in-the-spec-4711"
    assert "not-in-the-spec-4711" not in json.dumps(pod) and "not-in-the-spec-4711" not in json.dumps(result)
    # Lineage: the version knows its Airflow try and its data.
    version = mlflow.MlflowClient(cluster_mlflow_url()).get_model_version(name, "1")
    assert (
        version.tags[AIRFLOW_DAG_ID_TAG] == "training_kubernetes_sync" and version.tags[AIRFLOW_TASK_ID_TAG] == "train"
    )
    assert version.tags[TRAINING_SET_HASH_TAG] == k8s_snapshot["hash"]


def cluster_mlflow_url() -> str:
    import os

    return json.loads(os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"])["host"]


def test_deferrable_pod_trains_through_the_trigger(cluster, k8s_snapshot, fast_params_file, tmp_path):
    cluster.set_pod_behavior("succeeded", run=kubelet_running_the_trainer(cluster, tmp_path), pending_seconds=0.3)
    name = f"k8sd_{uuid.uuid4().hex[:8]}"
    dag_run = run_dag("training_kubernetes_deferrable", conf=_conf(name, k8s_snapshot, fast_params_file))
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert result["model_version"] == "1" and result["backend"] == "kubernetes"
    assert len(cluster.created_pods) == 1 and cluster.pods() == []


def test_slow_scheduling_on_a_scaling_gpu_pool_is_not_a_startup_timeout(cluster, k8s_snapshot, fast_params_file,
                                                                          tmp_path):  # fmt: skip
    # 5 s without a node, then a fast start: fails under one shared 3 s timeout, passes with a 12 s schedule timeout.
    cluster.set_pod_behavior(
        "succeeded", run=kubelet_running_the_trainer(cluster, tmp_path), schedule_seconds=5, pending_seconds=0.3
    )
    name = f"k8sgpu_{uuid.uuid4().hex[:8]}"
    dag_run = run_dag("training_kubernetes_gpu_pool", conf=_conf(name, k8s_snapshot, fast_params_file))
    assert task_states(dag_run) == {"train": "success"}
    assert task_xcom(dag_run, "train")["model_version"] == "1"
    assert len(cluster.created_pods) == 1 and cluster.pods() == []


def test_a_training_set_on_this_machine_fails_before_any_pod_is_created(cluster, k8s_snapshot, fast_params_file,
                                                                         capfd, monkeypatch):  # fmt: skip
    from mlops_provider.settings import reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS", "False")
    reset_settings()
    try:
        output = _failed_run(cluster, capfd, _conf(f"local_{uuid.uuid4().hex[:6]}", k8s_snapshot, fast_params_file))
    finally:
        reset_settings()
    assert "cannot read the training set at" in output and "AIRFLOW__MLOPS__DATA_ROOT" in output
    assert cluster.created_pods == []


def test_launch_timeouts_default_to_the_settings_at_run_time(monkeypatch):
    from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator

    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_SCHEDULE_TIMEOUT_SECONDS", "1800")
    defaults = XGBoostTrainKubernetesOperator(task_id="train", model_name="m", training_set="file:///tmp/t.parquet")
    explicit = XGBoostTrainKubernetesOperator(
        task_id="train", model_name="m", training_set="file:///tmp/t.parquet", schedule_timeout_seconds=60,
        startup_timeout_seconds=30,
    )  # fmt: skip
    for operator in (defaults, explicit):
        operator._resolve_defaults()
    assert (defaults.schedule_timeout_seconds, defaults.startup_timeout_seconds) == (1800, 300)
    assert (explicit.schedule_timeout_seconds, explicit.startup_timeout_seconds) == (60, 30)


def _failed_run(cluster, capfd, conf, dag_id="training_kubernetes_sync") -> str:
    dag_run = run_dag(dag_id, conf=conf)
    assert task_states(dag_run) == {"train": "failed"}
    out = capfd.readouterr()
    return out.out + out.err


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        pytest.param(
            {"outcome": "failed", "exit_code": 2, "reason": "Error", "message": "ValueError: label column missing"},
            ["container base terminated: Error (exit code 2): ValueError: label column missing"],
            id="failed",
        ),
        pytest.param(
            {"outcome": "unschedulable"},
            [
                "found no node within 3 s",
                "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu",
                "raise schedule_timeout_seconds",
            ],
            id="unschedulable-past-schedule-timeout",
        ),
        pytest.param(
            {"outcome": "succeeded", "pending_seconds": 60},
            ["was scheduled but its container did not start within 3 s", "raise startup_timeout_seconds"],
            id="creating-past-startup-timeout",
        ),
        pytest.param(
            {"outcome": "oomkilled", "exit_code": 137, "pending_seconds": 0.1, "run_seconds": 0.2},
            ["OOMKilled (exit code 137)"],
            id="oomkilled",
        ),
        pytest.param(
            {"outcome": "oomkilled", "exit_code": 0, "pending_seconds": 0.1, "run_seconds": 0.2},
            ["was OOMKilled", "OOMKilled (exit code 0)", "raise memory"],
            id="oomkilled-exit-0",
        ),
        pytest.param(
            {"outcome": "image_pull_error", "pending_seconds": 0.1},
            # ErrImagePull turns into ImagePullBackOff a second later; a loaded worker may poll after that.
            [("ErrImagePull", "ImagePullBackOff"), "ghcr.io/example/mlops-trainer:0.1.0"],
            id="image-pull",
        ),
    ],
)
def test_pod_failures_fail_clearly_and_leave_no_pod(cluster, k8s_snapshot, fast_params_file, capfd, behavior, expected):
    cluster.set_pod_behavior(**behavior)
    capfd.readouterr()
    output = _failed_run(cluster, capfd, _conf(f"fail_{uuid.uuid4().hex[:6]}", k8s_snapshot, fast_params_file))
    assert "TrainingFailedError" in output
    for text in expected:
        alternatives = text if isinstance(text, tuple) else (text,)
        assert any(alternative in output for alternative in alternatives), alternatives
    assert len(cluster.created_pods) == 1, "a failed try must not leave a second pod behind"
    assert cluster.pods(NAMESPACE) == []


def test_missing_credentials_secret_fails_the_start_clearly(fake_k8s, mlflow_connection, monkeypatch, k8s_snapshot,
                                                             fast_params_file, capfd):  # fmt: skip
    monkeypatch.setenv("AIRFLOW__MLOPS__KUBERNETES_CONN_ID", fake_k8s.conn_id)
    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", NAMESPACE)
    capfd.readouterr()
    output = _failed_run(fake_k8s, capfd, _conf("nosecret", k8s_snapshot, fast_params_file))
    assert 'CreateContainerConfigError: secret "mlflow-credentials" not found' in output
    assert fake_k8s.pods() == []


@pytest.mark.parametrize("finished_before_retry", [False, True], ids=["pod-running", "pod-succeeded"])
def test_restarted_try_reattaches_to_the_running_pod_instead_of_starting_another(
    cluster, k8s_snapshot, fast_params_file, tmp_path, finished_before_retry
):
    """Running or already succeeded, the earlier start's pod is adopted: one pod, one version, then deleted."""
    cluster.set_pod_behavior(
        "succeeded", run=kubelet_running_the_trainer(cluster, tmp_path), pending_seconds=0.2,
        match={"mlops-test": "lost-worker"},
    )  # fmt: skip
    name = f"reattach_{uuid.uuid4().hex[:8]}"
    conf = _conf(
        name, k8s_snapshot, fast_params_file, mlflow_tracking_uri=cluster_mlflow_url(),
        finished_before_retry=finished_before_retry,
    )  # fmt: skip
    dag_run = run_dag("training_kubernetes_reattach", conf=conf)
    assert task_states(dag_run) == {"lost_worker_pod": "success", "train": "success"}
    seeded = task_xcom(dag_run, "lost_worker_pod")
    result = task_xcom(dag_run, "train")
    assert [p["metadata"]["name"] for p in cluster.created_pods] == [seeded], "reattached, never a second pod"
    assert result["pod_name"] == seeded and result["model_version"] == "1"
    # The key the earlier start put in the pod is the one the result was read by (no try number in it).
    seeded_args = cluster.created_pods[0]["spec"]["containers"][0]["args"]
    assert result["idempotency_key"] == argument_value(seeded_args, "--idempotency-key")
    assert result["idempotency_key"].startswith(f"training_kubernetes_reattach/{dag_run.run_id}/train/-1/")
    assert cluster.pods() == []


def test_render_mode_writes_the_pod_and_submits_nothing(cluster, k8s_snapshot, fast_params_file):
    import kubernetes_validate

    dag_run = run_dag("training_kubernetes_render", conf=_conf("render_model", k8s_snapshot, fast_params_file))
    assert task_states(dag_run) == {"train": "success"}
    rendered = task_xcom(dag_run, "train")
    assert rendered["kind"] == "pod" and Path(rendered["path"]).is_file()
    kubernetes_validate.validate(rendered["spec"], "1.31", strict=True)
    args = rendered["spec"]["spec"]["containers"][0]["args"]
    assert args[args.index("--idempotency-key") + 1].startswith("training_kubernetes_render/")
    assert cluster.created_pods == [] and not [r for r in cluster.requests if r[0] == "POST"]
