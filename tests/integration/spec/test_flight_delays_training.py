"""The second example model end to end through Airflow: ``flight_delays__training``, generated from its spec.

Lands 10 days of synthetic departures (JSON lines, UTC day partitions) and the static airports table, then runs
the generated training DAG with ``dag.test()``: ingestion derives the label, validation, Feast apply and
materialization of the model's own views, and the point-in-time training set with string entity keys, a
timestamp column that is not ``event_timestamp``, the static table and the request-time features.

Training, the gate, deployment and the smoke test need the trainer's ``task`` key (regression); where the
trainer does not know it yet, the DAG is run up to the training set only.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.airflow_helpers import load_dag, task_states, task_xcom

pytestmark = pytest.mark.integration

FIRST = date(2026, 3, 1)
DAYS = 10
END = FIRST + timedelta(days=DAYS - 1)
WINDOW = 7
ROWS = 300


def _data_root() -> str:
    from mlops_provider.settings import get_settings

    return get_settings().data_root


def _trainer_knows_tasks() -> bool:
    from include.trainer.params import DEFAULT_PARAMS

    return "task" in DEFAULT_PARAMS


@pytest.fixture(scope="module")
def landed() -> list[str]:
    from include.examples.flight_delays_generator import generate_days

    return generate_days(_data_root(), FIRST, DAYS, rows_per_day=ROWS, seed=11, file_format="jsonl")


def test_training_dag_builds_the_training_set_from_the_spec(landed, mlflow_connection):
    assert landed[0].endswith("/static/airports/airports.parquet")
    assert landed[1].endswith(f"/landing/departures/dt={FIRST}/part-0.jsonl")
    dag = load_dag("flight_delays__training")
    last = "evaluation_gate" if _trainer_knows_tasks() else "build_training_set"
    subset = dag.partial_subset(task_ids=[last], include_upstream=True, include_downstream=False)
    dag_run = subset.test(run_conf={"as_of": f"{END}", "window_days": WINDOW})
    states = task_states(dag_run)
    upstream = ["retraining_cooldown", "ingest", "validate", "apply_features", "materialize_features"]
    assert {t: states.get(t) for t in upstream} == dict.fromkeys(upstream, "success"), states
    assert states["build_training_set"] == "success", states

    # The label was derived at ingestion and validated like every other column.
    validated = Path(_data_root().removeprefix("file://")) / "validated" / "departures" / f"dt={END}" / "data.parquet"
    events = pd.read_parquet(validated)
    assert (events["departure_delay_min"] == events["gate_delay_seconds"] / 60).all()

    manifest = task_xcom(dag_run, "build_training_set")
    assert manifest["dataset"] == "departures"
    assert manifest["feature_service"] == "flight_delays_v1"
    assert manifest["label_column"] == "departure_delay_min"
    assert manifest["timestamp_column"] == "scheduled_departure"
    assert set(manifest["entity_columns"]) == {"origin_airport", "carrier_code"}
    assert manifest["rows"] == ROWS * WINDOW
    data = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    assert {"runway_count", "hub_rank", "aircraft_type_code", "distance_km_value"} <= set(data.columns)
    assert data["origin_airport"].map(type).eq(str).all()
    # The static table joins on the string key; the categorical encodes the aircraft by position.
    hubs = data.groupby("origin_airport")["hub_rank"].first()
    assert hubs["ATL"] == 1 and hubs["BOS"] == 3
    assert set(data["aircraft_type_code"]) <= set(range(7))
    # Aggregates are point in time: the traffic at the origin counts the validated departures strictly before.
    zone = validated.parent.parent
    history = pd.concat([pd.read_parquet(p) for p in sorted(zone.glob("dt=*/data.parquet"))], ignore_index=True)
    at = pd.to_datetime(history["scheduled_departure"], utc=True)
    for _, row in data.sample(40, random_state=3).iterrows():
        ts = pd.Timestamp(row["scheduled_departure"])
        same = history["origin_airport"] == row["origin_airport"]
        for window, column in (
            (pd.Timedelta(days=1), "origin_airport_count_1d"),
            (pd.Timedelta(days=7), "origin_airport_count_7d"),
        ):
            expected = int((same & (at < ts) & (at >= ts - window)).sum())
            assert row[column] == expected, (row["flight_id"] if "flight_id" in row else ts, column)
    if last == "evaluation_gate":
        assert states["train"] == "success", states
        assert states["evaluation_gate"] in ("success", "skipped"), states
