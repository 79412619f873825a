"""Human approval between the gate and the rollout, answered through the real Airflow REST API.

A real Airflow (``tests/chaos/airflow_cluster.py``: API server, scheduler with LocalExecutor, DAG processor) runs
``tests/integration/approval/dags``: the real evaluation gate on versions the real trainer registered, the approval
task waiting in ``awaiting_input``, and the KServe rollout on the fake cluster with a real model server. The test
answers as a person would, with ``PATCH /api/v2/dags/<dag>/dagRuns/<run>/taskInstances/<task>/-1/hitlDetails``:

- approve: the rollout runs and ``champion`` moves to the candidate;
- reject: ``champion`` stays, ``challenger`` is dropped, the promotion lock is released, a webhook alert arrives;
- no answer within the timeout: the same as a rejection, recorded as ``timed_out``.

Each writes an ``approval`` audit entry and a rollout record (pending with the form's URL, then the answer).
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.chaos.airflow_cluster import ChaosAirflow, running_airflow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS = Path(__file__).resolve().parent / "dags"
TASK = "approve_rollout"


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Webhook.received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("approval")


@pytest.fixture(scope="module")
def airflow(root, mlflow_server, _fake_k8s_server, webhook) -> ChaosAirflow:
    from tests.loopback import free_port

    extra = {
        "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_server.connection_json(),
        f"AIRFLOW_CONN_{_fake_k8s_server.conn_id.upper()}": _fake_k8s_server.connection_json(),
        "AIRFLOW_CONN_MLOPS_ALERTS": json.dumps({"conn_type": "http", "host": webhook[0]}),
        "AIRFLOW__MLOPS__ALERT_NOTIFIER": "webhook",
        "AIRFLOW__MLOPS__KUBERNETES_CONN_ID": _fake_k8s_server.conn_id,
        "AIRFLOW__MLOPS__NAMESPACE": "chaos",
        "AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS": "True",
        "AIRFLOW__MLOPS__PROJECT_ROOT": str(REPO_ROOT),
        "AIRFLOW__MLOPS__LOCAL_ROOT": str(root / "local"),
        "AIRFLOW__MLOPS__DATA_ROOT": str(root / "data"),
        "AIRFLOW__MLOPS__LOCAL_SERVING_PORT": str(free_port()),
        # The scheduler's sweep resolves timed-out approvals; every second keeps the timeout test short.
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with running_airflow(root, extra, dags=DAGS) as running:
        yield running


@pytest.fixture(scope="module")
def scenarios(airflow, root, mlflow_server, _fake_k8s_server, training_snapshot, fast_params_file):
    """One model per scenario, its candidate trained by the real trainer; each run triggered and waiting for input.

    ``approve`` has no champion yet (its candidate's model server is up for the rollout); ``reject`` and ``timeout``
    have a champion (an earlier version of the same training), which must not move.
    """
    from mlflow import MlflowClient

    from mlops_provider.hooks.mlflow import MlflowHook
    from tests.chaos.test_chaos import ServingWorld, train_candidate
    from tests.serving_support import wait_server

    _fake_k8s_server.reset()
    env = pytest.MonkeyPatch()
    env.setenv(f"AIRFLOW_CONN_{_fake_k8s_server.conn_id.upper()}", _fake_k8s_server.connection_json())
    env.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.connection_json())
    world = ServingWorld(root / "serving", mlflow_server, _fake_k8s_server)
    (root / "serving").mkdir()
    client = MlflowClient(mlflow_server.url)
    try:
        models = {"approve": "approval_yes", "reject": "approval_no", "timeout": "approval_late"}
        candidates, champions = {}, {}
        for scenario, model_name in models.items():
            if scenario != "approve":
                earlier = train_candidate(
                    mlflow_server, training_snapshot, fast_params_file, root, model_name, f"approval/{model_name}/a"
                )
                client.set_registered_model_alias(model_name, "champion", str(earlier["model_version"]))
                champions[scenario] = str(earlier["model_version"])
            candidates[scenario] = train_candidate(
                mlflow_server, training_snapshot, fast_params_file, root, model_name, f"approval/{model_name}/b"
            )
        hook = MlflowHook()
        approve_version = str(candidates["approve"]["model_version"])
        uri = hook.version_download_uri(models["approve"], approve_version)
        wait_server(world.serve(models["approve"], approve_version, uri, world.local_path(uri)))
        airflow.wait_for_dags(["approval_rollout", "approval_rollout_timeout"])
        runs = {}
        for scenario, model_name in models.items():
            dag_id = "approval_rollout_timeout" if scenario == "timeout" else "approval_rollout"
            conf = {"model_name": model_name, "candidate": candidates[scenario], "training_set": training_snapshot}
            runs[scenario] = (dag_id, airflow.trigger(dag_id, conf, run_id=f"approval_{scenario}"))
        yield {
            "models": models,
            "runs": runs,
            "candidates": candidates,
            "champions": champions,
            "world": world,
            "client": client,
            "hook": hook,
            "data_root": str(root / "data"),
        }
    finally:
        world.stop()
        env.undo()


def wait_for_input(airflow: ChaosAirflow, dag_id: str, run_id: str, timeout: float = 600.0) -> dict:
    """Wait until the approval task waits for a person; return its HITL detail as the REST API serves it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = airflow.task_instances(dag_id, run_id).get(TASK, {}).get("state")
        if state == "awaiting_input":
            return airflow.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails")
        if state in ("success", "failed", "skipped", "upstream_failed"):
            raise AssertionError(f"{TASK} ended {state} without waiting: {airflow.task_instances(dag_id, run_id)}")
        time.sleep(1)
    raise AssertionError(f"{TASK} never waited for input: {airflow.task_instances(dag_id, run_id)}")


def wait_parked(airflow: ChaosAirflow, dag_id: str, run_id: str, timeout: float = 300.0) -> None:
    """Wait until the scheduler saw the worker that parked the task exit.

    Airflow 3.3 resumes a parked task as soon as the answer arrives; when the answer comes before the scheduler has
    processed the parking worker's exit, it takes that late "success" event for the resumed try, fails it and
    retries (which asks again). A person never answers that fast; the test waits as a person would.
    """
    needle = f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{dag_id}', "
    needle += f"task_id='{TASK}', run_id='{run_id}'"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in airflow.logs[1].read_text(errors="replace"):
            return
        time.sleep(1)
    raise AssertionError(f"the scheduler never saw the worker that parked {dag_id}/{run_id}/{TASK} exit")


def answer(airflow: ChaosAirflow, dag_id: str, run_id: str, option: str) -> dict:
    wait_parked(airflow, dag_id, run_id)
    return airflow.request(
        "PATCH",
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails",
        {"chosen_options": [option], "params_input": {}},
    )


def approval_events(model_name: str, data_root: str) -> list[dict]:
    from mlops_provider.serving.records import read_rollouts

    return [e for r in read_rollouts(model_name, data_root=data_root) for e in r["events"]]


def audit_approvals(model_name: str, data_root: str) -> list[dict]:
    from mlops_provider.audit import APPROVAL, read_audit

    return [e for e in read_audit(model_name, data_root=data_root) if e["kind"] == APPROVAL]


def assert_released_without_promotion(scenarios: dict, scenario: str) -> None:
    """champion unchanged, challenger gone, the version's rollout tagged rejected, no promotion lock left."""
    from mlops_provider.lineage import PROMOTION_LOCK_TAG_PREFIX, ROLLOUT_STATUS_TAG

    client, model_name = scenarios["client"], scenarios["models"][scenario]
    version = str(scenarios["candidates"][scenario]["model_version"])
    model = client.get_registered_model(model_name)
    assert model.aliases == {"champion": scenarios["champions"][scenario]}, model.aliases
    assert not [k for k in model.tags if k.startswith(PROMOTION_LOCK_TAG_PREFIX)], model.tags
    assert client.get_model_version(model_name, version).tags[ROLLOUT_STATUS_TAG] == "rejected"


def test_the_form_shows_the_gates_evidence_and_approve_rolls_out(airflow, scenarios):
    """Approve through the REST API: the rollout runs and ``champion`` moves to the candidate."""
    dag_id, run_id = scenarios["runs"]["approve"]
    model_name = scenarios["models"]["approve"]
    version = str(scenarios["candidates"]["approve"]["model_version"])
    detail = wait_for_input(airflow, dag_id, run_id)
    assert detail["options"] == ["Approve", "Reject"] and detail["response_received"] is False
    assert detail["subject"] == f"Roll out {model_name} v{version} (champion: none)?"
    body = detail["body"]
    assert "| Metric | Candidate | Champion | Δ |" in body and "| roc_auc |" in body, body
    assert "no champion yet" in body and "Evidence: " in body and f"/mlops/?model={model_name}" in body
    # Nothing moved while waiting; the pending request is recorded with the form's URL.
    assert scenarios["client"].get_registered_model(model_name).aliases == {"challenger": version}
    [pending] = [e for e in approval_events(model_name, scenarios["data_root"]) if e["kind"] == "approval"]
    assert pending["details"]["state"] == "pending"
    assert pending["details"]["url"] == (
        f"{airflow.base_url}/dags/{dag_id}/runs/{run_id}/tasks/{TASK}/required_actions?map_index=-1"
    )

    response = answer(airflow, dag_id, run_id, "Approve")
    assert response["chosen_options"] == ["Approve"] and response["responded_by"]["name"]
    assert airflow.wait(dag_id, run_id) == "success", airflow.task_instances(dag_id, run_id)
    tis = airflow.task_instances(dag_id, run_id)
    assert tis[TASK]["state"] == "success" and tis["deploy"]["state"] == "success", tis
    uri = scenarios["hook"].version_download_uri(model_name, version)
    scenarios["world"].assert_serves_verified_champion(model_name, version, uri)
    [approved] = [e for e in approval_events(model_name, scenarios["data_root"]) if e["kind"] == "approval"]
    assert approved["details"]["state"] == "approved", approved
    assert approved["details"]["by"] == response["responded_by"]["name"]
    [entry] = audit_approvals(model_name, scenarios["data_root"])
    assert entry["outcome"] == "approved" and entry["subject"] == version
    assert entry["links"]["approval_form"] == pending["details"]["url"]


def test_reject_leaves_champion_releases_the_candidate_and_alerts(airflow, scenarios, webhook):
    dag_id, run_id = scenarios["runs"]["reject"]
    model_name = scenarios["models"]["reject"]
    version = str(scenarios["candidates"]["reject"]["model_version"])
    detail = wait_for_input(airflow, dag_id, run_id)
    assert f"champion: v{scenarios['champions']['reject']}" in detail["subject"]
    assert "| roc_auc |" in detail["body"] and "Δ" in detail["body"]

    answer(airflow, dag_id, run_id, "Reject")
    assert airflow.wait(dag_id, run_id) == "success"
    tis = airflow.task_instances(dag_id, run_id)
    assert tis[TASK]["state"] == "success" and tis["deploy"]["state"] == "skipped", tis
    assert_released_without_promotion(scenarios, "reject")
    events = approval_events(model_name, scenarios["data_root"])
    [approval] = [e for e in events if e["kind"] == "approval"]
    assert approval["details"]["state"] == "rejected" and approval["details"]["by"]
    assert [e["details"]["outcome"] for e in events if e["kind"] == "result"] == ["rejected"]
    [entry] = audit_approvals(model_name, scenarios["data_root"])
    assert entry["outcome"] == "rejected" and entry["subject"] == version
    alerts = [a for a in webhook[1] if a["details"].get("model_name") == model_name]
    assert [a["details"]["state"] for a in alerts] == ["rejected"], webhook[1]
    assert alerts[0]["title"] == f"Rollout of {model_name} v{version} rejected: champion unchanged"


def test_no_answer_within_the_timeout_is_a_rejection(airflow, scenarios, webhook):
    """Nobody answers ``approval_rollout_timeout`` (a few seconds): the scheduler's sweep answers the default,
    ``Reject``, with no user; the run ends with the deploy skipped and everything recorded as ``timed_out``."""
    dag_id, run_id = scenarios["runs"]["timeout"]
    model_name = scenarios["models"]["timeout"]
    assert airflow.wait(dag_id, run_id, timeout=600) == "success"
    tis = airflow.task_instances(dag_id, run_id)
    assert tis[TASK] == {"state": "success", "try_number": 1} and tis["deploy"]["state"] == "skipped", tis
    detail = airflow.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails")
    assert detail["chosen_options"] == ["Reject"] and detail["responded_by_user"] is None, detail
    assert_released_without_promotion(scenarios, "timeout")
    [approval] = [e for e in approval_events(model_name, scenarios["data_root"]) if e["kind"] == "approval"]
    assert approval["details"]["state"] == "timed_out" and approval["details"]["by"] is None
    [entry] = audit_approvals(model_name, scenarios["data_root"])
    assert entry["outcome"] == "timed_out" and "no answer within 0:00:20" in entry["reason"]
    assert [a["details"]["state"] for a in webhook[1] if a["details"].get("model_name") == model_name] == ["timed_out"]
