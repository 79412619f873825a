"""Live analysis on real traffic: real model servers, scraped by a real Prometheus, and their prediction log.

Three predictor processes serve the same model under three versions: ``1`` (stable) and ``2`` (an identical canary)
with 80 ms added to every prediction, ``3`` with 160 ms (twice as slow; ``delayed_model_server.py``). All three log to
one prediction log, as the versions of one model do. Each test sends its own traffic in its own window and judges
that window through Prometheus and through the prediction-log fallback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_provider.serving.live_analysis import LiveAnalysisConfig, judge_live_window
from tests.fixtures.prometheus_server import start_prometheus
from tests.loopback import free_port
from tests.serving_support import REPO_ROOT, SERVING_PYTHON, ServerProcess, post_json, wait_server

pytestmark = pytest.mark.integration

MODEL = "live_analysis_model"
STABLE, SAME, SLOW = "1", "2", "3"
# Large next to this shared machine's scheduling jitter (tens of ms at the top), which the p99 of a short window is.
DELAYS_MS = {STABLE: 80, SAME: 80, SLOW: 160}
CONFIG = LiveAnalysisConfig(min_requests=40, prometheus_conn_id="live_prometheus")


def start_delayed_server(model_uri: str, version: str, delay_ms: float, log_dir: Path, log: Path) -> ServerProcess:
    """The real model server, ``delay_ms`` slower per prediction, on free loopback ports."""
    import os

    http_port, grpc_port = free_port(), free_port()
    script = Path(__file__).with_name("delayed_model_server.py")
    handle = log.open("wb")
    process = subprocess.Popen(
        [str(SERVING_PYTHON), str(script), str(delay_ms), f"--model_name={MODEL}", f"--http_port={http_port}",
         f"--grpc_port={grpc_port}", "--enable_latency_logging=false", "--access_log=false",
         f"--storage_uri={model_uri}", f"--model_version={version}", f"--prediction_log_uri={log_dir.as_uri()}",
         "--prediction_log_flush_seconds=0.3"],
        stdout=handle, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT),
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "kserve")},
    )  # fmt: skip
    return ServerProcess(process, http_port, grpc_port, log, MODEL)


@pytest.fixture(scope="module")
def live(serving_models, tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("live-analysis")
    log_dir = root / "predictions" / MODEL
    servers: dict[str, ServerProcess] = {}
    prometheus = None
    try:
        for version, delay in DELAYS_MS.items():
            servers[version] = start_delayed_server(
                serving_models["v1"].uri, version, delay, log_dir, root / f"server-{version}.log"
            )
        for server in servers.values():
            wait_server(server)
        prometheus = start_prometheus([s.url for s in servers.values()], root / "prometheus")
        prometheus.wait_scraped(f'mlops_requests_total{{model_name="{MODEL}"}}', count=len(servers))
        yield {"servers": servers, "prometheus": prometheus, "log_dir": log_dir, "rows": serving_models["v1"].X}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()


def send(server: ServerProcess, row: list[float], request_id: str | None = None) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}
    if request_id:
        body["id"] = request_id
    status, answer = post_json(f"{server.url}/v2/models/{MODEL}/infer", body)
    assert status == 200, answer


def traffic_window(live: dict, versions: tuple[str, str], requests: int, same_ids: bool = False):
    """Send ``requests`` single-row requests to each version (the same rows); return the window around them."""
    start = datetime.now(UTC)
    time.sleep(1.5)  # a scrape inside the window before the first request
    for i in range(requests):
        row = live["rows"][i % len(live["rows"])].tolist()
        request_id = f"req-{start.timestamp()}-{i}" if same_ids else None
        for version in versions:
            send(live["servers"][version], row, request_id)
    time.sleep(2.5)  # the last counts scraped, the prediction log flushed
    return start, datetime.now(UTC)


def judge(live: dict, monkeypatch, canary: str, window, source: str, mode: str = "canary") -> dict:
    monkeypatch.setenv("AIRFLOW_CONN_LIVE_PROMETHEUS", live["prometheus"].connection_json())
    config = LiveAnalysisConfig(
        min_requests=CONFIG.min_requests,
        prometheus_conn_id=CONFIG.prometheus_conn_id,
        prediction_log_uri=live["log_dir"].as_uri(),
    )
    start, end = window
    return judge_live_window(
        mode=mode,
        model_name=MODEL,
        stable_version=STABLE,
        candidate_version=canary,
        start=start,
        end=end,
        weight=50,
        config=config,
        source=source,
    )


def metric(result: dict, name: str) -> dict:
    return next(m for m in result["metrics"] if m["name"] == name)


@pytest.mark.parametrize("source", ["prometheus", "prediction_log"])
def test_identical_canary_passes(live, monkeypatch, source):
    window = traffic_window(live, (STABLE, SAME), 50)
    result = judge(live, monkeypatch, SAME, window, source)
    assert result["verdict"] == "pass", result
    assert result["source"] == source and result["window_seconds"] == pytest.approx(
        (window[1] - window[0]).total_seconds()
    )
    requests = metric(result, "requests")
    assert requests["stable"] >= 50 and requests["canary"] >= 50
    assert metric(result, "prediction_divergence")["value"] == pytest.approx(0.0, abs=1e-9)
    assert metric(result, "p99_latency_ms")["passed"] is True
    if source == "prometheus":
        assert metric(result, "error_rate")["value"] == pytest.approx(0.0)
    else:  # the log holds served rows only: errors are not measured there
        assert metric(result, "error_rate")["passed"] is None


@pytest.mark.parametrize("source", ["prometheus", "prediction_log"])
def test_twice_as_slow_canary_fails_the_latency_check(live, monkeypatch, source):
    window = traffic_window(live, (STABLE, SLOW), 50)
    result = judge(live, monkeypatch, SLOW, window, source)
    assert result["verdict"] == "fail", result
    latency = metric(result, "p99_latency_ms")
    assert latency["passed"] is False and latency["value"] > 1.5
    assert latency["canary"] > latency["stable"] >= 80.0
    assert "p99_latency_ms" in result["message"]
    assert metric(result, "prediction_divergence")["passed"] is True  # same model: only the latency differs


@pytest.mark.parametrize("source", ["prometheus", "prediction_log"])
def test_too_little_traffic_is_inconclusive_never_pass(live, monkeypatch, source):
    window = traffic_window(live, (STABLE, SAME), 5)
    result = judge(live, monkeypatch, SAME, window, source)
    assert result["verdict"] == "inconclusive", result
    assert metric(result, "requests")["passed"] is False
    assert "at least 40" in result["message"]


def test_shadow_reports_agreement_joined_on_request_ids(live, monkeypatch):
    window = traffic_window(live, (STABLE, SAME), 45, same_ids=True)
    result = judge(live, monkeypatch, SAME, window, "prometheus", mode="shadow")
    agreement = metric(result, "agreement")
    assert agreement["value"] == pytest.approx(1.0) and agreement["passed"] is True
    assert agreement["stable"] == 45  # requests joined on their ids
    assert result["verdict"] == "pass", result


def test_source_defaults_to_the_prediction_log_without_prometheus(live, monkeypatch):
    window = traffic_window(live, (STABLE, SAME), 5)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOWHERE", f'{{"conn_type": "prometheus", "host": "127.0.0.1", "port": {free_port()}}}'
    )
    result = judge_live_window(
        mode="canary",
        model_name=MODEL,
        stable_version=STABLE,
        candidate_version=SAME,
        start=window[0],
        end=window[1],
        config=LiveAnalysisConfig(
            min_requests=5, prometheus_conn_id="nowhere", prediction_log_uri=live["log_dir"].as_uri()
        ),
    )
    assert result["source"] == "prediction_log"
    assert metric(result, "requests")["stable"] == 5 and result["verdict"] == "pass", result
