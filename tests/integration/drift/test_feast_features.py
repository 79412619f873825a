"""The drift check rebuilds the model's Feast features (aggregates, on-demand features) for the current window.

The training set comes from the example's Feast feature service (``fraud_model_v1``), so none of its
feature columns is a raw column of the validated zone: the check must join the current rows'
entity keys and timestamps against the same service, and then can also score the champion on them.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_provider.lineage import CHAMPION, TRAINING_SET_HASH_TAG, TRAINING_SET_URI_TAG
from tests.airflow_helpers import run_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

MODEL = "drift_check_model"  # the model of the drift_check test DAG (its own drift asset)
FIRST = dt.date(2025, 6, 1)
TRAIN_DAYS, CURRENT_DAYS = 7, 2


@pytest.fixture(scope="module")
def feast_champion(mlflow_server):
    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from include.data_generator import generate_days
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import read_parquet

    root = get_settings().data_root
    generate_days(root, FIRST, TRAIN_DAYS, rows_per_day=300, seed=21)
    generate_days(
        root, FIRST + dt.timedelta(days=TRAIN_DAYS), CURRENT_DAYS, rows_per_day=300, seed=22, covariate_drift=1.0
    )
    last = FIRST + dt.timedelta(days=TRAIN_DAYS + CURRENT_DAYS - 1)
    train_end = FIRST + dt.timedelta(days=TRAIN_DAYS - 1)
    dag_run = run_dag("drift_feast_world", conf={"start": f"{FIRST}", "end": f"{last}", "train_end": f"{train_end}"})
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    manifest = task_xcom(dag_run, "build_training_set")
    data = read_parquet(manifest["uri"])
    features = manifest["feature_columns"]
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)
    model.fit(data[features], data[manifest["label_column"]])
    # Scoped: the process-wide tracking URI goes back to unset afterwards (set_tracking_uri(get_tracking_uri())
    # would pin the default ./mlflow.db for every later caller).
    with _use_tracking_uri(mlflow_server.url):
        client = mlflow.MlflowClient(mlflow_server.url)
        found = client.get_experiment_by_name("drift-feast-training")
        experiment_id = found.experiment_id if found else client.create_experiment("drift-feast-training")
        with mlflow.start_run(
            experiment_id=experiment_id,
            tags={TRAINING_SET_URI_TAG: manifest["uri"], TRAINING_SET_HASH_TAG: manifest["hash"]},
        ):
            mlflow.log_metric("roc_auc", 0.8)  # as the trainer logs its holdout score: the performance reference
            info = mlflow.xgboost.log_model(
                model, name="model", registered_model_name=MODEL, pip_requirements=["xgboost"]
            )
        client.set_registered_model_alias(MODEL, CHAMPION, str(info.registered_model_version))
    return manifest


def test_features_missing_from_the_validated_zone_are_rebuilt_with_feast(mlflow_connection, feast_champion):
    import json

    from mlops_provider.storage import storage_path

    start = FIRST + dt.timedelta(days=TRAIN_DAYS)
    end = start + dt.timedelta(days=CURRENT_DAYS - 1)
    dag_run = run_dag(
        "drift_check",
        conf={"dataset": "transactions", "start": f"{start}", "end": f"{end}", "policy": {"drift_share": 0.3}},
    )
    assert task_states(dag_run)["check_drift"] == "success"
    verdict = task_xcom(dag_run, "check_drift")
    summary = json.loads(storage_path(verdict["summary_uri"]).read_text())
    assert summary["features_source"] == "feast:fraud_model_v1"
    assert summary["unchecked_features"] == []
    assert [f["column"] for f in summary["features"]] == feast_champion["feature_columns"]
    assert summary["current_rows"] == 300 * CURRENT_DAYS
    # Covariate drift moves amounts and the night share: the derived features drift.
    assert {"amount_log", "is_night"} <= set(verdict["drifted_features"])
    assert verdict["drift_detected"] is True
    # All the model's inputs are available for the current rows, so its performance is checked too.
    assert summary["performance"]["status"] == "checked"
    assert summary["performance"]["metric"] == "roc_auc" and summary["performance"]["current"] is not None
    assert summary["target_drift"]["column"] == "is_fraud"


def test_rebuilt_features_equal_the_training_sets_for_the_same_rows(feast_champion):
    """Rebuilding the training window's rows gives back the training set's own feature values."""
    from mlops_provider.drift.features import rebuild_features
    from mlops_provider.partitions import read_window
    from mlops_provider.settings import get_settings
    from mlops_provider.storage import read_parquet

    manifest = feast_champion
    features = manifest["feature_columns"]
    keys = manifest["entity_columns"]
    training_set = read_parquet(manifest["uri"])
    validated, days = read_window(
        get_settings().zone_uri("validated", manifest["dataset"]), manifest["start"], manifest["end"]
    )
    assert len(days) == TRAIN_DAYS
    missing = [c for c in features if c not in validated.columns]
    assert missing, "the validated zone lacks the service's aggregates and on-demand features"

    rebuilt = rebuild_features(validated, dict(manifest), missing)
    assert rebuilt is not None and len(rebuilt) == len(validated)
    on = [*keys, manifest["timestamp_column"]]

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[[*on, *features]].copy()
        out[on[-1]] = pd.to_datetime(out[on[-1]], utc=True)
        return out.drop_duplicates(on, keep=False)  # a row is identified by its entity keys and time

    training_rows = rows(training_set)
    assert len(training_rows) > 0.9 * len(training_set)
    merged = rows(rebuilt).merge(training_rows, on=on, how="inner", suffixes=("_rebuilt", "_training"))
    assert len(merged) == len(training_rows)
    for feature in features:
        pd.testing.assert_series_equal(
            merged[f"{feature}_rebuilt"].astype(float),
            merged[f"{feature}_training"].astype(float),
            check_names=False,
            rtol=1e-6,
        )
