"""The local backend in fused mode: one process behind the stable endpoint looks the features up and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from include.fraud_example import FEATURE_SERVICE
from tests.fixtures.model_server import NOW
from tests.serving_support import MODEL_NAME, free_port, post_json

pytestmark = pytest.mark.integration


def test_a_fused_slot_serves_entity_requests_without_a_transformer(monkeypatch, feature_store, serving_models):
    import xgboost as xgb

    from mlops_provider.serving.local import LocalEndpoint

    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_ROOT", str(feature_store["root"] / "mlops"))
    monkeypatch.setenv("AIRFLOW__MLOPS__LOCAL_SERVING_PORT", str(free_port()))
    endpoint = LocalEndpoint()
    try:
        endpoint.ensure_proxy()
        slot = endpoint.start_slot(
            MODEL_NAME,
            serving_models["v1"].uri,
            "1",
            feast_config=feature_store["config"],
            feature_service=FEATURE_SERVICE,
            serving_mode="fused",
            prediction_log=False,
        )
        endpoint.switch(slot)
        assert slot["transformer"] is None and slot["serving_mode"] == "fused"
        assert slot["upstream"].endswith(str(slot["predictor"]["http_port"]))
        cmdline = Path(f"/proc/{slot['predictor']['pid']}/cmdline").read_bytes().split(b"\0")
        assert b"--component=fused" in cmdline and f"--feature_service={FEATURE_SERVICE}".encode() in cmdline
        entity = {
            "customer_id": 2, "merchant_id": 20, "amount": 99.0, "channel": "online", "card_present": 0,
            "merchant_category": "travel", "event_timestamp": NOW.isoformat(),
        }  # fmt: skip
        status, body = post_json(f"{endpoint.endpoint_url}/v1/models/{MODEL_NAME}:predict", {"instances": [entity]})
        assert status == 200 and body["model_version"] == "1", body
        # What the model scores for the entity's online features, as Feast's own get_online_features returns them.
        store = feature_store["store"]
        online = store.get_online_features(
            features=store.get_feature_service(FEATURE_SERVICE),
            entity_rows=[{**entity, "event_timestamp": NOW}],
        ).to_dict()
        booster = serving_models["v1"].booster
        row = np.asarray([[np.nan if online[f][0] is None else online[f][0] for f in booster.feature_names]])
        expected = booster.predict(xgb.DMatrix(row.astype(np.float32), feature_names=booster.feature_names))
        np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)
    finally:
        endpoint.stop_all()
