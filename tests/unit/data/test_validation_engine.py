"""The vectorised validation engine and the contract parser, without Airflow."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from include.data_generator import generate_day
from mlops_provider.exceptions import SchemaMismatchError
from mlops_provider.validation.contract import ContractError, load_contract, parse_contract
from mlops_provider.validation.engine import validate_frame

DAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture(scope="module")
def contract(request):
    from pathlib import Path

    return load_contract("include/contracts/transactions.yaml", Path(__file__).resolve().parents[3])


def test_clean_data_is_typed_and_passes(contract):
    result = validate_frame(generate_day(DAY, 500), contract, partition_date=DAY, now=NOW)
    assert result.report["passed"] and result.report["invalid_rows"] == 0
    assert result.valid["customer_id"].dtype == "int64" and str(result.valid["event_timestamp"].dtype).endswith("UTC]")
    assert list(result.quarantine.columns)[-1] == "_failed_checks"


@pytest.mark.parametrize("share", [0.0, 0.01, 0.2, 0.6])
def test_every_row_lands_once(contract, share):
    df = generate_day(DAY, 700, bad_row_share=share)
    result = validate_frame(df, contract, partition_date=DAY, now=NOW)
    assert len(result.valid) + len(result.quarantine) == len(df)
    assert set(result.valid["transaction_id"]).isdisjoint(
        set(result.quarantine.loc[~result.quarantine["_failed_checks"].str.contains("unique"), "transaction_id"])
    )


def test_text_columns_are_parsed_row_by_row(contract):
    df = generate_day(DAY, 200)
    df["amount"] = df["amount"].map("{:.2f}".format).astype(object)
    df.loc[3, "amount"] = "twelve"
    df.loc[4, "amount"] = "1e9"
    result = validate_frame(df, contract, partition_date=DAY, now=NOW)
    assert result.report["failed_checks"] == {"amount:type": 1, "amount:max": 1}
    assert result.quarantine.set_index("transaction_id").loc[df.loc[3, "transaction_id"], "amount"] == "twelve"


def test_pattern_and_allowed(contract):
    df = generate_day(DAY, 200)
    df.loc[0, "country"] = "Germany"
    df.loc[1, "channel"] = "telepathy"
    df.loc[2, "card_present"] = 2
    result = validate_frame(df, contract, partition_date=DAY, now=NOW)
    assert result.report["failed_checks"] == {"country:pattern": 1, "channel:allowed": 1, "card_present:allowed": 1}


def test_outside_partition_and_freshness(contract):
    df = generate_day(DAY, 200)
    df.loc[0, "event_timestamp"] = pd.Timestamp("2026-10-20", tz="UTC")
    result = validate_frame(df, contract, partition_date=DAY, now=NOW)
    assert result.report["failed_checks"] == {"event_timestamp:within_partition": 1}
    stale = df[df["event_timestamp"] < pd.Timestamp("2026-11-01 10:00", tz="UTC")]
    report = validate_frame(stale, contract, partition_date=DAY, now=NOW).report
    freshness = next(c for c in report["checks"] if c["name"] == "dataset:freshness")
    assert not freshness["passed"] and freshness["severity"] == "warn" and report["passed"]


def test_schema_mismatch_for_incompatible_type(contract):
    df = generate_day(DAY, 50)
    df["amount"] = pd.Timestamp("2026-01-01", tz="UTC")
    with pytest.raises(SchemaMismatchError, match="column 'amount' is datetime"):
        validate_frame(df, contract, partition_date=DAY, now=NOW)


def test_extra_column_policies(contract):
    from dataclasses import replace

    df = generate_day(DAY, 50).assign(device="x")
    kept = validate_frame(df, replace(contract, extra_columns="keep"), partition_date=DAY, now=NOW)
    assert "device" in kept.valid.columns
    dropped = validate_frame(df, replace(contract, extra_columns="drop"), partition_date=DAY, now=NOW)
    assert "device" not in dropped.valid.columns and dropped.report["schema"]["dropped_columns"] == ["device"]
    assert "device" in dropped.quarantine.columns  # quarantine keeps the input as it was


def test_contract_errors_name_the_key():
    with pytest.raises(ContractError, match=r"columns.amount.type: 'money'"):
        parse_contract({"columns": {"amount": {"type": "money"}}})
    with pytest.raises(ContractError, match="unknown keys"):
        parse_contract({"columns": {"amount": {"type": "float64", "minimum": 0}}})
    with pytest.raises(ContractError, match="dataset_checks.row_counts"):
        parse_contract({"columns": {"a": "int64"}, "dataset_checks": {"row_counts": {}}})
    with pytest.raises(ContractError, match="does not exist"):
        load_contract("nope.yaml")
