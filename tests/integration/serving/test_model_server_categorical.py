"""The predictor takes strings for a model's categorical features over real HTTP (V2 BYTES, V1 strings).

The model is trained with XGBoost native categoricals and carries its frozen categories in the model file
(``mlops_categories``); an unseen category and a null answer exactly what an explicit missing value answers.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from tests.serving_support import post_json, save_mlflow_model, start_server, wait_server

pytestmark = pytest.mark.integration

NAMES = ["amount", "merchant_code", "hour"]
CODES = ["c0", "c1", "c2", "c3", "c4", "c5"]
ROWS = [(12.5, "c1", 3.0), (80.0, "c4", 22.0), (5.0, "never-seen", 14.0), (40.0, None, 9.0), (7.0, "c0", 1.0)]


def _booster():
    import xgboost as xgb

    from mlops_provider.lineage import BOOSTER_CATEGORIES_ATTR, BOOSTER_TASK_ATTR

    rng = np.random.default_rng(5)
    n = 1500
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, n).astype("float32"),
            "merchant_code": pd.Categorical(rng.choice(CODES, n), categories=CODES),
            "hour": rng.integers(0, 24, n).astype("float32"),
        }
    )
    risky = frame["merchant_code"].isin(["c1", "c4"]).to_numpy()
    y = (rng.random(n) < np.where(risky, 0.8, 0.1)).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(frame, y, enable_categorical=True),
        20,
    )
    booster.set_attr(**{BOOSTER_TASK_ATTR: "binary", BOOSTER_CATEGORIES_ATTR: json.dumps({"merchant_code": CODES})})
    return booster


@pytest.fixture(scope="module")
def categorical_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("categorical-server")
    booster = _booster()
    uri = save_mlflow_model(booster, root / "model")
    server = start_server(
        [f"--storage_uri={uri}", "--model_version=1", f"--prediction_log_uri={(root / 'log').as_uri()}",
         "--prediction_log_flush_seconds=0.3"],
        root / "server.log",
        "categorical_model",
    )  # fmt: skip
    server.extra["log_dir"] = root / "log"
    try:
        yield wait_server(server), booster
    finally:
        server.stop()


def _expected(booster) -> np.ndarray:
    """The answers computed in this process, through the provider's encoding (as the trainer and the gate)."""
    from mlops_provider.training.evaluation import booster_predict

    return booster_predict(booster, pd.DataFrame(ROWS, columns=NAMES), NAMES)


def test_v2_bytes_and_v1_strings_map_through_the_frozen_categories(categorical_server):
    server, booster = categorical_server
    expected = _expected(booster)
    assert expected[0] > 0.5 > expected[4]  # the category drives the answer

    columns = list(zip(*ROWS, strict=True))
    inputs = [
        {"name": "amount", "datatype": "FP32", "shape": [len(ROWS)], "data": list(columns[0])},
        {"name": "merchant_code", "datatype": "BYTES", "shape": [len(ROWS)], "data": list(columns[1])},
        {"name": "hour", "datatype": "FP32", "shape": [len(ROWS)], "data": list(columns[2])},
    ]
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": inputs})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-6)

    url = f"{server.url}/v1/models/{server.model_name}:predict"
    status, body = post_json(url, {"instances": [dict(zip(NAMES, row, strict=True)) for row in ROWS]})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)
    status, body = post_json(url, {"instances": [list(row) for row in ROWS]})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)


def test_unseen_and_null_categories_answer_as_an_explicit_missing_value(categorical_server):
    server, booster = categorical_server
    # Explicit missing: the feature tensor (what the transformer forwards) with NaN as the category's code.
    matrix = np.array([[5.0, np.nan, 14.0], [40.0, np.nan, 9.0]], dtype=np.float32)
    explicit = booster.inplace_predict(matrix, validate_features=False)
    url = f"{server.url}/v1/models/{server.model_name}:predict"
    status, body = post_json(url, {"instances": [{"amount": 5.0, "merchant_code": "never-seen", "hour": 14.0},
                                                 {"amount": 40.0, "merchant_code": None, "hour": 9.0}]})  # fmt: skip
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], explicit, rtol=1e-6)
    # The same tensor over HTTP: NaN is not JSON, so send a number that is no code of the column (also missing).
    tensor = {"name": "input-0", "datatype": "FP32", "shape": [2, 3], "data": [5.0, 99.0, 14.0, 40.0, -1.0, 9.0]}
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": [tensor]})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][0]["data"], explicit, rtol=1e-6)
    # A code in the tensor is the category (c4 is code 4).
    tensor["data"] = [80.0, 4.0, 22.0, 12.5, 1.0, 3.0]
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": [tensor]})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][0]["data"], _expected(booster)[[1, 0]], rtol=1e-6)


def test_a_number_for_a_categorical_column_is_a_clear_400(categorical_server):
    server, _ = categorical_server
    inputs = [
        {"name": "amount", "datatype": "FP32", "shape": [1], "data": [1.0]},
        {"name": "merchant_code", "datatype": "INT64", "shape": [1], "data": [1]},
        {"name": "hour", "datatype": "FP32", "shape": [1], "data": [1.0]},
    ]
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": inputs})
    assert status == 400 and "BYTES" in str(body)


