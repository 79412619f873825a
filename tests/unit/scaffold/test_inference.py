"""Inference rules of ``make new-model`` (include/scaffold.py): types, ranges, task, leaks, timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.scaffold import (
    ScaffoldError,
    _is_copy_of,
    column_type,
    infer_task,
    model_name,
    parse_timestamps,
    read_data,
    widened_range,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3], "int64"),
        ([1.5, 2.0], "float64"),
        ([1.0, None, 3.0], "int64"),  # whole numbers read as floats because of a null (CSV)
        ([True, False], "int64"),
        (["a", "b"], "string"),
        (pd.to_datetime(["2026-01-01", "2026-01-02"]), "timestamp"),
    ],
)
def test_column_type(values, expected):
    assert column_type(pd.Series(values)) == expected


def test_ranges_are_widened_by_half_the_range_and_stay_non_negative():
    assert widened_range(pd.Series([10.0, 20.0]), integer=False) == (5.0, 25.0)
    assert widened_range(pd.Series([1.0, 9.0]), integer=False) == (0.0, 13.0)  # never seen negative: floor 0
    assert widened_range(pd.Series([-4.0, 4.0]), integer=False) == (-8.0, 8.0)
    assert widened_range(pd.Series([1, 2]), integer=True) == (0.0, 3.0)  # rounded outwards
    assert widened_range(pd.Series([7.0, 7.0]), integer=False) == (3.5, 10.5)  # constant: half its magnitude


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1] * 30, "binary"),
        ([True, False] * 30, "binary"),
        ([0, 1, 2] * 30, "multiclass"),
        (["low", "mid", "high"] * 30, "multiclass"),
        ([0.0, 1.0, 2.0, 3.0] * 30, "multiclass"),
        (list(np.linspace(0, 1, 90)), "regression"),
        (list(range(90)), "regression"),
    ],
)
def test_task_from_the_label(values, task):
    inferred, _, problems = infer_task(pd.Series(values), "y")
    assert (inferred, problems) == (task, [])


def test_labels_that_fit_no_task_name_the_fix():
    _, _, problems = infer_task(pd.Series([1] * 50), "y")
    assert "single value (1)" in problems[0]
    _, _, problems = infer_task(pd.Series([1, 2] * 50), "y")
    assert "binary label is 0/1" in problems[0] and 'LABEL="y == 2"' in problems[0]
    _, _, problems = infer_task(pd.Series([f"s{i}" for i in range(30)]), "y")
    assert "30 distinct text values" in problems[0]
    _, _, problems = infer_task(pd.Series([0, 1, None] * 30), "y")
    assert "null in 30 of 90 rows" in problems[0]


def test_copies_of_the_label_are_found():
    label = pd.Series([0, 1, 1, 0, 1, 0])
    assert "equals the label" in _is_copy_of(label.copy(), label)
    assert "perfectly correlated" in _is_copy_of(label * 3.0 + 2, label)
    assert "exactly one label value" in _is_copy_of(label.map({0: "no", 1: "yes"}), label)
    assert _is_copy_of(pd.Series([1.0, 2.0, 3.0, 1.0, 5.0, 0.0]), label) is None
    assert _is_copy_of(pd.Series(["a", "a", "b", "b", "a", "b"]), label) is None


def test_timestamps_missing_or_unparsable_are_counted_with_examples():
    frame = pd.DataFrame({"t": ["2026-03-01T08:00:00Z", None, "yesterday", "2026-03-01 09:00", "31/02/2026"]})
    parsed, problems = parse_timestamps(frame, "t")
    assert "missing in 1 of 5 rows (first rows: [1])" in problems[0]
    assert "cannot be parsed in 2 of 5 rows" in problems[1] and "'yesterday'" in problems[1]
    assert parsed.iloc[0] == pd.Timestamp("2026-03-01T08:00:00Z")
    assert str(parsed.iloc[3].tz) == "UTC"  # naive values are read as UTC
    _, problems = parse_timestamps(pd.DataFrame({"t": [1_700_000_000, 1_700_000_001]}), "t")
    assert "holds numbers" in problems[0]


def test_model_name_and_formats(tmp_path: Path):
    assert model_name(Path("Flight-Delays 2026.csv")) == "flight_delays_2026"
    assert model_name(Path("2026.csv")) == "m_2026"
    with pytest.raises(ScaffoldError, match="unknown extension '.xlsx'"):
        read_data(tmp_path / "data.xlsx")
    with pytest.raises(ScaffoldError, match="no such file"):
        read_data(tmp_path / "data.csv")
