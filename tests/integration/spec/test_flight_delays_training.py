"""The second example model end to end through Airflow: ``flight_delays__training``, generated from its spec.

Lands 10 days of synthetic departures (JSON lines, UTC day partitions) and the static airports table, then runs
the generated training DAG with ``dag.test()``: ingestion derives the label, validation, Feast apply and
materialization of the model's own views, the point-in-time training set with string entity keys (one of them
a model input), a timestamp column that is not ``event_timestamp``, the static table, request-time features and
a string categorical; then regression training, the gate, local deployment and the smoke test, and a real
request through the transformer with string keys and a category the model never saw.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_provider.settings import reset_settings
from tests.airflow_helpers import load_dag, task_states, task_xcom
from tests.fixtures.mlflow_server import point_mlflow_connection
from tests.loopback import free_port

pytestmark = pytest.mark.integration

FIRST = date(2026, 3, 1)
DAYS = 10
END = FIRST + timedelta(days=DAYS - 1)
WINDOW = 7
ROWS = 300


def _data_root() -> str:
    from mlops_provider.settings import get_settings

    return get_settings().data_root


def _stop_local_endpoint() -> None:
    from mlops_provider.serving.local import LocalEndpoint
    from mlops_provider.settings import get_settings

    LocalEndpoint(settings=get_settings()).stop_all()
    reset_settings()


@pytest.fixture(scope="module")
def landed() -> list[str]:
    from include.examples.flight_delays_generator import generate_days

    return generate_days(_data_root(), FIRST, DAYS, rows_per_day=ROWS, seed=11, file_format="jsonl")


@pytest.fixture(scope="module")
def trained(landed, mlflow_server):
    """The training DAG's run, once per module: the batch-scoring test scores with the champion it promotes."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_mlflow_connection(monkeypatch, mlflow_server)
        # Its own port, and the endpoint stopped afterwards: nothing left listening for later tests.
        monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
        reset_settings()
        try:
            yield load_dag("flight_delays__training").test(run_conf={"as_of": f"{END}", "window_days": WINDOW})
        finally:
            _stop_local_endpoint()


def test_training_dag_runs_the_second_example_from_data_to_a_served_model(landed, trained):
    assert landed[0].endswith("/static/airports/airports.parquet")
    assert landed[1].endswith(f"/landing/departures/dt={FIRST}/part-0.jsonl")
    dag_run = trained
    states = task_states(dag_run)
    done = ["retraining_cooldown", "ingest", "validate", "apply_features", "materialize_features"]
    done += ["build_training_set", "train", "evaluation_gate", "deploy", "smoke_test"]
    assert {t: states.get(t) for t in done} == dict.fromkeys(done, "success"), states

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
    assert {"runway_count", "hub_rank", "aircraft_type_value", "distance_km_value"} <= set(data.columns)
    assert data["origin_airport"].map(type).eq(str).all()
    # The static table joins on the string key; the categorical stays text, a native categorical of the model.
    hubs = data.groupby("origin_airport")["hub_rank"].first()
    assert hubs["ATL"] == 1 and hubs["BOS"] == 3
    assert set(data["aircraft_type_value"].dropna()) <= {"A320", "A321", "B737", "B738", "B739", "E175", "CRJ9"}
    assert "aircraft_type_value" in manifest["categorical_columns"]
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

    deployed = task_xcom(dag_run, "deploy")
    assert deployed["model_name"] == "flight_delays", deployed
    _predict_through_the_transformer(deployed, history)


def _predict_through_the_transformer(deployed: dict, history: pd.DataFrame) -> None:
    """Entity keys and the event's own columns in, a delay in minutes out; unseen categories are missing, no error."""
    from tests.serving_support import post_json

    row = history.iloc[-1]
    instance = {
        "origin_airport": row["origin_airport"],
        "carrier_code": row["carrier_code"],
        "distance_km": float(row["distance_km"]),
        "seats": float(row["seats"]),
        "scheduled_hour": float(row["scheduled_hour"]),
        "weather_severity": float(row["weather_severity"]),
    }
    unseen = {**instance, "aircraft_type": "Concorde"}
    url = f"{deployed['endpoint_url'].rstrip('/')}/v1/models/flight_delays:predict"
    status, body = post_json(url, {"instances": [{**instance, "aircraft_type": row["aircraft_type"]}, unseen]})
    assert status == 200, body
    predictions = body["predictions"]
    assert len(predictions) == 2 and all(-60 <= p <= 1440 for p in predictions), body
    # A carrier with no online features is an unknown entity: a clear 400, not a guess.
    status, body = post_json(url, {"instances": [{**instance, "aircraft_type": "A320", "carrier_code": "ZZ"}]})
    assert status == 400 and "Unknown entity in instance 0" in str(body), body


