"""Task types: the params' ``task`` picks the objective, the metrics and what the model file carries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures.training_snapshot import make_training_snapshot

FAST = {"max_depth": 3, "eta": 0.3, "nthread": 1}


def _params(task: str, **xgboost):
    from include.trainer.params import DEFAULT_PARAMS, _merge

    return _merge(DEFAULT_PARAMS, {"task": task, "xgboost": {**FAST, **xgboost}, "n_estimators": 30,
                                   "early_stopping_rounds": 5})  # fmt: skip


def _fit(tmp_path, task: str):
    import pandas as pd

    from include.trainer.data import prepare
    from include.trainer.fit import fit, training_plan

    manifest = make_training_snapshot(tmp_path / task, rows=1500, task=task)
    df = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    params = _params(task)
    data = prepare(df, manifest, params["split"], task)
    plan = training_plan(params, gpu=False)
    return data, plan, fit(params, plan, data)


def test_binary_stays_as_it_was():
    from include.trainer.fit import training_plan
    from include.trainer.params import DEFAULT_PARAMS

    plan = training_plan(DEFAULT_PARAMS, gpu=False)
    assert plan["task"] == "binary"
    assert plan["booster"]["objective"] == "binary:logistic"
    assert plan["booster"]["eval_metric"] == ["logloss", "aucpr"]


def test_regression_trains_a_squared_error_model_scored_on_rmse_mae_r2(tmp_path):
    from mlops_provider.lineage import booster_task

    data, plan, fitted = _fit(tmp_path, "regression")
    assert plan["booster"]["objective"] == "reg:squarederror" and plan["booster"]["eval_metric"] == ["mae", "rmse"]
    assert set(fitted.holdout_metrics) == {"rmse", "mae", "r2", "rows"}
    assert fitted.holdout_metrics["r2"] > 0.5
    assert fitted.threshold is None and "scale_pos_weight" not in fitted.booster_params
    assert booster_task(fitted.booster) == ("regression", None)
    assert fitted.holdout_proba.shape == (len(data.y_hold),)


def test_multiclass_trains_softprob_with_one_class_per_label_value(tmp_path):
    from mlops_provider.lineage import BOOSTER_CLASSES_ATTR, booster_task

    data, plan, fitted = _fit(tmp_path, "multiclass")
    assert data.classes == ["high", "low", "mid"]
    assert plan["booster"]["objective"] == "multi:softprob"
    assert fitted.booster_params["num_class"] == 3
    assert set(fitted.holdout_metrics) == {"macro_f1", "accuracy", "mlogloss", "rows", "classes"}
    assert fitted.holdout_metrics["accuracy"] > 0.6
    assert fitted.holdout_proba.shape == (len(data.y_hold), 3)
    assert booster_task(fitted.booster) == ("multiclass", ["high", "low", "mid"])
    # The attributes survive the model file (the server and the gate read them from it).
    path = tmp_path / "model.json"
    fitted.booster.save_model(path)
    import xgboost

    loaded = xgboost.Booster(model_file=str(path))
    assert json.loads(loaded.attr(BOOSTER_CLASSES_ATTR)) == ["high", "low", "mid"]
    assert booster_task(loaded)[0] == "multiclass"


@pytest.mark.parametrize(
    ("task", "xgboost", "message"),
    [
        ("regression", {"objective": "binary:logistic"}, "does not fit task 'regression'"),
        ("multiclass", {"eval_metric": ["aucpr"]}, r"\['aucpr'\] belong to another task"),
        ("ranking", {}, "is not one of"),
    ],
)
def test_params_that_contradict_the_task_are_refused(tmp_path, task, xgboost, message):
    import yaml

    from include.trainer.params import TrainingError, load_params

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"task": task, "xgboost": xgboost}))
    with pytest.raises(TrainingError, match=message):
        load_params(path)


def test_multiclass_and_regression_metrics():
    from mlops_provider.training.evaluation import EvaluationError, task_metrics

    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    metrics = task_metrics("multiclass", y, proba)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 2 / 3) / 3)
    assert metrics["mlogloss"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.7, 0.2])))
    reg = task_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert reg == pytest.approx({"rmse": np.sqrt(4 / 3), "mae": 2 / 3, "r2": 1 - 4 / 2, "rows": 3.0})
    with pytest.raises(EvaluationError, match="outside the model's 3 classes"):
        task_metrics("multiclass", [3], proba[:1])
    with pytest.raises(EvaluationError, match="two distinct label values"):
        task_metrics("regression", [1.0, 1.0], [1.0, 2.0])


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_the_trainer_cli_records_the_task_on_the_run_and_the_version(tmp_path, task):
    """Through MLflow (a private SQLite store): the run and the registered version carry ``mlops.task``."""
    import mlflow

    from mlops_provider.lineage import TASK_TAG
    from tests.fixtures.training_snapshot import train_in_process

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=800, task=task)
    params = tmp_path / "params.yaml"
    params.write_text(f"task: {task}\nxgboost: {{max_depth: 3, eta: 0.3, nthread: 1}}\nn_estimators: 15\n")
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    result = train_in_process(
        manifest, f"tasks_{task}", str(params), tracking_uri, tmp_path, f"key-{task}",
        ["--artifact-location", artifacts.as_uri()],
    )  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(result["run_id"])
    version = client.get_model_version(f"tasks_{task}", result["model_version"])
    assert run.data.tags[TASK_TAG] == task and version.tags[TASK_TAG] == task
    assert "mlops.threshold" not in run.data.tags
    expected = {"regression": {"rmse", "mae", "r2"}, "multiclass": {"macro_f1", "accuracy", "mlogloss"}}[task]
    assert expected <= set(result["metrics"])


def test_the_training_set_manifest_takes_text_labels():
    """A multiclass label may be text: the manifest's label rate is then undefined, not a crash."""
    import pandas as pd

    from mlops_provider.operators.feast import label_rate

    assert label_rate(pd.Series([0, 1, 1, 0])) == 0.5
    assert label_rate(pd.Series([True, False])) == 0.5
    assert label_rate(pd.Series(["low", "high"])) is None
