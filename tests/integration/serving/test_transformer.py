"""The Feast transformer turns entity requests into the model's features from the online store.

The feature repository is the bundle's own (``include/feature_repo``, FeatureService ``fraud_model_v1``), applied to
a local registry; aggregates are written to the offline source and materialized, exactly the path training sets and
serving share. The skew test compares what the predictor received (its prediction log) with the point-in-time
training row Feast builds for the same entity and time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from include.fraud_example import FEATURE_SERVICE
from tests.fixtures.model_server import NOW
from tests.serving_support import MODEL_NAME, post_json

pytestmark = pytest.mark.integration


def _request(customer_id: int, merchant_id: int, **overrides) -> dict:
    row = {
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "amount": 42.5,
        "channel": "online",
        "card_present": 0,
        "merchant_category": "electronics",
        "event_timestamp": NOW.isoformat(),
    }
    row.update(overrides)
    return row


def test_entity_request_is_scored_with_online_features_without_skew(
    transformer, feature_store, predictor_servers, serving_models
):
    """Served features equal the point-in-time training row for the same entity and time."""
    import pandas as pd
    import xgboost as xgb

    from include.feature_repo.definitions import FEATURE_COLUMNS

    amount = 77.25 + time.time() % 1  # unique, to find this request in the prediction log
    status, body = post_json(
        f"{transformer.url}/v1/models/{MODEL_NAME}:predict", {"instances": [_request(1, 10, amount=amount)]}
    )
    assert status == 200, body
    served_prediction = body["predictions"][0]

    store = feature_store["store"]
    entity_df = pd.DataFrame([{**_request(1, 10, amount=amount), "event_timestamp": pd.Timestamp(NOW)}])
    training_row = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()
    expected = training_row[FEATURE_COLUMNS].astype("float32").to_numpy()

    log_dir = predictor_servers["v1"].extra["prediction_log_dir"]
    served = None
    deadline = time.time() + 10
    while served is None and time.time() < deadline:
        files = sorted(log_dir.glob("dt=*/*.parquet"))
        if files:
            frame = pd.concat(pd.read_parquet(f) for f in files)
            match = frame[np.isclose(frame["amount_log"], np.log1p(amount), rtol=1e-6)]
            served = match if len(match) else None
        time.sleep(0.2)
    assert served is not None, "the request is not in the predictor's log"
    np.testing.assert_allclose(served[FEATURE_COLUMNS].to_numpy()[0], expected[0], rtol=1e-6)
    booster = serving_models["v1"].booster
    np.testing.assert_allclose(
        served_prediction, booster.predict(xgb.DMatrix(expected, feature_names=FEATURE_COLUMNS))[0], rtol=1e-6
    )


def test_v2_entity_request_and_feature_tensor_pass_through(transformer, serving_models):
    batch = [_request(1, 10), _request(2, 20, channel="atm", card_present=1, event_timestamp=int(NOW.timestamp()))]
    inputs = []
    for field, datatype in (("customer_id", "INT64"), ("merchant_id", "INT64"), ("amount", "FP64"), ("channel", "BYTES"),
                            ("card_present", "INT64"), ("merchant_category", "BYTES"), ("event_timestamp", "BYTES")):  # fmt: skip
        inputs.append(
            {
                "name": field,
                "shape": [2],
                "datatype": datatype,
                "data": [str(r[field]) if datatype == "BYTES" else r[field] for r in batch],
            }
        )
    status, body = post_json(f"{transformer.url}/v2/models/{MODEL_NAME}/infer", {"inputs": inputs})
    assert status == 200, body
    assert body["outputs"][0]["shape"] == [2] and body["outputs"][0]["datatype"] == "FP32"
    X = serving_models["v1"].X[:2]
    status, body = post_json(
        f"{transformer.url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": X.ravel().tolist()}]},
    )
    assert status == 200
    import xgboost as xgb

    booster = serving_models["v1"].booster
    expected = booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names))
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-6)
    # V2 JSON may also nest the rows; the transformer re-encodes them for the gRPC hop to the predictor.
    status, body = post_json(
        f"{transformer.url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": X.tolist()}]},
    )
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-6)
    status, body = post_json(
        f"{transformer.url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": X.tolist()[:1]}]},
    )
    assert status == 400 and "does not hold 2x15 numbers" in str(body), body
    # The predictor's column form (one tensor per model feature, by name) passes through as well.
    from mlops_provider.serving.analysis import ProbeRows

    probes = ProbeRows(X.tolist(), tuple(booster.feature_names), frozenset({"unused"}))
    status, body = post_json(f"{transformer.url}/v2/models/{MODEL_NAME}/infer", probes.request(0, 2))
    assert status == 200, body
    assert [i["name"] for i in probes.request(0, 2)["inputs"]] == list(booster.feature_names)
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([_request(999, 10)], "unknown entity in instance 0"),
        ([{"customer_id": 1, "merchant_id": 10, "amount": 3.0}], "missing field(s) ['channel', 'card_present', 'merchant_category', 'event_timestamp']"),
        ([{**_request(1, 10), "customer_id": "abc"}], "field 'customer_id' must be int64"),
        ([_request(1, 10, event_timestamp="yesterday")], "field 'event_timestamp' must be"),
        ([_request(1, 10)] * 51, "exceeds the maximum batch size of 50"),
        ("not a list", "expected \"instances\""),
    ],
)  # fmt: skip
def test_bad_entity_requests_get_400(transformer, instances, message):
    status, body = post_json(f"{transformer.url}/v1/models/{MODEL_NAME}:predict", {"instances": instances})
    assert status == 400, body
    assert message in body["error"].lower()
    status, _ = post_json(f"{transformer.url}/v1/models/{MODEL_NAME}:predict", {"instances": [_request(2, 20)]})
    assert status == 200


def test_v1_explain_through_the_transformer_explains_the_looked_up_features(transformer, serving_models):
    """``:explain`` on the endpoint: the entity's online features, explained by the predictor (TreeSHAP)."""
    booster = serving_models["v1"].booster
    url = f"{transformer.url}/v1/models/{MODEL_NAME}"
    batch = [_request(1, 10, amount=12.5), _request(2, 20, amount=480.0)]
    status, predicted = post_json(f"{url}:predict", {"instances": batch})
    assert status == 200, predicted
    # The predictor's identity of the answer reaches the client through the transformer.
    assert predicted["model_version"] and len(predicted["request_id"]) == 32, predicted
    status, body = post_json(f"{url}:explain", {"instances": batch})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], predicted["predictions"], rtol=1e-6)
    for p, explanation in zip(body["predictions"], body["explanations"], strict=True):
        assert list(explanation["contributions"]) == list(booster.feature_names)
        margin = sum(explanation["contributions"].values()) + explanation["bias"]
        assert margin == pytest.approx(float(np.log(p / (1 - p))), abs=1e-3)  # binary: the log-odds
