"""Categorical features: strings stay strings in the training set, the trainer learns them natively and freezes
their categories into the model, and the gate and the drift check encode them as the model server does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.training_snapshot import RISKY_CODES, make_training_snapshot

FAST = {"max_depth": 3, "eta": 0.3, "nthread": 1}


def _params():
    from include.trainer.params import DEFAULT_PARAMS, _merge

    return _merge(DEFAULT_PARAMS, {"xgboost": FAST, "n_estimators": 40, "early_stopping_rounds": 10})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A binary model trained on a snapshot whose string column ``merchant_code`` drives the label."""
    from include.trainer.data import prepare
    from include.trainer.fit import fit, training_plan

    manifest = make_training_snapshot(tmp_path_factory.mktemp("categorical") / "snapshot", rows=3000, categorical=True)
    df = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    params = _params()
    data = prepare(df, manifest, params["split"], "binary")
    return manifest, df, data, fit(params, training_plan(params, gpu=False), data)


def test_encode_features_maps_unseen_values_and_nulls_to_missing_and_leaves_numbers_alone():
    from mlops_provider.training.evaluation import categorical_columns, encode_features, feature_matrix

    df = pd.DataFrame({"x": [1, 2, 3, 4], "code": ["b", None, "zz", "a"], "flag": [True, False, True, False]})
    assert categorical_columns(df, ["x", "code", "flag"]) == ["code"]
    matrix = encode_features(df, ["x", "code", "flag"], {"code": ["a", "b"]})
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(matrix[:, 2], [1, 0, 1, 0])
    assert matrix[0, 1] == 1 and matrix[3, 1] == 0
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[2, 1])  # null and unseen: missing, never another code
    # Numeric-only frames are what they were: float32 in the given order, no categories needed.
    np.testing.assert_array_equal(encode_features(df, ["flag", "x"]), feature_matrix(df, ["flag", "x"]).to_numpy())


def test_the_trainer_learns_a_string_categorical_and_freezes_its_categories(trained, tmp_path):
    import xgboost as xgb

    from mlops_provider.lineage import BOOSTER_CATEGORIES_ATTR, booster_categories
    from mlops_provider.training.evaluation import booster_predict

    manifest, df, data, fitted = trained
    expected = sorted(data.split.train["merchant_code"].dropna().unique())
    assert data.categories == {"merchant_code": expected} and len(expected) == 12
    assert str(data.x_train["merchant_code"].dtype) == "category"
    assert fitted.holdout_metrics["roc_auc"] > 0.75
    assert fitted.booster.get_score(importance_type="gain")["merchant_code"] > 0

    # The mapping travels in the model file: a reloaded booster scores raw strings exactly as the trainer did.
    path = tmp_path / "model.json"
    fitted.booster.save_model(path)
    loaded = xgb.Booster(model_file=str(path))
    assert json.loads(loaded.attr(BOOSTER_CATEGORIES_ATTR)) == data.categories
    assert booster_categories(loaded) == data.categories
    hold = data.split.holdout
    np.testing.assert_allclose(booster_predict(loaded, hold, data.features), fitted.holdout_proba, rtol=1e-6)
    # ... and the codes are the ones XGBoost trained on (pandas categories of the frozen mapping).
    native = loaded.predict(xgb.DMatrix(data.x_hold, enable_categorical=True))
    np.testing.assert_allclose(native, fitted.holdout_proba, rtol=1e-6)

    # The model learnt the category: the risky codes score higher, all else equal.
    row = df[data.features].iloc[[0]].copy()
    scores = {}
    for code in [*expected, "never-seen", None]:
        row["merchant_code"] = code
        scores[code] = float(booster_predict(loaded, row, data.features)[0])
    risky = np.mean([scores[c] for c in RISKY_CODES])
    other = np.mean([scores[c] for c in expected if c not in RISKY_CODES])
    assert risky > other + 0.2
    # An unseen category and a null are the model's missing value.
    missing = encode_features_row(row, data.features)
    explicit = float(loaded.inplace_predict(missing, validate_features=False)[0])
    assert scores["never-seen"] == scores[None] == pytest.approx(explicit)


def encode_features_row(row: pd.DataFrame, features: list[str]) -> np.ndarray:
    """``row`` as a float32 matrix with the categorical feature explicitly missing (NaN)."""
    matrix = row.drop(columns=["merchant_code"]).astype("float32")
    matrix.insert(features.index("merchant_code"), "merchant_code", np.float32("nan"))
    return matrix[features].to_numpy(dtype=np.float32)


def test_the_manifest_lists_the_categorical_columns_and_must_agree(trained):
    from include.trainer.data import training_categorical_columns
    from include.trainer.params import TrainingError

    manifest, df, _, _ = trained
    assert training_categorical_columns(df, manifest) == ["merchant_code"]
    with pytest.raises(TrainingError, match="categorical_columns"):
        training_categorical_columns(df, {**manifest, "categorical_columns": []})


