"""Time splits, metrics and threshold policies (``mlops_provider.training.evaluation``)."""

from __future__ import annotations

import pytest


def test_time_split_is_ordered_and_never_splits_a_timestamp():
    import pandas as pd

    from mlops_provider.training.evaluation import EvaluationError, holdout_window, time_split

    ts = pd.date_range("2026-01-01", periods=100, freq="h", tz="UTC").repeat(2)
    df = pd.DataFrame({"event_timestamp": ts, "x": range(200)}).sample(frac=1, random_state=1)
    split = time_split(df, "event_timestamp", validation_fraction=0.2, holdout_fraction=0.2)
    assert split.train["event_timestamp"].max() < split.validation["event_timestamp"].min()
    assert split.validation["event_timestamp"].max() < split.holdout["event_timestamp"].min()
    assert len(split.train) + len(split.validation) + len(split.holdout) == 200
    assert set(holdout_window(df, "event_timestamp", 0.2)["x"]) == set(split.holdout["x"])
    with pytest.raises(EvaluationError, match="timestamp column"):
        time_split(df, "ts", validation_fraction=0.2, holdout_fraction=0.2)


def test_time_split_of_a_sorted_frame_cuts_row_ranges_with_the_same_rows_as_a_shuffled_one():
    import pandas as pd

    from mlops_provider.training.evaluation import time_split

    ts = pd.date_range("2026-01-01", periods=100, freq="h", tz="UTC").repeat(3)
    ordered = pd.DataFrame({"event_timestamp": ts, "x": range(300)})
    shuffled = ordered.sample(frac=1, random_state=2)
    by_position = time_split(ordered, "event_timestamp", validation_fraction=0.25, holdout_fraction=0.15)
    by_mask = time_split(shuffled, "event_timestamp", validation_fraction=0.25, holdout_fraction=0.15)
    for part in ("train", "validation", "holdout"):
        pd.testing.assert_frame_equal(getattr(by_position, part), getattr(by_mask, part).sort_index())
    assert (by_position.validation_start, by_position.holdout_start) == (
        by_mask.validation_start,
        by_mask.holdout_start,
    )
    cut = len(by_position.train)
    assert cut % 3 == 0 and list(by_position.validation["x"][:1]) == [cut]  # no timestamp straddles the cut


def test_feature_matrix_is_one_float32_block_detached_from_its_source():
    import numpy as np
    import pandas as pd

    from mlops_provider.training.evaluation import feature_matrix

    source = pd.DataFrame(
        {"a": np.arange(5, dtype="float32"), "b": np.arange(5, dtype="int64"), "c": [True, False] * 2 + [True]}
    )
    frame = feature_matrix(source.iloc[1:], ["c", "a", "b"])
    assert list(frame.columns) == ["c", "a", "b"] and list(frame.index) == [1, 2, 3, 4]
    # One block: to_numpy() hands out that block (the same memory twice), not a fresh copy per call.
    assert np.shares_memory(frame.to_numpy(), frame.to_numpy()) and frame.to_numpy().dtype == np.float32
    frame.iloc[0, 1] = 99.0
    assert source["a"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_metrics_threshold_policies_and_single_class_error():
    import numpy as np

    from mlops_provider.training.evaluation import EvaluationError, binary_metrics, choose_threshold

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.random(500) * 0.4, 0, 1)
    m = binary_metrics(y, p, 0.5)
    assert m["roc_auc"] > 0.9 and 0 <= m["ece"] <= 1 and m["brier"] < 0.25 and m["threshold"] == 0.5
    assert choose_threshold(y, p, {"policy": "fixed", "value": 0.3}) == 0.3
    t = choose_threshold(y, p, {"policy": "min_precision", "min_precision": 0.95})
    assert binary_metrics(y, p, t)["precision"] >= 0.95
    assert 0 < choose_threshold(y, p, {"policy": "max_f1"}) < 1
    with pytest.raises(EvaluationError, match="both classes"):
        binary_metrics(np.zeros(10), np.zeros(10), 0.5)


def test_feature_matrix_rejects_non_numeric_features():
    import pandas as pd

    from mlops_provider.training.evaluation import EvaluationError, feature_matrix

    df = pd.DataFrame({"a": [1, 2], "b": [True, False], "c": ["x", "y"]})
    assert list(feature_matrix(df, ["b", "a"]).dtypes.astype(str)) == ["float32", "float32"]
    with pytest.raises(EvaluationError, match=r"c \(object\)"):
        feature_matrix(df, ["a", "c"])
