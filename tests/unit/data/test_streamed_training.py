"""The trainer's streamed path: a snapshot above ``external_memory_threshold_mb`` trains through
``ExtMemQuantileDMatrix`` batch by batch, with the same split, categories and model quality as the whole read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROWS = 20_000


@pytest.fixture
def snapshot(tmp_path):
    """A time-sorted snapshot in small row groups (several batches) with a numeric signal and a string feature."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((ROWS, 3)).astype("float64")
    kind = rng.choice(["a", "b", "c"], ROWS)
    logit = 1.5 * x[:, 0] - x[:, 1] + np.where(kind == "a", 1.0, -0.5) - 1.0
    frame = pd.DataFrame(
        {
            "entity": rng.integers(0, 1000, ROWS),
            "ts": pd.date_range("2026-01-01", periods=ROWS, freq="min", tz="UTC").astype("datetime64[us, UTC]"),
            "f0": x[:, 0],
            "f1": x[:, 1],
            "f2": x[:, 2],
            "kind": kind,
            "label": (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype("int64"),
        }
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "data.parquet", row_group_size=2_500)
    manifest = {
        "label_column": "label",
        "timestamp_column": "ts",
        "feature_columns": ["f0", "f1", "f2", "kind"],
        "categorical_columns": ["kind"],
        "entity_columns": ["entity"],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path, manifest


def _params(threshold_mb: float) -> dict:
    from include.trainer.params import DEFAULT_PARAMS

    return {**DEFAULT_PARAMS, "n_estimators": 25, "external_memory_threshold_mb": threshold_mb}


def test_a_snapshot_above_the_threshold_trains_from_external_memory_as_well_as_read_whole(snapshot, monkeypatch):
    import include.trainer.data as data_module
    from include.trainer.data import ParquetTrainPart, load_training_data
    from include.trainer.fit import fit, matrices, training_plan

    folder, manifest = snapshot
    monkeypatch.setattr(data_module, "STREAM_BATCH_ROWS", 3_500)  # several batches, not aligned with row groups
    whole = load_training_data(str(folder), manifest, _params(0), "binary")
    streamed = load_training_data(str(folder), manifest, _params(0.01), "binary")  # 20k x 4 x 4 B = 0.3 MiB > 0.01
    assert isinstance(streamed.x_train, ParquetTrainPart) and not isinstance(whole.x_train, ParquetTrainPart)
    assert len(streamed.x_train) == len(whole.x_train) and streamed.categories == whole.categories == {
        "kind": ["a", "b", "c"]
    }
    np.testing.assert_array_equal(streamed.y_train, whole.y_train)
    pd.testing.assert_frame_equal(streamed.x_hold, whole.x_hold)
    batches = list(streamed.x_train.batches())
    assert [len(x) for x, _ in batches][:2] == [3_500, 3_500] and sum(len(x) for x, _ in batches) == len(whole.x_train)

    plan = training_plan(_params(0), gpu=False)
    dtrain, _ = matrices(plan, streamed, plan["booster"])
    assert type(dtrain).__name__ == "ExtMemQuantileDMatrix" and dtrain.num_row() == len(whole.x_train)
    fitted_whole = fit(_params(0), plan, whole)
    fitted_streamed = fit(_params(0.01), plan, streamed)
    # Quantile sketches of streamed batches differ slightly from one sketch of the whole: the same quality, not bits.
    assert fitted_streamed.holdout_metrics["roc_auc"] == pytest.approx(
        fitted_whole.holdout_metrics["roc_auc"], abs=0.01
    )
    assert fitted_whole.holdout_metrics["roc_auc"] > 0.75


def test_a_streamed_snapshot_must_be_sorted_by_time(snapshot):
    from include.trainer.data import load_training_data
    from include.trainer.params import TrainingError

    folder, manifest = snapshot
    table = pq.read_table(folder / "data.parquet")
    pq.write_table(table.take(np.arange(table.num_rows)[::-1]), folder / "data.parquet")
    with pytest.raises(TrainingError, match="not sorted by 'ts'.*external_memory_threshold_mb"):
        load_training_data(str(folder), manifest, _params(0.01), "binary")
