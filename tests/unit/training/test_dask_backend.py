"""The dask training backend without a cluster: the DaskJob against the CRD, its name, trigger, spec block.

The DaskJob schema is the dask-kubernetes operator's CRD (``tests/schemas/dask/daskjob.yaml``, a copy of the
official one); like the API server's strict field validation, fields the schema does not declare are refused.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from pathlib import Path

import pytest
import yaml

from mlops_provider.exceptions import ModelSpecError
from tests.unit.serving.test_manifests import unknown_fields

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "dask" / "daskjob.yaml"


@cache
def daskjob_schema() -> dict:
    crd = yaml.safe_load(SCHEMA.read_text())
    assert crd["spec"]["names"]["kind"] == "DaskJob" and crd["spec"]["group"] == "kubernetes.dask.org"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def validate(manifest: dict) -> None:
    import jsonschema

    schema = daskjob_schema()
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    # The CRD leaves apiVersion, kind and metadata to the API server; everything under spec must be declared.
    assert unknown_fields(manifest["spec"], schema["properties"]["spec"], ".spec") == []
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}


def _operator(**kwargs):
    from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator

    return XGBoostTrainDaskJobOperator(
        task_id="train", model_name="churn_model", training_set="s3://bucket/training_sets/x/abc/data.parquet",
        mlflow_tracking_uri="https://mlflow.example.com", image="registry.example/trainer:1.2", namespace="ml",
        kubernetes_conn_id="k8s", **kwargs,
    )  # fmt: skip


def _context(run_id="manual__1", try_number=1, map_index=-1):
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="train_dag", task_id="train", map_index=map_index, try_number=try_number)
    return {"ti": ti, "run_id": run_id}


@pytest.mark.parametrize(
    "options",
    [{}, {"gpus_per_worker": 0, "n_workers": 8, "worker_cpu": "500m", "worker_memory": "3Gi"},
     {"extra_secrets": ["s3-credentials"], "mlflow_credentials_secret": None}],
    ids=["gpu-default", "cpu-only", "storage-secret"],
)  # fmt: skip
def test_the_daskjob_validates_against_the_crd(options):
    job = _operator(**options).build_dask_job(_context())
    validate(job)
    assert job["apiVersion"] == "kubernetes.dask.org/v1" and job["kind"] == "DaskJob"
    worker = job["spec"]["cluster"]["spec"]["worker"]
    assert worker["replicas"] == options.get("n_workers", 2)
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example/trainer:1.2" and container["command"] == ["dask", "worker"]
    gpus = options.get("gpus_per_worker", 1)
    assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    assert ("nodeSelector" in worker["spec"]) == bool(gpus)
    (runner,) = job["spec"]["job"]["spec"]["containers"]
    # The runner is the trainer image's own entry point with the shared launch arguments, on the dask engine.
    assert "command" not in runner and runner["image"] == container["image"]
    assert runner["args"][:2] == ["--training-set-uri", "s3://bucket/training_sets/x/abc/data.parquet"]
    assert runner["args"][-2:] == ["--engine", "dask"] and "--idempotency-key" in runner["args"]
    assert job["spec"]["job"]["spec"]["restartPolicy"] == "Never"
    assert {e["name"]: e["value"] for e in runner["env"]}["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"


def test_no_secret_value_ends_up_in_the_daskjob():
    job = json.dumps(_operator().build_dask_job(_context()))
    assert "PASSWORD" not in job and "TOKEN" not in job
    assert '"secretRef": {"name": "mlflow-credentials", "optional": false}' in job


def test_the_job_name_is_per_task_instance_never_per_try():
    from mlops_provider.training.daskjob import IDEMPOTENCY_ANNOTATION

    op = _operator()
    first, retry = op.build_dask_job(_context(try_number=1)), op.build_dask_job(_context(try_number=2))
    assert first["metadata"]["name"] == retry["metadata"]["name"]
    key = IDEMPOTENCY_ANNOTATION
    assert first["metadata"]["annotations"][key] == retry["metadata"]["annotations"][key]
    other_run, mapped = op.build_dask_job(_context(run_id="manual__2")), op.build_dask_job(_context(map_index=3))
    assert len({first["metadata"]["name"], other_run["metadata"]["name"], mapped["metadata"]["name"]}) == 3
    name = first["metadata"]["name"]
    assert len(name) <= 40 and name.startswith("churn-model-train-")


def test_render_writes_the_daskjob_and_its_rbac_for_make_render():
    from include.render import render_all

    objects = render_all()
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert ("Role", "mlops-dask-training-launcher") in kinds
    (job,) = [o for o in objects if o["kind"] == "DaskJob"]
    validate(job)
    (rule,) = [o for o in objects if o["metadata"]["name"] == "mlops-dask-training-launcher" and o["kind"] == "Role"][
        0
    ]["rules"]
    assert rule == {
        "apiGroups": ["kubernetes.dask.org"],
        "resources": ["daskjobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    }


def test_a_path_on_this_machine_is_refused_before_anything_is_submitted(monkeypatch):
    from mlops_provider.settings import MlopsConfigError

    op = _operator()
    op.training_set = "/data/training_sets/x/abc/data.parquet"
    monkeypatch.setenv("AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS", "False")
    with pytest.raises(MlopsConfigError, match="The Dask workers of churn_model cannot read the training set"):
        op.execute(_context())


def test_the_trigger_serializes_and_reports_each_end(monkeypatch):
    from mlops_provider.triggers.dask import DaskJobTrigger

    trigger = DaskJobTrigger(name="j", namespace="ml", kubernetes_conn_id="k8s", deadline=9e9, poll_interval=0.01)
    path, kwargs = trigger.serialize()
    assert path == "mlops_provider.triggers.dask.DaskJobTrigger" and DaskJobTrigger(**kwargs).serialize() == (
        path,
        kwargs,
    )

    def events(reads):
        states = iter(reads)
        monkeypatch.setattr(DaskJobTrigger, "_read", lambda self: next(states))

        async def collect():
            return [e.payload async for e in trigger.run()]

        return asyncio.run(collect())

    job = lambda status: {"metadata": {"name": "j"}, "status": {"jobStatus": status}}  # noqa: E731
    (event,) = events([job("JobCreated"), job("ClusterCreated"), job("Running"), job("Successful")])
    assert event["status"] == "successful" and event["job_status"] == "Successful"
    (event,) = events([job("Running"), job("Failed")])
    assert event["status"] == "failed"
    (event,) = events([job("Running"), None])
    assert event == {"name": "j", "namespace": "ml", "status": "deleted", "job_status": "Running"}

    def boom(self):
        raise ConnectionError("API server unreachable")

    monkeypatch.setattr(DaskJobTrigger, "_read", boom)
    (event,) = asyncio.run(_collect(trigger))
    assert event["status"] == "error" and "API server unreachable" in event["message"]
    expired = DaskJobTrigger(name="j", namespace="ml", kubernetes_conn_id="k8s", deadline=0, poll_interval=0.01)
    monkeypatch.setattr(DaskJobTrigger, "_read", lambda self: job("Running"))
    (event,) = asyncio.run(_collect(expired))
    assert event["status"] == "timeout" and event["job_status"] == "Running"


async def _collect(trigger):
    return [e.payload async for e in trigger.run()]


def test_the_runner_failure_is_its_termination_message_else_its_log():
    from types import SimpleNamespace

    from mlops_provider.training.daskjob import runner_failure

    terminated = SimpleNamespace(exit_code=3, reason="Error", message="label column 'y' is missing\n")
    pod = SimpleNamespace(status=SimpleNamespace(container_statuses=[SimpleNamespace(state=SimpleNamespace(terminated=terminated))]))  # fmt: skip
    assert runner_failure(pod) == "the runner exited with code 3 (Error): label column 'y' is missing"
    terminated.message = None
    assert runner_failure(pod, "Traceback ...\nKilledWorker") == (
        "the runner exited with code 3 (Error): Traceback ...\nKilledWorker"
    )
    assert "left no message" in runner_failure(None)


def test_operator_template_fields_include_the_cluster_ids():
    from mlops_provider.operators.training import training_operator_class
    from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator, XGBoostTrainDaskOperator

    assert training_operator_class("dask") is XGBoostTrainDaskOperator
    assert training_operator_class("dask", dask_cluster="kubernetes") is XGBoostTrainDaskJobOperator
    assert {"model_name", "training_set", "dask_conn_id"} <= set(XGBoostTrainDaskOperator.template_fields)
    assert {"image", "namespace", "kubernetes_conn_id"} <= set(XGBoostTrainDaskJobOperator.template_fields)
    with pytest.raises(ValueError, match="n_workers must be at least 1, got 0"):
        XGBoostTrainDaskOperator(task_id="t", model_name="m", training_set="s3://b/x", n_workers=0)


def test_the_local_cluster_command_runs_the_trainer_on_the_dask_engine(tmp_path, monkeypatch):
    from mlops_provider.operators.training_dask import XGBoostTrainDaskOperator

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(tmp_path))
    op = XGBoostTrainDaskOperator(task_id="train", model_name="m", training_set="s3://b/ts/abc/data.parquet")
    argv = op.command(_context())["argv"]
    assert argv[1:3] == ["-m", "include.trainer"] and argv[-4:-1] == ["--engine", "dask", "--dask-scheduler"]
    op._scheduler_address = "tcp://127.0.0.1:40001"
    assert op.command(_context())["argv"][-1] == "tcp://127.0.0.1:40001"


# ---------------------------------------------------------------------------------------------- spec


@pytest.fixture
def spec_dict():
    import copy

    from tests.unit.spec.conftest import SPEC

    return copy.deepcopy(SPEC)


def _spec(spec_dict, training):
    from mlops_provider.spec.load import parse_spec
    from tests.conftest import REPO_ROOT

    spec_dict["training"] = training
    return parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT)


def test_the_spec_takes_the_dask_backend_and_its_options(spec_dict):
    from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator, XGBoostTrainDaskOperator
    from mlops_provider.spec.dags import build_dags

    spec = _spec(spec_dict, {"backend": "dask"})
    assert spec.training.dask.cluster == "local" and spec.training.operator_options == {
        "n_workers": 2,
        "worker_memory_limit": "auto",
    }
    train = build_dags(spec)["refunds__training"].get_task("train")
    assert type(train) is XGBoostTrainDaskOperator and train.n_workers == 2

    block = {"cluster": "kubernetes", "n_workers": 4, "worker_cpu": "8", "worker_memory": "32Gi", "gpus_per_worker": 2}
    spec = _spec(spec_dict, {"backend": "dask", "dask": block})
    train = build_dags(spec)["refunds__training"].get_task("train")
    assert type(train) is XGBoostTrainDaskJobOperator
    assert (train.n_workers, train.worker_cpu, train.worker_memory, train.gpus_per_worker) == (4, "8", "32Gi", 2)


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"backend": "local", "dask": {"n_workers": 2}}, "training.dask: only applies to training.backend: dask"),
        ({"backend": "dask", "dask": {"n_workers": 0}}, "training.dask.n_workers: expected an integer >= 1, got 0"),
        ({"backend": "dask", "dask": {"cluster": "yarn"}}, "training.dask.cluster: expected one of local, kubernetes"),
        ({"backend": "dask", "dask": {"gpus_per_worker": 1}}, "training.dask.gpus_per_worker: only applies to cluster: kubernetes"),
        ({"backend": "dask", "dask": {"cluster": "kubernetes", "worker_memory": "lots"}},
         "training.dask.worker_memory: expected a Kubernetes memory quantity"),
        ({"backend": "dask", "dask": {"cluster": "kubernetes", "worker_cpu": "four"}},
         "training.dask.worker_cpu: expected a CPU quantity"),
        ({"backend": "dask", "dask": {"worker_memory": "16Gi"}}, 'training.dask.worker_memory: expected a size like "4GiB"'),
        ({"backend": "dask", "dask": {"nworkers": 2}}, "training.dask.nworkers: unknown key"),
    ],
    ids=["not-dask", "workers", "cluster", "gpu-on-local", "k8s-memory", "cpu", "local-memory", "unknown"],
)  # fmt: skip
def test_dask_spec_errors_name_the_key(spec_dict, training, expected):
    with pytest.raises(ModelSpecError) as info:
        _spec(spec_dict, training)
    assert expected in str(info.value) and info.value.key.startswith("training.dask")
