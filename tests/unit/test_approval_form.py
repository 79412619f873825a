"""The approval form's markdown: the gate's evidence a person needs to decide, with the drift that triggered it."""

from __future__ import annotations

from mlops_provider.operators.approval import approval_body

DECISION = {
    "decision": "promote",
    "model_name": "m",
    "candidate_version": "5",
    "champion_version": "4",
    "candidate_metrics": {"roc_auc": 0.91, "log_loss": 0.31},
    "champion_metrics": {"roc_auc": 0.88, "log_loss": 0.33},
    "candidate_segments": {"web|mobile": {"roc_auc": 0.9, "rows": 400}},
    "champion_segments": {"web|mobile": {"roc_auc": 0.85, "rows": 400}},
    "checks": [{"check": "min_roc_auc", "passed": True, "message": "roc_auc 0.9100 >= 0.65"}],
    "reasons": ["roc_auc 0.9100 >= 0.65", "champion version 4 cannot be scored: gated on the absolute criteria only"],
    "evaluation_window": {"rows": 900, "start": "2031-03-01", "end": "2031-03-02", "training_set_hash": "abc123"},
}


def test_metrics_segments_checks_drift_and_links():
    drift = {"at": "2031-03-02T06:00:00+00:00", "reason": "share of drifted features 0.60 >= 0.50",
             "details": {"drift_share": 0.6, "drifted_features": ["amount", "hour"]},
             "links": {"evidently_report": "http://af/mlops/reports/m/r1/report.html"}}  # fmt: skip
    body = approval_body(DECISION, links={"mlflow_model_version": "http://mlflow/#/models/m/versions/5", "none": None},
                         drift=drift)  # fmt: skip
    assert "candidate **v5** vs champion **v4**" in body
    assert "| roc_auc | 0.9100 | 0.8800 | +0.0300 |" in body and "| log_loss | 0.3100 | 0.3300 | -0.0200 |" in body
    # A pipe in a segment value cannot break the table.
    assert "| web\\|mobile | roc_auc | 0.9000 | 0.8500 | +0.0500 |" in body
    assert "- ✅ roc_auc 0.9100 >= 0.65" in body and "- ℹ️ champion version 4 cannot be scored" in body
    assert "900 rows, 2031-03-01 … 2031-03-02 (training set `abc123`)" in body
    assert "triggered by drift at 2031-03-02T06:00:00 UTC: share of drifted features 0.60 >= 0.50" in body
    assert "(drift share 0.6000); drifted features: amount, hour." in body
    assert "[drift evidently report](http://af/mlops/reports/m/r1/report.html)" in body
    assert (
        "[mlflow model version](http://mlflow/#/models/m/versions/5)" in body
        and "none" not in body.split("Evidence")[1]
    )


def test_first_model_without_champion_or_drift():
    first = {**DECISION, "champion_version": None, "champion_metrics": None, "champion_segments": None, "reasons": []}
    body = approval_body(first, links={})
    assert "champion **none**" in body and "| roc_auc | 0.9100 | n/a |  |" in body
    assert "drift" not in body and "Evidence" not in body
