"""``make demo MODEL=<name>``: which landed days train and which are monitored, and the errors before Airflow runs."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from include.demo import DemoError, landed_days, spec_demo, split_days


def _days(n: int) -> list[date]:
    return [date(2026, 3, 1) + timedelta(days=i) for i in range(n)]


def test_newest_days_are_monitored_when_there_are_enough():
    # A quarter of the days, at most 3: enough history stays for training.
    assert split_days(_days(14)) == (date(2026, 3, 11), 11, _days(14)[-3:])
    assert split_days(_days(10)) == (date(2026, 3, 8), 8, _days(10)[-2:])
    assert split_days(_days(5)) == (date(2026, 3, 4), 4, _days(5)[-1:])
    assert split_days(_days(3)) == (date(2026, 3, 3), 3, [])
    # A gap inside the window still counts as calendar days (the DAG's window is a date range).
    assert split_days([date(2026, 3, 1), date(2026, 3, 5)]) == (date(2026, 3, 5), 5, [])


def test_landed_days_read_the_partitions(tmp_path: Path):
    for day in ("2026-03-02", "2026-03-01"):
        (tmp_path / "landing" / "events" / f"dt={day}").mkdir(parents=True)
    (tmp_path / "landing" / "events" / "_tmp").mkdir()
    assert landed_days(tmp_path.as_uri(), "events") == [date(2026, 3, 1), date(2026, 3, 2)]
    assert landed_days(tmp_path.as_uri(), "other") == []


def test_an_unknown_model_names_the_specs_and_the_command(tmp_path: Path, monkeypatch):
    (tmp_path / "known.yaml").write_text("name: known\n")
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_SPECS_FOLDER", str(tmp_path))
    with pytest.raises(DemoError, match=r"no spec 'missing' in .* \(specs: known\); write one with make new-model"):
        spec_demo("missing", tmp_path / "summary.json")
