"""Delayed labels: the join to the prediction log, the live metric per version and day, the drop decision."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_provider.drift.labels import ARRIVED_ON, daily_live_performance, decide, join_labels, live_metric
from mlops_provider.exceptions import LabelJoinError


def _log() -> pd.DataFrame:
    """Six logged rows: request a (2 rows) and b on day 1 by version 1, c, d, e on day 2 by version 2."""
    served = pd.to_datetime(
        ["2031-05-01T10:00", "2031-05-01T10:00", "2031-05-01T11:00", "2031-05-02T09:00", "2031-05-02T09:30",
         "2031-05-02T12:00"], utc=True,
    )  # fmt: skip
    return pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "customer_id": [7, 8, 7, 8, 7, 9],
            "prediction": [0.9, 0.2, 0.7, 0.1, 0.8, 0.3],
            "model_version": ["1", "1", "1", "2", "2", "2"],
            "served_at": served,
            "request_id": ["a", "a", "b", "c", "d", "e"],
            "request_row": [0, 1, 0, 0, 0, 0],
            "latency_ms": 1.0,
        }
    )


def test_request_id_join_takes_late_labels_last_wins_and_counts_what_did_not_join():
    labels = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "c", "b", "zzz"],
            "request_row": [0, 1, 0, 0, 0, 0],
            "is_fraud": [1, 0, 0, 0, 1, 1],
            # b's label arrived on day 3, corrected on day 5: the correction wins.
            ARRIVED_ON: ["2031-05-03", "2031-05-03", "2031-05-03", "2031-05-04", "2031-05-05", "2031-05-05"],
        }
    )
    joined = join_labels(_log(), labels, label="is_fraud")
    rows = joined.rows.set_index(["request_id", "request_row"])
    assert sorted(rows.index) == [("a", 0), ("a", 1), ("b", 0), ("c", 0)]
    assert rows.loc[("b", 0), "is_fraud"] == 1 and rows.loc[("b", 0), ARRIVED_ON] == "2031-05-05"
    assert rows.loc[("a", 1), "is_fraud"] == 0, "each row of a batch request has its own label"
    assert rows.loc[("c", 0), "prediction_day"] == "2031-05-02"
    assert joined.counts() == {
        "predictions": 6,
        "unlabeled": 2,  # d and e: left out of the metrics, counted
        "labels": 6,
        "unmatched_labels": 1,  # zzz: not a request of this model in the window
        "duplicate_labels": 1,
        "labeled": 4,
    }


def test_a_label_without_request_row_is_the_first_rows():
    labels = pd.DataFrame({"request_id": ["b", "c"], "is_fraud": [1, 0]})
    joined = join_labels(_log(), labels, label="is_fraud")
    assert list(joined.rows["request_id"]) == ["b", "c"] and joined.unmatched_labels == 0


def test_entity_time_join_matches_the_nearest_prediction_of_the_entity_within_the_tolerance():
    labels = pd.DataFrame(
        {
            "customer_id": [7, 8, 7, 9],
            # 7 at 10:02 -> the 10:00 prediction; 8 at 09:01 (naive = UTC) -> 09:00; 7 at 15:00 -> none within 5 min;
            # 9 at 12:04 -> the 12:00 prediction.
            "event_timestamp": ["2031-05-01T10:02", "2031-05-02T09:01", "2031-05-01T15:00", "2031-05-02T12:04"],
            "is_fraud": [1, 0, 1, 0],
        }
    )
    joined = join_labels(
        _log(), labels, label="is_fraud", join="entity_time", entity_columns=["customer_id"],
        timestamp_column="event_timestamp", tolerance=timedelta(minutes=5),
    )  # fmt: skip
    assert sorted(joined.rows["request_id"]) == ["a", "c", "e"]
    assert joined.unmatched_labels == 1 and joined.unlabeled == 3


def test_missing_columns_are_a_clear_error_naming_them():
    with pytest.raises(LabelJoinError, match=r"labels lack the column\(s\) \['is_fraud'\]") as err:
        join_labels(_log(), pd.DataFrame({"request_id": ["a"]}), label="is_fraud")
    assert err.value.missing == ["is_fraud"] and err.value.where == "labels"
    labels = pd.DataFrame({"merchant_id": [1], "event_timestamp": ["2031-05-01"], "is_fraud": [1]})
    with pytest.raises(LabelJoinError, match="entity keys that are model inputs"):
        join_labels(
            _log(), labels, label="is_fraud", join="entity_time", entity_columns=["merchant_id"],
            timestamp_column="event_timestamp",
        )  # fmt: skip


def test_live_metric_per_version_and_day_with_labeled_and_unlabeled_rows():
    log = _log()
    labels = pd.DataFrame({"request_id": ["a", "a", "b", "c", "d"], "request_row": [0, 1, 0, 0, 0],
                           "is_fraud": [1, 0, 1, 0, 1]})  # fmt: skip
    joined = join_labels(log, labels, label="is_fraud")
    records = daily_live_performance(log, joined, label="is_fraud", task="binary", metric="roc_auc")
    by_key = {(r["day"], r["model_version"]): r for r in records}
    assert by_key[("2031-05-01", "1")] == {
        "day": "2031-05-01", "model_version": "1", "metric": "roc_auc", "value": 1.0,
        "labeled_rows": 3, "unlabeled_rows": 0,
    }  # fmt: skip
    assert by_key[("2031-05-02", "2")]["value"] == 1.0 and by_key[("2031-05-02", "2")]["unlabeled_rows"] == 1
    # Regression and multiclass score the logged value / per-class probabilities.
    rows = pd.DataFrame({"prediction": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]})
    assert live_metric(rows, label="y", task="regression", metric="r2") == 1.0
    multi = pd.DataFrame({"prediction_class_0": [0.9, 0.1], "prediction_class_1": [0.1, 0.9], "y": ["cat", "dog"]})
    assert live_metric(multi, label="y", task="multiclass", metric="accuracy", classes=["cat", "dog"]) == 1.0
    assert live_metric(rows.iloc[:1], label="y", task="regression", metric="r2") is None, "one label value"


def test_the_drop_decision_needs_enough_labeled_rows_and_a_reference():
    common = dict(model_version="3", metric="roc_auc", reference=0.81, min_rows=100, max_drop=0.05)
    exceeds = decide(live=0.60, labeled_rows=150, **common)
    assert exceeds.exceeds and exceeds.drop == pytest.approx(0.21)
    assert exceeds.reason.startswith("live roc_auc of version 3 dropped by 0.2100 > 0.0500 from its holdout 0.8100")
    within = decide(live=0.79, labeled_rows=150, **common)
    assert within.status == "within" and not within.exceeds and "dropped by 0.0200 <= 0.0500" in within.reason
    better = decide(live=0.9, labeled_rows=150, **common)
    assert better.status == "within" and "roc_auc of version 3 did not drop from its holdout 0.8100" in better.reason
    few = decide(live=0.10, labeled_rows=99, **common)
    assert few.status == "inconclusive" and not few.exceeds and "fewer than the 100 needed" in few.reason
    assert decide(live=None, labeled_rows=500, **common).status == "inconclusive"
    no_reference = decide(live=0.1, labeled_rows=500, **{**common, "reference": None})
    assert no_reference.status == "unavailable" and "logged no holdout roc_auc" in no_reference.reason
    assert decide(live=0.1, labeled_rows=500, **{**common, "max_drop": None}).status == "unavailable"
    assert exceeds.to_dict()["drop"] == 0.21


def test_labels_arriving_as_numbers_or_text_ids_join_the_same():
    labels = pd.DataFrame({"request_id": ["b"], "request_row": [np.nan], "is_fraud": [1]})
    assert len(join_labels(_log(), labels, label="is_fraud").rows) == 1


def test_a_day_computed_with_later_labels_is_not_replaced_by_an_older_interval(tmp_path):
    import json
    from datetime import date

    from mlops_provider.operators.labels import LabelFeedbackOperator

    operator = LabelFeedbackOperator(task_id="feedback", model_name="m", dataset="d", label_column="is_fraud")
    zone, rows = f"file://{tmp_path}", _log().iloc[:2]
    metrics = tmp_path / "dt=2031-05-01" / "metrics.json"

    def write(value: float, through: str) -> None:
        operator._write_day(
            zone, "2031-05-01", rows, [{"model_version": "1", "value": value}], date.fromisoformat(through)
        )

    write(0.7, "2031-05-08")
    write(0.5, "2031-05-03")  # a backfill of an older interval: fewer labels, kept out
    assert json.loads(metrics.read_text())["versions"][0]["value"] == 0.7
    write(0.9, "2031-05-08")  # a re-run of the same interval replaces its output
    assert json.loads(metrics.read_text()) == {
        "day": "2031-05-01",
        "labels_through": "2031-05-08",
        "versions": [{"model_version": "1", "value": 0.9}],
    }
    assert len(pd.read_parquet(tmp_path / "dt=2031-05-01" / "labeled.parquet")) == 2
