"""Feast definitions of the fraud example: entities, windowed aggregates, request-time features, a service.

Serving (``FeatureService`` ``fraud_model_v1``)::

    store.get_online_features(
        features=store.get_feature_service("fraud_model_v1"),
        entity_rows=[{
            # entity keys
            "customer_id": 42, "merchant_id": 100_123,
            # request fields (the transaction being scored), all required:
            "amount": 129.90,                       # float, >= 0
            "channel": "online",                    # "online" | "pos" | "atm"
            "card_present": 0,                      # 0 | 1
            "merchant_category": "electronics",     # one of MERCHANT_CATEGORIES (others map to -1)
            "event_timestamp": datetime(2026, 11, 21, 23, 15, tzinfo=timezone.utc),  # UTC datetime
        }],
    )

returns exactly :data:`FEATURE_COLUMNS` (all numeric), the same columns, in the same order, as the
training sets built by ``FeastTrainingSetOperator`` with this service. A customer or merchant the
online store has never seen gets null aggregates (XGBoost treats them as missing).

Feature files live under ``<[mlops] data_root>/features/<view>/``. On ``s3://`` Feast reads them with the
standard AWS environment credentials; set ``FEAST_S3_ENDPOINT_URL`` for an S3-compatible endpoint.

Aggregates are point-in-time correct. ``FeastMaterializeOperator`` (and ``FeastTrainingSetOperator``)
compute every feature view tagged ``mlops.aggregate.*`` from the validated zone: a row per entity
at every instant its windowed values change (a transaction entering a window at ``ts + 1us``,
leaving it at ``ts + window + 1us``), each row holding the aggregates over the transactions
*strictly before* that instant. Feast's as-of join then gives every label exactly the
history before it, and never the transaction itself. Field tags declare each aggregate::

    {"aggregation": "count" | "sum" | "mean" | "std" | "min" | "max" | "last" | "distinct_count",
     "column": <source column>,   # optional for "count" (then it counts transactions)
     "window": "1d",              # <int><s|m|h|d|w>
     "label_lag": "2d"}           # optional: the value is known only this long after its event

Nulls are skipped as in SQL: ``count`` and ``distinct_count`` are never null, every other function is
null over a window without values (the sum and mean before a customer's first transaction, in training
sets and online alike); ``std`` is the sample deviation (null below two values), ``last`` the value of
the latest transaction (the greatest among simultaneous ones). With a ``label_lag`` ``L`` a transaction
at ``ts`` counts from ``ts + L + 1us`` (its value known strictly before the label) until it leaves the
window at ``ts + window + 1us``, as every transaction does; ``L`` must be shorter than the window.
The exact semantics are in :mod:`mlops_provider.features.aggregates`.
"""

from __future__ import annotations

from datetime import timedelta

# A Feast repository module is only imported by Feast itself, never while parsing DAGs.
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType  # noqa: TID253
from feast.on_demand_feature_view import on_demand_feature_view  # noqa: TID253
from feast.types import Float64, Int64, String, UnixTimestamp  # noqa: TID253

DATASET = "transactions"
MERCHANT_CATEGORIES = (
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


def _s3_endpoint() -> str | None:
    """Endpoint of an S3-compatible store (MinIO, moto) for Feast's reads of s3:// feature files."""
    import os

    return os.environ.get("FEAST_S3_ENDPOINT_URL") or None


def _features_path(view: str) -> str:
    """Folder of a view's aggregate Parquet files: ``<[mlops] data_root>/features/<view>``."""
    from mlops_provider.settings import get_settings

    uri = f"{get_settings().data_root.rstrip('/')}/features/{view}"
    # Feast's file offline store wants plain paths for local files.
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _aggregate_tags(key: str) -> dict[str, str]:
    return {
        "mlops.aggregate.source": DATASET,
        "mlops.aggregate.key": key,
        "mlops.aggregate.timestamp": "event_timestamp",
    }


def _agg(name: str, dtype, aggregation: str, window: str, column: str = "", description: str = "") -> Field:
    tags = {"aggregation": aggregation, "window": window}
    if column:
        tags["column"] = column
    return Field(name=name, dtype=dtype, tags=tags, description=description)


# --- Entities -------------------------------------------------------------------------------------
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64, description="Card holder")
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64, description="Merchant")

