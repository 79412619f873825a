"""Prediction drift per task: per-class probabilities for multiclass, the value for regression."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_provider.drift.check import check_drift
from mlops_provider.drift.engine import DriftConfig
from mlops_provider.drift.policy import DriftPolicy
from mlops_provider.drift.scoring import performance_metric, prediction_frames

ROWS = 2000


def _world(seed: int = 5):
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame({"x": rng.normal(0, 1, ROWS), "label": rng.normal(0, 1, ROWS)})
    current = pd.DataFrame({"x": rng.normal(0, 1, ROWS)})
    return rng, reference, current


def _check(reference, current, log, scorer, label=None):
    return check_drift(
        reference,
        current,
        features=["x"],
        config=DriftConfig(),
        policy=DriftPolicy(drift_share=0.9, prediction_drift_triggers=True),
        predictions=log,
        label=label,
        scorer=scorer,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_multiclass_predictions_are_compared_class_by_class():
    rng, reference, current = _world()

    def scorer(frame):  # three classes, class 0 most likely on the reference
        return _softmax(np.column_stack([np.full(len(frame), 1.0), np.zeros(len(frame)), np.zeros(len(frame))])
                        + rng.normal(0, 0.3, (len(frame), 3)))  # fmt: skip

    served = scorer(current)
    # Served traffic shifted towards class 2 only.
    shifted = _softmax(np.log(served) + np.array([0.0, 0.0, 1.5]))
    log = pd.DataFrame(
        {"x": current["x"], "prediction": shifted.argmax(axis=1).astype(float),
         **{f"prediction_class_{k}": shifted[:, k] for k in range(3)}}
    )  # fmt: skip
    result = _check(reference, current, log, scorer)
    drift = result.prediction_drift
    assert drift is not None and drift["status"] == "checked" and drift["drift_detected"] is True
    assert [c["column"] for c in drift["per_class"]] == [f"prediction_class_{k}" for k in range(3)]
    assert drift["per_class"][2]["drift_detected"] is True
    assert result.drift_detected is True

    steady = pd.DataFrame({"x": current["x"], **{f"prediction_class_{k}": served[:, k] for k in range(3)},
                           "prediction": served.argmax(axis=1).astype(float)})  # fmt: skip
    assert _check(reference, current, steady, scorer).prediction_drift["drift_detected"] is False


def test_a_multiclass_log_without_class_columns_compares_the_predicted_class():
    proba = _softmax(np.random.default_rng(1).normal(0, 1, (50, 3)))
    reference, current = prediction_frames(proba, pd.DataFrame({"prediction": [0.0, 2.0]}))
    assert list(reference.columns) == ["prediction"] and set(reference["prediction"]) <= {0.0, 1.0, 2.0}
    assert list(current["prediction"]) == [0.0, 2.0]


def test_regression_predictions_are_compared_as_numbers_and_scored_on_r2():
    rng, reference, current = _world()

    def scorer(frame):
        return 2.0 * frame["x"].to_numpy()

    log = pd.DataFrame({"x": current["x"], "prediction": 2.0 * current["x"] + 3.0})  # values moved up
    result = _check(reference, current, log, scorer)
    assert result.prediction_drift["column"] == "prediction" and result.prediction_drift["drift_detected"] is True
    steady = pd.DataFrame({"x": current["x"], "prediction": 2.0 * current["x"]})
    assert _check(reference, current, steady, scorer).prediction_drift["drift_detected"] is False

    labels = np.array([1.0, 2.0, 3.0])
    assert performance_metric("r2", labels, labels) == 1.0
    # A classification metric of a regression model's values is undefined, not an error.
    assert performance_metric("roc_auc", labels, labels) is None
    assert performance_metric("average_precision", np.array([0, 1, 2]), np.full((3, 3), 1 / 3)) is None


def test_regression_performance_defaults_to_r2_and_its_drop_triggers():
    rng, reference, current = _world()
    reference["x"] = reference["label"] + rng.normal(0, 0.1, ROWS)
    current["label"] = rng.normal(0, 1, ROWS)
    current["x"] = current["label"] + rng.normal(0, 1.5, ROWS)  # the model got much worse

    def scorer(frame):
        return frame["x"].to_numpy()

    scorer.task = "regression"
    result = check_drift(
        reference, current, features=["x"], config=DriftConfig(),
        policy=DriftPolicy(drift_share=1.0, max_performance_drop=0.2), label="label",
        scorer=scorer, holdout_metrics={"r2": 0.99, "rmse": 0.1},
    )  # fmt: skip
    assert result.performance["status"] == "checked" and result.performance["metric"] == "r2"
    assert result.performance["reference"] > 0.95 and result.performance_drop > 0.5
    assert any(r.startswith("r2 dropped by") for r in result.reasons), result.reasons


def test_multiclass_performance_compares_labels_through_the_models_classes():
    classes = ["bus", "car", "tram"]  # the model's probability order
    labels = np.array(["car", "tram", "bus", "car", "walk"])
    proba = np.array([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    # Arg-max: car, tram, bus, bus, tram -> 3 of 5 right (an unknown label is never right).
    assert performance_metric("accuracy", labels, proba, classes) == 0.6
    auc = performance_metric("roc_auc", labels, proba, classes)
    assert auc is not None and 0.5 < auc <= 1.0

    def scorer(frame):
        logits = np.column_stack([frame["x"], -frame["x"], np.zeros(len(frame))])
        return _softmax(3 * logits)

    scorer.task, scorer.classes = "multiclass", classes
    rng, reference, current = _world()
    reference["label"] = np.array(classes)[scorer(reference).argmax(axis=1)]  # the model was right
    current["label"] = rng.choice(classes, ROWS)  # the world changed: the labels no longer follow x
    result = check_drift(
        reference, current, features=["x"], config=DriftConfig(),
        policy=DriftPolicy(drift_share=1.0, max_performance_drop=0.1), label="label", scorer=scorer,
        holdout_metrics={"accuracy": 1.0, "macro_f1": 1.0},
    )  # fmt: skip
    assert result.performance["status"] == "checked" and result.performance["metric"] == "accuracy"
    assert result.performance["reference"] == 1.0 and result.performance["current"] < 0.5
    assert any(r.startswith("accuracy dropped by") for r in result.reasons), result.reasons
