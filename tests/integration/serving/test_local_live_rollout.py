"""A local progressive rollout judged by the live analysis from a real Prometheus that scrapes the local slots.

Real pieces: the local backend (proxy, model server slots it starts), a real Prometheus whose only targets come from
the file the local backend keeps up to date (``file_sd_configs``), users' requests through the stable endpoint
while each step is judged, and :func:`~mlops_provider.serving.live_analysis.judge_live_window` from Prometheus.

Two rollouts on one endpoint: version 2 (the stable model saved again: it answers as stable does) is promoted;
then version 3, which agrees with it except where the first feature is below -0.25 (where the probes' synthetic rows
never go, users' requests often do), is rolled back on live traffic while its probes pass.
"""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial

import pytest

from mlops_provider.serving.live_analysis import (
    ERROR_RATE,
    P99_LATENCY,
    PREDICTION_DIVERGENCE,
    LiveAnalysisConfig,
    judge_live_window,
)
from mlops_provider.serving.local import ProgressiveRollout, RolloutStep, probe_judge, prometheus_targets_dir
from tests.fixtures.prometheus_server import start_prometheus
from tests.integration.serving.test_local_progressive import PROBES, _adopt_stable, endpoint  # noqa: F401
from tests.serving_support import (
    MODEL_NAME,
    BackgroundLoop,
    feature_columns,
    post_json,
    save_mlflow_model,
    train_live_only_worse_canary,
)

pytestmark = pytest.mark.integration

# 120 requests a version keep the divergence of two samples of one model near 0.03, far below 0.1; latency is
# judged with a ratio a loaded shared machine cannot trip (its threshold has its own tests).
LIVE = LiveAnalysisConfig(
    min_requests=120,
    metrics=(ERROR_RATE, dataclasses.replace(P99_LATENCY, threshold=20.0), PREDICTION_DIVERGENCE),
    prometheus_conn_id="local_prometheus",
)


class Users(BackgroundLoop):
    """Users' requests (first feature ~ N(0, 1)) through the stable endpoint until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.answers: list[str] = []

    def _run(self) -> None:
        import numpy as np

        rng = np.random.default_rng(5)
        while not self.stop.is_set():
            row = rng.normal(size=len(feature_columns())).astype(np.float32)
            body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}]}
            status, answer = post_json(f"{self.url}/v2/models/{MODEL_NAME}/infer", body)
            if status == 200 and isinstance(answer, dict):
                self.answers.append(str(answer.get("model_version")))
            time.sleep(0.01)


class ObservedJudge:
    """The live judge from Prometheus; before each judgement it notes the targets and per-version series Prometheus
    has, and the probes' verdict on the candidate."""

    def __init__(self, endpoint, prometheus) -> None:  # noqa: F811
        self.endpoint = endpoint
        self.prometheus = prometheus
        self.live = partial(judge_live_window, config=LIVE, source="prometheus")
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> dict:
        # Prometheus hands target changes on at most every 5 s: wait until the routed slot is scraped with its role.
        self.prometheus.wait_scraped(
            f'up{{model="{MODEL_NAME}",role="{kwargs["mode"]}",version="{kwargs["candidate_version"]}"}} == 1'
        )
        up = self.prometheus.query(f'up{{model="{MODEL_NAME}"}} == 1')
        series = self.prometheus.query(
            f'sum by (role, version, model_version) (mlops_requests_total{{model="{MODEL_NAME}"}})'
        )
        candidate = self.endpoint._read_state()["candidate"]
        probes = probe_judge(candidate["url"], MODEL_NAME, PROBES, timeout=30)(
            mode=kwargs["mode"], candidate_version=kwargs["candidate_version"]
        )
        verdict = self.live(**kwargs)
        self.calls.append(
            {
                "targets": {(s["metric"]["role"], s["metric"]["version"]) for s in up},
                "series": {(s["metric"]["role"], s["metric"]["version"], s["metric"].get("model_version"))
                           for s in series},
                "probes": probes["verdict"],
                "verdict": verdict,
            }
        )  # fmt: skip
        return verdict


def targets_in_file(endpoint) -> set[tuple[str, str]]:  # noqa: F811
    groups = json.loads(endpoint.targets_file.read_text())
    return {(g["labels"]["role"], g["labels"]["version"]) for g in groups}


def test_live_judged_local_rollout_promotes_a_good_canary_and_rolls_back_one_worse_only_on_live_traffic(
    endpoint,  # noqa: F811
    predictor_servers,
    serving_models,
    tmp_path,
    monkeypatch,
):
    stable = serving_models["v1"]
    equal_uri = save_mlflow_model(stable.booster, tmp_path / "equal")
    worse_uri = save_mlflow_model(train_live_only_worse_canary(stable.booster), tmp_path / "worse")
    prometheus = start_prometheus(
        [], tmp_path / "prometheus", target_files=[str(prometheus_targets_dir(endpoint.settings) / "*.json")]
    )
    try:
        monkeypatch.setenv("AIRFLOW_CONN_LOCAL_PROMETHEUS", prometheus.connection_json())
        endpoint.ensure_proxy()
        _adopt_stable(endpoint, predictor_servers["v1"], stable.version, stable.uri)
        assert targets_in_file(endpoint) == {("stable", "1")}
        prometheus.wait_scraped(f'up{{model="{MODEL_NAME}",role="stable",version="1"}} == 1')

        def rollout(judge) -> ProgressiveRollout:
            return ProgressiveRollout(
                endpoint, model_name=MODEL_NAME, analysis=PROBES, steps=[RolloutStep("canary", 50)], judge=judge,
                step_window=2.0, step_timeout=90.0, strategy="canary",
            )  # fmt: skip

        good = ObservedJudge(endpoint, prometheus)
        with Users(endpoint.endpoint_url) as users:
            result = rollout(good).deploy("2", equal_uri)
        assert result["status"] == "promoted", result.get("message")
        last = good.calls[-1]
        assert last["verdict"]["verdict"] == "pass" and last["verdict"]["source"] == "prometheus"
        # Both slots were Prometheus targets with their role, and their per-version series were queryable.
        assert {("canary", "2"), ("stable", "1")} <= last["targets"]
        assert {("canary", "2", "2"), ("stable", "1", "1")} <= last["series"]
        assert {"1", "2"} <= set(users.answers)
        assert targets_in_file(endpoint) == {("stable", "2")}  # the promoted slot; the old one stopped

        worse = ObservedJudge(endpoint, prometheus)
        with Users(endpoint.endpoint_url):
            result = rollout(worse).deploy("3", worse_uri)
        assert result["status"] == "rolled_back" and result["reason"] == "AnalysisFailed", result
        last = worse.calls[-1]
        assert last["probes"] == "pass"  # the probes see nothing wrong
        assert last["verdict"]["verdict"] == "fail"
        divergence = next(m for m in last["verdict"]["metrics"] if m["name"] == "prediction_divergence")
        assert divergence["passed"] is False and divergence["value"] > 0.1
        assert {("canary", "3"), ("stable", "2")} <= last["targets"]
        assert targets_in_file(endpoint) == {("stable", "2")}  # the rolled-back candidate is no target any more
        assert endpoint.active()["model_version"] == "2"
    finally:
        prometheus.stop()
