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


def test_source_uri_template_fills_only_the_named_placeholders():
    day = dt.date(2031, 3, 1)
    uri = source_uri_for("s3://b/{dataset}/{ds}/{ds_nodash}/{{literal}}", "file:///d", "sales", day)
    assert uri == "s3://b/sales/2031-03-01/20310301/{literal}"
    # str.format would evaluate attribute and index access, conversions and format specs of a user template.
    for template in ("s3://b/{ds.__class__}", "s3://b/{ds[0]}", "s3://b/{ds!r}", "s3://b/{ds:>20}"):
        with pytest.raises(MlopsError, match="placeholder"):
            source_uri_for(template, "file:///d", "sales", day)
    with pytest.raises(MlopsError, match=r"\{bucket\}.*\{ds\}, \{ds_nodash\}, \{dataset\}"):
        source_uri_for("s3://{bucket}/{ds}", "file:///d", "sales", day)
    with pytest.raises(MlopsError, match="unbalanced"):
        source_uri_for("s3://b/{ds", "file:///d", "sales", day)


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", "a\\b", "", ".hidden", "x" * 129, "a b", "sales/../../x"])
def test_path_segments_are_checked_everywhere_a_zone_path_is_built(name):
    from mlops_provider.exceptions import InvalidNameError
    from mlops_provider.partitions import safe_segment, zone_uri

    with pytest.raises(InvalidNameError, match="dataset name") as err:
        safe_segment(name, "dataset name")
    assert repr(name)[:40] in str(err.value)
    with pytest.raises(InvalidNameError):
        zone_uri("file:///d", "raw", name)
    with pytest.raises(InvalidNameError):
        source_uri_for(None, "file:///d", name, dt.date(2031, 3, 1))
    with pytest.raises(InvalidNameError):
        source_uri_for("s3://b/{dataset}/{ds}", "file:///d", name, dt.date(2031, 3, 1))


def test_valid_names_pass_and_zones_nest():
    from mlops_provider.exceptions import InvalidNameError
    from mlops_provider.partitions import safe_segment, zone_uri

    for name in ("sales", "Sales_2031.v1", "a-b", "0" * 128):
        assert safe_segment(name) == name
    assert zone_uri("file:///d/", "reports/validation", "sales") == "file:///d/reports/validation/sales"
    with pytest.raises(InvalidNameError, match="zone"):
        zone_uri("file:///d", "raw/../../etc", "sales")


def test_source_partition_reads_json_lines(tmp_path):
    from airflow.sdk import ObjectStoragePath

    from mlops_provider.exceptions import SourceDataFormatError

    (tmp_path / "part-0.jsonl").write_text('{"code":"AB","n":1}\n{"code":"CD","n":2}\n')
    (tmp_path / "part-1.ndjson").write_text('{"code":"EF","n":3}\n')
    files = list_source_files(ObjectStoragePath(f"file://{tmp_path}"))
    assert [f.name for f in files or []] == ["part-0.jsonl", "part-1.ndjson"]
    assert read_source_file(files[0]).to_pydict() == {"code": ["AB", "CD"], "n": [1, 2]}  # type: ignore[index]
    assert read_source_file(files[1], "jsonl").num_rows == 1  # type: ignore[index]
    (tmp_path / "part-0.jsonl").write_text('{"code": "AB", "n": 1\n')
    with pytest.raises(SourceDataFormatError, match="is not a readable JSON lines file"):
        read_source_file(files[0])  # type: ignore[index]
