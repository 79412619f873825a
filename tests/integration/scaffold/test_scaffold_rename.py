"""A data file as public datasets ship them: column names with spaces and capitals, a label computed from a column.

The scaffold gives each such column an identifier and writes the mapping to the spec's ``source.rename``; a later
day that arrives from the source under its own names is renamed at ingestion and validated against the same
contract, through the generated materialization DAG. The column the label was computed from by a threshold is
kept out of the features.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_provider.settings import get_settings, reset_settings
from tests.airflow_helpers import load_dag, task_states

pytestmark = pytest.mark.integration

FIRST = date(2026, 4, 1)
DAYS = 6


def _trips(first: date, days: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(first.isoformat())
    frame = pd.DataFrame(
        {
            "Trip ID": [f"T{seed}-{i:06d}" for i in range(rows)],
            "Pickup Time": (start + pd.to_timedelta(rng.integers(0, days * 86400, rows), unit="s")).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "Pickup Zone": rng.choice([f"Zone-{i}" for i in range(12)], rows),
            "Trip Distance": rng.gamma(2.0, 1.5, rows).round(2),
            "Payment Type": rng.choice(["Credit", "Cash"], rows),
            "Tip Amount": rng.gamma(1.5, 1.2, rows).round(2),
        }
    )
    frame["Tipped"] = np.where(frame["Tip Amount"] > 1.5, "yes", "no")
    return frame


def test_columns_that_are_not_identifiers_are_renamed_at_every_ingestion(tmp_path: Path, monkeypatch):
    from include.scaffold import scaffold

    data = tmp_path / "trips.csv"
    _trips(FIRST, DAYS, 1500, seed=1).to_csv(data, index=False)
    project = tmp_path / "project"
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_SPECS_FOLDER", str(project / "include" / "models"))
    reset_settings()
    plan, files, landed = scaffold(
        data, label="Tipped == 'yes'", timestamp="Pickup Time", entities=["Pickup Zone"], name="trips_renamed",
        project_root=project,
    )  # fmt: skip
    assert len(landed) == DAYS
    spec = yaml.safe_load(files["spec"].read_text())
    assert spec["source"]["rename"] == {
        "Trip ID": "trip_id",
        "Pickup Time": "pickup_time",
        "Pickup Zone": "pickup_zone",
        "Trip Distance": "trip_distance",
        "Payment Type": "payment_type",
        "Tip Amount": "tip_amount",
    }
    assert spec["entities"] == {"pickup_zone": "string"} and spec["timestamp_column"] == "pickup_time"
    assert spec["features"]["request"] == ["trip_distance"]
    assert spec["features"]["categoricals"] == ["payment_type"]
    assert any(n.startswith("tip_amount: not a feature, a threshold on it gives the label") for n in plan.notes)

    # The next day comes from the source with the source's own names.
    day = FIRST + timedelta(days=DAYS)
    landing = Path(get_settings().data_root.removeprefix("file://")) / "landing" / "trips_renamed" / f"dt={day}"
    landing.mkdir(parents=True)
    _trips(day, 1, 300, seed=2).to_csv(landing / "part-0.csv", index=False)
    dag = load_dag("trips_renamed__materialization").partial_subset(
        task_ids=["validate"], include_upstream=True, include_downstream=False
    )
    run = dag.test(logical_date=pd.Timestamp(day.isoformat(), tz="UTC").to_pydatetime())
    assert task_states(run) == {"wait_for_source": "success", "ingest": "success", "validate": "success"}
    raw = pd.read_parquet(
        Path(get_settings().data_root.removeprefix("file://")) / "raw" / "trips_renamed" / f"dt={day}" / "data.parquet"
    )
    assert {"trip_id", "pickup_time", "pickup_zone", "tip_amount", "label"} <= set(raw.columns)
    assert "Trip ID" not in raw.columns and len(raw) == 300
    assert int(raw["label"].sum()) == int((raw["tip_amount"] > 1.5).sum())
