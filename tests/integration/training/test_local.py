"""The local training backend through Airflow, and what the trainer logs and registers in a real MLflow."""

from __future__ import annotations

import json
import uuid

import pytest

from mlops_provider import lineage
from tests.airflow_helpers import run_dag, task_states, task_xcom
from tests.fixtures.training_snapshot import FEATURES, make_training_snapshot, train_in_process

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"run_id", "model_name", "model_version", "model_uri", "artifact_uri", "metrics", "training_set_uri",
                 "training_set_hash"}  # fmt: skip


def test_local_backend_trains_logs_and_registers_through_airflow(
    mlflow_connection, fast_params_file, tmp_path, repo_root
):
    import hashlib
    from pathlib import Path

    import mlflow
    import mlflow.xgboost

    from mlops_provider.training.launch import idempotency_key, source_digest

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=2000, seed=3, signal=2.0)
    name = f"local_{uuid.uuid4().hex[:8]}"
    dag_run = run_dag(
        "training_local", conf={"model_name": name, "training_set": manifest, "params_file": fast_params_file}
    )
    assert task_states(dag_run) == {"train": "success"}
    result = task_xcom(dag_run, "train")
    assert CONTRACT_KEYS <= set(result) and result["backend"] == "local" and result["device"] == "cpu"
    assert result["model_uri"] == f"models:/{name}/1" and result["training_set_hash"] == manifest["hash"]
    for metric in ("roc_auc", "pr_auc", "log_loss", "precision", "recall", "brier", "ece"):
        assert metric in result["metrics"]
    assert result["metrics"]["roc_auc"] > 0.7

    # Extra links point at the MLflow UI of the connection's server.
    run_link = task_xcom(dag_run, "train", key="_link_mlflow_run")
    assert run_link == f"{mlflow_connection.url}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}"
    assert (
        task_xcom(dag_run, "train", key="_link_mlflow_model_version")
        == f"{mlflow_connection.url}/#/models/{name}/versions/1"
    )

    client = mlflow.MlflowClient(mlflow_connection.url)
    run = client.get_run(result["run_id"])
    tags, params = run.data.tags, run.data.params
    assert tags[lineage.TRAINING_SET_URI_TAG] == manifest["uri"]
    assert tags[lineage.FEATURE_SERVICE_TAG] == manifest["feature_service"]
    assert json.loads(tags[lineage.FEATURE_REFS_TAG]) == manifest["feature_refs"]
    assert tags[lineage.AIRFLOW_DAG_ID_TAG] == "training_local" and tags[lineage.AIRFLOW_RUN_ID_TAG] == dag_run.run_id
    assert tags[lineage.AIRFLOW_TRY_NUMBER_TAG] == "1" and tags[lineage.GIT_COMMIT_TAG]
    # The key names the attempt (task, data, params, code), not the try: a retry would reuse this version.
    assert tags[lineage.IDEMPOTENCY_TAG] == idempotency_key(
        dag_id="training_local", run_id=dag_run.run_id, task_id="train", map_index=-1,
        training_set_hash=manifest["hash"], params_hash=hashlib.sha256(Path(fast_params_file).read_bytes()).hexdigest(),
        code_version=f"sha256:{source_digest(repo_root / 'include' / 'trainer')}",
    )  # fmt: skip
    assert result["idempotency_key"] == tags[lineage.IDEMPOTENCY_TAG]
    assert params["xgb_tree_method"] == "hist" and params["xgb_device"] == "cpu" and params["matrix"] == "DMatrix"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
    }
    local = client.download_artifacts(run.info.run_id, "training_set/manifest.json", str(tmp_path))
    assert json.loads(open(local).read()) == manifest

    version = client.get_model_version(name, "1")
    assert version.run_id == run.info.run_id
    assert version.tags[lineage.IDEMPOTENCY_TAG] == tags[lineage.IDEMPOTENCY_TAG]
    model_dir = mlflow.artifacts.download_artifacts(result["artifact_uri"], dst_path=str(tmp_path / "model"),
                                                    tracking_uri=mlflow_connection.url)  # fmt: skip
    info = mlflow.models.Model.load(model_dir)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == FEATURES
    assert info.saved_input_example_info is not None and info.metadata["feature_columns"] == FEATURES
    booster = mlflow.xgboost.load_model(model_dir)
    assert booster.feature_names == FEATURES
    assert booster.num_boosted_rounds() == int(result["metrics"]["best_iteration"]) + 1


