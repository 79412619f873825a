"""The dask training backend end to end: a real LocalCluster through Airflow, and DaskJobs on the fake cluster.

The LocalCluster test trains the same snapshot with the local backend and the dask backend (2 worker processes)
through ``dag.test()`` and compares what they registered in the session's real MLflow server. The DaskJob tests
run the real operator and client against the fake API server, whose dask-kubernetes controller
(``tests/fake_k8s/dask.py``) moves the job through its statuses; the runner workload really trains on a
LocalCluster standing in for the job's scheduler and worker pods.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from mlops_provider import lineage
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import make_training_snapshot

pytestmark = pytest.mark.integration

NAMESPACE = "mlops"
RUNNER = {"dask.org/component": "job-runner"}


def _dask_processes() -> list[int]:
    """Dask worker processes started from this test process (the LocalCluster's nanny children)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            # Not multiprocessing's resource tracker: one per process, started once and kept for its lifetime.
            if ("distributed" in command or "multiprocessing" in command) and "resource_tracker" not in command:
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def dask_snapshot(tmp_path_factory):
    return make_training_snapshot(
        tmp_path_factory.mktemp("dask") / "snapshot", rows=6000, seed=31, signal=2.0, categorical=True
    )


def test_dask_backend_registers_the_quality_of_the_local_backend_through_airflow(
    mlflow_connection, fast_params_file, dask_snapshot
):
    import mlflow

    before = set(_dask_processes())
    conf = {"training_set": dask_snapshot, "params_file": fast_params_file}
    local_name, dask_name = f"cmp_local_{uuid.uuid4().hex[:6]}", f"cmp_dask_{uuid.uuid4().hex[:6]}"
    local_run = run_dag("training_local", conf={**conf, "model_name": local_name})
    dask_run = run_dag("training_dask_local_cluster", conf={**conf, "model_name": dask_name})
    assert task_states(local_run) == {"train": "success"} and task_states(dask_run) == {"train": "success"}
    local, dask = task_xcom(local_run, "train"), task_xcom(dask_run, "train")

    assert dask["backend"] == "dask" and dask["model_uri"] == f"models:/{dask_name}/1"
    assert dask["training_set_hash"] == local["training_set_hash"] == dask_snapshot["hash"]
    assert set(dask["metrics"]) == set(local["metrics"]) - {"rows_per_second"} | {"rows_per_second"}
    # Same rows in the holdout, same scoring code: the quality may differ only by the distributed sketch.
    assert dask["metrics"]["rows"] == local["metrics"]["rows"]
    assert abs(dask["metrics"]["roc_auc"] - local["metrics"]["roc_auc"]) <= 0.005, (dask["metrics"], local["metrics"])
    assert dask["metrics"]["roc_auc"] > 0.8

    client = mlflow.MlflowClient(mlflow_connection.url)
    run = client.get_run(dask["run_id"])
    assert run.data.params["engine"] == "dask" and run.data.params["dask_workers"] == "2"
    assert run.data.params["matrix"] == "DaskDMatrix" and run.data.params["categorical_columns"] == "merchant_code"
    tags = run.data.tags
    assert tags[lineage.AIRFLOW_DAG_ID_TAG] == "training_dask_local_cluster"
    assert tags[lineage.AIRFLOW_RUN_ID_TAG] == dask_run.run_id
    assert tags[lineage.TRAINING_SET_URI_TAG] == dask_snapshot["uri"]
    assert tags[lineage.IDEMPOTENCY_TAG] == dask["idempotency_key"]
    version = client.get_model_version(dask_name, "1")
    assert version.tags[lineage.IDEMPOTENCY_TAG] == dask["idempotency_key"]
    # The task closed its cluster: no worker process outlives it.
    deadline = time.monotonic() + 30
    while set(_dask_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(_dask_processes()) - before == set()


# ---------------------------------------------------------------------------------------------- DaskJob


@pytest.fixture
def dask_cluster(fake_k8s, mlflow_connection, monkeypatch):
    """The fake cluster with the dask-kubernetes controller, the MLflow Secret and shared local paths."""
    from tests.fake_k8s.dask import DaskJobController

    monkeypatch.setenv("AIRFLOW__MLOPS__KUBERNETES_CONN_ID", fake_k8s.conn_id)
    monkeypatch.setenv("AIRFLOW__MLOPS__NAMESPACE", NAMESPACE)
    # The fake's pods run on this machine: they read the snapshot where the worker wrote it.
    monkeypatch.setenv("AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS", "True")
    secret = {"MLFLOW_TRACKING_USERNAME": "trainer", "MLFLOW_TRACKING_PASSWORD": "not-in-the-spec-4711"}
    fake_k8s.put_object(
        "", "v1", NAMESPACE, "secrets",
        {"kind": "Secret", "metadata": {"name": "mlflow-credentials"}, "type": "Opaque",
         "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}},
    )  # fmt: skip
    controller = DaskJobController(fake_k8s)
    fake_k8s.add_controller("daskjobs", controller)
    fake_k8s.dask_controller = controller
    return fake_k8s


def runner_training_on_a_local_cluster(cluster, workdir: Path, seen: list):
    """The runner container plus the job's scheduler and worker pods: the trainer against a LocalCluster."""

    def run(pod: dict) -> tuple[int, list[str]]:
        from distributed import LocalCluster

        from include.trainer.__main__ import main, marker_line

        job = cluster.get_object("kubernetes.dask.org", "v1", NAMESPACE, "daskclusters",
                                 pod["metadata"]["labels"]["dask.org/cluster-name"])  # fmt: skip
        replicas = job["spec"]["worker"]["replicas"]
        args = list(pod["spec"]["containers"][0]["args"])
        args[args.index("--output-json") + 1] = str(workdir / f"{pod['metadata']['name']}.json")
        env = cluster.resolved_env(pod)
        seen.append({"env": dict(env), "args": args, "replicas": replicas})
        with LocalCluster(n_workers=replicas, threads_per_worker=1, processes=True, dashboard_address=None) as dask:
            # The Service's DNS name resolves to the scheduler: here, the LocalCluster's address.
            env["DASK_SCHEDULER_ADDRESS"] = dask.scheduler_address
            code = main(args, env=env)
        lines = ["runner started"]
        if code == 0:
            lines.append(marker_line(json.loads(Path(args[args.index("--output-json") + 1]).read_text())))
        return code, lines

    return run


def _conf(name, snapshot, params_file, mlflow_connection):
    return {"model_name": name, "training_set": snapshot, "params_file": params_file,
            "mlflow_tracking_uri": mlflow_connection.url}  # fmt: skip


@pytest.mark.parametrize("dag_id", ["training_dask_job", "training_dask_job_deferrable"])
def test_daskjob_trains_and_registers_on_the_cluster(
    dag_id, dask_cluster, mlflow_connection, fast_params_file, dask_snapshot, tmp_path
):
    from mlops_provider.training.daskjob import IDEMPOTENCY_ANNOTATION

    seen: list = []
    dask_cluster.set_pod_behavior(
        "succeeded",
        match=RUNNER,
        pending_seconds=0.3,
        run=runner_training_on_a_local_cluster(dask_cluster, tmp_path, seen),
    )
    name = f"djob_{uuid.uuid4().hex[:6]}"
    dag_run = run_dag(dag_id, conf=_conf(name, dask_snapshot, fast_params_file, mlflow_connection))
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert result["backend"] == "dask" and result["model_uri"] == f"models:/{name}/1"

    (job,) = dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskjobs")
    assert result["dask_job"] == job["metadata"]["name"]
    assert job["status"]["jobStatus"] == "Successful" and job["status"]["jobRunnerPodName"].endswith("-runner")
    assert dask_cluster.dask_controller.transitions[job["metadata"]["name"]] == [
        "JobCreated", "ClusterCreated", "Running", "Successful"
    ]  # fmt: skip
    assert job["metadata"]["annotations"][IDEMPOTENCY_ANNOTATION] == result["idempotency_key"]
    # The operator deleted the cluster once the runner finished; the runner saw the scheduler Service's address.
    assert dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskclusters") == []
    (ran,) = seen
    assert ran["replicas"] == 2 and ran["args"][-2:] == ["--engine", "dask"]
    assert ran["env"]["DASK_SCHEDULER_ADDRESS"].startswith(f"tcp://{job['metadata']['name']}-scheduler.{NAMESPACE}.svc")
    assert ran["env"]["MLFLOW_TRACKING_PASSWORD"] == "not-in-the-spec-4711"
    assert "not-in-the-spec-4711" not in json.dumps(job)


@pytest.mark.parametrize("dag_id", ["training_dask_job", "training_dask_job_deferrable"])
def test_failed_runner_fails_the_task_with_the_trainers_message(
    dag_id, dask_cluster, mlflow_connection, fast_params_file, dask_snapshot, capfd
):
    dask_cluster.set_pod_behavior(
        "failed", match=RUNNER, exit_code=3, message="label column 'is_fraud' has 12 missing values", run_seconds=0.3
    )
    capfd.readouterr()
    dag_run = run_dag(dag_id, conf=_conf("djob_fail", dask_snapshot, fast_params_file, mlflow_connection))
    out = capfd.readouterr()
    assert task_states(dag_run) == {"train": "failed"}
    (job,) = dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskjobs")
    assert job["status"]["jobStatus"] == "Failed"
    output = out.out + out.err
    assert "TrainingFailedError" in output
    assert (
        f"DaskJob {NAMESPACE}/{job['metadata']['name']} for model djob_fail failed: the runner exited with code 3 "
        "(Error): label column 'is_fraud' has 12 missing values"
    ) in output


def _operator(mlflow_connection, snapshot, params_file, **kwargs):
    from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator

    return XGBoostTrainDaskJobOperator(
        task_id="train", model_name="djob_life", training_set=snapshot, params_file=params_file,
        mlflow_tracking_uri=mlflow_connection.url, image="ghcr.io/example/mlops-trainer:0.1.0", namespace=NAMESPACE,
        kubernetes_conn_id="fake_k8s", poll_interval=0.1, deferrable=False, **kwargs,
    )  # fmt: skip


def _context(run_id: str, try_number: int = 1) -> dict:
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="lifecycle", task_id="train", map_index=-1, try_number=try_number)
    return {"ti": ti, "run_id": run_id}


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_the_job_is_named_by_task_instance_and_a_retry_reuses_or_replaces_it(
    dask_cluster, mlflow_connection, fast_params_file, dask_snapshot
):
    from mlops_provider.training.daskjob import JobStatus

    dask_cluster.set_pod_behavior("running", match=RUNNER)
    op = _operator(mlflow_connection, dask_snapshot, fast_params_file)
    first = op.ensure_job(op.build_dask_job(_context("run-a", try_number=1)))
    job = lambda: dask_cluster.get_object("kubernetes.dask.org", "v1", NAMESPACE, "daskjobs", first.name)  # noqa: E731
    uid = job()["metadata"]["uid"]
    _wait_for(lambda: job()["status"]["jobStatus"] == "Running")

    # Try 2 of the same task instance: same name, same key, still running -> waits on the same job.
    retry = op.ensure_job(op.build_dask_job(_context("run-a", try_number=2)))
    assert retry.name == first.name and retry.status is JobStatus.RUNNING and job()["metadata"]["uid"] == uid
    # Another run is another job.
    other = op.build_dask_job(_context("run-b"))
    assert other["metadata"]["name"] != first.name

    # The runner failed: a retry replaces the job (and its runner pod) with a new one.
    with dask_cluster.store.lock:  # as the operator records it when the runner pod fails
        dask_cluster.store.collection("kubernetes.dask.org", "daskjobs")[(NAMESPACE, first.name)]["status"][
            "jobStatus"
        ] = "Failed"
    replaced = op.ensure_job(op.build_dask_job(_context("run-a", try_number=3)))
    assert replaced.name == first.name and job()["metadata"]["uid"] != uid
    assert _wait_for(lambda: job()["status"]["jobStatus"] == "Running")


def test_a_killed_task_deletes_its_job_and_the_cluster_collects_the_rest(
    dask_cluster, mlflow_connection, fast_params_file, dask_snapshot
):
    from mlops_provider.exceptions import TrainingFailedError

    dask_cluster.set_pod_behavior("running", match=RUNNER)
    op = _operator(mlflow_connection, dask_snapshot, fast_params_file)
    outcome: dict = {}

    def execute() -> None:
        try:
            op.execute(_context("run-kill"))
        except TrainingFailedError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=execute)
    worker.start()
    (job,) = _wait_for(lambda: [
        j for j in dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskjobs")
        if j["status"].get("jobStatus") == "Running"
    ])  # fmt: skip
    name = job["metadata"]["name"]
    assert [p["metadata"]["name"] for p in dask_cluster.pods(NAMESPACE)] == [f"{name}-runner"]

    op.on_kill()
    worker.join(timeout=30)
    assert dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskjobs") == []
    _wait_for(lambda: dask_cluster.pods(NAMESPACE) == [] or None)
    assert dask_cluster.objects("kubernetes.dask.org", "v1", NAMESPACE, "daskclusters") == []
    assert "was deleted while it ran" in outcome["error"]
