"""Fused mode answers exactly as the transformer in front of a predictor, and the lookup reads each view once.

Real servers from ``.venv-serving`` on loopback, the bundle's feature repository applied to a private local Feast
store (``feature_store``): the transformer calls the session's ``v1`` predictor over gRPC as the local backend
runs it; the fused server serves the same model version with the features looked up in its own process. Both
log their predictions, so the logs are compared row by row too.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from include.fraud_example import FEATURE_SERVICE
from tests.conftest import REPO_ROOT
from tests.fixtures.model_server import NOW
from tests.serving_support import MODEL_NAME, post_json, run_in_serving_python, start_server, wait_server

pytestmark = pytest.mark.integration

FIELDS = (("customer_id", "INT64"), ("merchant_id", "INT64"), ("amount", "FP64"), ("channel", "BYTES"),
          ("card_present", "INT64"), ("merchant_category", "BYTES"), ("event_timestamp", "INT64"))  # fmt: skip


def _row(i: int) -> dict:
    """An entity request row: known and unknown-to-one-view entities, every channel, varied amounts."""
    return {
        "customer_id": 1 + i % 2,
        "merchant_id": (10, 20)[i % 2],
        "amount": round(3.5 + 17.25 * i, 2),
        "channel": ("online", "pos", "atm")[i % 3],
        "card_present": i % 2,
        "merchant_category": ("grocery", "travel", "unlisted")[i % 3],
        "event_timestamp": int(NOW.timestamp()) - 3600 * i,
    }


def _v2(rows: list[dict], request_id: str, **extra) -> dict:
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": datatype, "data": [r[name] for r in rows]}
        for name, datatype in FIELDS
    ]
    return {"id": request_id, "inputs": inputs, **extra}


def _post(url: str, body: dict, request_id: str | None = None) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **({"x-request-id": request_id} if request_id else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def modes(feature_store, predictor_servers, serving_models, tmp_path_factory):
    """``{"transformer": ServerProcess, "fused": ServerProcess}`` serving version 1, each with its prediction log."""
    root = tmp_path_factory.mktemp("fused")
    feast = [
        f"--feast_repo_path={REPO_ROOT / 'include' / 'feature_repo'}",
        f"--feast_config={feature_store['config']}",
        f"--feature_service={FEATURE_SERVICE}",
    ]
    model = serving_models["v1"]
    servers = {
        "transformer": start_server(
            [
                "--component=transformer",
                f"--storage_uri={model.uri}",
                *feast,
                f"--predictor_host=127.0.0.1:{predictor_servers['v1'].grpc_port}",
                "--predictor_protocol=grpc-v2",
            ],
            root / "transformer.log",
        ),
        "fused": start_server(
            [
                "--component=fused",
                f"--storage_uri={model.uri}",
                f"--model_version={model.version}",
                *feast,
                f"--prediction_log_uri={(root / 'predictions').as_uri()}",
                "--prediction_log_flush_seconds=0.5",
                "--max_batch_size=256",
            ],
            root / "fused.log",
        ),
    }
    servers["transformer"].extra["prediction_log_dir"] = predictor_servers["v1"].extra["prediction_log_dir"]
    servers["fused"].extra["prediction_log_dir"] = root / "predictions"
    try:
        for server in servers.values():
            wait_server(server)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _logged(log_dir, request_id: str, rows: int):
    import pandas as pd

    deadline = time.time() + 15
    while time.time() < deadline:
        files = sorted(log_dir.glob("dt=*/*.parquet"))
        if files:
            frame = pd.concat(pd.read_parquet(f) for f in files)
            match = frame[frame["request_id"] == request_id]
            if len(match) == rows:
                return match.sort_values("request_row").reset_index(drop=True)
        time.sleep(0.2)
    raise AssertionError(f"request {request_id} ({rows} rows) is not in {log_dir}")


@pytest.mark.parametrize("n", [1, 100])
def test_fused_and_transformer_modes_answer_and_log_the_same(modes, serving_models, n):
    """Same predictions, model version, request ids (V2 ``id`` and ``x-request-id``), explanations and log rows."""
    import xgboost as xgb

    rows = [_row(i) for i in range(n)]
    answers: dict[str, dict] = {}
    for mode, server in modes.items():
        request_id = f"{mode}-{uuid.uuid4().hex}"
        status, v1 = _post(f"{server.url}/v1/models/{MODEL_NAME}:predict", {"instances": rows}, request_id)
        assert status == 200, v1
        assert v1["request_id"] == request_id and v1["model_version"] == "1"
        v2_id = f"{mode}-v2-{uuid.uuid4().hex}"
        status, v2 = _post(f"{server.url}/v2/models/{MODEL_NAME}/infer", _v2(rows, v2_id))
        assert status == 200, v2
        assert v2["id"] == v2_id and v2["model_version"] == "1" and v2["model_name"] == MODEL_NAME
        status, explained = _post(f"{server.url}/v1/models/{MODEL_NAME}:explain", {"instances": rows[:3]})
        assert status == 200, explained
        status, generated = _post(f"{server.url}/v1/models/{MODEL_NAME}:predict", {"instances": rows[:1]})
        assert status == 200 and len(generated["request_id"]) == 32, generated  # a new id when none is sent
        log = _logged(server.extra["prediction_log_dir"], request_id, n)
        answers[mode] = {"v1": v1, "v2": v2, "explained": explained, "log": log}

    transformer, fused = answers["transformer"], answers["fused"]
    assert fused["v1"]["predictions"] == transformer["v1"]["predictions"]
    assert fused["v2"]["outputs"] == transformer["v2"]["outputs"]
    assert {k: v for k, v in fused["v2"].items() if k not in ("id", "outputs")} == {
        k: v for k, v in transformer["v2"].items() if k not in ("id", "outputs")
    }
    for key in ("predictions", "explanations"):
        assert fused["explained"][key] == transformer["explained"][key]
    columns = [c for c in transformer["log"].columns if c not in ("request_id", "served_at", "latency_ms")]
    assert list(fused["log"].columns) == list(transformer["log"].columns)
    for column in columns:
        np.testing.assert_array_equal(fused["log"][column].to_numpy(), transformer["log"][column].to_numpy())
    # And both scored what the booster scores for the logged features.
    booster = serving_models["v1"].booster
    features = fused["log"][list(booster.feature_names)].to_numpy(dtype=np.float32)
    expected = booster.predict(xgb.DMatrix(features, feature_names=booster.feature_names))
    np.testing.assert_allclose(fused["v1"]["predictions"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([_row(0), {**_row(1), "customer_id": 999}], "unknown entity in instance 1"),
        ([{"customer_id": 1, "merchant_id": 10}], "is missing field(s)"),
        ([{**_row(0), "event_timestamp": "yesterday"}], "field 'event_timestamp' must be"),
    ],
)
def test_both_modes_reject_bad_entity_requests_with_the_same_message(modes, instances, message):
    bodies = {}
    for mode, server in modes.items():
        status, body = post_json(f"{server.url}/v1/models/{MODEL_NAME}:predict", {"instances": instances})
        assert status == 400, body
        bodies[mode] = body
    assert message in bodies["fused"]["error"].lower()
    assert bodies["fused"] == bodies["transformer"]


BATCHED_READ = """
import json, sys
from mlops_serving.online_features import open_online_features