def test_trainer_is_idempotent_per_attempt(mlflow_connection, fast_params_file, tmp_path):
    import mlflow

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=1500, seed=4, signal=2.0)
    name = f"idem_{uuid.uuid4().hex[:8]}"
    client = mlflow.MlflowClient(mlflow_connection.url)
    url = mlflow_connection.url
    first = train_in_process(manifest, name, fast_params_file, url, tmp_path, "dag/run/train/-1/attempt1")
    again = train_in_process(manifest, name, fast_params_file, url, tmp_path, "dag/run/train/-1/attempt1")
    assert again["reused"] is True and again["model_version"] == first["model_version"] == "1"
    assert again["run_id"] == first["run_id"]
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    # Another key (new data, params or code) is a new attempt: a new version.
    second_try = train_in_process(manifest, name, fast_params_file, url, tmp_path, "dag/run/train/-1/attempt2")
    assert second_try["model_version"] == "2" and second_try["reused"] is False

    # A start that finished the run but died before registering: the restart registers that run, once.
    client.delete_model_version(name, "2")
    recovered = train_in_process(manifest, name, fast_params_file, url, tmp_path, "dag/run/train/-1/attempt2")
    assert recovered["run_id"] == second_try["run_id"] and recovered["reused"] is True
    assert [
        v.run_id for v in client.search_model_versions(f"name = '{name}' and run_id = '{second_try['run_id']}'")
    ] == [second_try["run_id"]]

    # A start that died mid-training left its run RUNNING: the restart fails it and trains afresh.
    experiment = client.get_experiment_by_name(name)
    stale = client.create_run(experiment.experiment_id, tags={lineage.IDEMPOTENCY_TAG: "dag/run/train/-1/attempt3"})
    fresh = train_in_process(manifest, name, fast_params_file, url, tmp_path, "dag/run/train/-1/attempt3")
    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    assert fresh["run_id"] != stale.info.run_id and fresh["reused"] is False


def test_trainer_fails_clearly_on_a_bad_snapshot(mlflow_connection, fast_params_file, tmp_path, capsys):
    from include.trainer.__main__ import main

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=500, seed=1)
    # A feature the snapshot does not have (string features are fine: they are categorical).
    broken = dict(manifest, feature_columns=[*manifest["feature_columns"], "no_such_column"])
    (tmp_path / "snapshot" / "manifest.json").write_text(json.dumps(broken))
    code = main(
        ["--training-set-uri", str(tmp_path / "snapshot"), "--params-file", fast_params_file, "--model-name", "bad",
         "--output-json", str(tmp_path / "out.json")],
        env={"MLFLOW_TRACKING_URI": mlflow_connection.url},
    )  # fmt: skip
    assert code == lineage.EXIT_TRAINING_ERROR
    assert f"{lineage.ERROR_MARKER}" in (out := capsys.readouterr().out) and "no_such_column" in out
    code = main(
        ["--training-set-uri", str(tmp_path / "snapshot"), "--params-file", fast_params_file, "--model-name", "bad",
         "--output-json", str(tmp_path / "out.json"), "--expect-params-sha256", "0" * 64],
        env={"MLFLOW_TRACKING_URI": mlflow_connection.url},
    )  # fmt: skip
    assert code == lineage.EXIT_TRAINING_ERROR and "rebuild and push the trainer image" in capsys.readouterr().out