def test_numeric_only_snapshots_train_as_before(tmp_path):
    from include.trainer.data import prepare

    manifest = make_training_snapshot(tmp_path / "numeric", rows=600)
    df = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    data = prepare(df, manifest, _params()["split"], "binary")
    assert data.categories is None
    assert set(data.x_train.dtypes.astype(str)) == {"float32"}


def test_the_training_set_keeps_strings_and_an_entity_key_that_is_also_a_feature():
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.operators.feast import training_set_frame

    joined = pd.DataFrame(
        {
            "carrier": ["b", "a", "b"],
            "event_timestamp": pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-01"], utc=True),
            "route": pd.Series(["x", None, "y"], dtype="string"),
            "delay": [1.0, 2.0, None],
            "label": [0, 1, 1],
        }
    )
    data, categorical = training_set_frame(
        joined, ["carrier"], "event_timestamp", ["delay", "route", "carrier"], "label"
    )
    assert list(data.columns) == ["carrier", "event_timestamp", "delay", "route", "label"]  # the key once
    assert categorical == ["route", "carrier"]
    assert data["route"].tolist() == [None, "y", "x"] and data["carrier"].tolist() == ["a", "b", "b"]
    assert data["route"].dtype == object
    joined["when"] = joined["event_timestamp"]
    with pytest.raises(MlopsError, match="neither numbers nor strings"):
        training_set_frame(joined, ["carrier"], "event_timestamp", ["when"], "label")


def test_the_gate_and_the_drift_check_score_categoricals_as_the_trainer(trained):
    from mlops_provider.drift.scoring import model_scorer
    from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator

    _, _, data, fitted = trained
    hold = data.split.holdout  # raw strings, as the gate and the drift check read them from the snapshot
    gate = MlflowEvaluationGateOperator.__new__(MlflowEvaluationGateOperator)
    metrics, segments = gate._score(
        fitted.booster, data.features, hold, data.label, fitted.threshold, {"column": "merchant_code", "min_rows": 5}
    )
    assert metrics["roc_auc"] == pytest.approx(fitted.holdout_metrics["roc_auc"])
    assert segments is not None and set(segments) <= {*data.categories["merchant_code"], "None"}
    scores = model_scorer(fitted.booster)(hold[data.features])
    np.testing.assert_allclose(scores, fitted.holdout_proba, rtol=1e-6)


def test_the_trainer_cli_records_the_categories_in_mlflow(tmp_path):
    """Through MLflow (a private SQLite store): ``categories.json``, the model metadata and the model file."""
    import mlflow

    from mlops_provider.lineage import CATEGORIES_ARTIFACT, MODEL_URI_TAG, booster_categories
    from tests.fixtures.training_snapshot import train_in_process

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=800, categorical=True)
    params = tmp_path / "params.yaml"
    params.write_text("xgboost: {max_depth: 3, eta: 0.3, nthread: 1}\nn_estimators: 15\n")
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train_in_process(
        manifest, "categorical_model", str(params), tracking_uri, tmp_path, "key-categorical",
        ["--artifact-location", (tmp_path / "artifacts").as_uri()],
    )  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(result["run_id"])
    mlflow.set_tracking_uri(tracking_uri)
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{CATEGORIES_ARTIFACT}")
    assert list(logged) == ["merchant_code"] and len(logged["merchant_code"]) == 12
    assert run.data.params["categorical_columns"] == "merchant_code"
    model_uri = run.data.tags[MODEL_URI_TAG]
    info = mlflow.models.get_model_info(model_uri)
    assert json.loads(info.metadata["categories"]) == logged
    booster = mlflow.xgboost.load_model(model_uri)
    assert booster_categories(booster) == logged


def test_the_drift_check_compares_a_logged_category_and_scores_the_reference(trained):
    """The reference (training strings) and the request log (categories as text) compare as categories, and the
    model scores the reference through its frozen categories (prediction drift is checked, not unavailable)."""
    from mlops_provider.drift.check import check_drift
    from mlops_provider.drift.engine import DriftConfig
    from mlops_provider.drift.policy import DriftPolicy
    from mlops_provider.drift.scoring import model_scorer

    _, df, data, fitted = trained
    reference = df.iloc[:1500]
    log = df.iloc[1500:].copy()
    log["merchant_code"] = log["merchant_code"].where(log["merchant_code"] != "m03", "m01")  # the mix moved
    log["prediction"] = model_scorer(fitted.booster)(log[data.features])
    result = check_drift(
        reference,
        log[["event_timestamp"]],
        features=data.features,
        config=DriftConfig(),
        policy=DriftPolicy(drift_share=0.9),
        predictions=log,
        scorer=model_scorer(fitted.booster),
    )
    assert "merchant_code" in result.drifted_features
    column = next(c for c in result.features if c.column == "merchant_code")
    assert column.column_type == "cat"
    assert result.prediction_drift is not None and result.prediction_drift["status"] == "checked"