online = open_online_features(
    "m", feast_repo_path=sys.argv[1], feast_config=sys.argv[2], feature_service=sys.argv[3],
    storage_uri=sys.argv[4], reject_unknown_entities=False,
)
assert online.indirect_reason is None, online.indirect_reason
rows = json.loads(sys.argv[5])
statements = []
# The direct reader's connection to Feast's SQLite online store: every SQL statement the lookup runs.
online.direct_reader.connection().set_trace_callback(statements.append)
matrix = online.matrix(rows)
online.direct_reader.connection().set_trace_callback(None)
# The same rows through Feast's own get_online_features, as the reference.
online.indirect_reason = "reference"
reference = online.matrix(rows)
nan = lambda m: [[None if v != v else float(v) for v in row] for row in m.tolist()]
print(json.dumps({"statements": statements, "matrix": nan(matrix), "reference": nan(reference)}))
"""


def test_a_batch_of_100_entity_rows_reads_each_feature_view_once(feature_store, serving_models):
    """One ``SELECT`` per feature view for 100 distinct entities (not 100), with Feast's own values."""
    import json

    # 100 distinct customers and merchants: two of each are in the online store, the rest are unknown (missing).
    rows = [{**_row(i), "customer_id": 1 + i, "merchant_id": (10, 20)[i] if i < 2 else 1000 + i} for i in range(100)]
    result = run_in_serving_python(
        BATCHED_READ,
        str(REPO_ROOT / "include" / "feature_repo"),
        feature_store["config"],
        FEATURE_SERVICE,
        serving_models["v1"].uri,
        json.dumps(rows),
    )
    selects = [s for s in result["statements"] if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, selects  # customer_stats and merchant_stats, each for the whole batch
    assert sorted(s.split(" FROM ")[1].split()[0].strip('"') for s in selects) == [
        "fraud_customer_stats",
        "fraud_merchant_stats",
    ]
    assert [s.lower().count("x'") for s in selects] == [100, 100]  # every distinct key, bound as a blob
    assert result["matrix"] == result["reference"]
    assert all(v is not None for row in result["matrix"][:2] for v in row)
    assert result["matrix"][50][:7] == [None] * 7  # unknown customer and merchant: missing aggregates
