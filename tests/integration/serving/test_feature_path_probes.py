"""Rollout probes through the full feature path: entity-keyed requests to the real Feast transformer.

The transformer (in front of the real predictor serving version 1) looks the probes' features up in Feast's online
store, as for a user's request; the probe asserts the version that answered. A training set without the request
fields the transformer needs falls back to feature rows (the transformer passes them through).
"""

from __future__ import annotations

import pandas as pd
import pytest

from include.fraud_example import FEATURE_SERVICE
from mlops_provider.serving.analysis import sample_rows, smoke_check
from tests.fixtures.model_server import NOW
from tests.serving_support import MODEL_NAME, feature_columns

pytestmark = pytest.mark.integration


def training_set(tmp_path, *, with_request_fields: bool) -> dict:
    """A training-set manifest and its Parquet rows for the materialized entities (customers 1-2, merchants 10/20)."""
    rows = pd.DataFrame(
        {
            "event_timestamp": [pd.Timestamp(NOW)] * 4,
            "customer_id": [1, 2, 1, 2],
            "merchant_id": [10, 20, 20, 10],
            **{column: [0.5, 1.0, 1.5, 2.0] for column in feature_columns()},
            "label": [0, 1, 0, 1],
        }
    )
    if with_request_fields:
        rows = rows.assign(
            amount=[12.5, 80.0, 5.0, 300.0],
            channel=["online", "atm", "pos", "online"],
            card_present=[0, 1, 1, 0],
            merchant_category=["electronics", "grocery", "travel", "electronics"],
        )
    path = tmp_path / "data.parquet"
    rows.to_parquet(path, index=False)
    return {
        "uri": path.as_uri(),
        "entity_columns": ["customer_id", "merchant_id"],
        "timestamp_column": "event_timestamp",
        "label_column": "label",
        "feature_columns": feature_columns(),
        "feature_service": FEATURE_SERVICE,
    }


def test_probes_take_the_feature_path_and_assert_the_answering_version(transformer, serving_models, tmp_path):
    manifest = training_set(tmp_path, with_request_fields=True)
    probes = sample_rows(transformer.url, MODEL_NAME, manifest, feature_path=True)
    assert probes.entities and not probes.rows
    assert {"customer_id", "merchant_id", "amount", "channel", "event_timestamp"} <= set(probes.entities[0])
    assert "label" not in probes.entities[0]

    version = serving_models["v1"].version
    check = smoke_check(transformer.url, MODEL_NAME, probes, requests=4, expected_version=version)
    assert check["ok"], check["failures"]
    assert 0.0 <= check["mean_prediction"] <= 1.0

    wrong = smoke_check(transformer.url, MODEL_NAME, probes, requests=2, expected_version="999")
    assert not wrong["ok"]
    assert any(f"answered by model version ['{version}'], not 999" in failure for failure in wrong["failures"])


def test_a_training_set_without_the_request_fields_falls_back_to_feature_rows(transformer, serving_models, tmp_path):
    manifest = training_set(tmp_path, with_request_fields=False)
    probes = sample_rows(transformer.url, MODEL_NAME, manifest, feature_path=True)
    assert not probes.entities and len(probes.rows[0]) == len(feature_columns())
    check = smoke_check(transformer.url, MODEL_NAME, probes, requests=2, expected_version=serving_models["v1"].version)
    assert check["ok"], check["failures"]
