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
