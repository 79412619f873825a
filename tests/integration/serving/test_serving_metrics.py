"""The model server's per-version Prometheus metrics on ``/metrics``, read by a real Prometheus."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving_support import MODEL_NAME, post_json

pytestmark = pytest.mark.integration


def _samples(url: str) -> list:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert matching, f"no sample {name} {labels}"
    return sum(matching)


def test_a_request_shows_up_in_metrics_with_model_name_version_and_prediction_histogram(
    predictor_servers, serving_models
):
    server, version = predictor_servers["v1"], serving_models["v1"].version
    labels = {"model_name": MODEL_NAME, "model_version": version, "component": "predictor"}
    before = _samples(server.url)
    requests_before = _value(before, "mlops_requests_total", **labels)
    predictions_before = _value(before, "mlops_prediction_count", **labels)
    rows = serving_models["v1"].X[:3].tolist()
    body = {"inputs": [{"name": "input-0", "shape": [3, len(rows[0])], "datatype": "FP32", "data": rows}]}
    status, answer = post_json(f"{server.url}/v2/models/{MODEL_NAME}/infer", body)
    assert status == 200, answer
    bad = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}
    assert post_json(f"{server.url}/v2/models/{MODEL_NAME}/infer", bad)[0] == 400

    after = _samples(server.url)
    assert _value(after, "mlops_requests_total", **labels) == requests_before + 2
    assert _value(after, "mlops_request_errors_total", **labels, status="400") >= 1
    assert _value(after, "mlops_request_duration_seconds_count", **labels) >= requests_before + 2
    # One observation per row, in the bucket of its probability.
    assert _value(after, "mlops_prediction_count", **labels) == predictions_before + 3
    probabilities = answer["outputs"][0]["data"]
    top = _value(after, "mlops_prediction_bucket", **labels, le="1.0")
    below_half = _value(after, "mlops_prediction_bucket", **labels, le="0.5")
    assert top - _value(before, "mlops_prediction_bucket", **labels, le="1.0") == 3
    assert below_half - _value(before, "mlops_prediction_bucket", **labels, le="0.5") == sum(
        p <= 0.5 for p in probabilities
    )


def test_prometheus_scrapes_the_version_labels(predictor_servers, serving_models, prometheus):
    server = prometheus([predictor_servers["v1"].url, predictor_servers["v2"].url])
    series = server.wait_scraped(f'mlops_requests_total{{model_name="{MODEL_NAME}",component="predictor"}}', count=2)
    versions = {s["metric"]["model_version"] for s in series}
    assert versions == {serving_models["v1"].version, serving_models["v2"].version}


_OBSERVE_BATCH_CHECK = """
import json, math
import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from mlops_serving.metrics import observe_batch

bounds = (0.1, 0.25, 0.5, 0.75, 0.9, float("inf"))
rng = np.random.default_rng(3)
batches = {
    "uniform": rng.uniform(0, 1, 1000),
    "edges": np.array([0.1, 0.25, 0.5, 0.75, 0.9, 0.0, 1.0, -2.0, 7.0, float("inf")] * 3),
    "nan": np.array([0.2, float("nan"), 0.6, 0.95, 0.05, 0.3, 0.4, 0.1, 0.9]),
}
result = {}
for name, values in batches.items():
    one_by_one = Histogram("h", "", registry=CollectorRegistry(), buckets=bounds)
    batched = Histogram("h", "", registry=CollectorRegistry(), buckets=bounds)
    for value in values.tolist():
        one_by_one.observe(value)
    observe_batch(batched, values)
    samples = [
        {s.name + json.dumps(s.labels): s.value for s in h.collect()[0].samples if s.name != "h_created"}
        for h in (one_by_one, batched)
    ]
    result[name] = [{k: (None if math.isnan(v) else v) for k, v in s.items()} for s in samples]
print(json.dumps(result))
"""


def test_a_batch_of_predictions_fills_the_histogram_as_one_by_one_observations_do():
    import json
    import subprocess

    from tests.serving_support import REPO_ROOT, SERVING_PYTHON

    out = subprocess.run(
        [str(SERVING_PYTHON), "-c", _OBSERVE_BATCH_CHECK], capture_output=True, text=True, check=True, timeout=120,
        cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT / "kserve"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    for name, (one_by_one, batched) in json.loads(out.stdout).items():
        assert one_by_one.keys() == batched.keys(), name
        for key, value in one_by_one.items():
            if key.startswith("h_sum") and value is not None:
                assert batched[key] == pytest.approx(value, rel=1e-12), (name, key)
            else:
                assert batched[key] == value, (name, key)
    assert json.loads(out.stdout)["nan"][1]["h_sum{}"] is None  # a NaN prediction makes the sum NaN, as observe does
