"""The example data generator: deterministic, realistic, learnable, with drift and bad-row switches."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd

from include.data_generator import BAD_ROW_KINDS, generate_day, generate_days, to_bytes

DAY = date(2026, 11, 1)


def test_same_seed_same_bytes_and_partitions_independent_of_range(tmp_path):
    first = generate_days(str(tmp_path / "a"), DAY, 3, rows_per_day=300)
    second = generate_days(str(tmp_path / "b"), date(2026, 11, 2), 1, rows_per_day=300)
    assert [Path(u.removeprefix("file://")).read_bytes() for u in first[1:2]] == [
        Path(second[0].removeprefix("file://")).read_bytes()
    ]
    digest = hashlib.sha256(to_bytes(generate_day(DAY, 500, seed=3), "csv")).hexdigest()
    assert digest == hashlib.sha256(to_bytes(generate_day(DAY, 500, seed=3), "csv")).hexdigest()
    assert digest != hashlib.sha256(to_bytes(generate_day(DAY, 500, seed=4), "csv")).hexdigest()
    assert first[0].endswith("/landing/transactions/dt=2026-11-01/part-0.parquet")


def test_schema_and_fraud_rate_and_learnable_signal():
    df = pd.concat([generate_day(date(2026, 11, d), 4000) for d in range(1, 6)], ignore_index=True)
    assert list(df.columns) == [
        "transaction_id",
        "customer_id",
        "merchant_id",
        "event_timestamp",
        "amount",
        "merchant_category",
        "country",
        "channel",
        "card_present",
        "is_fraud",
    ]
    assert df["transaction_id"].is_unique and (df["amount"] >= 0).all()
    assert str(df["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert 0.008 <= df["is_fraud"].mean() <= 0.025
    night = df["event_timestamp"].dt.hour < 6
    assert df.loc[night, "is_fraud"].mean() > 1.5 * df.loc[~night, "is_fraud"].mean()
    assert df.loc[df.is_fraud == 1, "amount"].median() > 2 * df.loc[df.is_fraud == 0, "amount"].median()
    assert set(df["channel"]) == {"online", "pos", "atm"}
    assert (df.loc[df.channel == "online", "card_present"] == 0).all()


def test_drift_switches_move_distributions():
    base = generate_day(DAY, 5000)
    drifted = generate_day(DAY, 5000, covariate_drift=1.0)
    assert drifted["amount"].median() > 2 * base["amount"].median()
    assert (drifted["event_timestamp"].dt.hour < 6).mean() > 2 * (base["event_timestamp"].dt.hour < 6).mean()
    assert (drifted["merchant_category"] == "electronics").mean() > 2 * (
        base["merchant_category"] == "electronics"
    ).mean()
    labels = pd.concat([generate_day(date(2026, 11, d), 5000, label_drift=1.0) for d in range(1, 4)])
    plain = pd.concat([generate_day(date(2026, 11, d), 5000) for d in range(1, 4)])
    assert labels["is_fraud"].mean() > 1.8 * plain["is_fraud"].mean()


def test_bad_rows_cover_every_kind():
    df = generate_day(DAY, 1000, bad_row_share=0.05)
    assert len(df) == 1000 and len(BAD_ROW_KINDS) == 5
    # 10 rows of each kind (a duplicate may repeat a row that was broken another way, hence >=).
    assert df["customer_id"].isna().sum() >= 5 and df["merchant_category"].isna().sum() >= 5
    assert df["amount"].str.endswith("EUR").sum() >= 10
    assert (pd.to_numeric(df["amount"], errors="coerce") < 0).sum() >= 5
    assert (df["merchant_category"] == "unknown_category").sum() >= 5
    assert df["transaction_id"].duplicated().sum() >= 10
    parsed = pd.to_datetime(df["event_timestamp"], errors="coerce", utc=True, format="ISO8601")
    assert parsed.isna().sum() >= 10


def test_cli(tmp_path):
    repo = Path(__file__).resolve().parents[3]
    help_text = subprocess.run(
        [sys.executable, "-m", "include.data_generator", "--help"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert "--bad-row-share" in help_text and "--covariate-drift" in help_text
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.data_generator",
            "--root",
            str(tmp_path),
            "--start",
            "2026-11-01",
            "--days",
            "2",
            "--rows-per-day",
            "50",
            "--format",
            "csv",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(out) == 2 and out[1].endswith("dt=2026-11-02/part-0.csv")
    assert len(pd.read_csv(tmp_path / "landing/transactions/dt=2026-11-02/part-0.csv")) == 50
