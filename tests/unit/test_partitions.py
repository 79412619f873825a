"""Daily partitions: dates, locations and reading a window of ``dt=YYYY-MM-DD`` folders."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_provider.exceptions import MlopsError
from mlops_provider.partitions import (
    list_source_files,
    partition_uri,
    read_source_file,
    read_window,
    resolve_dates,
    source_uri_for,
)


def test_resolve_dates_is_inclusive_and_refuses_reversed_windows():
    assert resolve_dates("2031-03-01", "2031-03-03") == [dt.date(2031, 3, d) for d in (1, 2, 3)]
    assert resolve_dates("2031-03-01T10:00:00+00:00", "") == [dt.date(2031, 3, 1)]
    with pytest.raises(MlopsError, match="before partition_start"):
        resolve_dates("2031-03-03", "2031-03-01")
    with pytest.raises(MlopsError, match="is not a date"):
        resolve_dates("yesterday", None)


def test_locations():
    day = dt.date(2031, 3, 1)
    assert partition_uri("file:///d/validated/x/", day) == "file:///d/validated/x/dt=2031-03-01/data.parquet"
    assert source_uri_for(None, "s3://b/p/", "x", day) == "s3://b/p/landing/x/dt=2031-03-01"
    assert source_uri_for("gs://in/{dataset}/{ds_nodash}.csv", "s3://b", "x", day) == "gs://in/x/20310301.csv"


def test_read_window_concatenates_the_days_with_data_and_names_them(tmp_path):
    zone = tmp_path / "zone"
    for day, rows in (("2031-03-01", 2), ("2031-03-03", 3)):
        folder = zone / f"dt={day}"
        folder.mkdir(parents=True)
        pd.DataFrame({"x": range(rows)}).to_parquet(folder / "a.parquet")
    (zone / "dt=2031-03-02").mkdir()  # a day without files is skipped like a missing day

    window = read_window(f"file://{zone}", "2031-02-28", "2031-03-03")
    assert window.days == ["2031-03-01", "2031-03-03"]
    assert window.frame["x"].tolist() == [0, 1, 0, 1, 2]
    frame, days = read_window(f"file://{zone}", "2031-04-01", "2031-04-02")
    assert frame.empty and days == []


def test_source_partition_lists_data_files_only_and_reads_csv(tmp_path):
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    (tmp_path / "._b.csv").write_text("junk")
    (tmp_path / "notes.txt").write_text("not data")
    files = list_source_files(ObjectStoragePath(f"file://{tmp_path}"))
    assert [f.name for f in files or []] == ["b.csv"]
    assert read_source_file(files[0]).to_pydict() == {"x": [1], "y": [2]}  # type: ignore[index]
    assert list_source_files(ObjectStoragePath(f"file://{tmp_path}/missing")) is None
