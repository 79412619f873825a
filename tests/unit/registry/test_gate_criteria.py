"""The gate's default criteria name no column of anyone's data; a segment column turns the segment checks on."""

from __future__ import annotations

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