# --- Windowed aggregates per customer ---------------------------------------------------------------
customer_stats_source = FileSource(
    name="customer_stats_source",
    path=_features_path("customer_stats"),
    timestamp_field="event_timestamp",
    s3_endpoint_override=_s3_endpoint(),
    description="Customer aggregates at every change point, built from validated transactions.",
)
customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    # No TTL: expiry rows make every window decay exactly, so the latest row is always current.
    ttl=timedelta(0),
    schema=[
        Field(name="customer_id", dtype=Int64),
        _agg("customer_txn_count_1d", Int64, "count", "1d", description="Transactions in the last 24 h"),
        _agg("customer_txn_count_7d", Int64, "count", "7d", description="Transactions in the last 7 days"),
        _agg("customer_amount_sum_1d", Float64, "sum", "1d", "amount", "Spend in the last 24 h (null if none)"),
        _agg("customer_amount_mean_7d", Float64, "mean", "7d", "amount", "Mean amount over 7 days (null if none)"),
    ],
    source=customer_stats_source,
    online=True,
    tags=_aggregate_tags("customer_id"),
)

# --- Windowed aggregates per merchant ---------------------------------------------------------------
merchant_stats_source = FileSource(
    name="merchant_stats_source",
    path=_features_path("merchant_stats"),
    timestamp_field="event_timestamp",
    s3_endpoint_override=_s3_endpoint(),
    description="Merchant aggregates at every change point, built from validated transactions.",
)
merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(0),
    schema=[
        Field(name="merchant_id", dtype=Int64),
        _agg("merchant_txn_count_1d", Int64, "count", "1d", description="Transactions in the last 24 h"),
        _agg("merchant_txn_count_7d", Int64, "count", "7d", description="Transactions in the last 7 days"),
        _agg("merchant_amount_mean_7d", Float64, "mean", "7d", "amount", "Mean amount over 7 days (null if none)"),
    ],
    source=merchant_stats_source,
    online=True,
    tags=_aggregate_tags("merchant_id"),
)

# --- Request-time features ---------------------------------------------------------------------------
transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="channel", dtype=String),
        Field(name="card_present", dtype=Int64),
        Field(name="merchant_category", dtype=String),
        Field(name="event_timestamp", dtype=UnixTimestamp),
    ],
    description="The transaction being scored.",
)


@on_demand_feature_view(
    sources=[transaction_request, customer_stats],
    schema=[
        Field(name="amount_log", dtype=Float64),
        Field(name="amount_to_customer_mean_7d", dtype=Float64),
        Field(name="hour_of_day", dtype=Int64),
        Field(name="is_night", dtype=Int64),
        Field(name="is_online", dtype=Int64),
        Field(name="is_atm", dtype=Int64),
        Field(name="card_not_present", dtype=Int64),
        Field(name="merchant_category_code", dtype=Int64),
    ],
    mode="python",
    description="Numeric features of the transaction itself, and its amount against the customer's habit.",
)
def transaction_features(inputs: dict) -> dict:
    """Turn the request fields (and the customer's 7-day mean) into numeric features.

    Self-contained on purpose: Feast stores the function's source in the registry and runs it in the
    model server, where this module's globals do not exist.
    """
    import math

    categories = (
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

    def hour(value) -> int:
        if value is None:
            return -1
        if isinstance(value, int | float):  # Unix seconds
            return int((value // 3600) % 24)
        return int(value.hour)

    amounts = [float(a) if a is not None else 0.0 for a in inputs["amount"]]
    means = inputs["customer_amount_mean_7d"]
    hours = [hour(ts) for ts in inputs["event_timestamp"]]
    channels = inputs["channel"]
    return {
        "amount_log": [math.log1p(max(a, 0.0)) for a in amounts],
        # 1.0 when the customer has no 7-day history: "as usual", for lack of evidence.
        "amount_to_customer_mean_7d": [
            a / m if m is not None and m == m and m > 0 else 1.0 for a, m in zip(amounts, means, strict=True)
        ],
        "hour_of_day": hours,
        "is_night": [int(0 <= h < 6) for h in hours],
        "is_online": [int(c == "online") for c in channels],
        "is_atm": [int(c == "atm") for c in channels],
        "card_not_present": [int(not bool(p)) for p in inputs["card_present"]],
        "merchant_category_code": [categories.index(c) if c in categories else -1 for c in inputs["merchant_category"]],
    }


# --- What the model uses --------------------------------------------------------------------------
fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats, merchant_stats, transaction_features],
    description="Features of fraud_detector: customer and merchant activity plus the transaction itself.",
    tags={"model": "fraud_detector"},
)

FEATURE_COLUMNS = [
    "customer_txn_count_1d",
    "customer_txn_count_7d",
    "customer_amount_sum_1d",
    "customer_amount_mean_7d",
    "merchant_txn_count_1d",
    "merchant_txn_count_7d",
    "merchant_amount_mean_7d",
    "amount_log",
    "amount_to_customer_mean_7d",
    "hour_of_day",
    "is_night",
    "is_online",
    "is_atm",
    "card_not_present",
    "merchant_category_code",
]
