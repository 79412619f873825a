"""The KServe predictor answers real inference clients over loopback: V1, V2 REST, V2 gRPC, errors, metrics, log."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest

from tests.serving_support import MODEL_NAME, post_json, start_server, wait_server

pytestmark = pytest.mark.integration


def _expected(model, X):
    import xgboost as xgb

    return model.booster.predict(xgb.DMatrix(X, feature_names=model.booster.feature_names))


def test_v2_rest_with_tritonclient_matches_in_process_predictions(predictor_servers, serving_models):
    import tritonclient.http as httpclient

    model, server = serving_models["v1"], predictor_servers["v1"]
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    assert client.is_server_ready() and client.is_model_ready(MODEL_NAME)
    metadata = client.get_model_metadata(MODEL_NAME)
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 15]}]
    for rows in (1, 100):
        X = model.X[:rows]
        tensor = httpclient.InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X, binary_data=False)
        result = client.infer(MODEL_NAME, [tensor])
        out = result.as_numpy("output-0")
        assert out.dtype == np.float32 and out.shape == (rows,)
        np.testing.assert_allclose(out, _expected(model, X), rtol=1e-6)
        assert result.get_response()["model_version"] == "1"
    # binary tensor data both ways
    tensor = httpclient.InferInput("input-0", [3, 15], "FP32")
    tensor.set_data_from_numpy(model.X[:3], binary_data=True)
    out = client.infer(MODEL_NAME, [tensor], outputs=[httpclient.InferRequestedOutput("output-0", binary_data=True)])
    np.testing.assert_allclose(out.as_numpy("output-0"), _expected(model, model.X[:3]), rtol=1e-6)


def test_v2_grpc_with_tritonclient(predictor_servers, serving_models):
    import tritonclient.grpc as grpcclient

    model, server = serving_models["v2"], predictor_servers["v2"]
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    tensor = grpcclient.InferInput("input-0", [4, 15], "FP32")
    tensor.set_data_from_numpy(model.X[:4])
    out = client.infer(MODEL_NAME, [tensor]).as_numpy("output-0")
    assert out.shape == (4,)
    np.testing.assert_allclose(out, _expected(model, model.X[:4]), rtol=1e-6)


def test_v1_rows_and_objects(predictor_servers, serving_models):
    model, server = serving_models["v1"], predictor_servers["v1"]
    X = model.X[:5]
    status, body = post_json(f"{server.url}/v1/models/{MODEL_NAME}:predict", {"instances": X.tolist()})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], _expected(model, X), rtol=1e-6)
    names = model.booster.feature_names
    objects = [dict(zip(names, map(float, row), strict=True)) for row in X[:2]]
    status, body = post_json(f"{server.url}/v1/models/{MODEL_NAME}:predict", {"instances": objects})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], _expected(model, X[:2]), rtol=1e-6)


def test_v2_column_form(predictor_servers, serving_models):
    model, server = serving_models["v1"], predictor_servers["v1"]
    X = model.X[:3]
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP64", "data": X[:, i].astype(float).tolist()}
        for i, name in enumerate(model.booster.feature_names)
    ]
    status, body = post_json(f"{server.url}/v2/models/{MODEL_NAME}/infer", {"inputs": inputs})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][0]["data"], _expected(model, X), rtol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("v2", {"inputs": [{"name": "input-0", "shape": [1, 14], "datatype": "FP32", "data": [0.0] * 14}]}, 400, "expected [n, 15]"),
        ("v2", {"inputs": [{"name": "input-0", "shape": [1, 15], "datatype": "BYTES", "data": ["x"] * 15}]}, 400, "datatype BYTES"),
        ("v2", {"inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": [0.0] * 15}]}, 400, "does not match its shape"),
        ("v2", {"inputs": [{"name": "input-0", "shape": [300, 15], "datatype": "FP32", "data": [0.0] * 4500}]}, 400, "exceeds the maximum batch size of 256"),
        ("v2", {"inputs": [{"name": "amount_log", "shape": [1], "datatype": "FP32", "data": [1.0]},
                           {"name": "hour_of_day", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, 400, "missing inputs"),
        ("v2", {"inputs": [{"name": "input-0", "shape": [1, 15], "datatype": "FP32", "data": ["a"] * 15}]}, 400, "could not convert"),
        ("v1", {"instances": [[1.0, 2.0]]}, 400, "expected a list of 15 numbers"),
        ("v1", {"instances": [{"amount_log": 1.0}]}, 400, "missing field"),
        ("v1", {"instances": "nope"}, 400, "list"),
        ("v1", {"instances": [["a"] * 15]}, 400, "numbers only"),
        ("v2-other-model", {"inputs": []}, 404, "does not exist"),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx_and_the_server_stays_up(predictor_servers, path, body, status, message):
    server = predictor_servers["v1"]
    url = {
        "v1": f"{server.url}/v1/models/{MODEL_NAME}:predict",
        "v2": f"{server.url}/v2/models/{MODEL_NAME}/infer",
        "v2-other-model": f"{server.url}/v2/models/nope/infer",
    }[path]
    got_status, got = post_json(url, body)
    assert got_status == status, got
    assert message.lower() in str(got).lower()
    with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=5) as response:
        assert response.status == 200


def test_liveness_readiness_and_prometheus_metrics(predictor_servers):
    server = predictor_servers["v1"]
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL_NAME}/ready", f"/v1/models/{MODEL_NAME}"):
        with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as response:
            assert response.status == 200
    post_json(
        f"{server.url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": [1, 15], "datatype": "FP32", "data": [0.0] * 15}]},
    )
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert f'request_predict_seconds_count{{model_name="{MODEL_NAME}"}}' in metrics


def test_prediction_log_is_written_in_batches_as_parquet(predictor_servers, serving_models):
    import pandas as pd

    model, server = serving_models["v2"], predictor_servers["v2"]
    X = model.X[:7]
    status, _ = post_json(
        f"{server.url}/v2/models/{MODEL_NAME}/infer",
        {"inputs": [{"name": "input-0", "shape": [7, 15], "datatype": "FP32", "data": X.ravel().tolist()}]},
    )
    assert status == 200
    log_dir = server.extra["prediction_log_dir"]
    deadline = time.time() + 10
    files = []
    while time.time() < deadline and not files:
        files = sorted(log_dir.glob("dt=*/*.parquet"))
        time.sleep(0.2)
    assert files, f"no prediction log under {log_dir}"
    assert files[0].parent.name == f"dt={time.strftime('%Y-%m-%d', time.gmtime())}"
    frame = pd.concat(pd.read_parquet(f) for f in files)
    assert list(frame.columns) == [
        *model.booster.feature_names,
        "prediction",
        "model_version",
        "served_at",
        "request_id",
        "request_row",
        "latency_ms",
    ]
    assert (frame["model_version"] == "2").all() and str(frame["served_at"].dt.tz) == "UTC"
    rows = frame[np.isclose(frame["amount_log"], float(X[0, 7]))]
    assert len(rows) >= 1
    np.testing.assert_allclose(rows["prediction"].iloc[0], _expected(model, X[:1])[0], rtol=1e-6)


def test_models_uri_through_mlflow_and_log_flushed_on_sigterm(mlflow_server, serving_models, tmp_path):
    """``models:/name@alias`` resolves through the MLflow registry; SIGTERM writes the buffered log."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = "serving_models_uri"
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment("serving-models-uri"))
    client.log_artifacts(run.info.run_id, str(serving_models["v1"].path), "model")
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias(name, "champion", version)
    log_dir = tmp_path / "log"
    server = start_server(
        [f"--storage_uri=models:/{name}@champion", f"--mlflow_tracking_uri={mlflow_server.url}",
         f"--prediction_log_uri={log_dir}", "--prediction_log_flush_seconds=600"],
        tmp_path / "server.log", name,
    )  # fmt: skip
    try:
        wait_server(server)
        X = serving_models["v1"].X[:2]
        status, body = post_json(
            f"{server.url}/v2/models/{name}/infer",
            {"inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": X.ravel().tolist()}]},
        )
        assert status == 200
        np.testing.assert_allclose(body["outputs"][0]["data"], _expected(serving_models["v1"], X), rtol=1e-6)
        assert body["model_version"] == str(version)
        assert not list(log_dir.glob("dt=*/*.parquet"))  # still buffered
    finally:
        assert server.stop() == 0
    assert len(list(log_dir.glob("dt=*/*.parquet"))) == 1


