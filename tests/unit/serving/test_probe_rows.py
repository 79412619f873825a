"""Probe rows of the smoke test and the rollout analysis: numbers as FP32, categorical features as text."""

from __future__ import annotations

import math

import pandas as pd

from mlops_provider.serving.analysis import ProbeRows, sample_rows, v2_request


def test_training_set_rows_keep_categoricals_as_text_in_the_column_form(tmp_path):
    frame = pd.DataFrame(
        {"distance": [120.0, 800.5, 60.0], "aircraft": ["A320", None, "E175"], "seats": [180, None, 76],
         "label": [3.0, 12.0, -1.0]}
    )  # fmt: skip
    frame.to_parquet(tmp_path / "data.parquet")
    manifest = {
        "uri": str(tmp_path / "data.parquet"),
        "feature_columns": ["distance", "aircraft", "seats"],
        "categorical_columns": ["aircraft"],
    }
    probes = sample_rows("http://127.0.0.1:9", "m", manifest)
    assert probes.columns == ("distance", "aircraft", "seats") and probes.categorical == {"aircraft"}
    assert probes.rows[1][:2] == [800.5, None] and math.isnan(probes.rows[1][2])  # a missing number stays NaN
    # Row 2 then row 0, wrapping around: one [n] tensor per feature, text as BYTES (a null stays null).
    assert probes.request(2, 2) == {
        "inputs": [
            {"name": "distance", "shape": [2], "datatype": "FP32", "data": [60.0, 120.0]},
            {"name": "aircraft", "shape": [2], "datatype": "BYTES", "data": ["E175", "A320"]},
            {"name": "seats", "shape": [2], "datatype": "FP32", "data": [76.0, 180.0]},
        ]
    }


def test_numeric_rows_use_the_single_fp32_tensor():
    probes = ProbeRows([[1.0, 2.0], [3.0, 4.0]])
    assert probes.request(1) == v2_request([[3.0, 4.0]])
    assert probes.request(1)["inputs"] == [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [3.0, 4.0]}]
