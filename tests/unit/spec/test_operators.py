"""What the spec adds to the data operators: derived columns at ingestion and an inline contract in validation."""

from __future__ import annotations

from unittest import mock

import pandas as pd
import pytest

CONTRACT = {
    "dataset": "orders",
    "timestamp_column": "ordered_at",
    "columns": {
        "ordered_at": {"type": "timestamp", "nullable": False},
        "refund_cents": {"type": "int64", "nullable": False},
        "refund_value": {"type": "float64", "nullable": False},
        "refunded": {"type": "int64", "nullable": False, "allowed": [0, 1]},
    },
}


@pytest.fixture
def zones(tmp_path, monkeypatch):
    from mlops_provider.settings import reset_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__DATA_ROOT", tmp_path.as_uri())
    reset_settings()
    yield tmp_path
    reset_settings()


def test_ingestion_derives_and_validation_takes_the_contract_inline(zones):
    from mlops_provider.operators.ingestion import IngestionOperator
    from mlops_provider.operators.validation import DataValidationOperator

    landing = zones / "landing" / "orders" / "dt=2026-03-02"
    landing.mkdir(parents=True)
    (landing / "part-0.jsonl").write_text(
        '{"ordered_at": "2026-03-02T10:00:00Z", "refund_cents": 0}\n'
        '{"ordered_at": "2026-03-02T11:00:00Z", "refund_cents": 1250}\n'
    )
    context = mock.MagicMock()
    ingest = IngestionOperator(
        task_id="ingest",
        dataset="orders",
        partition_start="2026-03-02",
        derive={"refund_value": "refund_cents / 100", "refunded": "refund_value > 0"},
    )
    ingest.execute(context)
    raw = pd.read_parquet(zones / "raw" / "orders" / "dt=2026-03-02" / "data.parquet")
    assert raw["refund_value"].tolist() == [0.0, 12.5] and raw["refunded"].tolist() == [0, 1]

    validate = DataValidationOperator(
        task_id="validate", dataset="orders", contract=CONTRACT, partition_start="2026-03-02"
    )
    validate.execute(context)
    validated = pd.read_parquet(zones / "validated" / "orders" / "dt=2026-03-02" / "data.parquet")
    assert validated["refunded"].tolist() == [0, 1]
