"""Deterministic generator of realistic card transactions for the fraud example.

Writes one partition per day to ``<root>/landing/transactions/dt=YYYY-MM-DD/part-0.parquet`` (or ``.csv``)
with the columns of the ``transactions`` data contract::

    transaction_id, customer_id, merchant_id, event_timestamp, amount, merchant_category,
    country, channel, card_present, is_fraud

The world (customers and merchants) depends only on ``seed``; each day's rows depend only on
``seed`` and the date, so the same arguments always give the same bytes and a partition does not
change when the generated range grows.

Fraud (about 1.5 %) depends on the features a model can learn from: the amount relative to the
customer's usual spend, night hours, risky merchant categories, card-not-present online payments,
payments abroad and new customers with a burst of activity.

Switches:

* ``covariate_drift`` (0 = none, 1 = strong): amounts scale up, the category mix moves to
  electronics/travel/online, and activity moves into the night.
* ``label_drift`` (0 = none, 1 = strong): the fraud rate rises (about 2.5x at 1.0) without the
  features changing.
* ``bad_row_share``: that share of rows is broken, cycling through nulls, wrong types,
  out-of-range values, duplicates and unparseable timestamps. Columns that then hold wrong types
  are written as strings, the way messy upstream exports look.

CLI: ``python -m include.data_generator --root file:///tmp/data --start 2026-11-01 --days 7``.
"""

from __future__ import annotations

import argparse
import io
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DATASET = "transactions"
CATEGORIES = (
    "grocery",
    "restaurants",
    "fuel",
    "retail",
    "electronics",
    "travel",
    "entertainment",
    "health",
    "cash_withdrawal",
    "online_services",
)
# Base share of transactions per category, typical amount multiplier and fraud log-odds shift.
_CATEGORY_WEIGHT = (0.24, 0.16, 0.10, 0.14, 0.05, 0.04, 0.07, 0.06, 0.06, 0.08)
_CATEGORY_AMOUNT = (0.8, 0.9, 1.1, 1.3, 4.0, 5.0, 1.0, 1.2, 2.0, 0.7)
_CATEGORY_RISK = (-0.6, -0.4, -0.2, 0.0, 1.1, 0.9, 0.1, -0.3, 0.8, 0.6)
# Categories that drift pulls the mix towards.
_DRIFT_CATEGORY_WEIGHT = (0.10, 0.10, 0.06, 0.12, 0.18, 0.14, 0.06, 0.04, 0.05, 0.15)
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "GB", "US", "PL", "SE", "PT")
_COUNTRY_WEIGHT = (0.30, 0.16, 0.10, 0.10, 0.10, 0.08, 0.06, 0.04, 0.03, 0.03)
CHANNELS = ("online", "pos", "atm")
BAD_ROW_KINDS = ("null", "wrong_type", "out_of_range", "duplicate", "bad_timestamp")

_BASE_LOGIT = -4.7


def _world(seed: int, n_customers: int, n_merchants: int) -> dict[str, np.ndarray]:
    """Customers and merchants; depends only on the seed and the sizes."""
    import numpy as np

    rng = np.random.default_rng([seed, 0])
    return {
        "customer_activity": rng.gamma(shape=1.2, scale=1.0, size=n_customers),
        "customer_scale": np.exp(rng.normal(3.4, 0.6, size=n_customers)),  # ~30 EUR median spend
        "customer_country": rng.choice(len(COUNTRIES), size=n_customers, p=_COUNTRY_WEIGHT),
        "customer_risk": rng.normal(0.0, 0.4, size=n_customers),
        "merchant_category": rng.choice(len(CATEGORIES), size=n_merchants, p=_CATEGORY_WEIGHT),
        "merchant_country": rng.choice(len(COUNTRIES), size=n_merchants, p=_COUNTRY_WEIGHT),
        "merchant_popularity": rng.pareto(1.5, size=n_merchants) + 1.0,
    }