def test_the_prediction_log_holds_the_categories_as_text(categorical_server):
    server, _ = categorical_server
    url = f"{server.url}/v1/models/{server.model_name}:predict"
    status, _ = post_json(url, {"instances": [dict(zip(NAMES, row, strict=True)) for row in ROWS]})
    assert status == 200
    deadline, files = time.time() + 10, []
    while not files and time.time() < deadline:
        files = sorted(server.extra["log_dir"].rglob("*.parquet"))
        time.sleep(0.2)
    logged = pd.concat(pd.read_parquet(f) for f in files)
    assert logged["merchant_code"].dtype == object
    # Every request of this module sent one category per amount; unseen and null are logged as what the model saw.
    seen = {
        (float(a), None if pd.isna(c) else c) for a, c in zip(logged["amount"], logged["merchant_code"], strict=True)
    }
    assert seen == {(12.5, "c1"), (80.0, "c4"), (5.0, None), (40.0, None), (7.0, "c0")}


TRANSFORMER_LOOKUP = """
import json
from types import SimpleNamespace
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import Value
from mlops_serving import online_features, transformer

# Feast's online answer: the entity key ``carrier`` (a string), a String feature ``route`` and a number ``delay``.
proto = GetOnlineFeaturesResponse()
proto.metadata.feature_names.val.extend(["carrier", "route", "delay"])
for values in (["a", "b", "c"], ["r1", None, "zz"], [1.5, 2.5, None]):
    result = proto.results.add()
    for v in values:
        result.values.append(Value() if v is None else Value(string_val=v) if isinstance(v, str) else Value(double_val=v))
        result.statuses.append(FieldStatus.PRESENT)
sent = []
store = SimpleNamespace(get_online_features=lambda **kw: sent.append(kw["entity_rows"]) or SimpleNamespace(proto=proto))
# The lookup as load() resolves it, over Feast's get_online_features (the path that takes this answer as it is).
online = online_features.OnlineFeatures.__new__(online_features.OnlineFeatures)
online.store, online.service, online.feature_names = store, "svc", ["delay", "route", "carrier", "note"]
online.entity_keys, online.request_fields, online._feast_request_fields = ["carrier"], ["note"], []
online.types, online._view_of_feature, online._entity_views = {"carrier": "String"}, {"route": "v", "delay": "v"}, {"v"}
online.codes = {"route": {"r0": 0, "r1": 1}, "carrier": {"a": 0, "c": 1}, "note": {"x": 0, "y": 1}}
online.max_batch_size, online.reject_unknown_entities, online.full_feature_names = 10, True, False
online.indirect_reason = "a fake store"
model = transformer.FeastTransformer("m", feast_repo_path=".", feature_service="svc", feature_names=["x"])
model.online_features = online
rows = [{"carrier": "a", "note": "y"}, {"carrier": "b", "note": None}, {"carrier": "c", "note": "unseen"}]
matrix = model.features_for(rows)
print(json.dumps({"matrix": [[None if v != v else float(v) for v in row] for row in matrix.tolist()], "sent": sent}))
"""


def test_the_transformer_encodes_feast_strings_and_an_entity_key_that_is_a_feature():
    """Feast ``String`` features, a string entity key that is also a model input, and a categorical request field
    become their codes; unseen values and nulls are missing, and a null optional field is no error."""
    from tests.serving_support import run_in_serving_python

    body = run_in_serving_python(TRANSFORMER_LOOKUP)
    assert body["matrix"] == [[1.5, 1.0, 0.0, 1.0], [2.5, None, None, None], [None, None, 1.0, None]]
    # The null request field is left out of Feast's entity rows; the key is sent as the string it is.
    assert body["sent"] == [[{"carrier": "a", "note": "y"}, {"carrier": "b"}, {"carrier": "c", "note": "unseen"}]]


def test_v2_metadata_lists_the_column_form_with_bytes_for_categoricals(categorical_server):
    import urllib.request

    server, _ = categorical_server
    with urllib.request.urlopen(f"{server.url}/v2/models/categorical_model", timeout=10) as response:
        metadata = json.loads(response.read())
    assert metadata["inputs"] == [
        {"name": "amount", "datatype": "FP32", "shape": [-1]},
        {"name": "merchant_code", "datatype": "BYTES", "shape": [-1]},
        {"name": "hour", "datatype": "FP32", "shape": [-1]},
    ]


def test_explanations_of_a_categorical_model_sum_to_the_margin(categorical_server):
    """A categorical feature contributes as one feature; an unseen category and a null are missing there too."""
    import xgboost as xgb

    server, booster = categorical_server
    frame = pd.DataFrame(ROWS, columns=NAMES)
    codes = pd.Categorical(frame["merchant_code"], categories=CODES)  # unseen and null: missing
    frame["merchant_code"] = codes
    margin = booster.predict(xgb.DMatrix(frame, enable_categorical=True), output_margin=True)
    status, body = post_json(
        f"{server.url}/v1/models/categorical_model:explain",
        {"instances": [dict(zip(NAMES, row, strict=True)) for row in ROWS]},
    )
    assert status == 200, body
    for i, explanation in enumerate(body["explanations"]):
        assert list(explanation["contributions"]) == NAMES
        total = sum(explanation["contributions"].values()) + explanation["bias"]
        assert total == pytest.approx(float(margin[i]), abs=1e-4), i
    # The risky category is what pushes the first row up.
    first = body["explanations"][0]["contributions"]
    assert first["merchant_code"] == max(first.values())