def test_batch_scoring_dag_scores_a_day_with_the_champion_as_its_training_set_was_built(trained, mlflow_connection):
    """``flight_delays__batch_scoring``: the champion's predictions on point-in-time features, idempotent per day."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.training.evaluation import booster_predict

    champion = MlflowHook().get_version_by_alias("flight_delays", "champion")
    assert champion is not None, "the training run promoted a champion"
    dag = load_dag("flight_delays__batch_scoring")
    partition = Path(_data_root().removeprefix("file://")) / "batch_scores" / "flight_delays" / f"dt={END}"
    first = dag.test(run_conf={"as_of": f"{END}", "window_days": 1})
    scores = pd.read_parquet(partition / "data.parquet")
    rerun = dag.test(run_conf={"as_of": f"{END}", "window_days": 1})
    assert [task_states(run) for run in (first, rerun)] == [{"score_batch": "success"}] * 2
    result = task_xcom(first, "score_batch")
    assert result["model_version"] == str(champion.version) and result["feature_service"] == "flight_delays_v1"
    uri = f"{_data_root()}/batch_scores/flight_delays/dt={END}/data.parquet"
    assert result["partitions"] == [{"day": f"{END}", "uri": uri, "rows": ROWS}]
    assert task_xcom(rerun, "score_batch") == result

    # One partition, one file, every validated row of the day once: the rerun replaced it with the same rows.
    assert [f.name for f in partition.iterdir()] == ["data.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(partition / "data.parquet"), scores)
    validated = pd.read_parquet(Path(_data_root().removeprefix("file://")) / "validated" / "departures" / f"dt={END}")
    assert len(scores) == len(validated) == ROWS
    keys = ["carrier_code", "origin_airport", "scheduled_departure"]
    assert set(scores.columns) == {*keys, "prediction", "model_version", "request_id"}
    assert (scores["model_version"] == str(champion.version)).all()
    assert scores["request_id"].is_unique
    assert scores["request_id"].iloc[0] == f"batch-flight_delays-v{champion.version}-{END:%Y%m%d}-000000"

    # Independently: the champion, loaded from MLflow, scores the same day's rows of its own training set.
    manifest = task_xcom(trained, "build_training_set")
    training = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    day = training[training["scheduled_departure"].dt.date == END].reset_index(drop=True)
    pd.testing.assert_frame_equal(scores[keys], day[keys], check_dtype=False)
    model = MlflowHook().load_xgboost_model("flight_delays", champion.version)
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    expected = booster_predict(booster, day, manifest["feature_columns"])
    assert scores["prediction"].to_numpy() == pytest.approx(expected, rel=1e-6, abs=1e-6)

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "batch_scores.flight_delays")
            .all()
        )
    assert len(events) == 2 and all(e.extra["model_version"] == str(champion.version) for e in events)

    # A batch row's request id traces back to the version, its run and training set, like a served request's.
    from include.trace import trace

    lineage = trace(scores["request_id"].iloc[5], "flight_delays")
    assert lineage["request"]["predictions"] == [pytest.approx(scores["prediction"].iloc[5])]
    assert lineage["model_version"]["version"] == str(champion.version)
    assert lineage["training_set"]["hash"] == manifest["hash"]

    # A new champion rescoring the day replaces the partition: every row says the version that scored it.
    client = MlflowHook().get_client()
    # The same logged model (``models:/<model id>``) registered again: a second version, no second training.
    model_id = champion.model_id or champion.source.removeprefix("models:/")
    successor = client.create_model_version("flight_delays", champion.source, run_id=champion.run_id, model_id=model_id)
    client.set_registered_model_alias("flight_delays", "champion", successor.version)
    try:
        assert task_states(dag.test(run_conf={"as_of": f"{END}", "window_days": 1})) == {"score_batch": "success"}
    finally:
        client.set_registered_model_alias("flight_delays", "champion", champion.version)
    rescored = pd.read_parquet(partition / "data.parquet")
    assert [f.name for f in partition.iterdir()] == ["data.parquet"] and len(rescored) == ROWS
    assert set(rescored["model_version"]) == {str(successor.version)}
    assert rescored["request_id"].iloc[0] == f"batch-flight_delays-v{successor.version}-{END:%Y%m%d}-000000"
    assert rescored["prediction"].to_numpy() == pytest.approx(scores["prediction"].to_numpy()), "same model file"
