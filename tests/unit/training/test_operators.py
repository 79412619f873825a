"""The training operators: one class per backend, their template fields, the pod and CustomJob they submit."""

from __future__ import annotations

import pytest

TRAINING_SET = {"uri": "s3://bucket/ts/abc/data.parquet", "hash": "abc"}


def _kubernetes_operator(**kwargs):
    from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator

    return XGBoostTrainKubernetesOperator(
        task_id="train", model_name="model_a", training_set=TRAINING_SET,
        mlflow_tracking_uri="https://mlflow.example.com", image="ghcr.io/example/trainer:1", namespace="mlops",
        random_name_suffix=False, **kwargs,
    )  # fmt: skip


def test_backend_is_chosen_when_the_dag_is_built(monkeypatch):
    from mlops_provider.exceptions import TrainingFailedError
    from mlops_provider.operators.training import training_operator_class
    from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
    from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

    assert training_operator_class("local") is XGBoostTrainLocalOperator
    assert training_operator_class("kubernetes") is XGBoostTrainKubernetesOperator
    assert training_operator_class("vertex") is XGBoostTrainVertexOperator
    assert training_operator_class() is XGBoostTrainLocalOperator  # the [mlops] training_backend default
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_BACKEND", "vertex")
    assert training_operator_class() is XGBoostTrainVertexOperator
    with pytest.raises(TrainingFailedError, match="'spark' is not one of local, kubernetes, vertex"):
        training_operator_class("spark")


def test_each_operator_takes_only_its_own_arguments():
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
    from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

    with pytest.raises(TypeError, match="gpus"):
        XGBoostTrainLocalOperator(task_id="t", model_name="m", training_set=TRAINING_SET, gpus=1)
    with pytest.raises(TypeError, match="memory"):
        XGBoostTrainVertexOperator(task_id="t", model_name="m", training_set=TRAINING_SET, memory="1Gi")


def test_template_fields_extend_the_kubernetes_pod_operators():
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from mlops_provider.operators.training_base import TRAINING_TEMPLATE_FIELDS
    from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
    from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

    fields = XGBoostTrainKubernetesOperator.template_fields
    assert tuple(fields[: len(KubernetesPodOperator.template_fields)]) == tuple(KubernetesPodOperator.template_fields)
    assert {"model_name", "training_set", "params_file", "mlflow_conn_id", "mlflow_tracking_uri"} <= set(fields)
    assert {"image", "namespace", "kubernetes_conn_id"} <= set(fields)
    assert len(fields) == len(set(fields))
    assert tuple(XGBoostTrainLocalOperator.template_fields) == TRAINING_TEMPLATE_FIELDS
    assert {"gcp_conn_id", "vertex_project", "vertex_region", "image"} <= set(
        XGBoostTrainVertexOperator.template_fields
    )


def test_gpu_pod_spec_is_complete_and_holds_no_secret_values(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("n_estimators: 20\n")
    pod = _kubernetes_operator(gpus=2, memory="32Gi", params_file=str(params)).render_pod(None)
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/example/trainer:1" and container["name"] == "base"
    assert not container.get("command")  # the image's ENTRYPOINT runs the trainer
    args = container["args"]
    assert args[args.index("--training-set-uri") + 1] == "s3://bucket/ts/abc/data.parquet"
    import hashlib

    assert args[args.index("--expect-params-sha256") + 1] == hashlib.sha256(params.read_bytes()).hexdigest()
    assert "--idempotency-key" not in args  # rendered outside a task instance: no attempt, no key
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["serviceAccountName"] == "mlops-trainer" and spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-credentials", "optional": False}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"
    assert not set(env) & {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"}
    assert pod["metadata"]["name"] == "model-a-train" and pod["metadata"]["labels"]["mlops/model"] == "model_a"
    cpu = _kubernetes_operator(gpus=0).render_pod(None)
    assert "nvidia.com/gpu" not in cpu["spec"]["containers"][0]["resources"]["limits"]
    assert not cpu["spec"].get("nodeSelector") and not cpu["spec"].get("tolerations")


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


def test_render_only_writes_the_local_command_and_the_vertex_job(monkeypatch):
    import yaml

    from mlops_provider.lineage import TRAINER_MODULE
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
    from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    common = {"model_name": "model_a", "training_set": {"uri": "s3://b/ts/abc/data.parquet"}, "render_only": True}
    local = XGBoostTrainLocalOperator(task_id="train_local", **common).render(None)
    assert local["kind"] == "command" and local["spec"]["argv"][1:3] == ["-m", TRAINER_MODULE]
    assert yaml.safe_load(open(local["path"]).read()) == local["spec"]
    vertex = XGBoostTrainVertexOperator(task_id="train_vertex", gpus=2, **common)
    spec = vertex.write_render(None, "customjob", vertex.custom_job_spec(None))
    machine = spec["spec"]["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]
    assert spec["kind"] == "customjob" and machine == {
        "machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2,
    }  # fmt: skip
    env = spec["spec"]["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]
    assert [e["name"] for e in env] == ["MLFLOW_TRACKING_URI"]
    assert spec["spec"]["labels"] == {"app": "mlops-trainer", "model": "model_a"}  # no attempt outside a task


def test_training_set_inputs_are_parsed_once_and_fail_clearly():
    from mlops_provider.exceptions import TrainingFailedError
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator

    def identity(training_set):
        return XGBoostTrainLocalOperator(task_id="t", model_name="m", training_set=training_set).training_set_identity()

    assert identity({"uri": "s3://b/ts/h1", "hash": "h1"}) == ("s3://b/ts/h1", "h1")
    assert identity('{"uri": "s3://b/ts/h1", "hash": "h1"}') == ("s3://b/ts/h1", "h1")
    assert identity("s3://b/ts/h2/data.parquet") == ("s3://b/ts/h2/data.parquet", "s3://b/ts/h2/data.parquet")
    with pytest.raises(TrainingFailedError, match="has no 'uri'"):
        identity({"hash": "h1"})
    with pytest.raises(TrainingFailedError, match="not valid JSON"):
        identity("{not json")
    with pytest.raises(TrainingFailedError, match="no training set given"):
        identity("")
