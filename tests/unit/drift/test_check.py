"""The pure drift check: a typed verdict from frames, config and policy, rounded only for people."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_provider.drift.check import DriftCheckResult, check_drift, round_share, split_features
from mlops_provider.drift.engine import DriftConfig
from mlops_provider.drift.policy import DriftPolicy

FEATURES = ["f_moved", "f_still", "f_logged"]


def _frames(rows: int = 3000, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            "f_moved": rng.normal(0, 1, rows),
            "f_still": rng.normal(0, 1, rows),
            "f_logged": rng.normal(0, 1, rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    # f_moved drifts; f_still does not; f_logged exists only in the request log, and does not drift.
    current = pd.DataFrame(
        {"f_moved": rng.normal(3, 1, rows), "f_still": rng.normal(0, 1, rows), "label": rng.integers(0, 2, rows)}
    )
    log = pd.DataFrame({"f_logged": rng.normal(0, 1, rows // 2), "prediction": rng.uniform(0, 1, rows // 2)})
    return reference, current, log


def test_features_are_checked_on_the_current_window_first_then_on_the_request_log():
    reference, current, log = _frames()
    sources = split_features([*FEATURES, "f_nowhere"], current, log)
    assert sources.current == ["f_moved", "f_still"]
    assert sources.prediction_log == ["f_logged"]
    assert sources.unchecked == ["f_nowhere"]


def test_verdict_is_typed_and_its_payload_is_rounded_for_people():
    reference, current, log = _frames()
    result = check_drift(
        reference,
        current,
        features=FEATURES,
        config=DriftConfig(),
        policy=DriftPolicy(drift_share=0.3),
        predictions=log,
        label="label",
    )
    assert isinstance(result, DriftCheckResult)
    with pytest.raises(AttributeError):
        result.drift_share = 0.0  # type: ignore[misc]  # frozen
    assert result.checked_features == FEATURES
    assert result.drifted_features == ["f_moved"]
    assert result.drift_share == 1 / 3  # exact: the policy compares it unrounded
    assert result.reasons == ("share of drifted features 0.33 >= 0.30",)

    payload = result.to_payload()
    assert payload["drift_share"] == 0.333
    assert payload["drift_detected"] is True
    assert payload["drifted_features"] == ["f_moved"]
    assert payload["target_drifted"] is False  # labels are drawn from the same distribution
    # No scorer: logged predictions cannot be compared, and the reason is recorded.
    assert payload["prediction_drifted"] is False
    assert result.prediction_drift is not None
    assert result.prediction_drift["status"] == "unavailable"
    assert "no model to score" in result.prediction_drift["reason"]

    summary = result.summary()
    assert summary["drift_share"] == payload["drift_share"]
    assert summary["features_from_prediction_log"] == ["f_logged"]
    assert [f["column"] for f in summary["features"]] == FEATURES
    for column in summary["features"]:
        assert column["score"] == float(f"{column['score']:.4g}")


def test_a_scorer_enables_prediction_drift_and_performance():
    reference, current, log = _frames()
    calls: list[int] = []

    def scorer(frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        # A useless model: scores unrelated to the label, so performance is about 0.5 on both sides.
        return np.random.default_rng(len(frame)).uniform(0, 1, len(frame))

    scorer.task = "binary"  # type: ignore[attr-defined]
    # Every feature in the current window, so the model can be scored on it.
    current = current.assign(f_logged=np.random.default_rng(9).normal(0, 1, len(current)))
    result = check_drift(
        reference,
        current,
        features=FEATURES,
        config=DriftConfig(),
        policy=DriftPolicy(drift_share=0.9, max_performance_drop=0.2),
        predictions=log,
        label="label",
        scorer=scorer,
        holdout_metrics={"roc_auc": 0.5, "pr_auc": 0.1},
    )
    assert calls == [len(reference), len(current)]
    assert result.prediction_drift is not None and result.prediction_drift["status"] == "checked"
    assert result.prediction_drift["column"] == "prediction"
    assert result.performance is not None and result.performance["status"] == "checked"
    assert result.performance["metric"] == "roc_auc"
    assert result.performance["reference"] == 0.5 and result.performance["reference_source"] == "holdout"
    assert abs(result.performance["drop"]) < 0.1
    assert result.drift_detected is False and result.reasons == ()


def test_the_performance_reference_is_the_recorded_holdout_score_not_a_rescore_of_the_training_set():
    """A model scores higher on data it was trained on: the drop is measured from its holdout score."""
    reference, current, _ = _frames()
    current = current.assign(f_logged=0.0)

    def memorizer(frame: pd.DataFrame) -> np.ndarray:
        # Perfect on the reference rows (a training set it has memorized), no better than chance elsewhere.
        if frame["f_moved"].mean() < 1.5:  # the reference side (the current window's f_moved moved to 3)
            return reference.loc[frame.index, "label"].astype(float).to_numpy()
        return np.full(len(frame), 0.5)

    memorizer.task = "binary"  # type: ignore[attr-defined]
    kwargs = dict(features=FEATURES, config=DriftConfig(), label="label", scorer=memorizer)
    policy = DriftPolicy(drift_share=0.9, max_performance_drop=0.2)
    result = check_drift(reference, current, policy=policy, holdout_metrics={"roc_auc": 0.61}, **kwargs)
    assert result.performance["reference"] == 0.61, "the training run's holdout roc_auc, not 1.0 on its training set"
    assert result.performance["current"] == 0.5 and result.performance_drop == pytest.approx(0.11)
    assert result.reasons == (), "a drop of 0.11 from the holdout is within 0.2 (a re-score would say 0.5)"

    # A run that logged no holdout value of the watched metric: no reference, so no drop is claimed.
    missing = check_drift(reference, current, policy=policy, holdout_metrics={"log_loss": 0.3}, **kwargs)
    assert missing.performance["status"] == "unavailable" and missing.performance_drop is None
    assert "logged no holdout roc_auc" in missing.performance["reason"]


def test_scorer_errors_make_model_checks_unavailable_not_fatal():
    reference, current, log = _frames()
    current = current.assign(f_logged=0.0)

    def broken(frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("model download failed")

    result = check_drift(
        reference,
        current,
        features=FEATURES,
        config=DriftConfig(),
        policy=DriftPolicy(),
        predictions=log,
        label="label",
        scorer=broken,
    )
    reason = "could not score the champion (RuntimeError: model download failed)"
    assert result.prediction_drift == {"status": "unavailable", "reason": reason}
    assert result.performance == {"status": "unavailable", "reason": reason}
    assert result.to_payload()["performance_drop"] is None


def test_no_checkable_feature_is_an_error():
    reference, current, _ = _frames(rows=100)
    with pytest.raises(ValueError, match="None of the features"):
        check_drift(reference, current, features=["f_logged"], config=DriftConfig(), policy=DriftPolicy())


def test_round_share():
    assert round_share(1 / 3) == 0.333
    assert round_share(13 / 15) == 0.867
