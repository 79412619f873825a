"""EvidentlyDriftCheckOperator through Airflow, against a real MLflow server and the local data zones.

The champion is a real XGBoost model registered in MLflow with the lineage tags the trainer writes
(:data:`mlops_provider.lineage.TRAINING_SET_URI_TAG`, ...); the current window is written to the validated zone with the bundle's data
generator (with and without covariate drift), and the endpoint's request log to ``predictions/``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd
import pytest

from mlops_provider.lineage import CHAMPION, TRAINING_SET_HASH_TAG, TRAINING_SET_MANIFEST_ARTIFACT, TRAINING_SET_URI_TAG
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

MODEL = "drift_check_model"
DATASET = "drift_check_transactions"
FEATURES = ["amount", "card_present", "customer_txn_count_7d"]
WINDOW = ("2031-03-01", "2031-03-03")


def _frame(days: list[dt.date], covariate_drift: float, rows: int) -> pd.DataFrame:
    from include.data_generator import generate_day

    frame = pd.concat([generate_day(d, rows, 11, covariate_drift) for d in days], ignore_index=True)
    frame["card_present"] = frame["card_present"].astype(int)
    # A Feast aggregate: in the training set and in the request log, not in the validated zone.
    rng = np.random.default_rng(len(frame) + int(covariate_drift * 10))
    frame["customer_txn_count_7d"] = rng.poisson(4 + 6 * covariate_drift, len(frame))
    return frame


@pytest.fixture(scope="module")
def champion(mlflow_server):
    """A champion of MODEL trained on a training-set snapshot written like FeastTrainingSetOperator does."""
    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    from sklearn.metrics import roc_auc_score

    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_bytes_atomic, write_parquet_atomic

    settings = get_settings()
    train = _frame([dt.date(2031, 2, 1) + dt.timedelta(days=i) for i in range(4)], 0.0, 1500)
    digest = uuid.uuid4().hex[:16]
    folder = f"{settings.zone_uri('training_sets', DATASET)}/{digest}"
    uri = f"{folder}/data.parquet"
    columns = ["transaction_id", "event_timestamp", *FEATURES, "is_fraud"]
    write_parquet_atomic(train[columns], uri)
    manifest = {
        "uri": uri,
        "hash": digest,
        "rows": len(train),
        "dataset": DATASET,
        "label_column": "is_fraud",
        "timestamp_column": "event_timestamp",
        "entity_columns": ["transaction_id"],
        "feature_columns": FEATURES,
    }
    write_bytes_atomic(json.dumps(manifest).encode(), f"{folder}/manifest.json")

    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)
    model.fit(train[FEATURES], train["is_fraud"])
    # The holdout score the trainer would log (a later day the model never saw): the performance reference.
    holdout = _frame([dt.date(2031, 2, 5)], 0.0, 1500)
    holdout_auc = float(roc_auc_score(holdout["is_fraud"], model.predict_proba(holdout[FEATURES])[:, 1]))
    # Scoped: the process-wide tracking URI goes back to unset afterwards (set_tracking_uri(get_tracking_uri())
    # would pin the default ./mlflow.db for every later caller).
    with _use_tracking_uri(mlflow_server.url):
        client = mlflow.MlflowClient(mlflow_server.url)
        found = client.get_experiment_by_name("drift-check-training")
        experiment_id = found.experiment_id if found else client.create_experiment("drift-check-training")
        with mlflow.start_run(
            experiment_id=experiment_id, tags={TRAINING_SET_URI_TAG: uri, TRAINING_SET_HASH_TAG: digest}
        ) as run:
            mlflow.log_metric("roc_auc", holdout_auc)
            info = mlflow.xgboost.log_model(
                model, name="model", registered_model_name=MODEL, pip_requirements=["xgboost"], input_example=None
            )
        version = info.registered_model_version
        client.set_registered_model_alias(MODEL, CHAMPION, str(version))
    return {
        "model": model,
        "version": str(version),
        "run_id": run.info.run_id,
        "uri": uri,
        "holdout_roc_auc": holdout_auc,
    }


def _write_window(
    covariate_drift: float, champion: dict, with_predictions: bool = True, shuffle_labels: bool = False
) -> None:
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import write_parquet_atomic

    settings = get_settings()
    first = dt.date.fromisoformat(WINDOW[0])
    for offset in range(3):
        day = first + dt.timedelta(days=offset)
        frame = _frame([day], covariate_drift, 800)
        if shuffle_labels:
            # Same features, labels no longer related to them: the model's ranking power is gone.
            frame["is_fraud"] = np.random.default_rng(offset).permutation(frame["is_fraud"].to_numpy())
            validated = frame
        else:
            validated = frame.drop(columns=["customer_txn_count_7d"])
        write_parquet_atomic(validated, f"{settings.zone_uri('validated', DATASET)}/dt={day}/data.parquet")
        log_uri = f"{settings.data_root}/predictions/{MODEL}/dt={day}/{uuid.uuid4().hex}.parquet"
        if with_predictions:
            requests = frame[FEATURES].copy()
            requests["prediction"] = champion["model"].predict_proba(requests[FEATURES])[:, 1]
            requests["model_version"] = champion["version"]
            requests["served_at"] = pd.Timestamp.now(tz="UTC")
            write_parquet_atomic(requests, log_uri)


def _clear_window() -> None:
    import shutil

    from mlops_provider.settings import get_settings
    from mlops_provider.storage import storage_path

    settings = get_settings()
    for zone in (settings.zone_uri("validated", DATASET), f"{settings.data_root}/predictions/{MODEL}"):
        path = storage_path(zone)
        if path.exists():
            shutil.rmtree(str(path.path))


def test_drifted_window_exceeds_the_policy_and_emits_the_drift_event(mlflow_connection, champion):
    from mlflow import MlflowClient

    from mlops_provider.storage import read_parquet, storage_path

    _clear_window()
    _write_window(covariate_drift=1.0, champion=champion)
    dag_run = run_dag("drift_check", conf={"policy": {"critical_features": ["amount"], "max_performance_drop": 0.5}})
    assert task_states(dag_run) == {
        "check_drift": "success",
        "drift_exceeds_policy": "success",
        "emit_drift_event": "success",
        "alert_drift": "success",
    }
    verdict = task_xcom(dag_run, "check_drift")
    assert verdict["drift_detected"] is True
    assert "amount" in verdict["drifted_features"]
    assert "customer_txn_count_7d" in verdict["drifted_features"]  # checked on the request log
    assert any(r.startswith("critical features drifted: amount") for r in verdict["reasons"])
    assert verdict["champion_version"] == champion["version"]
    assert verdict["reference_uri"] == champion["uri"]
    # The logged scores come from drifted inputs, the reference scores from the training set.
    assert verdict["prediction_drifted"] is True
    assert verdict["drift_share"] == 1.0

    summary = json.loads(storage_path(verdict["summary_uri"]).read_text())
    assert summary["window"]["days_with_data"] == ["2031-03-01", "2031-03-02", "2031-03-03"]
    assert {f["column"]: f["stattest"] for f in summary["features"]} == {
        "amount": "wasserstein",
        "card_present": "jensenshannon",
        "customer_txn_count_7d": "wasserstein",
    }
    assert summary["prediction_drift"]["status"] == "checked"
    assert summary["prediction_drift"]["drift_detected"] is True
    assert summary["target_drift"]["column"] == "is_fraud"
    assert summary["unchecked_features"] == []
    html = storage_path(verdict["report_uri"]).read_text()
    assert "<html" in html.lower() and "amount" in html

    # Verdict, summary and report agree: same share, same columns and tests; the report says it is a sample.
    assert summary["drift_share"] == verdict["drift_share"]
    assert summary["drifted_features"] == verdict["drifted_features"]
    report = summary["report"]
    assert report["columns"] == [f["column"] for f in summary["features"]]
    assert set(report["columns"]) == set(FEATURES)  # the label (target drift) is not one of them
    assert report["sampled"] is True and (report["current_rows"], report["reference_rows"]) == (2000, 2000)
    assert report["note"].startswith("The verdict is computed on all 2400 current rows and 6000 reference rows")
    assert report["note"] in html

    # The same decision is logged to MLflow with both files.
    client = MlflowClient(mlflow_connection.url)
    run = client.get_run(verdict["mlflow_run_id"])
    assert run.data.tags["model_version"] == champion["version"]
    assert run.data.metrics["drift_share"] == pytest.approx(verdict["drift_share"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {
        "drift/report.html",
        "drift/summary.json",
    }

    # The extra link points at the report served by the MLOps UI plugin.
    link = task_xcom(dag_run, "check_drift", key="_link_evidently_report")
    assert link.endswith(f"/mlops/reports/{MODEL}/{verdict['run_ts']}/report.html")

    # The event carries the verdict.
    emitted = task_xcom(dag_run, "emit_drift_event")
    assert emitted["drift_share"] == verdict["drift_share"] and emitted["reasons"] == verdict["reasons"]
    assert not read_parquet(champion["uri"]).empty


def test_undrifted_window_stays_within_the_policy_and_emits_nothing(mlflow_connection, champion):
    _clear_window()
    _write_window(covariate_drift=0.0, champion=champion, with_predictions=False)
    dag_run = run_dag("drift_check")
    assert task_states(dag_run) == {
        "check_drift": "success",
        "drift_exceeds_policy": "success",
        "emit_drift_event": "skipped",
        "alert_drift": "skipped",
    }
    verdict = task_xcom(dag_run, "check_drift")
    assert verdict["drift_detected"] is False and verdict["reasons"] == []
    assert verdict["drift_share"] < 0.5
    assert verdict["prediction_drifted"] is False  # no request log: prediction drift is not checked


def test_performance_drop_alone_exceeds_the_policy(mlflow_connection, champion):
    _clear_window()
    _write_window(covariate_drift=0.0, champion=champion, with_predictions=False, shuffle_labels=True)
    dag_run = run_dag("drift_check", conf={"policy": {"drift_share": 0.9, "max_performance_drop": 0.05}})
    assert task_states(dag_run)["emit_drift_event"] == "success"
    verdict = task_xcom(dag_run, "check_drift")
    assert verdict["drift_share"] < 0.9
    assert verdict["performance_drop"] > 0.05
    assert len(verdict["reasons"]) == 1 and verdict["reasons"][0].startswith("roc_auc dropped by")
    # The drop is measured from the holdout score the champion's training run logged, not a re-score of the
    # training set (which the model has seen, and on which it scores higher).
    from mlops_provider.storage import storage_path

    performance = json.loads(storage_path(verdict["summary_uri"]).read_text())["performance"]
    assert performance["reference_source"] == "holdout"
    assert performance["reference"] == float(f"{champion['holdout_roc_auc']:.4g}")
    assert verdict["performance_drop"] == pytest.approx(champion["holdout_roc_auc"] - performance["current"], abs=1e-3)


def test_no_champion_is_a_clear_skip(mlflow_connection, champion):
    dag_run = run_dag("drift_check", conf={"model_name": "model_without_champion"})
    assert task_states(dag_run) == {
        "check_drift": "skipped",
        "drift_exceeds_policy": "skipped",
        "emit_drift_event": "skipped",
        "alert_drift": "skipped",
    }


def test_the_reference_comes_from_the_trainers_lineage_tag_not_the_artifact_fallback(
    mlflow_connection, champion, monkeypatch
):
    """A run tagged by the trainer resolves through the tag; the manifest artifact is only a fallback."""
    import types

    import mlflow
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from mlops_provider.operators.evidently import EvidentlyDriftCheckOperator

    with _use_tracking_uri(mlflow_connection.url):
        client = MlflowClient(mlflow_connection.url)
        found = client.get_experiment_by_name("drift-check-training")
        experiment_id = found.experiment_id if found else client.create_experiment("drift-check-training")
        with mlflow.start_run(experiment_id=experiment_id, tags={TRAINING_SET_URI_TAG: champion["uri"]}) as run:
            # A stale manifest artifact naming another snapshot: reading it would be the fallback's answer.
            mlflow.log_dict({"uri": "file:///nowhere/stale/data.parquet"}, TRAINING_SET_MANIFEST_ARTIFACT)
    operator = EvidentlyDriftCheckOperator(
        task_id="lineage", model_name=MODEL, dataset=DATASET, current_start=WINDOW[0], current_end=WINDOW[1]
    )

    def no_fallback(*args, **kwargs):
        raise AssertionError("the manifest artifact was read although the run has the lineage tag")

    monkeypatch.setattr(MlflowClient, "download_artifacts", no_fallback)
    uri, manifest = operator._reference(types.SimpleNamespace(version="1", run_id=run.info.run_id))
    assert uri == champion["uri"]
    assert manifest["feature_columns"] == FEATURES  # read next to the snapshot the tag names
