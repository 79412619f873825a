"""The vertex backend with the aiplatform JobServiceClient replaced at its boundary by a fake Vertex AI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlops_provider.hooks.vertex import VertexTrainingHook
from mlops_provider.training.launch import idempotency_key
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import make_training_snapshot

pytestmark = pytest.mark.integration


class FakeVertex:
    """Stands in for ``aiplatform_v1.JobServiceClient``: records requests and runs the job's container locally."""

    def __init__(self, workdir: Path, tracking_uri: str, outcome: str = "succeeded") -> None:
        self.workdir = workdir
        self.tracking_uri = tracking_uri
        self.outcome = outcome
        self.created: list[tuple[str, object]] = []
        self.jobs: dict[str, object] = {}
        self.list_requests: list[dict] = []
        self.regions: list[str] = []

    def client(self, gcp_conn_id, region):
        self.regions.append(region)
        return self

    def list_custom_jobs(self, request):
        self.list_requests.append(request)
        label = request["filter"].split("=", 1)[1]
        return [job for job in self.jobs.values() if job.labels.get("mlops-key") == label]

    def create_custom_job(self, parent, custom_job):
        from google.cloud import aiplatform_v1

        from include.trainer.__main__ import main

        self.created.append((parent, custom_job))
        job = aiplatform_v1.CustomJob.from_json(aiplatform_v1.CustomJob.to_json(custom_job))
        job.name = f"{parent}/customJobs/{len(self.created)}"
        if self.outcome == "succeeded":
            container = job.job_spec.worker_pool_specs[0].container_spec
            args = list(container.args)
            args[args.index("--output-json") + 1] = str(self.workdir / f"job-{len(self.created)}.json")
            env = {e.name: e.value for e in container.env}
            assert env["MLFLOW_TRACKING_URI"] == self.tracking_uri
            code = main(args, env=env)
            job.state = (
                aiplatform_v1.JobState.JOB_STATE_SUCCEEDED if code == 0 else aiplatform_v1.JobState.JOB_STATE_FAILED
            )
        else:
            job.state = aiplatform_v1.JobState.JOB_STATE_FAILED
            job.error.message = "The replica workerpool0-0 exited with a non-zero status of 137 (OOM)."
        self.jobs[job.name] = job
        return job

    def get_custom_job(self, name):
        return self.jobs[name]


@pytest.fixture
def vertex(monkeypatch, mlflow_connection, tmp_path):
    fake = FakeVertex(tmp_path, mlflow_connection.url)
    monkeypatch.setattr(VertexTrainingHook, "build_client", lambda self: fake.client(self.gcp_conn_id, self.region))
    return fake


@pytest.fixture(scope="module")
def vertex_snapshot(tmp_path_factory):
    return make_training_snapshot(tmp_path_factory.mktemp("vertex") / "snapshot", rows=1500, seed=33, signal=2.0)


def test_vertex_custom_job_has_the_exact_spec_and_registers(vertex, vertex_snapshot, fast_params_file, repo_root):
    import hashlib

    name = f"vertex_{uuid.uuid4().hex[:8]}"
    conf = {"model_name": name, "training_set": vertex_snapshot, "params_file": fast_params_file}
    dag_run = run_dag("training_vertex", conf=conf)
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert result["backend"] == "vertex" and result["model_version"] == "1"
    assert result["vertex_job_name"] == "projects/mlops-test/locations/europe-west4/customJobs/1"
    assert vertex.regions == ["europe-west4"] and len(vertex.created) == 1
    parent, job = vertex.created[0]
    assert parent == "projects/mlops-test/locations/europe-west4"
    digest = hashlib.sha256(Path(fast_params_file).read_bytes()).hexdigest()
    key = idempotency_key(
        dag_id="training_vertex", run_id=dag_run.run_id, task_id="train", map_index=-1,
        training_set_hash=vertex_snapshot["hash"], params_hash=digest, code_version="ghcr.io/example/mlops-trainer:0.1.0",
    )  # fmt: skip
    expected = {
        "displayName": f"{name}-train",
        "labels": {"app": "mlops-trainer", "model": name, "mlops-key": hashlib.sha256(key.encode()).hexdigest()[:32]},
        "jobSpec": {
            "workerPoolSpecs": [
                {
                    "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1},
                    "replicaCount": "1",
                    "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
                    "containerSpec": {
                        "imageUri": "ghcr.io/example/mlops-trainer:0.1.0",
                        "args": [
                            "--training-set-uri", vertex_snapshot["uri"], "--params-file", fast_params_file,
                            "--model-name", name, "--output-json", "/tmp/mlops/result.json", "--run-name", name,
                            "--idempotency-key", key, "--expect-params-sha256", digest, "--dag-id", "training_vertex",
                            "--dag-run-id", dag_run.run_id, "--task-id", "train", "--try-number", "1", "--map-index", "-1",
                        ],
                        "env": [{"name": "MLFLOW_TRACKING_URI", "value": vertex.tracking_uri}],
                    },
                }
            ],
            "serviceAccount": "trainer@mlops-test.iam.gserviceaccount.com",
            "baseOutputDirectory": {"outputUriPrefix": f"gs://mlops-test-staging/{name}"},
        },
    }  # fmt: skip
    from google.cloud import aiplatform_v1

    assert (
        json.loads(
            aiplatform_v1.CustomJob.to_json(job, including_default_value_fields=False, use_integers_for_enums=False)
        )
        == expected
    )


def test_vertex_deferrable_waits_in_the_trigger_and_reattaches_on_restart(vertex, vertex_snapshot, fast_params_file):
    name = f"vertexd_{uuid.uuid4().hex[:8]}"
    conf = {"model_name": name, "training_set": vertex_snapshot, "params_file": fast_params_file}
    dag_run = run_dag("training_vertex_deferrable", conf=conf)
    assert task_states(dag_run) == {"train": "success"}
    assert task_xcom(dag_run, "train")["model_version"] == "1"
    assert len(vertex.created) == 1 and vertex.list_requests[0]["filter"].startswith("labels.mlops-key=")


def test_vertex_job_failure_fails_the_task_with_the_job_error(vertex, vertex_snapshot, fast_params_file, capfd):
    vertex.outcome = "failed"
    conf = {"model_name": "vertex_fail", "training_set": vertex_snapshot, "params_file": fast_params_file}
    capfd.readouterr()
    dag_run = run_dag("training_vertex", conf=conf)
    assert task_states(dag_run) == {"train": "failed"}
    output = "".join(capfd.readouterr())
    assert "TrainingFailedError" in output and "exited with a non-zero status of 137" in output
