"""The gate's default criteria name no column of anyone's data; a segment column turns the segment checks on."""

from __future__ import annotations

import pytest

from mlops_provider.operators.mlflow import DEFAULT_CRITERIA, evaluate_criteria, merge_criteria


def test_default_criteria_check_no_segment_column():
    assert "column" not in DEFAULT_CRITERIA["segments"]
    failures, checks = evaluate_criteria(DEFAULT_CRITERIA, {"roc_auc": 0.9}, None)
    assert failures == [] and [c["check"] for c in checks] == ["min_roc_auc"]


def test_a_segment_column_uses_the_default_segment_thresholds():
    criteria = merge_criteria(DEFAULT_CRITERIA, {"segments": {"column": "region", "min_rows": 50}})
    assert criteria["segments"] == {**DEFAULT_CRITERIA["segments"], "column": "region", "min_rows": 50}
    failures, _ = evaluate_criteria(criteria, {"roc_auc": 0.9}, None, {"north": {"roc_auc": 0.5}})
    assert failures == ["segment region=north: candidate roc_auc=0.5000 vs required 0.55"]
    assert DEFAULT_CRITERIA["segments"].get("column") is None  # merging never mutates the defaults


# ---------------------------------------------------------------------------------------------- task types
def test_every_task_has_defaults_that_name_only_its_own_metrics():
    from mlops_provider.lineage import TASKS
    from mlops_provider.operators.mlflow import DEFAULT_CRITERIA_BY_TASK, validate_criteria

    assert DEFAULT_CRITERIA_BY_TASK["binary"] is DEFAULT_CRITERIA  # binary is unchanged
    for task in TASKS:
        validate_criteria(DEFAULT_CRITERIA_BY_TASK[task], task)
        assert "column" not in DEFAULT_CRITERIA_BY_TASK[task]["segments"]


@pytest.mark.parametrize(
    ("task", "criteria", "metric", "owner"),
    [
        ("regression", {"min_metrics": {"roc_auc": 0.7}}, "roc_auc", "binary"),
        ("binary", {"max_regression": {"rmse": 0.1}}, "rmse", "regression"),
        ("multiclass", {"segments": {"min_metrics": {"f1": 0.2}}}, "f1", "binary"),
        ("binary", {"min_metrics": {"typo_auc": 0.7}}, "typo_auc", None),
    ],
)
def test_a_criterion_naming_a_metric_of_another_task_is_a_configuration_error(task, criteria, metric, owner):
    from mlops_provider.exceptions import GateConfigurationError
    from mlops_provider.operators.mlflow import DEFAULT_CRITERIA_BY_TASK, validate_criteria

    with pytest.raises(GateConfigurationError, match=f"{metric}.*does not apply to a {task} model") as caught:
        validate_criteria(merge_criteria(DEFAULT_CRITERIA_BY_TASK[task], criteria), task)
    assert caught.value.metric == metric and caught.value.task == task and caught.value.available
    assert (f"a metric of the {owner} task" if owner else "not a metric the gate computes") in str(caught.value)


def test_resolved_criteria_start_from_the_task_defaults():
    from mlops_provider.exceptions import GateConfigurationError
    from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator

    gate = MlflowEvaluationGateOperator(
        task_id="gate", model_name="m", candidate={}, training_set={}, criteria={"min_metrics": {"r2": 0.4}}
    )
    assert gate.resolved_criteria("regression")["min_metrics"] == {"r2": 0.4}
    with pytest.raises(GateConfigurationError, match="r2"):
        gate.resolved_criteria("binary")


# ---------------------------------------------------------------------------------------------- the gate itself
class _Version:
    def __init__(self, version: str, tags: dict[str, str]) -> None:
        self.version, self.tags, self.run_id = version, tags, None


class _Hook:
    """The registry calls the gate makes before it scores anything."""

    def __init__(self, booster, tags: dict[str, str]) -> None:
        self.booster, self.tags = booster, tags

    def get_model_version(self, name, version):
        return _Version(str(version), self.tags)

    def load_xgboost_model(self, name, version, workdir=None):
        return self.booster

    def version_threshold(self, name, version, default=0.5):
        return 0.5


def _gate_on(tmp_path, task: str, criteria: dict):
    import pandas as pd
    import xgboost

    from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
    from tests.fixtures.training_snapshot import FEATURES, make_training_snapshot

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=400, task=task)
    df = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    objective = {"binary": "binary:logistic", "regression": "reg:squarederror"}[task]
    booster = xgboost.train(
        {"objective": objective, "max_depth": 2, "nthread": 1},
        xgboost.DMatrix(df[FEATURES].astype("float32"), label=df[manifest["label_column"]]),
        num_boost_round=3,
    )
    gate = MlflowEvaluationGateOperator(
        task_id="gate", model_name="m", candidate={"model_version": "1"}, training_set=manifest, criteria=criteria,
        holdout_fraction=0.3,
    )  # fmt: skip
    gate.__dict__["hook"] = _Hook(booster, {"mlops.task": task})
    return gate


def test_a_configured_segment_column_the_data_lacks_fails_the_gate_naming_it(tmp_path):
    """It used to become a note, and the segment checks silently did not run."""
    from mlops_provider.exceptions import GateConfigurationError

    gate = _gate_on(tmp_path, "binary", {"segments": {"column": "region"}})
    with pytest.raises(GateConfigurationError, match="segment column 'region'") as caught:
        gate.execute({})
    assert caught.value.column == "region"
    assert "channel" in caught.value.available and "is_fraud" in caught.value.available
    assert "channel" in str(caught.value)


def test_the_gate_validates_the_criteria_against_the_candidate_task(tmp_path):
    from mlops_provider.exceptions import GateConfigurationError

    gate = _gate_on(tmp_path, "regression", {"max_regression": {"pr_auc": 0.01}})
    with pytest.raises(GateConfigurationError, match="pr_auc.*does not apply to a regression model"):
        gate.execute({})


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_gate_scores_each_task_with_its_own_metrics_and_segments(tmp_path, task):
    import json

    import pandas as pd
    import xgboost

    from mlops_provider.lineage import BOOSTER_CLASSES_ATTR, BOOSTER_TASK_ATTR
    from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
    from mlops_provider.training.evaluation import TASK_METRICS
    from tests.fixtures.training_snapshot import FEATURES, make_training_snapshot

    manifest = make_training_snapshot(tmp_path / "snapshot", rows=600, task=task)
    df = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    label = manifest["label_column"]
    params: dict = {"objective": "reg:squarederror"}
    y = df[label]
    if task == "multiclass":
        classes = sorted(df[label].unique())
        y = df[label].map({c: i for i, c in enumerate(classes)})
        params = {"objective": "multi:softprob", "num_class": len(classes)}
    booster = xgboost.train(
        {**params, "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(df[FEATURES].astype("float32"), label=y, feature_names=FEATURES),
        20,
    )
    booster.set_attr(**{BOOSTER_TASK_ATTR: task})
    if task == "multiclass":
        booster.set_attr(**{BOOSTER_CLASSES_ATTR: json.dumps(classes)})
    gate = MlflowEvaluationGateOperator(task_id="gate", model_name="m", candidate={}, training_set={})
    metrics, segments = gate._score(booster, FEATURES, df, label, 0.5, {"column": "channel", "min_rows": 50})
    assert set(TASK_METRICS[task]) <= set(metrics)
    assert segments and set(segments) == {"atm", "online", "pos"}
    quality = metrics["accuracy"] if task == "multiclass" else metrics["r2"]
    assert quality > 0.6  # scored on its own training rows: labels line up with the model's classes
