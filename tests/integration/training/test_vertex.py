"""The vertex backend through the Google provider's ``CustomJobHook``, against a fake Vertex AI on loopback.

:class:`FakeVertexAI` speaks the JobService REST API (``v1`` ``customJobs``: create, get, list with a label
filter, cancel) that ``aiplatform_v1.JobServiceClient(transport="rest")`` sends; the hook reaches it through the
``google_cloud_default`` connection's ``vertex_api_endpoint`` extra. A job moves QUEUED -> PENDING -> RUNNING
on its own clock and runs the CustomJob's container command (the trainer) as a local process, so the task
really polls a running job; ``behaviour`` makes jobs fail or hang instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mlops_provider.training.launch import idempotency_key
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.conftest import REPO_ROOT
from tests.fixtures.training_snapshot import make_training_snapshot

pytestmark = pytest.mark.integration

PARENT = "projects/mlops-test/locations/europe-west4"
#: Seconds a job spends in each state before it runs, so the task sees it queued, pending and running.
STATE_STEP = 0.3


class FakeVertexAI:
    """Vertex AI's CustomJob REST API on 127.0.0.1: jobs in memory, each run as a local process."""

    def __init__(self, workdir: Path, tracking_uri: str) -> None:
        self.workdir = workdir
        self.tracking_uri = tracking_uri
        #: ``run`` (the container's command), ``fail`` (exits 137 after a while), ``hang`` (until cancelled).
        self.behaviour = "run"
        self.jobs: dict[str, dict] = {}
        self.created: list[tuple[str, dict]] = []
        self.requests: list[tuple[str, str]] = []
        self.observed: dict[str, list[str]] = {}
        self._cancelled: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        for event in self._cancelled.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ jobs
    def _set_state(self, name: str, state: str, error: str | None = None) -> None:
        with self._lock:
            self.jobs[name]["state"] = state
            if error:
                self.jobs[name]["error"] = {"code": 1 if state == "JOB_STATE_CANCELLED" else 13, "message": error}

    def _run(self, name: str) -> None:
        cancelled = self._cancelled[name]
        for state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
            if cancelled.wait(STATE_STEP):
                self._set_state(name, "JOB_STATE_CANCELLED", "CANCELED")
                return
            self._set_state(name, state)
        if self.behaviour == "hang":
            cancelled.wait()
            self._set_state(name, "JOB_STATE_CANCELLED", "CANCELED")
            return
        if self.behaviour == "fail":
            cancelled.wait(STATE_STEP)
            self._set_state(name, "JOB_STATE_FAILED", "The replica workerpool0-0 exited with a non-zero status of 137.")
            return
        container = self.jobs[name]["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
        args = list(container["args"])
        args[args.index("--output-json") + 1] = str(self.workdir / f"{name.rsplit('/', 1)[1]}.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update({item["name"]: item["value"] for item in container.get("env", [])})
        with (self.workdir / f"{name.rsplit('/', 1)[1]}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "include.trainer", *args], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
            )
            while process.poll() is None:
                if cancelled.wait(0.2):
                    process.kill()
                    process.wait()
                    self._set_state(name, "JOB_STATE_CANCELLED", "CANCELED")
                    return
        if process.returncode == 0:
            self._set_state(name, "JOB_STATE_SUCCEEDED")
        else:
            message = f"The replica workerpool0-0 exited with a non-zero status of {process.returncode}."
            self._set_state(name, "JOB_STATE_FAILED", message)

    def create(self, parent: str, body: dict) -> dict:
        with self._lock:
            name = f"{parent}/customJobs/{len(self.created) + 1}"
            self.created.append((parent, body))
            job = {**body, "name": name, "state": "JOB_STATE_QUEUED", "createTime": "2026-03-02T00:00:00Z"}
            self.jobs[name] = job
            self._cancelled[name] = threading.Event()
        threading.Thread(target=self._run, args=(name,), daemon=True).start()
        return job

    def listing(self, parent: str, query: str) -> list[dict]:
        wanted = dict(term.strip().removeprefix("labels.").split("=", 1) for term in query.split(" AND ") if term)
        with self._lock:
            return [
                dict(job)
                for name, job in self.jobs.items()
                if name.startswith(f"{parent}/") and all(job.get("labels", {}).get(k) == v for k, v in wanted.items())
            ]

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, name: str) -> None:
                self._reply(404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                path = url.path.removeprefix("/v1/")
                fake.requests.append(("POST", path))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if path.endswith(":cancel"):
                    name = path.removesuffix(":cancel")
                    if name not in fake.jobs:
                        return self._not_found(name)
                    fake._set_state(name, "JOB_STATE_CANCELLING")
                    fake._cancelled[name].set()
                    return self._reply(200, {})
                if path.endswith("/customJobs"):
                    return self._reply(200, fake.create(path.removesuffix("/customJobs"), body))
                return self._not_found(path)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = url.path.removeprefix("/v1/")
                fake.requests.append(("GET", path))
                if path.endswith("/customJobs"):
                    query = parse_qs(url.query).get("filter", [""])[0]
                    return self._reply(200, {"customJobs": fake.listing(path.removesuffix("/customJobs"), query)})
                with fake._lock:
                    job = dict(fake.jobs[path]) if path in fake.jobs else None
                if job is None:
                    return self._not_found(path)
                fake.observed.setdefault(path, []).append(job["state"])
                return self._reply(200, job)

        return Handler


@pytest.fixture
def vertex(monkeypatch, mlflow_connection, tmp_path):
    fake = FakeVertexAI(tmp_path, mlflow_connection.url)
    extra = {"is_anonymous": True, "project": "mlops-test", "vertex_api_endpoint": fake.url}
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def vertex_snapshot(tmp_path_factory):
    return make_training_snapshot(tmp_path_factory.mktemp("vertex") / "snapshot", rows=1500, seed=33, signal=2.0)


def _as_sent(body: dict) -> dict:
    """The CustomJob the client sent, in its JSON form with enum names (the REST body carries integers)."""
    from google.cloud import aiplatform_v1

    job = aiplatform_v1.CustomJob.from_json(json.dumps(body), ignore_unknown_fields=False)
    return json.loads(
        aiplatform_v1.CustomJob.to_json(job, including_default_value_fields=False, use_integers_for_enums=False)
    )


def test_vertex_custom_job_has_the_exact_spec_polls_it_to_success_and_registers(
    vertex, vertex_snapshot, fast_params_file
):
    name = f"vertex_{uuid.uuid4().hex[:8]}"
    conf = {"model_name": name, "training_set": vertex_snapshot, "params_file": fast_params_file}
    dag_run = run_dag("training_vertex", conf=conf)
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    job_name = f"{PARENT}/customJobs/1"
    assert result["backend"] == "vertex" and result["model_version"] == "1" and result["vertex_job_name"] == job_name
    # The task followed the job through its states over time, not a job that was done when created.
    observed = vertex.observed[job_name]
    assert "JOB_STATE_RUNNING" in observed and observed[-1] == "JOB_STATE_SUCCEEDED"
    assert observed.index("JOB_STATE_RUNNING") < len(observed) - 1
    assert len(vertex.created) == 1 and vertex.requests[0] == ("GET", f"{PARENT}/customJobs")
    parent, body = vertex.created[0]
    assert parent == PARENT
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
    assert _as_sent(body) == expected
    # Lineage: the registered version's run carries the job's idempotency key.
    from mlflow import MlflowClient

    client = MlflowClient(vertex.tracking_uri)
    run = client.get_run(client.get_model_version(name, "1").run_id)
    from mlops_provider.lineage import IDEMPOTENCY_TAG

    assert run.data.tags[IDEMPOTENCY_TAG] == key


def test_vertex_deferrable_rerun_of_the_same_attempt_reattaches_instead_of_resubmitting(
    vertex, vertex_snapshot, fast_params_file
):
    import pendulum

    from tests.airflow_helpers import load_dag

    name = f"vertexd_{uuid.uuid4().hex[:8]}"
    conf = {"model_name": name, "training_set": vertex_snapshot, "params_file": fast_params_file}
    # A fixed run_after gives a fixed run id: the second run is the same attempt again (same idempotency key).
    when = pendulum.datetime(2026, 3, 2, tz="UTC")
    first = load_dag("training_vertex_deferrable").test(run_conf=conf, run_after=when, logical_date=when)
    assert task_states(first) == {"train": "success"}
    assert task_xcom(first, "train")["model_version"] == "1"
    assert len(vertex.created) == 1
    # The same run again (a worker that died after submitting): same key, so the job is found, not resubmitted.
    second = load_dag("training_vertex_deferrable").test(run_conf=conf, run_after=when, logical_date=when)
    assert second.run_id == first.run_id and task_states(second) == {"train": "success"}
    assert len(vertex.created) == 1 and task_xcom(second, "train")["model_version"] == "1"
    assert [r for r in vertex.requests if r[0] == "GET" and r[1].endswith("/customJobs")] == [
        ("GET", f"{PARENT}/customJobs")
    ] * 2


@pytest.mark.parametrize("dag_id", ["training_vertex", "training_vertex_deferrable"])
def test_vertex_job_failure_fails_the_task_with_the_job_error(vertex, vertex_snapshot, fast_params_file, capfd, dag_id):
    vertex.behaviour = "fail"
    conf = {"model_name": "vertex_fail", "training_set": vertex_snapshot, "params_file": fast_params_file}
    capfd.readouterr()
    dag_run = run_dag(dag_id, conf=conf)
    assert task_states(dag_run) == {"train": "failed"}
    output = "".join(capfd.readouterr())
    assert "TrainingFailedError" in output and "exited with a non-zero status of 137" in output
    assert vertex.observed[f"{PARENT}/customJobs/1"][-1] == "JOB_STATE_FAILED"


@pytest.mark.parametrize("dag_id", ["training_vertex_timeout", "training_vertex_timeout_deferrable"])
def test_vertex_job_past_its_timeout_is_cancelled_and_fails_the_task(
    vertex, vertex_snapshot, fast_params_file, capfd, dag_id
):
    vertex.behaviour = "hang"
    conf = {"model_name": "vertex_slow", "training_set": vertex_snapshot, "params_file": fast_params_file}
    capfd.readouterr()
    started = time.monotonic()
    dag_run = run_dag(dag_id, conf=conf)
    assert task_states(dag_run) == {"train": "failed"}
    assert time.monotonic() - started < 60
    output = "".join(capfd.readouterr())
    assert "TrainingFailedError" in output and "timeout" in output
    job_name = f"{PARENT}/customJobs/1"
    assert ("POST", f"{job_name}:cancel") in vertex.requests
    deadline = time.monotonic() + 10
    while vertex.jobs[job_name]["state"] != "JOB_STATE_CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vertex.jobs[job_name]["state"] == "JOB_STATE_CANCELLED"


def test_hook_finds_only_live_jobs_by_label(vertex):
    from mlops_provider.hooks.vertex import VertexTrainingHook

    hook = VertexTrainingHook(gcp_conn_id="google_cloud_default", region="europe-west4")
    vertex.behaviour = "hang"
    spec = {"displayName": "x", "labels": {"mlops-key": "abc"}, "jobSpec": {"workerPoolSpecs": []}}
    live = hook.submit_custom_job("mlops-test", spec)
    assert hook.find_custom_job("mlops-test", {"mlops-key": "abc"}) == live
    assert hook.find_custom_job("mlops-test", {"mlops-key": "other"}) is None
    hook.cancel_custom_job_by_name(live)
    deadline = time.monotonic() + 10
    while hook.get_job_outcome(live)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hook.get_job_outcome(live) == ("cancelled", "CANCELED")
    assert hook.find_custom_job("mlops-test", {"mlops-key": "abc"}) is None