def test_a_client_cannot_turn_prediction_logging_off(predictor_servers, serving_models):
    """Logging is the server's setting: a request asking ``mlops_log: false`` (REST or gRPC) is logged anyway."""
    import pandas as pd
    import tritonclient.grpc as grpcclient

    model, server = serving_models["v2"], predictor_servers["v2"]
    # Values no other test sends, to find these rows in the shared log folder.
    X = np.full((3, 15), 0.0, dtype=np.float32)
    X[:, 0] = [987654.0, 987655.0, 987656.0]
    status, _ = post_json(
        f"{server.url}/v2/models/{MODEL_NAME}/infer",
        {
            "parameters": {"mlops_log": False},
            "inputs": [{"name": "input-0", "shape": [2, 15], "datatype": "FP32", "data": X[:2].ravel().tolist()}],
        },
    )
    assert status == 200
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    tensor = grpcclient.InferInput("input-0", [1, 15], "FP32")
    tensor.set_data_from_numpy(X[2:])
    client.infer(MODEL_NAME, [tensor], parameters={"mlops_log": False})

    first = model.booster.feature_names[0]
    log_dir = server.extra["prediction_log_dir"]
    deadline, logged = time.time() + 15, 0
    while time.time() < deadline and logged < 3:
        frames = [pd.read_parquet(f) for f in sorted(log_dir.glob("dt=*/*.parquet"))]
        logged = sum(int(f[first].isin(X[:, 0]).sum()) for f in frames)
        time.sleep(0.3)
    assert logged == 3, f"{logged} of the 3 rows that asked not to be logged are in {log_dir}"


def test_latency_logging_off_leaves_no_timing_lines_and_the_server_runs_on_uvloop(predictor_servers):
    """``--enable_latency_logging=false`` (as the local backend runs servers): KServe's timing middleware, which
    it installs whatever the flag says, is left out; one worker serves on uvloop, which KServe never installs."""
    server = predictor_servers["v1"]
    body = {"inputs": [{"name": "input-0", "shape": [1, 15], "datatype": "FP32", "data": [0.0] * 15}]}
    for _ in range(3):
        assert post_json(f"{server.url}/v2/models/{MODEL_NAME}/infer", body)[0] == 200
    log = server.log.read_text(errors="replace")
    assert "Serving on the uvloop event loop" in log
    assert "kserve.io.kserve.protocol.rest" not in log  # the timing middleware's per-request lines
