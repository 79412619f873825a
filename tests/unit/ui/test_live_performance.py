"""The MLOps page's live performance: read from the ``live_performance`` zone, shown per day and version."""

from __future__ import annotations

import json

from mlops_provider.ui.app import live_performance_html
from mlops_provider.ui.data import collect_live_performance


def _day(root, model: str, day: str, versions: list[dict]) -> None:
    folder = root / "live_performance" / model / f"dt={day}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"day": day, "labels_through": "2031-05-09", "versions": versions}))


def test_live_performance_per_day_and_version_oldest_first(tmp_path):
    row = {"metric": "roc_auc", "labeled_rows": 40, "unlabeled_rows": 2}
    _day(tmp_path, "m", "2031-05-02", [{**row, "day": "2031-05-02", "model_version": "10", "value": 0.7},
                                        {**row, "day": "2031-05-02", "model_version": "9", "value": 0.8}])  # fmt: skip
    _day(tmp_path, "m", "2031-05-01", [{**row, "day": "2031-05-01", "model_version": "9", "value": None}])
    (tmp_path / "live_performance" / "m" / "dt=2031-05-03").mkdir()  # a day being written: no metrics.json yet
    rows = collect_live_performance(f"file://{tmp_path}", "m")
    assert [(r["day"], r["model_version"]) for r in rows] == [
        ("2031-05-01", "9"),
        ("2031-05-02", "9"),
        ("2031-05-02", "10"),
    ]
    assert rows[0]["labels_through"] == "2031-05-09"
    assert (
        collect_live_performance(f"file://{tmp_path}", "../m") == [] and collect_live_performance("/nowhere", "m") == []
    )

    html = live_performance_html(rows)
    assert html.index("2031-05-02") < html.index("2031-05-01"), "newest day first"
    assert "roc_auc 0.700" in html and "roc_auc n/a" in html and "<td>40</td><td>2</td>" in html
    assert live_performance_html([]) == ""
    assert "&lt;script&gt;" in live_performance_html([{**rows[0], "model_version": "<script>"}])
