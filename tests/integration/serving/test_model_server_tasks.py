"""The predictor answers per task over real HTTP: multiclass class labels and probabilities, regression values."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.serving_support import post_json, save_mlflow_model, start_server, wait_server

pytestmark = pytest.mark.integration

NAMES = ["f0", "f1", "f2"]
CLASSES = ["high", "low", "mid"]


def _booster(task: str):
    import xgboost as xgb

    from mlops_provider.lineage import BOOSTER_CLASSES_ATTR, BOOSTER_TASK_ATTR

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    if task == "multiclass":
        y = np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.5, 0.5])
        params = {"objective": "multi:softprob", "num_class": 3}
    else:
        y = 3.0 * X[:, 0] - X[:, 2]
        params = {"objective": "reg:squarederror"}
    booster = xgb.train({**params, "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, y, feature_names=NAMES), 10)
    booster.set_attr(**{BOOSTER_TASK_ATTR: task})
    if task == "multiclass":
        booster.set_attr(**{BOOSTER_CLASSES_ATTR: json.dumps(CLASSES)})
    return booster, X


@pytest.fixture(scope="module")
def task_servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-servers")
    servers, models = {}, {}
    try:
        for task in ("multiclass", "regression"):
            booster, X = _booster(task)
            uri = save_mlflow_model(booster, root / task)
            models[task] = (booster, X)
            servers[task] = start_server(
                [f"--storage_uri={uri}", "--model_version=1",
                 f"--prediction_log_uri={(root / f'log-{task}').as_uri()}", "--prediction_log_flush_seconds=0.3"],
                root / f"{task}.log",
                f"task_{task}",
            )  # fmt: skip
            servers[task].extra["log_dir"] = root / f"log-{task}"
        for server in servers.values():
            wait_server(server)
        yield servers, models
    finally:
        for server in servers.values():
            server.stop()


def test_multiclass_answers_class_labels_and_per_class_probabilities(task_servers):
    import pandas as pd
    import xgboost as xgb

    servers, models = task_servers
    server, (booster, X) = servers["multiclass"], models["multiclass"]
    expected = booster.predict(xgb.DMatrix(X[:4], feature_names=NAMES))
    labels = [CLASSES[i] for i in expected.argmax(axis=1)]
    url = f"{server.url}/v1/models/{server.model_name}:predict"
    status, body = post_json(url, {"instances": X[:4].tolist()})
    assert status == 200, body
    assert body["predictions"] == labels
    np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-6)

    tensor = {"name": "input-0", "shape": [4, 3], "datatype": "FP32", "data": X[:4].reshape(-1).tolist()}
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": [tensor]})
    assert status == 200, body
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["output-0"]["shape"] == [4, 3] and outputs["class"]["datatype"] == "BYTES"
    np.testing.assert_allclose(np.reshape(outputs["output-0"]["data"], (4, 3)), expected, rtol=1e-6)
    assert outputs["class"]["data"] == labels

    deadline = time.time() + 10
    files: list = []
    while not files and time.time() < deadline:
        files = sorted(server.extra["log_dir"].rglob("*.parquet"))
        time.sleep(0.2)
    logged = pd.concat(pd.read_parquet(f) for f in files)
    assert {"prediction", "prediction_class_0", "prediction_class_1", "prediction_class_2"} <= set(logged.columns)
    np.testing.assert_allclose(logged["prediction_class_1"].to_numpy()[:4], expected[:, 1], rtol=1e-6)
    assert list(logged["prediction"][:4]) == list(expected.argmax(axis=1).astype(float))


def test_regression_answers_the_value(task_servers):
    import xgboost as xgb

    servers, models = task_servers
    server, (booster, X) = servers["regression"], models["regression"]
    expected = booster.predict(xgb.DMatrix(X[:5], feature_names=NAMES))
    status, body = post_json(f"{server.url}/v1/models/{server.model_name}:predict", {"instances": X[:5].tolist()})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5)
    tensor = {"name": "input-0", "shape": [5, 3], "datatype": "FP32", "data": X[:5].reshape(-1).tolist()}
    status, body = post_json(f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": [tensor]})
    assert status == 200, body
    assert [o["name"] for o in body["outputs"]] == ["output-0"] and body["outputs"][0]["shape"] == [5]
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-5)


TRANSFORMER_V1 = """
import json
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferResponse
from mlops_serving import transformer
proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
output = InferOutput(name="output-0", shape=[2, 3], datatype="FP32")
output.set_data_from_numpy(proba, binary_data=False)
label = InferOutput(name="class", shape=[2], datatype="BYTES")
label.set_data_from_numpy(np.array(["high", "mid"], dtype=object), binary_data=False)
transformer._V1_REQUEST.set(True)
model = transformer.FeastTransformer.__new__(transformer.FeastTransformer)
print(json.dumps(model.postprocess(InferResponse(response_id="r", model_name="m", infer_outputs=[output, label]))))
"""


def test_the_transformer_answers_a_v1_multiclass_request_like_the_predictor():
    """The transformer turns the predictor's V2 multiclass outputs into the predictor's own V1 shape."""
    from tests.serving_support import run_in_serving_python

    body = run_in_serving_python(TRANSFORMER_V1)
    assert body["predictions"] == ["high", "mid"] and body["request_id"] == "r"
    np.testing.assert_allclose(body["probabilities"], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], rtol=1e-6)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_rollout_analysis_passes_each_task(task_servers, task):
    """The analysis a deploy runs accepts class probabilities and regression values (the range follows the task)."""
    from mlops_provider.operators.kserve import prediction_range_of
    from mlops_provider.serving.analysis import smoke_check

    servers, models = task_servers
    server, (_, X) = servers[task], models[task]
    check = smoke_check(server.url, server.model_name, X[:5].tolist(), requests=5,
                        prediction_range=prediction_range_of(task), expected_version="1")  # fmt: skip
    assert check["ok"], check["failures"]
    if task == "regression":  # values outside [0, 1] fail a probability range, as for a binary model
        assert not smoke_check(server.url, server.model_name, X[:5].tolist(), requests=5)["ok"]


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_explanations_sum_to_the_margin_per_task(task_servers, task):
    """TreeSHAP over V1 ``:explain`` and V2 ``explain``: contributions plus bias are the model's margin."""
    import xgboost as xgb

    servers, models = task_servers
    server, (booster, X) = servers[task], models[task]
    rows = X[:3].copy()
    rows[1, 2] = np.nan  # a missing value gets the default branches' share
    margin = booster.predict(xgb.DMatrix(rows, feature_names=NAMES, missing=np.nan), output_margin=True)
    status, body = post_json(
        f"{server.url}/v1/models/{server.model_name}:explain",
        {"instances": [[None if np.isnan(v) else float(v) for v in row] for row in rows]},
    )
    assert status == 200, body
    explanations = body["explanations"]
    assert len(explanations) == 3 and body["model_version"] == "1"
    if task == "multiclass":
        assert body["predictions"] == [CLASSES[i] for i in margin.argmax(axis=1)]
        for i, explanation in enumerate(explanations):
            assert set(explanation["contributions"]) == set(CLASSES)
            for k, label in enumerate(CLASSES):
                total = sum(explanation["contributions"][label].values()) + explanation["bias"][label]
                assert total == pytest.approx(float(margin[i, k]), abs=1e-4)
    else:
        for i, explanation in enumerate(explanations):
            assert list(explanation["contributions"]) == NAMES
            assert sum(explanation["contributions"].values()) + explanation["bias"] == pytest.approx(
                float(margin[i]), abs=1e-4
            )

    tensor = {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": X[0].tolist()}
    status, body = post_json(
        f"{server.url}/v2/models/{server.model_name}/infer", {"inputs": [tensor], "parameters": {"explain": True}}
    )
    assert status == 200, body
    outputs = {o["name"]: o for o in body["outputs"]}
    contributions = np.reshape(outputs["contributions"]["data"], outputs["contributions"]["shape"])
    bias = np.reshape(outputs["bias"]["data"], outputs["bias"]["shape"])
    np.testing.assert_allclose(contributions.sum(axis=-1) + bias, margin[:1], atol=1e-4)
    if task == "multiclass":
        assert outputs["classes"]["data"] == CLASSES and list(contributions.shape) == [1, 3, 3]
    else:
        assert "classes" not in outputs and list(contributions.shape) == [1, 3]


def test_every_answer_names_its_request_id_and_model_version_and_the_log_keeps_them(task_servers):
    """V1 echoes ``x-request-id`` (or makes one), V2 its request ``id``; the prediction log rows carry both."""
    import urllib.request

    import pandas as pd

    servers, models = task_servers
    server, (_, X) = servers["regression"], models["regression"]
    request = urllib.request.Request(
        f"{server.url}/v1/models/{server.model_name}:predict",
        data=json.dumps({"instances": X[:3].tolist()}).encode(),
        headers={"Content-Type": "application/json", "x-request-id": "trace-v1-0042"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert body["request_id"] == "trace-v1-0042" and body["model_version"] == "1"
    status, body = post_json(f"{server.url}/v1/models/{server.model_name}:predict", {"instances": X[:1].tolist()})
    assert status == 200 and len(body["request_id"]) == 32, body  # none sent: a new one
    tensor = {"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": X[:2].reshape(-1).tolist()}
    status, body = post_json(
        f"{server.url}/v2/models/{server.model_name}/infer", {"id": "trace-v2-7", "inputs": [tensor]}
    )
    assert status == 200 and body["id"] == "trace-v2-7" and body["model_version"] == "1", body

    deadline, logged = time.time() + 10, pd.DataFrame()
    while time.time() < deadline:
        files = sorted(server.extra["log_dir"].rglob("*.parquet"))
        logged = pd.concat([pd.read_parquet(f) for f in files]) if files else logged
        if {"trace-v1-0042", "trace-v2-7"} <= set(logged.get("request_id", [])):
            break
        time.sleep(0.2)
    v1 = logged[logged["request_id"] == "trace-v1-0042"]
    assert list(v1["request_row"]) == [0, 1, 2] and set(v1["model_version"]) == {"1"}
    assert (v1["latency_ms"] > 0).all()
    assert len(logged[logged["request_id"] == "trace-v2-7"]) == 2