def _sizes(rows_per_day: int) -> tuple[int, int]:
    return max(50, rows_per_day // 2), max(20, rows_per_day // 10)


def generate_day(
    day: date,
    rows: int = 2000,
    seed: int = 7,
    covariate_drift: float = 0.0,
    label_drift: float = 0.0,
    bad_row_share: float = 0.0,
    *,
    world_rows_per_day: int | None = None,
) -> pd.DataFrame:
    """Return one day of transactions as a DataFrame (clean typed columns unless ``bad_row_share`` > 0).

    :param day: the calendar day (UTC) of the partition.
    :param rows: number of rows.
    :param seed: seed of the world and of the day's draws.
    :param covariate_drift: strength of the feature drift (0 = none).
    :param label_drift: strength of the fraud-rate drift (0 = none).
    :param bad_row_share: share of rows to break (0..1).
    :param world_rows_per_day: sizes the customer/merchant population (defaults to ``rows``), so a
        day with a row-count spike still uses the same population.
    """
    import numpy as np
    import pandas as pd

    n_customers, n_merchants = _sizes(world_rows_per_day or rows)
    world = _world(seed, n_customers, n_merchants)
    rng = np.random.default_rng([seed, day.toordinal()])
    d = max(0.0, float(covariate_drift))

    # Who pays where. Drift moves the category mix by re-weighting merchants of each category.
    cust_p = world["customer_activity"] / world["customer_activity"].sum()
    customer_idx = rng.choice(n_customers, size=rows, p=cust_p)
    cat_shift = np.asarray(_DRIFT_CATEGORY_WEIGHT) / np.asarray(_CATEGORY_WEIGHT)
    merchant_w = world["merchant_popularity"] * (1.0 + min(d, 1.0) * (cat_shift[world["merchant_category"]] - 1.0))
    merchant_idx = rng.choice(n_merchants, size=rows, p=merchant_w / merchant_w.sum())
    category = world["merchant_category"][merchant_idx]

    # When: a day curve peaking at noon and in the evening; drift moves activity into the night.
    night_p = min(0.9, 0.08 + 0.30 * d)
    is_night_draw = rng.random(rows) < night_p
    day_hours = np.clip(rng.normal(14.5, 4.0, size=rows), 6, 23.99)
    night_hours = rng.uniform(0, 6, size=rows)
    hours = np.where(is_night_draw, night_hours, day_hours)
    micros = (hours * 3_600_000_000).astype("int64") + rng.integers(0, 1_000_000, size=rows)
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    order = np.argsort(micros, kind="stable")
    customer_idx, merchant_idx, category, micros, hours = (
        customer_idx[order],
        merchant_idx[order],
        category[order],
        micros[order],
        hours[order],
    )

    # How: cash withdrawals at ATMs, online services online, the rest mostly at the point of sale.
    online_p = np.where(category == CATEGORIES.index("online_services"), 0.95, 0.25 + 0.2 * min(d, 1.0))
    channel_idx = np.where(rng.random(rows) < online_p, 0, 1)
    channel_idx = np.where(category == CATEGORIES.index("cash_withdrawal"), 2, channel_idx)
    card_present = np.where(channel_idx == 0, 0, (rng.random(rows) < 0.97).astype("int64"))
    abroad = rng.random(rows) < 0.05
    country_idx = np.where(abroad, rng.integers(0, len(COUNTRIES), size=rows), world["customer_country"][customer_idx])

    # How much: the customer's scale times the category's, lognormal noise; drift inflates amounts.
    scale = world["customer_scale"][customer_idx] * np.asarray(_CATEGORY_AMOUNT)[category]
    amount = scale * np.exp(rng.normal(0.0, 0.7, size=rows)) * (1.0 + 1.5 * d)

    # Fraud: a logistic model over what a model can see, so the label is learnable.
    night = (hours < 6).astype(float)
    ratio = np.log1p(amount / world["customer_scale"][customer_idx])
    logit = (
        _BASE_LOGIT
        + 1.1 * (ratio - 1.3)
        + 1.2 * night
        + np.asarray(_CATEGORY_RISK)[category]
        + 0.9 * (channel_idx == 0) * (card_present == 0)
        + 1.0 * abroad
        + world["customer_risk"][customer_idx]
        + 0.9 * float(label_drift)
    )
    is_fraud = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    # Fraudsters cash out: fraudulent amounts run higher still.
    amount = np.where(is_fraud == 1, amount * rng.uniform(1.5, 4.0, size=rows), amount)

    df = pd.DataFrame(
        {
            "transaction_id": [f"tx-{day:%Y%m%d}-{i:07d}" for i in range(rows)],
            "customer_id": (customer_idx + 1).astype("int64"),
            "merchant_id": (merchant_idx + 100_001).astype("int64"),
            "event_timestamp": pd.to_datetime(micros + int(day_start.timestamp()) * 1_000_000, unit="us", utc=True),
            "amount": np.round(amount, 2),
            "merchant_category": np.asarray(CATEGORIES, dtype=object)[category],
            "country": np.asarray(COUNTRIES, dtype=object)[country_idx],
            "channel": np.asarray(CHANNELS, dtype=object)[channel_idx],
            "card_present": card_present.astype("int64"),
            "is_fraud": is_fraud,
        }
    )
    df["event_timestamp"] = df["event_timestamp"].astype("datetime64[us, UTC]")
    if bad_row_share > 0:
        df = _inject_bad_rows(df, rng, bad_row_share)
    return df


def _inject_bad_rows(df: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    """Break ``share`` of the rows, cycling through :data:`BAD_ROW_KINDS`."""
    import numpy as np

    n_bad = int(round(len(df) * min(share, 1.0)))
    if n_bad == 0:
        return df
    rows = np.sort(rng.choice(np.arange(1, len(df)), size=min(n_bad, len(df) - 1), replace=False))
    kinds = {kind: rows[i :: len(BAD_ROW_KINDS)] for i, kind in enumerate(BAD_ROW_KINDS)}
    df = df.copy()
    # Wrong types and unparseable timestamps only exist in text columns: write those as strings.
    amount_text = df["amount"].map("{:.2f}".format).astype(object)
    ts_text = df["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
    customer = df["customer_id"].astype("Int64")
    category = df["merchant_category"].astype(object)

    for j, row in enumerate(kinds["null"]):
        if j % 2 == 0:
            customer.iloc[row] = None
        else:
            category.iloc[row] = None
    for row in kinds["wrong_type"]:
        amount_text.iloc[row] = f"{df['amount'].iloc[row]:.2f} EUR"
    for j, row in enumerate(kinds["out_of_range"]):
        if j % 2 == 0:
            amount_text.iloc[row] = f"{-abs(df['amount'].iloc[row]):.2f}"
        else:
            category.iloc[row] = "unknown_category"
    for row in kinds["bad_timestamp"]:
        ts_text.iloc[row] = "2026-13-45T25:61:00"
    df["customer_id"] = customer
    df["merchant_category"] = category
    df["amount"] = amount_text
    df["event_timestamp"] = ts_text
    # Duplicates: the row repeats the one before it (same transaction id), as a retried export would.
    dup = kinds["duplicate"]
    df.iloc[dup, :] = df.iloc[dup - 1, :].to_numpy()
    return df


def partition_uri(root_uri: str, day: date, file_format: str = "parquet", dataset: str = DATASET) -> str:
    """Return the landing URI of one day's file."""
    return f"{root_uri.rstrip('/')}/landing/{dataset}/dt={day:%Y-%m-%d}/part-0.{file_format}"


def to_bytes(df: pd.DataFrame, file_format: str = "parquet") -> bytes:
    """Serialise a partition deterministically (Parquet or CSV)."""
    buffer = io.BytesIO()
    if file_format == "parquet":
        df.to_parquet(buffer, index=False, compression="snappy")
    elif file_format == "csv":
        out = df.copy()
        if str(out["event_timestamp"].dtype).startswith("datetime64"):
            out["event_timestamp"] = out["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.to_csv(buffer, index=False)
    else:
        raise ValueError(f"file_format must be 'parquet' or 'csv', not {file_format!r}")
    return buffer.getvalue()


def generate_days(
    root_uri: str,
    start: date,
    days: int,
    rows_per_day: int = 2000,
    seed: int = 7,
    covariate_drift: float = 0.0,
    label_drift: float = 0.0,
    bad_row_share: float = 0.0,
    file_format: str = "parquet",
    conn_id: str | None = None,
) -> list[str]:
    """Write ``days`` daily partitions starting at ``start`` under ``<root_uri>/landing/transactions/``.

    :param root_uri: data root (``file://``, ``s3://`` or ``gs://``; a plain path means ``file://``).
    :param start: first day.
    :param days: number of days.
    :param rows_per_day: rows in each partition.
    :param seed: same seed, same bytes.
    :param covariate_drift: strength of the feature drift (0 = none, 1 = strong).
    :param label_drift: strength of the fraud-rate drift (0 = none, 1 = strong).
    :param bad_row_share: share of broken rows (0..1).
    :param file_format: ``parquet`` or ``csv``.
    :param conn_id: storage connection for remote roots (default: the scheme's default connection).
    :return: the URIs written, in date order.
    """
    from mlops_provider.storage import write_bytes_atomic

    if "://" not in root_uri:
        from pathlib import Path

        root_uri = Path(root_uri).expanduser().resolve().as_uri()
    written = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        df = generate_day(day, rows_per_day, seed, covariate_drift, label_drift, bad_row_share)
        uri = partition_uri(root_uri, day, file_format)
        write_bytes_atomic(to_bytes(df, file_format), uri, conn_id)
        written.append(uri)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m include.data_generator",
        description="Write deterministic daily partitions of synthetic card transactions to <root>/landing/transactions/.",
    )
    parser.add_argument(
        "--root", required=True, help="data root URI or path, e.g. file:///tmp/data or s3://bucket/mlops"
    )
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=7, help="number of daily partitions (default 7)")
    parser.add_argument("--rows-per-day", type=int, default=2000, help="rows per partition (default 2000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; same seed, same bytes (default 7)")
    parser.add_argument("--covariate-drift", type=float, default=0.0, help="feature drift strength, 0..1 (default 0)")
    parser.add_argument("--label-drift", type=float, default=0.0, help="fraud-rate drift strength, 0..1 (default 0)")
    parser.add_argument("--bad-row-share", type=float, default=0.0, help="share of broken rows, 0..1 (default 0)")
    parser.add_argument("--format", dest="file_format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--conn-id", default=None, help="storage connection id for s3:// or gs:// roots")
    args = parser.parse_args(argv)
    uris = generate_days(
        args.root,
        args.start,
        args.days,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        covariate_drift=args.covariate_drift,
        label_drift=args.label_drift,
        bad_row_share=args.bad_row_share,
        file_format=args.file_format,
        conn_id=args.conn_id,
    )
    for uri in uris:
        print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
