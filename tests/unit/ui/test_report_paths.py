"""The MLOps page's name check and report paths: nothing outside ``<data_root>/reports/drift/`` is reachable."""

from __future__ import annotations

import pytest

from mlops_provider.ui.data import is_safe_name, report_file_uri


@pytest.mark.parametrize("name", ["my_model", "model-2", "v1.2", "20310301T060000000000Z", "a"])
def test_ordinary_names_pass(name):
    assert is_safe_name(name)


@pytest.mark.parametrize(
    "name", ["..", ".", ".hidden", "a..b", "../etc", "a/b", "/etc", "a\\b", "%2e%2e", "", "x" * 201, "a\nb"]
)
def test_dot_segments_separators_and_hidden_names_are_rejected(name):
    assert not is_safe_name(name)


def test_report_uri_stays_under_the_reports_root(tmp_path):
    root = f"file://{tmp_path}"
    assert report_file_uri(root, "m", "r1", "report.html") == f"file://{tmp_path}/reports/drift/m/r1/report.html"
    assert report_file_uri("s3://bucket/prefix/", "m", "r1", "summary.json") == (
        "s3://bucket/prefix/reports/drift/m/r1/summary.json"
    )
    for model, run_ts, filename in [
        ("..", "secret", "report.html"),
        ("m", "..", "report.html"),
        ("/etc", "r1", "report.html"),
        ("m", "r1", "../../report.html"),
        ("m", "r1", "passwd"),
    ]:
        assert report_file_uri(root, model, run_ts, filename) is None, (model, run_ts, filename)


def test_a_symlink_out_of_the_reports_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("secret")
    drift = tmp_path / "data" / "reports" / "drift" / "m"
    drift.mkdir(parents=True)
    (drift / "r1").symlink_to(outside)
    assert report_file_uri(f"file://{tmp_path}/data", "m", "r1", "report.html") is None
