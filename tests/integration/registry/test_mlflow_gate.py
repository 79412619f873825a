"""The evaluation gate against a real MLflow server, through Airflow: better, worse, first model, missing champion.

The two versions of ``gate_models`` are shared (training is the slow part), but every test sets the registry
state it starts from (aliases) itself, so each passes alone and in any order.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from mlops_provider.lineage import CHALLENGER, CHAMPION, GATE_DECISION_TAG
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import make_training_snapshot, train_in_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gate_models(mlflow_server, fast_params_file, weak_params_file, tmp_path_factory):
    """One model with a weak (v1) and a strong (v2) version on the same snapshot."""
    workdir = tmp_path_factory.mktemp("gate")
    manifest = make_training_snapshot(workdir / "snapshot", rows=3000, seed=11, signal=2.0)
    name = f"gate_{uuid.uuid4().hex[:8]}"
    weak = train_in_process(manifest, name, weak_params_file, mlflow_server.url, workdir, "gate/weak")
    strong = train_in_process(manifest, name, fast_params_file, mlflow_server.url, workdir, "gate/strong")
    assert (weak["model_version"], strong["model_version"]) == ("1", "2")
    assert strong["metrics"]["roc_auc"] > weak["metrics"]["roc_auc"] + 0.05
    return {"name": name, "manifest": manifest, "weak": weak, "strong": strong, "workdir": workdir}


def _client(mlflow_server):
    import mlflow

    return mlflow.MlflowClient(mlflow_server.url)


def _set_aliases(client, name, **aliases):
    """Point each alias at a version, or remove it (``None``): the registry state a test starts from."""
    for alias, version in aliases.items():
        if version is None:
            try:
                client.delete_registered_model_alias(name, alias)
            except Exception:  # not set: nothing to remove
                pass
        else:
            client.set_registered_model_alias(name, alias, version)


def _gate(name, candidate, manifest, criteria=None):
    dag_run = run_dag(
        "training_gate",
        conf={"model_name": name, "candidate": candidate, "training_set": manifest, "criteria": criteria},
    )
    return task_states(dag_run), task_xcom(dag_run, "evaluation_gate")


def test_gate_promotes_a_better_challenger_and_records_the_decision(mlflow_connection, gate_models):
    client = _client(mlflow_connection)
    name = gate_models["name"]
    _set_aliases(client, name, **{CHAMPION: "1", CHALLENGER: None})
    states, result = _gate(name, gate_models["strong"], gate_models["manifest"])
    assert states == {"evaluation_gate": "success", "deploy": "success"}
    assert result["decision"] == "promote" and result["champion_version"] == "1" and result["candidate_version"] == "2"
    assert result["candidate_metrics"]["roc_auc"] > result["champion_metrics"]["roc_auc"]
    assert result["evaluation_window"]["rows"] > 0 and result["model_uri"] == f"models:/{name}/2"
    assert result["feature_columns"] == gate_models["manifest"]["feature_columns"]
    assert any(c["check"] == "regression_roc_auc" and c["passed"] for c in result["checks"])
    # Aliases only: the candidate is the challenger, the champion has not moved (deploy moves it).
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "2"
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    version = client.get_model_version(name, "2")
    assert version.current_stage in (None, "None") and version.tags[GATE_DECISION_TAG] == "promote"
    run_tags = client.get_run(result["run_id"]).data.tags
    assert run_tags[GATE_DECISION_TAG] == "promote"
    decision = client.download_artifacts(result["run_id"], "gate/decision.json", str(gate_models["workdir"]))
    assert '"decision": "promote"' in open(decision).read()


def test_gate_rejects_a_worse_challenger_and_skips_deploy(mlflow_connection, gate_models):
    client = _client(mlflow_connection)
    name = gate_models["name"]
    # The strong version serves and an earlier gate made it the challenger; the weak one must move neither.
    _set_aliases(client, name, **{CHAMPION: "2", CHALLENGER: "2"})
    states, result = _gate(name, gate_models["weak"], gate_models["manifest"])
    assert states == {"evaluation_gate": "skipped", "deploy": "skipped"}
    assert result["decision"] == "reject" and result["champion_version"] == "2"
    assert any(r.startswith("roc_auc: candidate") for r in result["reasons"])
    assert client.get_model_version(name, "1").tags[GATE_DECISION_TAG] == "reject"
    assert client.get_model_version_by_alias(name, CHAMPION).version == "2"
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "2"


def test_gate_promotes_the_first_model_ever_on_absolute_criteria(mlflow_connection, fast_params_file, tmp_path):
    manifest = make_training_snapshot(tmp_path / "snapshot", rows=2500, seed=5, signal=2.0)
    name = f"first_{uuid.uuid4().hex[:8]}"
    candidate = train_in_process(manifest, name, fast_params_file, mlflow_connection.url, tmp_path, "first/1")
    states, result = _gate(name, candidate, manifest)
    assert states["evaluation_gate"] == "success"
    assert result["decision"] == "promote" and result["champion_version"] is None and result["champion_metrics"] is None
    assert any("no champion yet" in r for r in result["reasons"])
    # An impossible floor rejects even the first model, with the reason.
    name_version = _client(mlflow_connection).get_model_version(name, candidate["model_version"])
    assert name_version.tags[GATE_DECISION_TAG] == "promote"
    states, result = _gate(name, candidate, manifest, criteria={"min_metrics": {"roc_auc": 0.999}})
    assert states["evaluation_gate"] == "skipped" and result["decision"] == "reject"
    assert any("required 0.999" in r for r in result["reasons"])


def test_gate_with_a_champion_whose_model_is_missing_gates_on_absolute_criteria(
    mlflow_connection, fast_params_file, tmp_path
):
    manifest = make_training_snapshot(tmp_path / "snapshot", rows=2500, seed=9, signal=2.0)
    name = f"orphan_{uuid.uuid4().hex[:8]}"
    old = train_in_process(manifest, name, fast_params_file, mlflow_connection.url, tmp_path, "orphan/1")
    new = train_in_process(manifest, name, fast_params_file, mlflow_connection.url, tmp_path, "orphan/2")
    client = _client(mlflow_connection)
    _set_aliases(client, name, **{CHAMPION: old["model_version"]})
    # The champion's artifacts are gone (bucket lifecycle rule, manual cleanup): it cannot be scored.
    relative = old["artifact_uri"].removeprefix("mlflow-artifacts:/")
    shutil.rmtree(mlflow_connection.artifacts_destination / relative)
    states, result = _gate(name, new, manifest)
    assert states["evaluation_gate"] == "success"
    assert result["decision"] == "promote" and result["champion_version"] == old["model_version"]
    assert result["champion_metrics"] is None
    assert any(f"champion version {old['model_version']} cannot be scored" in r for r in result["reasons"])
