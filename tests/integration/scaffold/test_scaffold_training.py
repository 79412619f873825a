"""A scaffolded model end to end through Airflow: data file -> ``make new-model`` -> ``<name>__training``.

The scaffold writes into a temporary project folder, ``[mlops] model_specs_folder`` points there, and the
generated training DAG runs with ``dag.test()`` on the landed days: ingestion derives the label from the
expression, validation applies the inferred contract, Feast registers and materializes the model's views, and
the point-in-time training set has the request features, the categorical (text) and the count aggregates; then
training, the gate, local deployment and the smoke test (which probes the categorical as text).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_provider.settings import reset_settings
from tests.airflow_helpers import load_dag, task_states, task_xcom
from tests.integration.scaffold.test_scaffold import DAYS, FIRST, _frame, _names, _write
from tests.loopback import free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _stop_local_endpoint() -> None:
    from mlops_provider.serving.local import LocalEndpoint
    from mlops_provider.settings import get_settings

    LocalEndpoint(settings=get_settings()).stop_all()
    reset_settings()


def test_scaffolded_model_trains_through_its_generated_dag(tmp_path: Path, monkeypatch, request, mlflow_connection):
    from include.scaffold import scaffold

    names = _names(random.SystemRandom().randrange(10**6))
    frame = _frame(names, rows=1200)
    # The label reads the amount, which the scaffold keeps out of the features: give a feature a noisy view of it,
    # so the model has something to learn and the gate (roc_auc >= 0.6) can promote it.
    noise = np.random.default_rng(5).normal(0.0, 0.4, len(frame))
    frame[names["score"]] = (frame[names["amount"]] / 40.0 + noise).round(4)
    data = _write(frame, tmp_path / "events.jsonl")
    project = tmp_path / "project"
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_SPECS_FOLDER", str(project / "include" / "models"))
    plan, _, landed = scaffold(
        data,
        label=f"{names['amount']} * 2 > 150",
        timestamp=names["timestamp"],
        entities=[names["entity"]],
        name="scaffold_e2e",
        project_root=project,
    )
    assert len(landed) == DAYS

    # Its own port, and the endpoint stopped afterwards: nothing left listening for later tests (or runs).
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    reset_settings()
    request.addfinalizer(_stop_local_endpoint)
    dag = load_dag("scaffold_e2e__training")
    as_of = pd.Timestamp(FIRST) + pd.Timedelta(days=DAYS - 1)
    dag_run = dag.test(run_conf={"as_of": f"{as_of:%Y-%m-%d}", "window_days": DAYS})
    states = task_states(dag_run)
    done = ["ingest", "validate", "apply_features", "materialize_features", "build_training_set"]
    done += ["train", "evaluation_gate", "deploy", "smoke_test"]
    assert {t: states.get(t) for t in done} == dict.fromkeys(done, "success"), states

    manifest = task_xcom(dag_run, "build_training_set")
    assert manifest["label_column"] == "label" and manifest["timestamp_column"] == names["timestamp"]
    assert manifest["rows"] == len(plan.frame)
    frame = pd.read_parquet(manifest["uri"].removeprefix("file://"))
    expected = {f"{names['score']}_value", f"{names['tier']}_value", f"{names['entity']}_count_7d"}
    assert expected <= set(manifest["feature_columns"]), manifest["feature_columns"]
    # The label was derived at ingestion from the expression, as the spec says: the same positives.
    assert set(frame["label"]) == {0, 1}
    assert int(frame["label"].sum()) == int(plan.frame["label"].sum())
